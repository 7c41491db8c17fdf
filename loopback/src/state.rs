//! State shared between the synchronous `Server` handle and the tasks on the
//! server's runtime: current settings, the observation record and the table
//! of live connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::mcp::MCP_FIRST_TEST_ID;
use crate::options::ServerOptions;
use crate::record::{EventKind, Record};
use crate::registry::{Control, Registry};

pub(crate) struct Shared {
    /// Shared by every connection accepted under them: one copy, however
    /// many connections.
    settings: Mutex<Arc<ServerOptions>>,
    pub(crate) record: Record,
    pub(crate) registry: Registry,
    next_conn: AtomicU64,
    next_ping: AtomicU64,
    next_mcp_id: AtomicU64,
}

impl Shared {
    pub(crate) fn new(options: ServerOptions) -> Self {
        Shared {
            settings: Mutex::new(Arc::new(options)),
            record: Record::default(),
            registry: Registry::default(),
            next_conn: AtomicU64::new(1),
            next_ping: AtomicU64::new(1),
            next_mcp_id: AtomicU64::new(MCP_FIRST_TEST_ID),
        }
    }

    /// The settings, taken once per accepted connection.
    pub(crate) fn settings(&self) -> Arc<ServerOptions> {
        self.lock_settings().clone()
    }

    /// Changes the settings for connections accepted from now on; the live
    /// ones keep the copy they took.
    pub(crate) fn update_settings(&self, f: impl FnOnce(&mut ServerOptions)) {
        f(Arc::make_mut(&mut self.lock_settings()));
    }

    pub(crate) fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Number of the next server-initiated Ping (its payload, in decimal);
    /// one sequence server-wide so every recorded Pong can be traced to
    /// exactly one Ping.
    pub(crate) fn next_ping_number(&self) -> u64 {
        self.next_ping.fetch_add(1, Ordering::Relaxed)
    }

    /// Id of the next MCP request a test sends; unique server-wide.
    pub(crate) fn next_mcp_id(&self) -> u64 {
        self.next_mcp_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes a connection reachable by faults and counted as open.
    pub(crate) fn register(&self, conn: u64, device_id: &str) -> mpsc::UnboundedReceiver<Control> {
        // Table first, count second: a test woken by the count must find the
        // connection when it injects a fault.
        let rx = self.registry.insert(conn, device_id.to_owned());
        self.record.update(|s| s.open += 1);
        rx
    }

    /// Idempotent: only the first call for a connection changes the count.
    pub(crate) fn unregister(&self, conn: u64) {
        if self.registry.remove(conn) {
            self.record.update(|s| s.open = s.open.saturating_sub(1));
        }
    }

    pub(crate) fn event(&self, conn: u64, device_id: Option<&str>, kind: EventKind) {
        self.record.event(conn, device_id, kind);
    }

    fn lock_settings(&self) -> MutexGuard<'_, Arc<ServerOptions>> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }
}

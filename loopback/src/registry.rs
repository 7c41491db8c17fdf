//! The live-connection table and the control messages sent to connection
//! tasks, with acknowledgements that the synchronous API can wait for from
//! any thread (including threads of other tokio runtimes).

use std::collections::HashMap;
use std::sync::{mpsc as std_mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::fault::Fault;
use crate::mcp::Outgoing;

/// Reports, exactly once, whether a control message was applied. A message
/// dropped unapplied (its connection ended first) reports `None` from `Drop`,
/// so a waiter never sits out its whole timeout for a connection that is gone.
pub(crate) struct Ack {
    tx: Option<std_mpsc::Sender<Option<Instant>>>,
}

impl Ack {
    /// Reports the fault applied now.
    pub(crate) fn applied(mut self) -> Instant {
        let at = Instant::now();
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Some(at));
        }
        at
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(None);
        }
    }
}

/// What a control asks of a connection.
#[derive(Clone, Debug)]
pub(crate) enum Action {
    Fault(Fault),
    /// Send an MCP message (only where the client announced MCP).
    Mcp(Outgoing),
}

/// A message to one connection task.
pub(crate) struct Control {
    pub(crate) action: Action,
    pub(crate) ack: Ack,
}

struct Handle {
    device_id: String,
    tx: mpsc::UnboundedSender<Control>,
}

/// Live (upgraded, not yet closed) connections by connection number.
#[derive(Default)]
pub(crate) struct Registry {
    conns: Mutex<HashMap<u64, Handle>>,
}

/// The outcome of sending a fault to a set of connections.
pub(crate) struct Dispatch {
    rx: std_mpsc::Receiver<Option<Instant>>,
    sent: usize,
}

impl Dispatch {
    /// Waits for every addressed connection to apply or drop the fault.
    /// Returns the earliest application instant (conservative for latency
    /// measurements) and how many connections applied it.
    pub(crate) fn wait(self, timeout: Duration) -> (Option<Instant>, usize) {
        let deadline = Instant::now() + timeout;
        let mut first: Option<Instant> = None;
        let mut applied = 0;
        for _ in 0..self.sent {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Some(at)) => {
                    applied += 1;
                    first = Some(first.map_or(at, |f| f.min(at)));
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
        (first, applied)
    }
}

impl Registry {
    /// Adds a connection; returns the receiver its task reads controls from.
    pub(crate) fn insert(&self, conn: u64, device_id: String) -> mpsc::UnboundedReceiver<Control> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(conn, Handle { device_id, tx });
        rx
    }

    /// Removes a connection; returns whether it was still present.
    pub(crate) fn remove(&self, conn: u64) -> bool {
        self.lock().remove(&conn).is_some()
    }

    /// Sends `action` to every connection, or those with this device id.
    pub(crate) fn dispatch(&self, device_id: Option<&str>, action: &Action) -> Dispatch {
        let (tx, rx) = std_mpsc::channel();
        let mut sent = 0;
        for handle in self.lock().values() {
            if device_id.is_some_and(|d| d != handle.device_id) {
                continue;
            }
            let control = Control {
                action: action.clone(),
                ack: Ack { tx: Some(tx.clone()) },
            };
            // A failed send drops the Ack, which reports `None` by itself.
            let _ = handle.tx.send(control);
            sent += 1;
        }
        Dispatch { rx, sent }
    }

    /// Device ids of the live connections (sorted; repeated per connection).
    pub(crate) fn device_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().values().map(|h| h.device_id.clone()).collect();
        ids.sort();
        ids
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Handle>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

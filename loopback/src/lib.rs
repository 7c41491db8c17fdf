//! A loopback xiaozhi-compatible WebSocket server with fault injection, for
//! wsvisor's integration tests, its demo and its benchmarks, and its HTTP
//! sibling [`OtaServer`] (OTA discovery and activation).
//!
//! This file owns the public API: [`Server`], its synchronous control and
//! observation methods, and the server thread's lifecycle. The server runs on
//! its own thread with its own tokio runtime, so it is independent of the
//! runtime (actix or tokio) its clients use, and every method may be called
//! from any thread, async context or not. Control methods return once the
//! action has been applied.
//!
//! What the server does mirrors xiaozhi-esp32-server v0.9.6 where wsvisor's
//! tests need it; each module says which file of the real server it
//! follows. [`ServerOptions::default`] keeps the loopback's historical
//! behaviour; [`ServerOptions::xiaozhi_server`] is the real server's
//! defaults. In short:
//! - admission: [`ServerOptions::expected_token`] and its neighbours; a
//!   refused client is upgraded (101), gets [`AUTH_FAILED_TEXT`] and Close 1000;
//! - the hello echoes the client's `audio_params`, and is followed by an MCP
//!   `initialize` when the client announced `features.mcp` ([`McpOptions`]);
//! - idle close: Close 1000 with an empty reason after
//!   [`ServerOptions::idle_close`] without activity as the real server counts it;
//! - typed text is answered per [`TextAnswer`];
//! - tests drive MCP with [`Server::mcp_call_tool`] and friends and read the
//!   answers with [`Server::mcp_replies`];
//! - [`Fault`] covers ordinary failures and a hostile server's attacks.
//!
//! ```no_run
//! use std::time::Duration;
//! use wsvisor_loopback::{Fault, Server, ServerOptions};
//!
//! let server = Server::start(ServerOptions::default()).unwrap();
//! // ... point a client at server.url() ...
//! assert!(server.wait_for_hellos(1, Duration::from_secs(5)));
//! let at = server.inject(Fault::Close(1012, "service restart".into()));
//! # let _ = at;
//! ```

#![deny(missing_docs)]

mod answer;
mod apply;
mod auth;
mod clock;
mod conn;
mod conversation;
mod fault;
mod handshake;
mod hostile;
mod ids;
mod listener;
mod mcp;
mod options;
mod ota;
mod protocol;
mod record;
mod registry;
mod state;
mod wire;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

pub use answer::{AnswerCut, AnswerKind, AnswerScript, CutAction, Emotion, TextAnswer};
pub use auth::{AUTH_FAILED_TEXT, NO_DEVICE_ID_TEXT};
pub use conversation::MCP_VISION_TOKEN;
pub use fault::{Fault, HOSTILE_TEXT};
pub use mcp::{McpOptions, McpReply, McpSent, McpTools, MCP_FIRST_TEST_ID, MCP_INITIALIZE_ID, MCP_TOOLS_LIST_ID};
pub use options::{Mode, ServerOptions};
pub use ota::{
    hmac_sha256_hex, ActivationOptions, OtaActivation, OtaDevice, OtaOptions, OtaRequest, OtaRequestKind, OtaServer,
    OtaWebsocket,
};
pub use record::{EventKind, Headers, ReceivedText, SentText, ServerEvent, HISTORY_LIMIT};

use listener::StopListening;
use registry::Action;
use state::Shared;

/// Upper bound for any one control call to be carried out by the server
/// thread (each socket write inside it is bounded separately).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `Drop` waits for the server thread before leaving it behind.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of [`Server::inject_where`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    /// When the fault was applied: the earliest instant among the affected
    /// connections (a conservative origin for latency measurements), or the
    /// time of the call when none was affected.
    pub at: Instant,
    /// How many connections applied it.
    pub connections: usize,
}

/// A running loopback server. Dropping it closes the listener and every
/// connection (without Close frames) and joins its thread.
pub struct Server {
    shared: Arc<Shared>,
    handle: Handle,
    addr: SocketAddr,
    /// `Some` while listening; held across stop/start so they do not interleave.
    listening: Mutex<Option<StopListening>>,
    shutdown: Option<oneshot::Sender<()>>,
    done: Mutex<std_mpsc::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a server on `127.0.0.1` with a free port.
    pub fn start(options: ServerOptions) -> io::Result<Server> {
        Server::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), options)
    }

    /// Starts a server on `addr` (port 0: a free one); outages rebind the
    /// same port.
    pub fn start_at(addr: SocketAddr, options: ServerOptions) -> io::Result<Server> {
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wsvisor-loopback".into())
            .spawn(move || {
                let runtime = match Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("wsvisor-loopback-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    let _ = shutdown_rx.await;
                });
                // Dropping the tasks closes the listener and every socket.
                runtime.shutdown_timeout(Duration::from_secs(2));
                let _ = done_tx.send(());
            })?;
        let handle = ready_rx
            .recv()
            .map_err(|_| io::Error::other("loopback server thread died"))??;
        let mut server = Server {
            shared: Arc::new(Shared::new(options)),
            handle,
            addr,
            listening: Mutex::new(None),
            shutdown: Some(shutdown_tx),
            done: Mutex::new(done_rx),
            thread: Some(thread),
        };
        let (addr, stop) = server.listen_at(server.addr)?;
        server.addr = addr;
        *server.lock_listening() = Some(stop);
        Ok(server)
    }

    // ----- addresses -------------------------------------------------------

    /// The bound address (`127.0.0.1:PORT`); the port survives outages.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/xiaozhi/v1/`.
    pub fn url(&self) -> String {
        format!("ws://{}/xiaozhi/v1/", self.addr)
    }

    // ----- settings (apply to connections accepted afterwards) -------------

    /// A copy of the options new connections get.
    pub fn options(&self) -> ServerOptions {
        (*self.shared.settings()).clone()
    }

    /// Changes any option for connections accepted from now on, e.g.
    /// `server.update_options(|o| o.text_answer = TextAnswer::Ignore)`.
    pub fn update_options(&self, f: impl FnOnce(&mut ServerOptions)) {
        self.shared.update_settings(f);
    }

    /// Sets the mode of connections accepted from now on.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.update_settings(|s| s.mode = mode);
    }

    /// The mode new connections get.
    pub fn mode(&self) -> Mode {
        self.shared.settings().mode.clone()
    }

    /// Sets the idle-close delay of connections accepted from now on.
    pub fn set_idle_close(&self, idle_close: Option<Duration>) {
        self.shared.update_settings(|s| s.idle_close = idle_close);
    }

    /// Sets the token required of connections accepted from now on (see
    /// [`ServerOptions::expected_token`]).
    pub fn set_expected_token(&self, token: Option<String>) {
        self.shared.update_settings(|s| s.expected_token = token);
    }

    /// Sets the server Ping interval of connections accepted from now on.
    pub fn set_ping_interval(&self, every: Option<Duration>) {
        self.shared.update_settings(|s| s.ping_interval = every);
    }

    // ----- faults ----------------------------------------------------------

    /// Applies `fault` to every open connection; returns when it was applied
    /// (see [`Injection::at`]).
    pub fn inject(&self, fault: Fault) -> Instant {
        self.inject_where(None, fault).at
    }

    /// Applies `fault` to the open connections whose `Device-Id` is `device_id`.
    pub fn inject_for(&self, device_id: &str, fault: Fault) -> Instant {
        self.inject_where(Some(device_id), fault).at
    }

    /// Applies `fault` to all open connections (`None`) or those of one
    /// device, and reports how many applied it.
    pub fn inject_where(&self, device_id: Option<&str>, fault: Fault) -> Injection {
        let called = Instant::now();
        let dispatch = self.shared.registry.dispatch(device_id, &Action::Fault(fault));
        let (first, connections) = dispatch.wait(CONTROL_TIMEOUT);
        Injection {
            at: first.unwrap_or(called),
            connections,
        }
    }

    // ----- MCP (the server's side) ------------------------------------------

    /// Sends the JSON-RPC request `method` (with `params` when given) to the
    /// open connections of `device_id` (all when `None`) whose client
    /// announced MCP, wrapped as the real server wraps it. Its id is fresh
    /// and unique server-wide (from [`MCP_FIRST_TEST_ID`] on); the answers
    /// show up in [`Server::mcp_replies`].
    pub fn mcp_request(&self, device_id: Option<&str>, method: &str, params: Option<Value>) -> McpSent {
        let id = self.shared.next_mcp_id();
        let connections = self.mcp_dispatch(device_id, mcp::request(id, method, params));
        McpSent { id, connections }
    }

    /// `tools/call` of `name` with `arguments`.
    pub fn mcp_call_tool(&self, device_id: Option<&str>, name: &str, arguments: Value) -> McpSent {
        let params = serde_json::json!({"name": name, "arguments": arguments});
        self.mcp_request(device_id, "tools/call", Some(params))
    }

    /// `tools/list`, following every `nextCursor` with the same id (as the
    /// real server does) until a page has none; the gathered tools are in
    /// [`Server::mcp_tools`].
    pub fn mcp_list_tools(&self, device_id: Option<&str>) -> McpSent {
        let id = self.shared.next_mcp_id();
        let connections = self.mcp_dispatch(device_id, mcp::tools_list(id, None));
        McpSent { id, connections }
    }

    /// Sends `payload` exactly as given (a notification without `id`, an id
    /// of another type, something malformed) to the connections that
    /// announced MCP; returns how many sent it.
    pub fn mcp_send(&self, device_id: Option<&str>, payload: Value) -> usize {
        self.mcp_dispatch(device_id, mcp::raw(payload))
    }

    /// Every `mcp` message clients sent, oldest first; the last
    /// [`HISTORY_LIMIT`].
    pub fn mcp_replies(&self) -> Vec<McpReply> {
        self.shared.record.read(|s| s.mcp_replies.iter().cloned().collect())
    }

    /// The most recent message whose JSON-RPC id is `id`.
    pub fn mcp_reply(&self, id: u64) -> Option<McpReply> {
        self.shared
            .record
            .read(|s| s.mcp_replies.iter().rev().find(|r| r.id_u64() == Some(id)).cloned())
    }

    /// Blocks until a message with JSON-RPC id `id` arrived, or `timeout`.
    pub fn wait_for_mcp_reply(&self, id: u64, timeout: Duration) -> Option<McpReply> {
        self.wait_until(timeout, |s| s.mcp_reply(id).is_some());
        self.mcp_reply(id)
    }

    /// The tools `device_id` listed (latest listing of its latest
    /// connection), whether or not every page arrived yet.
    pub fn mcp_tools(&self, device_id: &str) -> Option<McpTools> {
        self.shared.record.read(|s| s.mcp_tools.get(device_id).cloned())
    }

    /// Blocks until `device_id` listed its tools to the last page, or
    /// `timeout`; returns what was gathered either way.
    pub fn wait_for_mcp_tools(&self, device_id: &str, timeout: Duration) -> Option<McpTools> {
        self.wait_until(timeout, |s| s.mcp_tools(device_id).is_some_and(|t| t.complete));
        self.mcp_tools(device_id)
    }

    fn mcp_dispatch(&self, device_id: Option<&str>, out: mcp::Outgoing) -> usize {
        let dispatch = self.shared.registry.dispatch(device_id, &Action::Mcp(out));
        dispatch.wait(CONTROL_TIMEOUT).1
    }

    // ----- outages ---------------------------------------------------------

    /// Closes the listener: new connections are refused, open ones stay.
    /// Returns when the listening socket is closed.
    pub fn stop_listening(&self) -> Instant {
        let mut listening = self.lock_listening();
        if let Some(stop) = listening.take() {
            let (ack_tx, ack_rx) = std_mpsc::channel();
            if stop.send(ack_tx).is_ok() {
                let _ = ack_rx.recv_timeout(CONTROL_TIMEOUT);
            }
            self.shared.event(0, None, record::EventKind::ListenerStopped);
        }
        Instant::now()
    }

    /// Binds the same port again (a no-op while listening).
    pub fn start_listening(&self) -> io::Result<()> {
        let mut listening = self.lock_listening();
        if listening.is_none() {
            let (_, stop) = self.listen_at(self.addr)?;
            *listening = Some(stop);
            self.shared.event(0, None, record::EventKind::ListenerStarted);
        }
        Ok(())
    }

    /// Whether the listener is open.
    pub fn is_listening(&self) -> bool {
        self.lock_listening().is_some()
    }

    /// A server restart as clients see it: the listener closes (so nobody
    /// reconnects in between), every connection is closed with
    /// 1012 "service restart", and the listener opens again on the same port.
    /// Returns when the close frames were sent.
    pub fn restart(&self) -> io::Result<Instant> {
        self.stop_listening();
        let at = self.inject(Fault::Close(1012, "service restart".to_owned()));
        self.start_listening()?;
        Ok(at)
    }

    // ----- observation -----------------------------------------------------

    /// TCP connections accepted.
    pub fn accepted(&self) -> u64 {
        self.shared.record.read(|s| s.accepted)
    }

    /// WebSocket upgrades accepted (counted when the `101` is approved, so
    /// never behind what a client saw).
    pub fn upgrades(&self) -> u64 {
        self.shared.record.read(|s| s.upgrades)
    }

    /// Server hellos sent.
    pub fn hellos(&self) -> u64 {
        self.shared.record.read(|s| s.hellos)
    }

    /// Connections upgraded and not yet closed (silent ones included).
    pub fn open_connections(&self) -> usize {
        self.shared.record.read(|s| s.open)
    }

    /// `Device-Id`s of the open connections, sorted, one entry per connection.
    pub fn open_devices(&self) -> Vec<String> {
        self.shared.registry.device_ids()
    }

    /// Text messages received from clients, except their hellos (app-level
    /// pings included), oldest first; the last [`HISTORY_LIMIT`].
    pub fn received_texts(&self) -> Vec<ReceivedText> {
        self.shared.record.read(|s| s.texts.iter().cloned().collect())
    }

    /// How many text messages (except hellos) were received in total.
    pub fn received_text_count(&self) -> u64 {
        self.shared.record.read(|s| s.texts_total)
    }

    /// Binary frames received from clients.
    pub fn received_binary_frames(&self) -> u64 {
        self.shared.record.read(|s| s.binary_frames)
    }

    /// Bytes in binary frames received from clients.
    pub fn received_binary_bytes(&self) -> u64 {
        self.shared.record.read(|s| s.binary_bytes)
    }

    /// Text messages the server wrote (hellos, pongs, answers, MCP requests,
    /// faults' texts; not the frames of floods), oldest first; the last
    /// [`HISTORY_LIMIT`].
    pub fn sent_texts(&self) -> Vec<SentText> {
        self.shared.record.read(|s| s.sent_texts.iter().cloned().collect())
    }

    /// Binary frames the server wrote (answer audio, faults).
    pub fn sent_binary_frames(&self) -> u64 {
        self.shared.record.read(|s| s.sent_binary_frames)
    }

    /// Every client hello, parsed, oldest first; the last [`HISTORY_LIMIT`].
    pub fn client_hellos(&self) -> Vec<serde_json::Value> {
        self.shared.record.read(|s| s.client_hellos.iter().cloned().collect())
    }

    /// Headers of the most recent upgrade request (refused ones included).
    pub fn last_headers(&self) -> Option<Headers> {
        self.shared.record.read(|s| s.last_headers.clone())
    }

    /// Payloads of the WebSocket Pongs received, oldest first.
    pub fn pongs_received(&self) -> Vec<Vec<u8>> {
        self.shared.record.read(|s| s.pongs.iter().cloned().collect())
    }

    /// WebSocket Pings received from clients.
    pub fn client_pings(&self) -> u64 {
        self.shared.record.read(|s| s.client_pings)
    }

    /// WebSocket Pings the server sent on its own (`ping_interval`).
    pub fn pings_sent(&self) -> u64 {
        self.shared.record.read(|s| s.pings_sent)
    }

    /// Codes of the closes clients started (`None`: a Close frame without a
    /// code). Echoes of server-initiated closes are not included; they appear
    /// in [`Server::events`] as [`EventKind::CloseEchoed`].
    pub fn closes_received(&self) -> Vec<Option<u16>> {
        self.shared.record.read(|s| s.closes.iter().cloned().collect())
    }

    /// The timeline, oldest first; the last [`HISTORY_LIMIT`] events.
    pub fn events(&self) -> Vec<ServerEvent> {
        self.shared.record.read(|s| s.events.iter().cloned().collect())
    }

    /// Forgets the histories (texts received and sent, hellos, pongs,
    /// closes, events, MCP replies and tools); counters and `last_headers`
    /// stay.
    pub fn clear_history(&self) {
        self.shared.record.update(|s| {
            s.texts.clear();
            s.sent_texts.clear();
            s.mcp_replies.clear();
            s.mcp_tools.clear();
            s.client_hellos.clear();
            s.pongs.clear();
            s.closes.clear();
            s.events.clear();
        });
    }

    // ----- waiting ---------------------------------------------------------

    /// Blocks until at least `n` server hellos were sent, or `timeout`.
    pub fn wait_for_hellos(&self, n: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.hellos() >= n)
    }

    /// Blocks until exactly `n` connections are open, or `timeout`.
    pub fn wait_for_open(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.open_connections() == n)
    }

    /// Blocks until at least `n` text messages were received in total.
    pub fn wait_for_texts(&self, n: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.received_text_count() >= n)
    }

    /// Blocks until `pred` holds, re-checking whenever anything the server
    /// records changes (no polling), or until `timeout`. Returns the last
    /// result of `pred`.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&Server) -> bool) -> bool {
        self.shared.record.wait_until(timeout, || pred(self))
    }

    // ----- internals -------------------------------------------------------

    fn listen_at(&self, addr: SocketAddr) -> io::Result<(SocketAddr, StopListening)> {
        let shared = self.shared.clone();
        self.run(listener::listen(shared, addr))
            .unwrap_or_else(|| Err(io::Error::other("loopback server thread did not answer")))
    }

    /// Runs `fut` on the server runtime and waits for its result. Not
    /// `Handle::block_on`: that panics when called from a thread that is
    /// already inside a runtime, as async tests are.
    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Option<T> {
        let (tx, rx) = std_mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv_timeout(CONTROL_TIMEOUT).ok()
    }

    fn lock_listening(&self) -> MutexGuard<'_, Option<StopListening>> {
        self.listening.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let finished = self
            .done
            .lock()
            .map(|done| done.recv_timeout(SHUTDOWN_TIMEOUT).is_ok())
            .unwrap_or(false);
        if let Some(thread) = self.thread.take() {
            // Joining a thread that did not finish in time could block
            // forever; leave it behind instead.
            if finished {
                let _ = thread.join();
            }
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("open_connections", &self.open_connections())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_is_shareable_between_threads() {
        fn is<T: Send + Sync>() {}
        is::<super::Server>();
    }
}

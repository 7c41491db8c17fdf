//! A loopback OTA + activation endpoint: the HTTP side of a xiaozhi server,
//! where a device learns its WebSocket URL and token and, while unbound,
//! gets an activation code and challenge. Runs on its own thread with its
//! own runtime, like [`crate::Server`]; every method may be called from any
//! thread, async or not.
//!
//! ```no_run
//! use wsvisor_loopback::{ActivationOptions, OtaOptions, OtaServer, Server, ServerOptions};
//!
//! let server = Server::start(ServerOptions::default()).unwrap();
//! let mut options = OtaOptions::for_url(&server.url(), "");
//! options.activation = Some(ActivationOptions::default());
//! let ota = OtaServer::start(options).unwrap();
//! // ... point a client at ota.url() ...
//! # let _ = ota.requests();
//! ```

mod http;
mod logic;
mod options;
mod record;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc as std_mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub use logic::hmac_sha256_hex;
pub use options::{ActivationOptions, OtaOptions, OtaWebsocket};
pub use record::{OtaActivation, OtaDevice, OtaRequest, OtaRequestKind};

use http::{read_request, write_reply, Unreadable, IO_TIMEOUT};
use logic::{unwrap_payload, Asked, Endpoint, Reply};

/// Requests remembered; older ones are forgotten.
const REQUEST_HISTORY: usize = 10_000;

/// How long `Drop` waits for the endpoint's thread.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

struct State {
    endpoint: Endpoint,
    requests: VecDeque<OtaRequest>,
    /// Bumped on every change; lets waits avoid lost wake-ups.
    generation: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running OTA endpoint on `127.0.0.1`. Dropping it stops it.
pub struct OtaServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    done: Mutex<std_mpsc::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OtaServer {
    /// Starts an endpoint on `127.0.0.1` with a free port.
    pub fn start(options: OtaOptions) -> io::Result<OtaServer> {
        OtaServer::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), options)
    }

    /// Starts an endpoint on `addr` (port 0: a free one).
    pub fn start_at(addr: SocketAddr, options: OtaOptions) -> io::Result<OtaServer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                endpoint: Endpoint::new(options),
                requests: VecDeque::new(),
                generation: 0,
            }),
            changed: Condvar::new(),
        });
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = std_mpsc::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel::<io::Result<()>>();
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wsvisor-loopback-ota".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(listener) => listener,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        _ = shutdown_rx => {}
                        () = accept_loop(listener, serving) => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
                let _ = done_tx.send(());
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("OTA endpoint thread died"))??;
        Ok(OtaServer {
            shared,
            addr,
            shutdown: Some(shutdown_tx),
            done: Mutex::new(done_rx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT<path>`, e.g. `http://127.0.0.1:PORT/xiaozhi/ota/`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.lock().endpoint.options.path)
    }

    /// Where activation is served: the OTA URL joined with `activate`.
    pub fn activate_url(&self) -> String {
        let url = self.url();
        format!("{}/activate", url.trim_end_matches('/'))
    }

    // ----- settings --------------------------------------------------------

    /// A copy of the current options.
    pub fn options(&self) -> OtaOptions {
        self.lock().endpoint.options.clone()
    }

    /// Changes the options; applies to the next request.
    pub fn update_options(&self, f: impl FnOnce(&mut OtaOptions)) {
        self.update(|s| f(&mut s.endpoint.options));
    }

    /// Hands out this `websocket` section from now on.
    pub fn set_websocket(&self, url: &str, token: &str) {
        self.update_options(|o| {
            o.websocket = Some(OtaWebsocket {
                url: url.to_owned(),
                token: token.to_owned(),
            })
        });
    }

    /// Marks a device bound, as when the user typed its code in the console
    /// (what a v1 device waits for, polling OTA).
    pub fn bind(&self, device_id: &str) {
        self.update(|s| s.endpoint.bind(device_id));
    }

    /// Unbinds a device: its next OTA answer carries a code again.
    pub fn unbind(&self, device_id: &str) {
        self.update(|s| s.endpoint.unbind(device_id));
    }

    /// Expires every code handed out so far, without waiting for
    /// `code_ttl`: `/activate` with them answers 410 and the next OTA hands
    /// out fresh ones.
    pub fn expire_codes(&self) {
        self.update(|s| s.endpoint.expire_codes());
    }

    // ----- observation -----------------------------------------------------

    /// What the endpoint knows of a device (after its first request).
    pub fn device(&self, device_id: &str) -> Option<OtaDevice> {
        self.lock().endpoint.device(device_id, Instant::now())
    }

    /// Every request, oldest first (the last 10,000).
    pub fn requests(&self) -> Vec<OtaRequest> {
        self.lock().requests.iter().cloned().collect()
    }

    /// The version checks (`POST <path>`), oldest first.
    pub fn ota_requests(&self) -> Vec<OtaRequest> {
        self.of_kind(OtaRequestKind::Ota)
    }

    /// The activation requests, oldest first.
    pub fn activate_requests(&self) -> Vec<OtaRequest> {
        self.of_kind(OtaRequestKind::Activate)
    }

    /// Blocks until at least `n` requests were recorded, or `timeout`.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |ota| ota.lock().requests.len() >= n)
    }

    /// Blocks until `pred` holds, re-checking whenever a request is
    /// recorded or a setting changes, or until `timeout`.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&OtaServer) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.lock().generation;
            if pred(self) {
                return true;
            }
            let mut state = self.lock();
            while state.generation == seen {
                let now = Instant::now();
                if now >= deadline {
                    drop(state);
                    return pred(self);
                }
                state = match self.shared.changed.wait_timeout(state, deadline - now) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
        }
    }

    fn of_kind(&self, kind: OtaRequestKind) -> Vec<OtaRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.kind == kind)
            .cloned()
            .collect()
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        update(&self.shared, f);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

impl Drop for OtaServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let finished = self
            .done
            .lock()
            .map(|done| done.recv_timeout(SHUTDOWN_TIMEOUT).is_ok())
            .unwrap_or(false);
        if let (Some(thread), true) = (self.thread.take(), finished) {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for OtaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtaServer").field("addr", &self.addr).finish()
    }
}

fn update(shared: &Shared, f: impl FnOnce(&mut State)) {
    let mut state = shared.lock();
    f(&mut state);
    state.generation = state.generation.wrapping_add(1);
    drop(state);
    shared.changed.notify_all();
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, shared.clone()));
            }
            // EMFILE and the like repeat at once; pause instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let request = match tokio::time::timeout(IO_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(request)) => request,
        Ok(Err(Unreadable(status, why))) => {
            write_reply(&mut stream, &Reply::text(status, why)).await;
            return;
        }
        Err(_) => return,
    };
    let json: Option<Value> = serde_json::from_slice(&request.body).ok();
    let payload = json.as_ref().map(|j| unwrap_payload(j).clone());
    let now = Instant::now();
    let mut reply = None;
    let mut kind = OtaRequestKind::Other;
    update(&shared, |state| {
        let path = state.endpoint.options.path.clone();
        kind = classify(&request.method, &request.target, &path);
        let asked = Asked {
            device_id: request.header("device-id"),
            client_id: request.header("client-id"),
            payload: payload.as_ref(),
        };
        let answer = match kind {
            OtaRequestKind::Ota => state.endpoint.ota(&asked, now, SystemTime::now()),
            OtaRequestKind::Activate => state.endpoint.activate(&asked, now),
            OtaRequestKind::Other if request.method == "GET" && same_path(&request.target, &path) => {
                let url = state
                    .endpoint
                    .options
                    .websocket
                    .as_ref()
                    .map_or(String::new(), |w| w.url.clone());
                // The real server's answer to a browser.
                Reply::text(200, &format!("OTA接口运行正常，向设备发送的websocket地址是：{url}"))
            }
            OtaRequestKind::Other => Reply::text(404, "not found"),
        };
        // Recorded before it is written, so a client reacting to the answer
        // always finds its request here.
        state.requests.push_back(OtaRequest {
            at: now,
            kind,
            method: request.method.clone(),
            path: request.target.clone(),
            headers: request.headers.clone(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            json: json.clone(),
            payload: payload.clone(),
            status: answer.status,
            answer: answer.body.clone(),
        });
        if state.requests.len() > REQUEST_HISTORY {
            state.requests.pop_front();
        }
        reply = Some(answer);
    });
    if let Some(reply) = reply {
        write_reply(&mut stream, &reply).await;
    }
}

/// Which endpoint `target` addresses, however the client joined the paths.
fn classify(method: &str, target: &str, ota_path: &str) -> OtaRequestKind {
    if method != "POST" {
        return OtaRequestKind::Other;
    }
    let path = normalize(target);
    let ota = normalize(ota_path);
    if path == ota {
        OtaRequestKind::Ota
    } else if path == format!("{ota}/activate") || (ota.is_empty() && path == "/activate") {
        OtaRequestKind::Activate
    } else {
        OtaRequestKind::Other
    }
}

fn same_path(target: &str, ota_path: &str) -> bool {
    normalize(target) == normalize(ota_path)
}

/// The path without its query, repeated slashes squeezed, no trailing `/`.
fn normalize(target: &str) -> String {
    let path = target.split('?').next().unwrap_or_default();
    let mut out = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(segment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_path_is_found_however_it_was_joined() {
        let ota = "/xiaozhi/ota/";
        assert_eq!(classify("POST", "/xiaozhi/ota/", ota), OtaRequestKind::Ota);
        assert_eq!(classify("POST", "/xiaozhi/ota", ota), OtaRequestKind::Ota);
        assert_eq!(classify("POST", "/xiaozhi/ota/activate", ota), OtaRequestKind::Activate);
        assert_eq!(
            classify("POST", "/xiaozhi/ota//activate", ota),
            OtaRequestKind::Activate
        );
        assert_eq!(
            classify("POST", "/xiaozhi/ota/activate?x=1", ota),
            OtaRequestKind::Activate
        );
        assert_eq!(classify("GET", "/xiaozhi/ota/", ota), OtaRequestKind::Other);
        assert_eq!(classify("POST", "/elsewhere", ota), OtaRequestKind::Other);
    }
}

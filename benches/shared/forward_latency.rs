//! Forwarding latency, the number a voice user feels (issue 14): Opus-sized
//! binary frames (120 bytes, each session one every 60 ms) from control
//! socket clients through the daemon to a server that echoes them, and back
//! from the daemon to subscribers, compared with the same frames sent by
//! WebSocket clients talking to the same server directly (the physical
//! floor: the same kernel loopback, the same server, a client with no
//! daemon in between).
//!
//! Both paths run at once, their frames taking turns (direct, daemon,
//! direct, ... 0.3 ms apart), so that both meet the machine's load at the
//! same moments: on a shared machine the scheduler, not the code, sets the
//! tail of either. A frame carries its send instant; its
//! latency is the round trip to the echo: up through the daemon and back
//! down, so the difference between the paths is what the daemon adds on
//! both legs together. Each path has one connection per session (a
//! control-socket sender and a subscriber of that session through the
//! daemon; one WebSocket directly), as 100 voice programs would.
//!
//! Shared by benches/wsvisor and benches/independent (`#[path]`); it only
//! needs a server URL that echoes binary frames and the control socket of a
//! daemon whose sessions `s0`, `s1`, ... are ready against it. Every wait is
//! bounded; only 127.0.0.1 and a Unix socket are used.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsvisor::protocol::{to_line, Command, Request};

/// Bytes of a frame: a 60 ms Opus frame at 16 kHz is 100-200 bytes.
pub const FRAME_BYTES: usize = 120;

/// Each session sends one frame this often.
pub const FRAME_EVERY: Duration = Duration::from_millis(60);

/// Bound for connecting, the hello and every single write.
const SOON: Duration = Duration::from_secs(10);

/// After the last frame, echoes still on their way are waited for this long.
const DRAIN: Duration = Duration::from_millis(300);

/// A run's size.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Sessions on each path.
    pub sessions: usize,
    /// Frames sent first and not counted.
    pub warm_up: Duration,
    /// Then frames counted for this long.
    pub measured: Duration,
}

impl Plan {
    /// The full run: 100 sessions for 30 s (50,000 frames a path).
    pub fn full() -> Plan {
        Plan {
            sessions: 100,
            warm_up: Duration::from_secs(1),
            measured: Duration::from_secs(30),
        }
    }

    /// CI's: 100 sessions for 5 s (8,300 frames a path).
    pub fn quick() -> Plan {
        Plan {
            measured: Duration::from_secs(5),
            ..Plan::full()
        }
    }
}

/// The two paths a frame can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Direct = 0,
    Daemon = 1,
}

/// What one path measured.
#[derive(Debug, Default)]
pub struct PathRun {
    /// Round trips of the counted frames, sorted.
    pub samples: Vec<Duration>,
    /// Counted frames sent.
    pub sent: usize,
}

impl PathRun {
    /// Nearest-rank percentile, `p` in 0..=100.
    pub fn pct(&self, p: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.samples.len() as f64).ceil() as usize;
        self.samples[rank.clamp(1, self.samples.len()) - 1]
    }

    /// The largest.
    pub fn max(&self) -> Duration {
        self.samples.last().copied().unwrap_or_default()
    }

    /// Counted frames sent whose echo never came back.
    pub fn lost(&self) -> usize {
        self.sent.saturating_sub(self.samples.len())
    }
}

/// Both paths of one run.
#[derive(Debug)]
pub struct Latency {
    /// Clients talking to the server directly.
    pub direct: PathRun,
    /// Control-socket clients through the daemon.
    pub daemon: PathRun,
    /// `audio` requests the daemon answered with an error.
    pub refused: usize,
    /// Frames sent through the daemon, warm-up included: what its CPU
    /// time during the run was spent on.
    pub through_daemon: usize,
}

impl Latency {
    /// What the daemon adds at percentile `p` (0 when the daemon path was
    /// the faster one there).
    pub fn added(&self, p: f64) -> Duration {
        self.daemon.pct(p).saturating_sub(self.direct.pct(p))
    }

    /// What the daemon adds to the largest round trip.
    pub fn added_max(&self) -> Duration {
        self.daemon.max().saturating_sub(self.direct.max())
    }
}

/// Runs both paths against `url` (which must echo binary frames) and the
/// daemon at `control_socket` (sessions `s0..` ready against `url`).
pub fn measure(url: &str, control_socket: &Path, plan: Plan) -> Latency {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(run(url, control_socket, plan))
}

/// A frame's echo as heard: which route, counted or warm-up, its round trip.
type Heard = (Route, bool, Duration);

async fn run(url: &str, control_socket: &Path, plan: Plan) -> Latency {
    let base = Instant::now();
    let (heard_tx, mut heard_rx) = mpsc::unbounded_channel::<Heard>();
    let (refused_tx, mut refused_rx) = mpsc::unbounded_channel::<()>();

    let mut direct: Vec<DirectSink> = Vec::with_capacity(plan.sessions);
    for i in 0..plan.sessions {
        let (sink, mut stream) = connect_direct(url, i).await.split();
        direct.push(sink);
        let heard = heard_tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let now = Instant::now();
                if let Message::Binary(data) = message {
                    if let Some(sample) = echo_of(&data, base, now) {
                        let _ = heard.send(sample);
                    }
                }
            }
        });
    }

    let mut senders = Vec::with_capacity(plan.sessions);
    for i in 0..plan.sessions {
        subscribe(control_socket, i, base, heard_tx.clone()).await;
        senders.push(sender(control_socket, refused_tx.clone()).await);
    }
    drop(heard_tx);
    drop(refused_tx);

    let mut sent = [0usize; 2];
    let mut through_daemon = 0;
    let mut next_id = 1u64;
    // Each session sends on both routes every FRAME_EVERY; the routes take
    // turns, one frame each, so both meet the machine at the same moments.
    let gap = FRAME_EVERY / (2 * plan.sessions) as u32;
    let frames = ((plan.warm_up + plan.measured).as_nanos() / gap.as_nanos()) as usize;
    let started = tokio::time::Instant::now();
    for k in 0..frames {
        let due = started + gap * k as u32;
        tokio::time::sleep_until(due).await;
        // The first frames on a connection meet cold caches and first
        // allocations: not counted.
        let counted = due - started >= plan.warm_up;
        let route = if k % 2 == 0 { Route::Direct } else { Route::Daemon };
        let session = (k / 2) % plan.sessions;
        let frame = frame(route, counted, session, base);
        match route {
            Route::Direct => {
                let send = direct[session].send(Message::Binary(frame));
                tokio::time::timeout(SOON, send)
                    .await
                    .expect("a direct write within 10 s")
                    .expect("direct write");
            }
            Route::Daemon => {
                let request = Request {
                    id: json!(next_id),
                    command: Command::Audio {
                        session: format!("s{session}"),
                        data: frame,
                    },
                };
                next_id += 1;
                through_daemon += 1;
                let line = to_line(&request) + "\n";
                tokio::time::timeout(SOON, senders[session].write_all(line.as_bytes()))
                    .await
                    .expect("a control write within 10 s")
                    .expect("control write");
            }
        }
        if counted {
            sent[route as usize] += 1;
        }
    }
    tokio::time::sleep(DRAIN).await;

    let mut runs = [PathRun::default(), PathRun::default()];
    while let Ok((route, counted, rtt)) = heard_rx.try_recv() {
        if counted {
            runs[route as usize].samples.push(rtt);
        }
    }
    let mut refused = 0;
    while refused_rx.try_recv().is_ok() {
        refused += 1;
    }
    for (run, sent) in runs.iter_mut().zip(sent) {
        run.samples.sort();
        run.sent = sent;
    }
    let [direct, daemon] = runs;
    Latency {
        direct,
        daemon,
        refused,
        through_daemon,
    }
}

/// A frame: its send instant (ns since `base`), route, counted flag and
/// session, then filler up to [`FRAME_BYTES`].
fn frame(route: Route, counted: bool, session: usize, base: Instant) -> Vec<u8> {
    let mut data = Vec::with_capacity(FRAME_BYTES);
    data.extend_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
    data.push(route as u8);
    data.push(counted as u8);
    data.extend_from_slice(&(session as u16).to_le_bytes());
    data.resize(FRAME_BYTES, 0x5a);
    data
}

/// The round trip of an echoed frame heard at `now`.
fn echo_of(data: &[u8], base: Instant, now: Instant) -> Option<Heard> {
    if data.len() != FRAME_BYTES {
        return None;
    }
    let sent = u64::from_le_bytes(data[..8].try_into().ok()?);
    let route = match data[8] {
        0 => Route::Direct,
        1 => Route::Daemon,
        _ => return None,
    };
    let at = now.duration_since(base);
    Some((route, data[9] == 1, at.saturating_sub(Duration::from_nanos(sent))))
}

/// The writing half of a direct client.
type DirectSink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// A direct client: the upgrade with the headers the daemon sends, and
/// its hello answered.
pub async fn connect_direct(url: &str, i: usize) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    let mut request = url.into_client_request().expect("a ws:// url");
    let headers = request.headers_mut();
    headers.insert("Authorization", HeaderValue::from_static("Bearer bench"));
    headers.insert("Protocol-Version", HeaderValue::from_static("1"));
    let device = HeaderValue::from_str(&format!("direct-{i}")).expect("ascii");
    headers.insert("Device-Id", device);
    let client = HeaderValue::from_str(&format!("6f1c0b8e-0000-4000-9000-{i:012}")).expect("ascii");
    headers.insert("Client-Id", client);
    let (mut ws, _) = tokio::time::timeout(SOON, tokio_tungstenite::connect_async(request))
        .await
        .expect("a direct upgrade within 10 s")
        .expect("direct upgrade");
    let hello = json!({
        "type": "hello", "version": 1, "transport": "websocket",
        "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}
    });
    ws.send(Message::Text(hello.to_string())).await.expect("direct hello");
    let answered = tokio::time::timeout(SOON, async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Text(text) = message {
                if serde_json::from_str::<Value>(&text).is_ok_and(|v| v["type"] == "hello") {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(answered, Ok(true), "no server hello for direct client {i}");
    ws
}

/// Subscribes to session `s{i}`'s audio; a task of its own reads the
/// echoes until the daemon closes.
async fn subscribe(socket: &Path, i: usize, base: Instant, heard: mpsc::UnboundedSender<Heard>) {
    let stream = tokio::time::timeout(SOON, UnixStream::connect(socket))
        .await
        .expect("control connect within 10 s")
        .expect("control connect");
    let (read, mut write) = stream.into_split();
    let request = Request {
        id: json!(1),
        command: Command::Subscribe {
            sessions: Some(vec![format!("s{i}")]),
            audio: true,
        },
    };
    write
        .write_all((to_line(&request) + "\n").as_bytes())
        .await
        .expect("subscribe");
    let mut lines = BufReader::new(read).lines();
    let answer = tokio::time::timeout(SOON, lines.next_line())
        .await
        .expect("subscribed within 10 s")
        .expect("control read")
        .expect("an answer");
    assert!(answer.contains("\"ok\":true"), "subscribe refused: {answer}");
    tokio::spawn(async move {
        let _keep_open = write;
        while let Ok(Some(line)) = lines.next_line().await {
            let now = Instant::now();
            if !line.contains("\"event\":\"audio\"") {
                continue;
            }
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let Some(Ok(data)) = event["data"]
                .as_str()
                .map(|b64| base64::engine::general_purpose::STANDARD.decode(b64))
            else {
                continue;
            };
            if let Some(sample) = echo_of(&data, base, now) {
                let _ = heard.send(sample);
            }
        }
    });
}

/// A control connection for `audio` requests; a task of its own reads
/// the answers and reports each refusal.
async fn sender(socket: &Path, refused: mpsc::UnboundedSender<()>) -> OwnedWriteHalf {
    let stream = tokio::time::timeout(SOON, UnixStream::connect(socket))
        .await
        .expect("control connect within 10 s")
        .expect("control connect");
    let (read, write) = stream.into_split();
    tokio::spawn(async move {
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if !line.contains("\"ok\":true") {
                let _ = refused.send(());
            }
        }
    });
    write
}

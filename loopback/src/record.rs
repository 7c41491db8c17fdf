//! What the server observed: counters, bounded histories and the timeline,
//! behind one mutex with a condition variable so tests can block until
//! something happens instead of polling.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::answer::AnswerKind;
use crate::fault::Fault;
use crate::mcp::{McpReply, McpTools};

/// Histories keep at most this many entries each, so that long benchmarks with
/// thousands of sessions do not grow memory without bound.
pub const HISTORY_LIMIT: usize = 100_000;

/// Headers (or their query-string fallbacks) of an upgrade request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    /// Request path, e.g. `/xiaozhi/v1/`.
    pub path: String,
    /// `Authorization`, verbatim (`Bearer <token>`).
    pub authorization: Option<String>,
    /// `Protocol-Version`.
    pub protocol_version: Option<String>,
    /// `Device-Id`.
    pub device_id: Option<String>,
    /// `Client-Id`.
    pub client_id: Option<String>,
}

/// A text message received from a client (anything but its hello).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedText {
    /// The connection's `Device-Id` (empty when it sent none).
    pub device_id: String,
    /// The session id the server gave this connection, if it sent a hello yet.
    pub session_id: Option<String>,
    /// The message, verbatim.
    pub text: String,
    /// When it was read.
    pub at: Instant,
}

/// A text message the server wrote (hellos, pongs, answers, MCP requests,
/// faults' texts; not the frames of floods).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentText {
    /// Connection number.
    pub conn: u64,
    /// The connection's `Device-Id` (empty when it sent none).
    pub device_id: String,
    /// The message, verbatim.
    pub text: String,
    /// When it was written.
    pub at: Instant,
}

/// One entry of the server timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEvent {
    /// When it happened.
    pub at: Instant,
    /// Connection number (1, 2, ... in accept order); 0 for server-wide events.
    pub conn: u64,
    /// The connection's `Device-Id`, once known.
    pub device_id: Option<String>,
    /// What happened.
    pub kind: EventKind,
}

/// What a [`ServerEvent`] records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A TCP connection was accepted.
    Accepted {
        /// The client's address.
        peer: SocketAddr,
    },
    /// The upgrade was answered with this HTTP status ([`crate::Mode::RefuseUpgrade`]).
    UpgradeRefused {
        /// The status sent.
        status: u16,
    },
    /// The HTTP upgrade failed (not a WebSocket request, timeout, I/O error).
    UpgradeFailed {
        /// Why.
        error: String,
    },
    /// The WebSocket upgrade was accepted.
    Upgraded,
    /// `认证失败` was sent and the connection closed with 1000.
    AuthFailed,
    /// The request named no device: [`crate::NO_DEVICE_ID_TEXT`] was sent
    /// and the connection closed with 1000 ([`crate::ServerOptions::require_device_id`]).
    NoDeviceId,
    /// The client sent a hello.
    HelloReceived,
    /// The server answered a hello.
    HelloSent {
        /// The session id handed out.
        session_id: String,
    },
    /// The client started a close with this code (`None`: empty Close frame).
    ClosedByClient {
        /// The code.
        code: Option<u16>,
    },
    /// The client answered a server-initiated close with this code.
    CloseEchoed {
        /// The code.
        code: Option<u16>,
    },
    /// The server closed with 1000 because the client was idle.
    IdleClosed,
    /// A server Ping went unanswered for `ping_timeout`: closed with 1011.
    PingTimeout,
    /// A client message exceeded `max_message_size`: closed with 1009.
    MessageTooBig,
    /// The server began answering a `listen` `detect` text.
    AnswerStarted {
        /// Which branch of the real server's logic the text took.
        kind: AnswerKind,
        /// The client's text.
        text: String,
    },
    /// The server finished (or cut short) an answer.
    AnswerFinished {
        /// Which branch it was.
        kind: AnswerKind,
        /// It was cut ([`crate::AnswerScript::cut`]) or replaced by the
        /// answer to a newer text, or ended by an `abort`.
        cut: bool,
    },
    /// The server sent an MCP message.
    McpSent {
        /// Its JSON-RPC id, when numeric.
        id: Option<u64>,
        /// Its method.
        method: Option<String>,
    },
    /// The client sent an MCP message (see [`crate::Server::mcp_replies`]).
    McpReceived {
        /// Its JSON-RPC id, when numeric.
        id: Option<u64>,
    },
    /// A flood or trickle fault ended on its own (count or duration done).
    FloodFinished,
    /// A fault was applied to this connection.
    Fault {
        /// The fault.
        fault: Fault,
    },
    /// The connection ended without a closing handshake from the client
    /// (EOF, I/O error, protocol error, write timeout).
    ConnectionLost {
        /// Why.
        error: String,
    },
    /// The listener was closed ([`crate::Server::stop_listening`]).
    ListenerStopped,
    /// The listener was bound again ([`crate::Server::start_listening`]).
    ListenerStarted,
}

/// The counters and histories; see the matching `Server` accessors.
#[derive(Default)]
pub struct Stats {
    /// Bumped on every change; lets predicate waits avoid lost wake-ups.
    pub generation: u64,
    pub accepted: u64,
    pub upgrades: u64,
    pub hellos: u64,
    pub open: usize,
    pub client_pings: u64,
    pub pings_sent: u64,
    pub binary_frames: u64,
    pub binary_bytes: u64,
    pub texts: VecDeque<ReceivedText>,
    pub texts_total: u64,
    pub client_hellos: VecDeque<serde_json::Value>,
    pub sent_texts: VecDeque<SentText>,
    pub sent_binary_frames: u64,
    pub mcp_replies: VecDeque<McpReply>,
    /// By device id: the latest listing of its latest connection.
    pub mcp_tools: HashMap<String, McpTools>,
    pub pongs: VecDeque<Vec<u8>>,
    pub closes: VecDeque<Option<u16>>,
    pub events: VecDeque<ServerEvent>,
    pub last_headers: Option<Headers>,
}

/// Pushes to a bounded history, forgetting the oldest entry when full.
pub fn push_bounded<T>(history: &mut VecDeque<T>, item: T) {
    if history.len() >= HISTORY_LIMIT {
        history.pop_front();
    }
    history.push_back(item);
}

/// The shared observation store.
#[derive(Default)]
pub struct Record {
    stats: Mutex<Stats>,
    changed: Condvar,
}

impl Record {
    /// Applies `f` to the stats and wakes every waiter.
    pub fn update<R>(&self, f: impl FnOnce(&mut Stats) -> R) -> R {
        let mut stats = self.lock();
        let r = f(&mut stats);
        stats.generation = stats.generation.wrapping_add(1);
        drop(stats);
        self.changed.notify_all();
        r
    }

    /// Records a timeline event.
    pub fn event(&self, conn: u64, device_id: Option<&str>, kind: EventKind) {
        let event = ServerEvent {
            at: Instant::now(),
            conn,
            device_id: device_id.map(str::to_owned),
            kind,
        };
        self.update(|s| push_bounded(&mut s.events, event));
    }

    /// Reads the stats.
    pub fn read<R>(&self, f: impl FnOnce(&Stats) -> R) -> R {
        f(&self.lock())
    }

    /// Blocks until `pred` holds or `timeout` passes. `pred` runs without the
    /// lock held, so it may call any `Server` accessor.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.lock().generation;
            if pred() {
                return true;
            }
            let mut stats = self.lock();
            loop {
                if stats.generation != seen {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    drop(stats);
                    return pred();
                }
                stats = match self.changed.wait_timeout(stats, deadline - now) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Stats> {
        // A panic elsewhere must not turn every later observation into a panic.
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

//! Every message that actors of the tree exchange, in one place: reading
//! this file tells the whole conversation.
//!
//! ```text
//! daemon/control ──commands──► Supervisor ──Decide──► ReconnectPolicy
//!                                 ▲  │ start/close/write
//!              ConnectionPhase,   │  ▼
//!              ConnectionEnded ── Connection ◄── SendPing/PeerDead ── Heartbeat
//!                                 │  (life stamped in a shared LineLife, no message per frame)
//!   Monitor ◄── Publish*/Record* ─┘ (and from the Supervisor)
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::connection::{WriteBinaryRefused, WriteTextRefused};
use crate::events::DropReason;
use crate::loss::LossReport;
use crate::mcp::{AnswerError, Offer, OfferError, ProviderId, SessionTools, ToolInfo, ToolOutcome, ToolSpec};
use crate::ota::{Discovered, Offered};
use crate::settings::{Keep, ReconnectSettings, SessionSettings};
use crate::state::{SessionState, SessionSummary, StateUpdate};
use crate::subscription::{SubscriberLimits, Subscription};
use crate::supervisor::QueueBound;
use crate::traffic::TrafficCounters;
use crate::wire::OutboundText;
use strum::EnumCount;

// ───────────────────────── commands to the Supervisor ─────────────────────────

/// Why a command could not be carried out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No session has that name.
    #[error("no session named '{0}'")]
    NotFound(String),
    /// The session is not ready, and what was asked cannot wait (audio).
    #[error("session '{session}' is not ready{}; audio is never queued", state.map(|s| format!(" (it is {s})")).unwrap_or_default())]
    NotReady {
        /// The session.
        session: String,
        /// Its state, when known.
        state: Option<SessionState>,
    },
    /// The session is stopped on purpose: nothing is held for it.
    #[error("session '{0}' is stopped; `wsvisor ctl connect {0}` starts it")]
    Stopped(String),
    /// The session's queue is full.
    #[error("session '{session}' holds {} already", match bound {
        QueueBound::Messages(n) => format!("queue_limit = {n} messages"),
        QueueBound::Bytes(n) => format!("queue_bytes = {n} bytes of messages"),
    })]
    QueueFull {
        /// The session.
        session: String,
        /// The bound it hit.
        bound: QueueBound,
    },
    /// The server stopped reading and the outbound budget is full.
    #[error("session '{session}': {why}")]
    Stalled {
        /// The session.
        session: String,
        /// What is waiting, against which budget.
        why: String,
    },
    /// A session with that name exists already.
    #[error("session '{0}' exists already")]
    AlreadyExists(String),
}

/// Add a session and start it when its settings say `autostart`.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct AddSession(pub Arc<SessionSettings>);

/// Replace the settings of a session: it reconnects with the new ones.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct ReplaceSession(pub Arc<SessionSettings>);

/// Close a session for good and forget it.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct RemoveSession(pub String);

/// Start a stopped or failed session with a fresh attempt count.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct ConnectSession(pub String);

/// Close a session with 1000 and keep it down (`stopped`).
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct DisconnectSession(pub String);

/// Close a session and connect again at once.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct ReconnectSession(pub String);

/// What happened to a text message handed to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Written to the open connection.
    Sent,
    /// Held until the next server hello, at this 1-based position.
    Queued {
        /// Position in the session's queue.
        position: usize,
    },
}

/// Send a JSON object as a text frame; `session_id` is filled in at write
/// time when absent, so a queued message carries the id of the connection
/// that finally sends it.
#[derive(Message)]
#[rtype(result = "Result<SendOutcome, CommandError>")]
pub struct SendText {
    /// Session name.
    pub session: String,
    /// The message.
    pub message: Map<String, Value>,
}

/// Send one binary (audio) frame; refused unless the session is ready and
/// the server is reading.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct SendAudio {
    /// Session name.
    pub session: String,
    /// Frame payload.
    pub data: Bytes,
}

/// Close every session with 1000 and start nothing new; answers once every
/// connection has ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

// ─────────────────────── Connection ⇄ Supervisor ───────────────────────

/// A connection moved forward in its handshake.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct ConnectionPhase {
    /// Session name.
    pub session: String,
    /// Which connection of the session (stale ones are ignored).
    pub generation: u64,
    /// How far it got.
    pub phase: Phase,
}

/// Steps of a connection that the Supervisor cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The OTA endpoint answered, with these sections (whatever follows).
    Offered(Offered),
    /// The OTA endpoint answered with a URL and token.
    Discovered(Discovered),
    /// Upgraded; hello sent.
    Handshaking,
    /// The server hello arrived.
    Ready {
        /// The URL connected to.
        url: String,
        /// The server's session id.
        session_id: Option<String>,
        /// From the start of the attempt to the server hello.
        took: Duration,
    },
}

/// A connection is gone: its socket is closed and its timers are dropped.
/// Sent exactly once per connection, from its `Drop`, so a panic reports too.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct ConnectionEnded {
    /// Session name.
    pub session: String,
    /// Which connection of the session.
    pub generation: u64,
    /// Why it ended.
    pub report: LossReport,
    /// How long it had been ready (None if it never was).
    pub ready_for: Option<Duration>,
    /// The URL it connected (or tried to connect) to, once known.
    pub url: Option<String>,
}

/// Close the connection on purpose with 1000 (`local_stop`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseConnection {
    /// Reason sent in the Close frame and logged.
    pub reason: String,
}

/// Write a text message; handed back when the connection is not ready,
/// refused when the server stopped reading.
#[derive(Message)]
#[rtype(result = "Result<(), WriteTextRefused>")]
pub struct WriteText(pub OutboundText);

/// Write a binary frame; refused when not ready or when the server stopped reading.
#[derive(Message)]
#[rtype(result = "Result<(), WriteBinaryRefused>")]
pub struct WriteBinary(pub Bytes);

// ─────────────────────── Heartbeat ⇄ Connection ───────────────────────

/// The first frame after our Ping arrived: the line answered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LineAnswered;

/// The line was quiet for `ping_interval`: send a Ping.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendPing;

/// Nothing arrived within `ping_timeout` after the Ping.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerDead {
    /// How long the line has been silent.
    pub silent_for: Duration,
}

/// The connection is ending: stop timing it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopHeartbeat;

/// The Heartbeat stopped without being asked (it panicked).
#[derive(Message)]
#[rtype(result = "()")]
pub struct HeartbeatEnded;

// ─────────────────────── Supervisor ⇄ ReconnectPolicy ───────────────────────

/// Register (or replace) the rules for one session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConfigurePolicy {
    /// Session name.
    pub session: String,
    /// Backoff and give-up rules.
    pub reconnect: ReconnectSettings,
    /// Whether clean closes bring the session back.
    pub keep: Keep,
    /// An auth failure first asks the OTA endpoint for a new token.
    pub refresh_on_auth_failure: bool,
}

/// Forget a removed session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForgetPolicy(pub String);

/// Start a new burst: zero failures, first backoff step.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResetAttempts(pub String);

/// A connection ended: what now?
#[derive(Message, Clone, Debug)]
#[rtype(result = "Decision")]
pub struct Decide {
    /// Session name.
    pub session: String,
    /// How it ended.
    pub report: LossReport,
    /// How long it had been ready (None if it never was).
    pub ready_for: Option<Duration>,
}

/// The policy's answer.
#[derive(Clone, Copy, Debug, PartialEq, MessageResponse)]
pub enum Decision {
    /// Retry after `after`.
    Retry {
        /// Number of this retry in its burst, from 1.
        attempt: u32,
        /// Jittered delay.
        after: Duration,
        /// Ask the OTA endpoint again before connecting.
        refresh: bool,
    },
    /// The device must be activated: ask the OTA endpoint again after `after`.
    AwaitActivation {
        /// Until the next question.
        after: Duration,
    },
    /// Park the session as `failed`; probe it in `probe_in`.
    GiveUp {
        /// Consecutive failed attempts.
        attempts: u32,
        /// Until the first probe; `None`: no probes (`revive_after = "0s"`).
        probe_in: Option<Duration>,
    },
    /// A probe of a parked session failed: stay `failed`, probe again.
    KeepProbing {
        /// Until the next probe.
        probe_in: Option<Duration>,
    },
    /// Stay `stopped` (deliberate stop, or clean close with `keep = "on_demand"`).
    StayDown,
}

// ───────────────────────────── to the Monitor ─────────────────────────────

/// A session exists: start keeping its record.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterSession {
    /// Session name.
    pub session: String,
    /// Its URL, for summaries.
    pub url: Option<String>,
    /// Its `max_attempts`, for summaries.
    pub max_attempts: u32,
    /// Counters its connections write to.
    pub traffic: Arc<TrafficCounters>,
}

/// A session is gone: drop its record.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterSession(pub String);

/// A session changed state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishState(pub StateUpdate);

/// The OTA endpoint's latest answer offered these sections.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordOta {
    /// Session name.
    pub session: String,
    /// What it offered.
    pub offered: Offered,
}

/// The server sent a JSON message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishMessage {
    /// Session name.
    pub session: String,
    /// The message as compact JSON text.
    pub message: Arc<str>,
}

/// The server sent a binary frame.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishAudio {
    /// Session name.
    pub session: String,
    /// The frame.
    pub data: Bytes,
}

/// Held messages were dropped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishDropped {
    /// Session name.
    pub session: String,
    /// How many.
    pub count: u64,
    /// Why.
    pub why: DropReason,
}

/// A Ping round trip was measured.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordRtt {
    /// Session name.
    pub session: String,
    /// Round trip.
    pub rtt: Duration,
}

/// The session's queue length changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordQueued {
    /// Session name.
    pub session: String,
    /// Messages held now.
    pub queued: usize,
}

/// Summaries of every session, in name order.
#[derive(Message)]
#[rtype(result = "Vec<SessionSummary>")]
pub struct ListSessions;

/// How many sessions are in each state, in `SessionState::VARIANTS` order:
/// what `status`, systemd's STATUS and the give-up check need, without
/// copying every summary.
#[derive(Message)]
#[rtype(result = "StateCounts")]
pub struct CountStates;

/// Sessions per state, in `SessionState::VARIANTS` order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, MessageResponse)]
pub struct StateCounts(pub [usize; SessionState::COUNT]);

impl StateCounts {
    /// Sessions in `state`.
    pub fn of(&self, state: SessionState) -> usize {
        self.0[state.index()]
    }

    /// Count one more session in `state`.
    pub fn add(&mut self, state: SessionState) {
        self.0[state.index()] += 1;
    }

    /// All sessions.
    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }
}

/// Summary of one session.
#[derive(Message)]
#[rtype(result = "Option<SessionSummary>")]
pub struct GetSession(pub String);

/// Receive events of the named sessions (all when `None`) through a
/// buffer bounded by `limits`.
#[derive(Message)]
#[rtype(result = "Subscription")]
pub struct Subscribe {
    /// Sessions of interest; `None` = all.
    pub sessions: Option<HashSet<String>>,
    /// What may wait for the subscriber, and for how long it may stay behind.
    pub limits: SubscriberLimits,
    /// Only state changes (and lag notices): what the daemon itself watches,
    /// never held up by server messages.
    pub states_only: bool,
}

// ───────────────────────────────── MCP ─────────────────────────────────
//
//  Connection ──McpArrived──► McpResponder ──WriteText──► (that) Connection
//  Supervisor ──StopMcp / ListTools──► McpResponder ──OfferedTools,
//  control socket ──OfferTools / AnswerToolCall / WithdrawTools──►   CallOfferedTool──► ToolBroker

/// The server sent an `mcp` message; the reply goes to `reply`, the
/// connection that read it, and nowhere else.
#[derive(Message)]
#[rtype(result = "()")]
pub struct McpArrived {
    /// The whole message as compact JSON text (the same text subscribers get).
    pub message: Arc<str>,
    /// The connection that read it.
    pub reply: Recipient<WriteText>,
}

/// Stop a session's responder (its session is removed or its MCP settings changed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopMcp;

/// The tools a session offers, for `ctl tools`.
#[derive(Message)]
#[rtype(result = "Result<SessionTools, CommandError>")]
pub struct GetSessionTools(pub String);

/// A responder's tools, config ones first.
#[derive(Message)]
#[rtype(result = "Vec<ToolInfo>")]
pub struct ListTools;

/// A program offers tools; its calls go through the offer's channel.
#[derive(Message)]
#[rtype(result = "Result<ProviderId, OfferError>")]
pub struct OfferTools(pub Offer);

/// A program is gone: its tools are withdrawn and its calls in flight end.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WithdrawTools(pub ProviderId);

/// The tools programs offer to `session`, in the order they were offered.
#[derive(Message)]
#[rtype(result = "Vec<Arc<ToolSpec>>")]
pub struct OfferedTools {
    /// Session name.
    pub session: String,
}

/// Call an offered tool; answered once, by the program, its timeout, or its going away.
#[derive(Message)]
#[rtype(result = "ToolOutcome")]
pub struct CallOfferedTool {
    /// The session whose server asked.
    pub session: String,
    /// The tool, as listed by [`OfferedTools`] (a tool offered anew under
    /// the same name is another tool).
    pub tool: Arc<ToolSpec>,
    /// Already checked against its schema.
    pub arguments: Value,
}

/// A program's answer to one of its calls.
#[derive(Message)]
#[rtype(result = "Result<(), AnswerError>")]
pub struct AnswerToolCall {
    /// The program.
    pub provider: ProviderId,
    /// The call's id.
    pub call_id: String,
    /// Its result.
    pub outcome: ToolOutcome,
}

// ─────────────────────────── liveness ───────────────────────────

/// Answer when your mailbox is being served (the watchdog's probe).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Probe;

/// Probe every actor of the tree; `Ok(n)` once all `n` answered within
/// `within`, else the first part that did not.
#[derive(Message)]
#[rtype(result = "Result<usize, Unanswered>")]
pub struct ProbeTree {
    /// How long every actor has to answer.
    pub within: Duration,
}

/// The part of the tree that did not answer a [`ProbeTree`] in time.
#[derive(Debug, thiserror::Error)]
#[error("the {who} did not answer")]
pub struct Unanswered {
    /// Which: `monitor`, `session=kitchen connection`, ...
    pub who: String,
}

// ─────────────────────── test-only faults ───────────────────────

/// Make the session's live connection panic (tests of panic containment).
#[cfg(feature = "fault-injection")]
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct PanicConnection(pub String);

/// Panic inside the handler.
#[cfg(feature = "fault-injection")]
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

/// Make the session's live connection stop serving its mailbox for ever
/// (tests of the watchdog).
#[cfg(feature = "fault-injection")]
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct WedgeConnection(pub String);

/// Stop serving the mailbox.
#[cfg(feature = "fault-injection")]
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectWedge;

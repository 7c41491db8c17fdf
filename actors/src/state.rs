//! The states of a session and the records the Monitor keeps of them.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use strum::{Display, EnumCount, EnumString, IntoStaticStr, VariantArray};

use crate::loss::{Cause, LossReport};
use crate::ota::Offered;
use crate::traffic::TrafficSnapshot;

/// Where a session is in its life (CONTRACT §3 names); the variant order
/// is the order `status` and metrics list them in.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    IntoStaticStr,
    Display,
    EnumString,
    VariantArray,
    EnumCount,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SessionState {
    /// Down on purpose; only a command (or `keep = "on_demand"` traffic) starts it.
    Stopped,
    /// TCP, TLS and the HTTP upgrade are under way.
    Connecting,
    /// Upgraded; our hello is sent and the server's is awaited.
    Handshaking,
    /// The server hello arrived; messages flow.
    Ready,
    /// Waiting to retry after a loss.
    Backoff,
    /// Gave up after too many attempts or an auth failure; see `last_close`.
    Failed,
    /// The OTA endpoint asks for activation.
    Activating,
}

impl SessionState {
    /// The contract's name of this state.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Position in `SessionState::VARIANTS`, for per-state counts.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One state change of one session, as the Supervisor reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct StateUpdate {
    /// Session name.
    pub session: String,
    /// The new state.
    pub state: SessionState,
    /// Consecutive failed attempts so far.
    pub attempt: u32,
    /// The session's `max_attempts`.
    pub max_attempts: u32,
    /// In `backoff`: how long until the next attempt.
    pub retry_in: Option<Duration>,
    /// The loss that led here, if any.
    pub loss: Option<LossReport>,
    /// In `ready`: the server's session id.
    pub session_id: Option<String>,
    /// In `activating`: the code to enter in the server's console.
    pub activation_code: Option<String>,
    /// When it happened.
    pub at: SystemTime,
}

/// How the last connection of a session ended.
#[derive(Clone, Debug, PartialEq)]
pub struct LastClose {
    /// Why.
    pub cause: Cause,
    /// Close code, when there was one.
    pub code: Option<u16>,
    /// HTTP status of a refused upgrade.
    pub status: Option<u16>,
    /// Close reason or error text.
    pub reason: String,
    /// When.
    pub at: SystemTime,
}

/// Running totals of one session since the daemon started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionCounters {
    /// Connections that reached `ready`.
    pub connects: u64,
    /// Losses by cause, in `Cause::VARIANTS` order.
    pub losses: [u64; Cause::COUNT],
    /// Reconnect attempts scheduled.
    pub reconnect_attempts: u64,
    /// Times the session gave up (`failed`).
    pub give_ups: u64,
    /// Frames, bytes, pings and pongs.
    pub traffic: TrafficSnapshot,
    /// Text messages dropped from the queue (ttl or overflow).
    pub dropped: u64,
}

impl SessionCounters {
    /// Losses of one cause.
    pub fn losses_of(&self, cause: Cause) -> u64 {
        self.losses[cause.index()]
    }
}

/// What `ctl session` shows of one session.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSummary {
    /// Session name.
    pub name: String,
    /// Current state.
    pub state: SessionState,
    /// The server's session id while ready.
    pub session_id: Option<String>,
    /// The URL it connects to (configured, or learnt from the OTA endpoint).
    pub url: Option<String>,
    /// Consecutive failed attempts.
    pub attempt: u32,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// When the current state began.
    pub since: SystemTime,
    /// In `backoff`: time left until the next attempt.
    pub next_retry_in: Option<Duration>,
    /// How the last connection ended.
    pub last_close: Option<LastClose>,
    /// Last measured Ping round trip.
    pub rtt: Option<Duration>,
    /// Text messages waiting for `ready`.
    pub queued: usize,
    /// In `activating`: the code to enter in the server's console.
    pub activation_code: Option<String>,
    /// What the OTA endpoint's latest answer offered (with `ota_url`).
    pub ota: Option<Offered>,
    /// Totals since start.
    pub counters: SessionCounters,
}

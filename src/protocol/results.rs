//! The `result` of each command (CONTRACT §3 table). `session` answers a
//! [`SessionSummary`](super::SessionSummary) with its counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Extra, SessionSummary};

/// `ping`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// The daemon's version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// Fields this reader does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_s: u64,
    /// Its config file.
    pub config: String,
    /// Sessions by state.
    pub sessions: StateCounts,
    /// Fields this reader does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How many sessions are in each state. Keyed by the state's name so that
/// a state added by a newer daemon is still counted by an older reader.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateCounts {
    /// Every session.
    pub total: u64,
    /// Sessions per state name; every state is listed, zero or not.
    #[serde(flatten)]
    pub by_state: BTreeMap<String, u64>,
}

/// `sessions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionList {
    /// Every session, by name.
    pub sessions: Vec<SessionSummary>,
}

/// `connect`, `disconnect`, `reconnect` (and the test-only commands).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Requested {
    /// The session.
    pub session: String,
    /// The command that was requested.
    pub requested: String,
}

/// `send`, `listen`, `abort` and `audio`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Delivery {
    /// Held until the session is ready, at this 1-based position (`queued` is true).
    Queued {
        /// Always true.
        queued: bool,
        /// Position in the session's queue.
        position: usize,
    },
    /// Written to the open connection (`sent` is true).
    Sent {
        /// Always true.
        sent: bool,
    },
}

impl Delivery {
    /// Written to the open connection.
    pub fn sent() -> Self {
        Delivery::Sent { sent: true }
    }

    /// Held at `position`.
    pub fn queued(position: usize) -> Self {
        Delivery::Queued { queued: true, position }
    }
}

/// `subscribe`; the events follow on the same connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    /// Always true.
    pub subscribed: bool,
}

/// `reload`: what changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadSummary {
    /// Sessions that are new.
    pub added: Vec<String>,
    /// Sessions that are gone.
    pub removed: Vec<String>,
    /// Sessions whose settings changed (they reconnect).
    pub changed: Vec<String>,
    /// Sessions left untouched.
    pub unchanged: usize,
    /// Sessions the tree refused, with why; they are left out of the
    /// running config, so the next reload tries again. Absent when none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed: BTreeMap<String, String>,
}

/// `metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsText {
    /// Prometheus text exposition, format 0.0.4.
    pub text: String,
}

/// `identity`: what makes the session a device to the server. Never the
/// HMAC key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdentityInfo {
    /// The session.
    pub session: String,
    /// The `Device-Id` it sends (a MAC address).
    pub device_id: String,
    /// The `Client-Id` it sends (a UUID).
    pub client_id: String,
    /// The `Serial-Number` of activation v2; `null` for a v1 device.
    pub serial_number: Option<String>,
    /// The `Activation-Version` it sends: 2 with a serial number, else 1.
    pub activation_version: u8,
    /// Its identity file in the state directory; `null` when the config
    /// names both ids.
    pub file: Option<String>,
    /// The ids the config names (they win over the file's).
    pub configured: Vec<String>,
    /// Where activation stands.
    pub activation: ActivationStatus,
    /// While `activating`: the code to enter in the server's console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_code: Option<String>,
    /// Fields this reader does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where a session's activation stands, from the OTA endpoint's latest answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ActivationStatus {
    /// The endpoint asks for the code to be entered.
    Activating,
    /// The endpoint's latest answer asked for no activation.
    Bound,
    /// The endpoint has not answered yet since the daemon started.
    Unknown,
    /// No `ota_url`: activation does not apply.
    NoOtaUrl,
}

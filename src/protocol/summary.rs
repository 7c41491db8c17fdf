//! A session summary (CONTRACT §3): one row of `sessions`, and with its
//! counters the result of `session`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strum::VariantArray;
use wsvisor_actors::loss::Cause;
use wsvisor_actors::ota::Offered;
use wsvisor_actors::state::{self, SessionState};

use super::{Extra, Timestamp};

/// What the daemon tells of one session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    pub since: Timestamp,
    /// In `backoff`: time left until the next attempt.
    pub next_retry_in_ms: Option<u64>,
    /// How the last connection ended.
    pub last_close: Option<LastClose>,
    /// Last measured Ping round trip, in milliseconds (microsecond precision).
    pub rtt_ms: Option<f64>,
    /// Text messages waiting for `ready`.
    pub queued: usize,
    /// In `activating`: the code to enter in the server's console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_code: Option<String>,
    /// With `ota_url`: the sections of the OTA endpoint's latest answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ota: Option<OtaOffer>,
    /// Totals since the daemon started (`session` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<Counters>,
    /// Fields this reader does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Which sections the OTA endpoint's latest answer carried. wsvisor speaks
/// WebSocket; `mqtt` is shown because the firmware would pick it, and an
/// answer with only `mqtt` is why a session cannot connect. Never an MQTT
/// credential: of its section only the endpoint's host is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OtaOffer {
    /// A `websocket` section.
    pub websocket: bool,
    /// An `mqtt` section.
    pub mqtt: bool,
    /// `mqtt.endpoint`'s host and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_endpoint: Option<String>,
    /// An `activation` section: not bound yet.
    pub activation: bool,
    /// Fields this reader does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

impl From<&Offered> for OtaOffer {
    fn from(o: &Offered) -> Self {
        OtaOffer {
            websocket: o.websocket,
            mqtt: o.mqtt,
            mqtt_endpoint: o.mqtt_endpoint.clone(),
            activation: o.activation,
            extra: Extra::new(),
        }
    }
}

/// How the last connection of a session ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastClose {
    /// Close code, when there was one.
    pub code: Option<u16>,
    /// Close reason or error text.
    pub reason: String,
    /// When.
    pub at: Timestamp,
    /// Why.
    pub cause: Cause,
    /// HTTP status of a refused upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Fields this reader does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Running totals of one session since the daemon started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Connections that reached `ready`.
    pub connects: u64,
    /// Losses by cause name, every cause listed (zero when it never happened).
    pub losses: BTreeMap<String, u64>,
    /// Reconnect attempts scheduled.
    pub reconnect_attempts: u64,
    /// Times the session gave up (`failed`).
    pub give_ups: u64,
    /// WebSocket Pings sent by the heartbeat.
    pub pings_sent: u64,
    /// Pongs that answered them.
    pub pongs: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
    /// Text messages dropped from the queue (ttl or overflow).
    pub dropped: u64,
    /// Fields this reader does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

impl From<&state::SessionSummary> for SessionSummary {
    /// The summary without counters, as `sessions` lists it.
    fn from(s: &state::SessionSummary) -> Self {
        SessionSummary {
            name: s.name.clone(),
            state: s.state,
            session_id: s.session_id.clone(),
            url: s.url.clone(),
            attempt: s.attempt,
            max_attempts: s.max_attempts,
            since: s.since.into(),
            next_retry_in_ms: s.next_retry_in.map(millis),
            last_close: s.last_close.as_ref().map(LastClose::from),
            rtt_ms: s.rtt.map(|rtt| (rtt.as_secs_f64() * 1e6).round() / 1e3),
            queued: s.queued,
            activation_code: s.activation_code.clone(),
            ota: s.ota.as_ref().map(OtaOffer::from),
            counters: None,
            extra: Extra::new(),
        }
    }
}

impl SessionSummary {
    /// The summary with its counters, as `session` answers.
    pub fn with_counters(s: &state::SessionSummary) -> Self {
        SessionSummary {
            counters: Some(Counters::from(&s.counters)),
            ..SessionSummary::from(s)
        }
    }
}

impl From<&state::LastClose> for LastClose {
    fn from(c: &state::LastClose) -> Self {
        LastClose {
            code: c.code,
            reason: c.reason.clone(),
            at: c.at.into(),
            cause: c.cause,
            status: c.status,
            extra: Extra::new(),
        }
    }
}

impl From<&state::SessionCounters> for Counters {
    fn from(c: &state::SessionCounters) -> Self {
        Counters {
            connects: c.connects,
            losses: Cause::VARIANTS
                .iter()
                .map(|cause| (cause.to_string(), c.losses_of(*cause)))
                .collect(),
            reconnect_attempts: c.reconnect_attempts,
            give_ups: c.give_ups,
            pings_sent: c.traffic.pings_sent,
            pongs: c.traffic.pongs,
            frames_in: c.traffic.frames_in,
            bytes_in: c.traffic.bytes_in,
            frames_out: c.traffic.frames_out,
            bytes_out: c.traffic.bytes_out,
            dropped: c.dropped,
            extra: Extra::new(),
        }
    }
}

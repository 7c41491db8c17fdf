//! The event lines a subscriber receives (CONTRACT §3), and
//! [`event_line`], the one place where a tree event becomes a line.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wsvisor_actors::events::{DropReason, Event};
use wsvisor_actors::json;
use wsvisor_actors::loss::Cause;
use wsvisor_actors::state::SessionState;

use super::summary::millis;
use super::{to_line, Extra, Timestamp, ToolCallEvent};

/// One event line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventLine {
    /// A session changed state.
    State(StateEvent),
    /// A JSON message from the server.
    Message {
        /// Session name.
        session: String,
        /// The message as received.
        message: Value,
    },
    /// A binary (audio) frame from the server.
    Audio {
        /// Session name.
        session: String,
        /// Its size.
        bytes: usize,
        /// The payload (base64 on the wire), for subscribers that asked for it.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_base64")]
        data: Option<Vec<u8>>,
    },
    /// Held text messages were dropped.
    Dropped {
        /// Session name.
        session: String,
        /// How many.
        count: u64,
        /// Why.
        why: DropReason,
    },
    /// This subscriber missed events because it read too slowly.
    Lagged {
        /// How many it missed.
        skipped: u64,
    },
    /// A tool this connection offers was called (after `offer_tools`).
    ToolCall(ToolCallEvent),
}

/// A `state` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateEvent {
    /// Session name.
    pub session: String,
    /// The new state.
    pub state: SessionState,
    /// Consecutive failed attempts so far.
    pub attempt: u32,
    /// In `backoff`: milliseconds until the next attempt.
    pub retry_in_ms: Option<u64>,
    /// The cause of the loss that led here, if any.
    pub cause: Option<Cause>,
    /// Its close code, if any.
    pub code: Option<u16>,
    /// When it happened.
    pub at: Timestamp,
    /// HTTP status of a refused upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// In `ready`: the server's session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// In `activating`: the code to enter in the server's console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_code: Option<String>,
    /// Fields this reader does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

impl EventLine {
    /// The wire form of a tree event; audio payloads only when asked for.
    pub fn of(event: &Event, with_audio: bool) -> EventLine {
        match event {
            Event::State(u) => EventLine::State(StateEvent {
                session: u.session.clone(),
                state: u.state,
                attempt: u.attempt,
                retry_in_ms: u.retry_in.map(millis),
                cause: u.loss.as_ref().map(|l| l.cause),
                code: u.loss.as_ref().and_then(|l| l.code),
                at: u.at.into(),
                status: u.loss.as_ref().and_then(|l| l.status),
                session_id: u.session_id.clone(),
                activation_code: u.activation_code.clone(),
                extra: Extra::new(),
            }),
            // Only tests and tools take this path; subscribers get the
            // server's text as it is (see `event_line`).
            Event::Message { session, message } => EventLine::Message {
                session: session.clone(),
                message: json::parse_bounded(message.as_bytes(), json::MAX_JSON_VALUES).unwrap_or(Value::Null),
            },
            Event::Audio { session, data } => EventLine::Audio {
                session: session.clone(),
                bytes: data.len(),
                data: with_audio.then(|| data.to_vec()),
            },
            Event::Dropped { session, count, why } => EventLine::Dropped {
                session: session.clone(),
                count: *count,
                why: *why,
            },
            Event::Lagged { skipped } => EventLine::Lagged { skipped: *skipped },
        }
    }

    /// The session this event concerns, if any.
    pub fn session(&self) -> Option<&str> {
        match self {
            EventLine::State(state) => Some(&state.session),
            EventLine::Message { session, .. }
            | EventLine::Audio { session, .. }
            | EventLine::Dropped { session, .. } => Some(session),
            EventLine::ToolCall(call) => Some(&call.session),
            EventLine::Lagged { .. } => None,
        }
    }
}

/// The line a subscriber receives for `event` (newline excluded): the one
/// conversion from the tree's events to the wire. A server message is
/// embedded as the compact JSON text the connection validated, never
/// parsed into a tree again (its keys keep the server's order); every
/// other line is written by `to_line`.
pub fn event_line(event: &Event, with_audio: bool) -> String {
    match event {
        Event::Message { session, message } => {
            format!(
                r#"{{"event":"message","message":{message},"session":{}}}"#,
                to_line(session)
            )
        }
        other => to_line(&EventLine::of(other, with_audio)),
    }
}

/// `Option<Vec<u8>>` as optional base64 text.
mod optional_base64 {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::protocol::request::base64_bytes;

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, serializer: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => base64_bytes::serialize(bytes, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "base64_bytes")] Vec<u8>);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(bytes)| bytes))
    }
}

//! What subscribers receive: every state change, every server message, one
//! notice per audio frame, dropped messages, and lag notices.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strum::{Display, EnumString, IntoStaticStr, VariantArray};

use crate::state::StateUpdate;

/// Why held messages were dropped (the contract's `why` values).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, Display, EnumString, VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DropReason {
    /// Older than `queue_ttl`.
    QueueTtl,
    /// The queue was full.
    QueueFull,
    /// The session was removed or stopped while they waited.
    SessionStopped,
}

impl DropReason {
    /// The contract's `why` value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One event for subscribers.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A session changed state.
    State(StateUpdate),
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
        /// The frame payload (subscribers that did not ask for data see only its size).
        data: Bytes,
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
}

impl Event {
    /// The session this event concerns, if any.
    pub fn session(&self) -> Option<&str> {
        match self {
            Event::State(update) => Some(&update.session),
            Event::Message { session, .. } | Event::Audio { session, .. } | Event::Dropped { session, .. } => {
                Some(session)
            }
            Event::Lagged { .. } => None,
        }
    }
}

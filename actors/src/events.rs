//! What subscribers receive: every state change, every server message, one
//! notice per audio frame, dropped messages, and lag notices. An event is
//! made once and shared by every subscriber ([`SharedEvent`]), and so is
//! each line it is rendered to: a message is never copied per subscriber.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
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
        /// The message as compact JSON text (validated, one line).
        message: Arc<str>,
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

/// Room a line of the control protocol takes besides the payload of its
/// event: names, keys, a timestamp.
const LINE_OVERHEAD: usize = 256;

impl Event {
    /// About how many bytes this event's line takes: what it costs a
    /// subscriber's byte budget while it waits to be read.
    pub fn weight(&self) -> usize {
        LINE_OVERHEAD
            + match self {
                Event::State(update) => update.loss.as_ref().map_or(0, |l| l.reason.len()),
                Event::Message { message, .. } => message.len(),
                // Base64, when the subscriber asked for audio data.
                Event::Audio { data, .. } => data.len().div_ceil(3) * 4,
                Event::Dropped { .. } | Event::Lagged { .. } => 0,
            }
    }
}

/// One event as every subscriber receives it: shared, and rendered to a
/// line at most once per form (with or without audio data).
#[derive(Debug)]
pub struct SharedEvent {
    /// The event.
    pub event: Event,
    lines: [OnceLock<Box<str>>; 2],
}

impl SharedEvent {
    /// Share `event`.
    pub fn new(event: Event) -> Arc<Self> {
        Arc::new(SharedEvent {
            event,
            lines: [OnceLock::new(), OnceLock::new()],
        })
    }

    /// The event's line in the form `with_audio` asks for, rendered by
    /// `render` the first time any subscriber needs it.
    pub fn line(&self, with_audio: bool, render: impl FnOnce(&Event, bool) -> String) -> &str {
        self.lines[usize::from(with_audio)].get_or_init(|| render(&self.event, with_audio).into_boxed_str())
    }
}

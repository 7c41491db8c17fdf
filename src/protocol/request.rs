//! What a client asks: one [`Request`] per line, its command named by
//! `cmd` and its arguments beside it. Clients write these with serde; the
//! server reads them with the parser of `parse`, whose error messages say
//! exactly which argument is wrong.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strum::{Display, EnumString, IntoStaticStr};

/// One request line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the response; `null` when absent.
    #[serde(default)]
    pub id: Value,
    /// What to do.
    #[serde(flatten)]
    pub command: Command,
}

/// `listen` states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Display, EnumString, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ListenState {
    /// Start capturing.
    Start,
    /// Stop capturing.
    Stop,
    /// A wake word was detected (`text` carries it).
    Detect,
}

/// `listen` modes: the same names in JSON, in `ctl`'s arguments and in the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Display, EnumString, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ListenMode {
    /// The server detects the end of speech.
    Auto,
    /// The client says when speech ends.
    Manual,
    /// Full duplex.
    Realtime,
}

/// One command with its arguments, as on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, IntoStaticStr)]
#[serde(tag = "cmd", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Command {
    /// Is the daemon there? Result: [`Pong`](super::Pong).
    Ping,
    /// Daemon uptime, config, counts by state. Result: [`Status`](super::Status).
    Status,
    /// Every session's summary. Result: [`SessionList`](super::SessionList).
    Sessions,
    /// One session's summary with counters. Result: [`SessionSummary`](super::SessionSummary).
    Session {
        /// Session name.
        session: String,
    },
    /// Start a stopped or failed session. Result: [`Requested`](super::Requested).
    Connect {
        /// Session name.
        session: String,
    },
    /// Close with 1000 and stay stopped. Result: [`Requested`](super::Requested).
    Disconnect {
        /// Session name.
        session: String,
    },
    /// Close and connect again now. Result: [`Requested`](super::Requested).
    Reconnect {
        /// Session name.
        session: String,
    },
    /// Send a JSON object as a text frame. Result: [`Delivery`](super::Delivery).
    Send {
        /// Session name.
        session: String,
        /// The message.
        message: Map<String, Value>,
    },
    /// Send a xiaozhi `listen` message. Result: [`Delivery`](super::Delivery).
    Listen {
        /// Session name.
        session: String,
        /// The listen state.
        state: ListenState,
        /// The listening mode.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<ListenMode>,
        /// The text (the wake word with `detect`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// Send a xiaozhi `abort` message. Result: [`Delivery`](super::Delivery).
    Abort {
        /// Session name.
        session: String,
        /// Why, e.g. `wake_word_detected`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Send one binary frame. Result: [`Delivery`](super::Delivery).
    Audio {
        /// Session name.
        session: String,
        /// The frame; base64 on the wire.
        #[serde(with = "base64_bytes")]
        data: Vec<u8>,
    },
    /// Stream events of these sessions (all when None). Result:
    /// [`Subscribed`](super::Subscribed), then [`EventLine`](super::EventLine)s.
    Subscribe {
        /// Session names.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sessions: Option<Vec<String>>,
        /// Include audio payloads, base64.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        audio: bool,
    },
    /// The session's device identity (never its key). Result:
    /// [`IdentityInfo`](super::IdentityInfo).
    Identity {
        /// Session name.
        session: String,
    },
    /// Re-read the config. Result: [`ReloadSummary`](super::ReloadSummary).
    Reload,
    /// Prometheus text. Result: [`MetricsText`](super::MetricsText).
    Metrics,
    /// The tools a session offers its server. Result:
    /// [`SessionToolList`](super::SessionToolList).
    Tools {
        /// Session name.
        session: String,
    },
    /// Offer tools to these sessions' servers (all when None), for as long
    /// as this connection lasts; calls then arrive on it as `tool_call`
    /// events. Result: [`ToolsOffered`](super::ToolsOffered).
    OfferTools {
        /// Session names.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sessions: Option<Vec<String>>,
        /// The tools.
        tools: Vec<super::OfferedTool>,
    },
    /// Answer a `tool_call` of this connection: exactly one of `result`
    /// (a string, or any JSON, given as its text) and `error`. Result:
    /// [`ToolAnswered`](super::ToolAnswered).
    ToolResult {
        /// The call's id.
        call_id: String,
        /// What the tool gave.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        /// Why the tool failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Test-only: make the session's connection stop answering.
    #[cfg(feature = "fault-injection")]
    Wedge {
        /// Session name.
        session: String,
    },
    /// Test-only: make the session's connection actor panic.
    #[cfg(feature = "fault-injection")]
    Panic {
        /// Session name.
        session: String,
    },
}

impl Command {
    /// The `cmd` of this command.
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// The text message that `send`, `listen` and `abort` hand to their
    /// session, with the session's name; `None` for other commands.
    pub fn into_text_message(self) -> Option<(String, Map<String, Value>)> {
        let mut message = Map::new();
        let session = match self {
            Command::Send { session, message } => return Some((session, message)),
            Command::Listen {
                session,
                state,
                mode,
                text,
            } => {
                message.insert("type".into(), "listen".into());
                message.insert("state".into(), state.to_string().into());
                if let Some(mode) = mode {
                    message.insert("mode".into(), mode.to_string().into());
                }
                if let Some(text) = text {
                    message.insert("text".into(), text.into());
                }
                session
            }
            Command::Abort { session, reason } => {
                message.insert("type".into(), "abort".into());
                if let Some(reason) = reason {
                    message.insert("reason".into(), reason.into());
                }
                session
            }
            _ => return None,
        };
        Some((session, message))
    }
}

/// Bytes as standard base64 text, the encoding of `audio` payloads.
pub(crate) mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|err| serde::de::Error::custom(format!("not base64: {err}")))
    }
}

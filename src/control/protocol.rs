//! The control protocol's requests and errors (CONTRACT §3): one JSON
//! object per line in, one per line out. Parsing is pure and total: any
//! bytes give a `Request` or a `ControlError` naming what is wrong, never
//! a panic.

use base64::Engine;
use serde_json::{json, Map, Value};

/// Longest request line accepted, newline excluded.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The contract's error codes (plus `bad_config`, for a reload whose file
/// does not validate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed.
    BadRequest,
    /// No such command.
    UnknownCommand,
    /// No such session.
    NotFound,
    /// The session is not ready (audio) or stopped (text).
    NotReady,
    /// The session's queue is full.
    QueueFull,
    /// The peer's uid is not allowed.
    Forbidden,
    /// The daemon failed.
    Internal,
    /// `reload` found the config file invalid; nothing changed.
    BadConfig,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotReady => "not_ready",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Internal => "internal",
            ErrorCode::BadConfig => "bad_config",
        }
    }
}

/// A failed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlError {
    /// Machine-readable.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

impl ControlError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ControlError {
            code,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        ControlError::new(ErrorCode::BadRequest, message)
    }
}

/// `listen` states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenState {
    /// Start capturing.
    Start,
    /// Stop capturing.
    Stop,
    /// A wake word was detected (`text` carries it).
    Detect,
}

/// One command with its arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Is the daemon there?
    Ping,
    /// Daemon uptime, config, counts by state.
    Status,
    /// Every session's summary.
    Sessions,
    /// One session's summary with counters.
    Session(String),
    /// Start a stopped or failed session.
    Connect(String),
    /// Close with 1000 and stay stopped.
    Disconnect(String),
    /// Close and connect again now.
    Reconnect(String),
    /// Send a JSON object as a text frame.
    Send {
        /// Session name.
        session: String,
        /// The message (`listen` and `abort` are built into one).
        message: Map<String, Value>,
    },
    /// Send one binary frame.
    Audio {
        /// Session name.
        session: String,
        /// Decoded payload.
        data: Vec<u8>,
    },
    /// Stream events of these sessions (all when None).
    Subscribe {
        /// Session names.
        sessions: Option<Vec<String>>,
        /// Include audio payloads, base64.
        audio: bool,
    },
    /// Re-read the config.
    Reload,
    /// Prometheus text.
    Metrics,
    /// Test-only: make the session's connection stop answering.
    #[cfg(feature = "fault-injection")]
    Wedge(String),
    /// Test-only: make the session's connection actor panic.
    #[cfg(feature = "fault-injection")]
    Panic(String),
}

/// A parsed request line.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Echoed in the response; `null` when absent.
    pub id: Value,
    /// What to do.
    pub command: Command,
}

/// Parse one request line (without its newline). On error, the id is
/// returned when it could be read, so the response still carries it.
pub fn parse_request(line: &[u8]) -> Result<Request, (Value, ControlError)> {
    let text = std::str::from_utf8(line).map_err(|e| {
        (
            Value::Null,
            ControlError::bad(format!("request is not valid UTF-8 (byte {})", e.valid_up_to())),
        )
    })?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| (Value::Null, ControlError::bad(format!("invalid JSON: {e}"))))?;
    let Value::Object(mut fields) = value else {
        return Err((Value::Null, ControlError::bad("a request must be a JSON object")));
    };
    let id = fields.remove("id").unwrap_or(Value::Null);
    let command = parse_command(fields).map_err(|e| (id.clone(), e))?;
    Ok(Request { id, command })
}

fn parse_command(mut fields: Map<String, Value>) -> Result<Command, ControlError> {
    let cmd = match fields.remove("cmd") {
        Some(Value::String(cmd)) => cmd,
        Some(other) => {
            return Err(ControlError::bad(format!(
                "`cmd` must be a string, not {}",
                kind(&other)
            )))
        }
        None => return Err(ControlError::bad("missing `cmd`")),
    };
    let mut args = Args { cmd: &cmd, fields };
    let command = match cmd.as_str() {
        "ping" => Command::Ping,
        "status" => Command::Status,
        "sessions" => Command::Sessions,
        "metrics" => Command::Metrics,
        "reload" => Command::Reload,
        "session" => Command::Session(args.session()?),
        "connect" => Command::Connect(args.session()?),
        "disconnect" => Command::Disconnect(args.session()?),
        "reconnect" => Command::Reconnect(args.session()?),
        "send" => {
            let session = args.session()?;
            match args.take("message") {
                Some(Value::Object(message)) => Command::Send { session, message },
                Some(other) => {
                    return Err(ControlError::bad(format!(
                        "`message` must be a JSON object, not {}",
                        kind(&other)
                    )))
                }
                None => return Err(ControlError::bad("`send` needs `message`")),
            }
        }
        "listen" => {
            let session = args.session()?;
            let state = match args.string("state")?.as_deref() {
                Some("start") => ListenState::Start,
                Some("stop") => ListenState::Stop,
                Some("detect") => ListenState::Detect,
                Some(other) => {
                    return Err(ControlError::bad(format!(
                        "`state` must be start, stop or detect, not {other:?}"
                    )))
                }
                None => return Err(ControlError::bad("`listen` needs `state`")),
            };
            let mode = args.string("mode")?;
            if let Some(mode) = &mode {
                if !["auto", "manual", "realtime"].contains(&mode.as_str()) {
                    return Err(ControlError::bad(format!(
                        "`mode` must be auto, manual or realtime, not {mode:?}"
                    )));
                }
            }
            let text = args.string("text")?;
            Command::Send {
                session,
                message: listen_message(state, mode, text),
            }
        }
        "abort" => {
            let session = args.session()?;
            let mut message = Map::new();
            message.insert("type".into(), json!("abort"));
            if let Some(reason) = args.string("reason")? {
                message.insert("reason".into(), json!(reason));
            }
            Command::Send { session, message }
        }
        "audio" => {
            let session = args.session()?;
            let data = args
                .string("data")?
                .ok_or_else(|| ControlError::bad("`audio` needs `data` (base64)"))?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(data.as_bytes())
                .map_err(|e| ControlError::bad(format!("`data` is not base64: {e}")))?;
            Command::Audio { session, data }
        }
        "subscribe" => {
            let sessions = match args.take("sessions") {
                None | Some(Value::Null) => None,
                Some(Value::Array(names)) => Some(
                    names
                        .into_iter()
                        .map(|n| match n {
                            Value::String(name) => Ok(name),
                            other => Err(ControlError::bad(format!(
                                "`sessions` must list names, found {}",
                                kind(&other)
                            ))),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                Some(other) => {
                    return Err(ControlError::bad(format!(
                        "`sessions` must be an array, not {}",
                        kind(&other)
                    )))
                }
            };
            let audio = match args.take("audio") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(audio)) => audio,
                Some(other) => {
                    return Err(ControlError::bad(format!(
                        "`audio` must be true or false, not {}",
                        kind(&other)
                    )))
                }
            };
            Command::Subscribe { sessions, audio }
        }
        #[cfg(feature = "fault-injection")]
        "wedge" => Command::Wedge(args.session()?),
        #[cfg(feature = "fault-injection")]
        "panic" => Command::Panic(args.session()?),
        _ => {
            return Err(ControlError::new(
                ErrorCode::UnknownCommand,
                format!("unknown command {cmd:?}"),
            ))
        }
    };
    args.finish()?;
    Ok(command)
}

/// The arguments of one request, taken one by one; leftovers are errors,
/// so a misspelt argument is reported rather than ignored.
struct Args<'a> {
    cmd: &'a str,
    fields: Map<String, Value>,
}

impl Args<'_> {
    fn take(&mut self, name: &str) -> Option<Value> {
        self.fields.remove(name)
    }

    fn string(&mut self, name: &str) -> Result<Option<String>, ControlError> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ControlError::bad(format!(
                "`{name}` must be a string, not {}",
                kind(&other)
            ))),
        }
    }

    fn session(&mut self) -> Result<String, ControlError> {
        self.string("session")?
            .ok_or_else(|| ControlError::bad(format!("`{}` needs `session`", self.cmd)))
    }

    fn finish(self) -> Result<(), ControlError> {
        match self.fields.keys().next() {
            Some(extra) => Err(ControlError::bad(format!("`{}` takes no argument {extra:?}", self.cmd))),
            None => Ok(()),
        }
    }
}

fn listen_message(state: ListenState, mode: Option<String>, text: Option<String>) -> Map<String, Value> {
    let mut message = Map::new();
    message.insert("type".into(), json!("listen"));
    let state = match state {
        ListenState::Start => "start",
        ListenState::Stop => "stop",
        ListenState::Detect => "detect",
    };
    message.insert("state".into(), json!(state));
    if let Some(mode) = mode {
        message.insert("mode".into(), json!(mode));
    }
    if let Some(text) = text {
        message.insert("text".into(), json!(text));
    }
    message
}

/// "a string", "an object"...: how errors name the JSON type found.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A success line.
pub fn ok_response(id: &Value, result: Value) -> String {
    json!({"id": id, "ok": true, "result": result}).to_string()
}

/// An error line.
pub fn error_response(id: &Value, error: &ControlError) -> String {
    json!({"id": id, "ok": false, "error": {"code": error.code.as_str(), "message": error.message}}).to_string()
}

#[cfg(test)]
mod tests;

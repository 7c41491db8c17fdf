//! The server's reading of a request line. Pure and total: any bytes give
//! a [`Request`] or a [`ControlError`] naming what is wrong (which
//! argument, which type it had), never a panic. Written by hand rather
//! than derived so that each mistake gets its own sentence.

use std::str::FromStr;

use base64::Engine;
use serde_json::{Map, Value};

use wsvisor_actors::json;

use super::request::{Command, ListenMode, ListenState, Request};
use super::response::{ControlError, ErrorCode};

/// Parse one request line (without its newline). On error, the id is
/// returned when it could be read, so the response still carries it.
pub fn parse_request(line: &[u8]) -> Result<Request, (Value, ControlError)> {
    let text = std::str::from_utf8(line).map_err(|e| {
        (
            Value::Null,
            ControlError::bad(format!("request is not valid UTF-8 (byte {})", e.valid_up_to())),
        )
    })?;
    // A 1 MiB line of tiny numbers would be tens of MB as a tree: its
    // values are counted before any is built.
    let value = json::parse_bounded(text.as_bytes(), json::MAX_JSON_VALUES).map_err(|e| {
        let message = match e {
            json::JsonError::Invalid(why) => format!("invalid JSON: {why}"),
            too_many => format!("request refused: {too_many}"),
        };
        (Value::Null, ControlError::bad(message))
    })?;
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
        "session" => Command::Session {
            session: args.session()?,
        },
        "connect" => Command::Connect {
            session: args.session()?,
        },
        "disconnect" => Command::Disconnect {
            session: args.session()?,
        },
        "reconnect" => Command::Reconnect {
            session: args.session()?,
        },
        "identity" => Command::Identity {
            session: args.session()?,
        },
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
            let state = match args.string("state")? {
                Some(state) => ListenState::from_str(&state)
                    .map_err(|_| ControlError::bad(format!("`state` must be start, stop or detect, not {state:?}")))?,
                None => return Err(ControlError::bad("`listen` needs `state`")),
            };
            let mode = match args.string("mode")? {
                Some(mode) => Some(ListenMode::from_str(&mode).map_err(|_| {
                    ControlError::bad(format!("`mode` must be auto, manual or realtime, not {mode:?}"))
                })?),
                None => None,
            };
            let text = args.string("text")?;
            Command::Listen {
                session,
                state,
                mode,
                text,
            }
        }
        "abort" => {
            let session = args.session()?;
            let reason = args.string("reason")?;
            Command::Abort { session, reason }
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
        "wedge" => Command::Wedge {
            session: args.session()?,
        },
        #[cfg(feature = "fault-injection")]
        "panic" => Command::Panic {
            session: args.session()?,
        },
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

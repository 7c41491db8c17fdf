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
use super::tools::OfferedTool;

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
            let sessions = args.names("sessions")?;
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
        "tools" => Command::Tools {
            session: args.session()?,
        },
        "offer_tools" => {
            let sessions = args.names("sessions")?;
            let tools = match args.take("tools") {
                Some(Value::Array(tools)) => tools
                    .into_iter()
                    .enumerate()
                    .map(|(i, tool)| offered_tool(i, tool))
                    .collect::<Result<Vec<_>, _>>()?,
                Some(other) => {
                    return Err(ControlError::bad(format!(
                        "`tools` must be an array of tools, not {}",
                        kind(&other)
                    )))
                }
                None => return Err(ControlError::bad("`offer_tools` needs `tools`")),
            };
            Command::OfferTools { sessions, tools }
        }
        "tool_result" => {
            let call_id = args
                .string("call_id")?
                .ok_or_else(|| ControlError::bad("`tool_result` needs `call_id`"))?;
            let result = args.take("result").filter(|v| !v.is_null());
            let error = args.string("error")?;
            if result.is_some() == error.is_some() {
                return Err(ControlError::bad(
                    "`tool_result` needs exactly one of `result` (what the tool gave) and `error` (why it failed)",
                ));
            }
            Command::ToolResult { call_id, result, error }
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

    /// An optional array of session names.
    fn names(&mut self, name: &str) -> Result<Option<Vec<String>>, ControlError> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(names)) => names
                .into_iter()
                .map(|n| match n {
                    Value::String(name) => Ok(name),
                    other => Err(ControlError::bad(format!(
                        "`{name}` must list names, found {}",
                        kind(&other)
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(ControlError::bad(format!(
                "`{name}` must be an array, not {}",
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

/// Tool `i` (0-based) of `offer_tools`: its keys checked one by one; the
/// tool itself (name, schema) is checked where it is compiled.
fn offered_tool(i: usize, tool: Value) -> Result<OfferedTool, ControlError> {
    let Value::Object(fields) = tool else {
        return Err(ControlError::bad(format!(
            "`tools[{i}]` must be an object, not {}",
            kind(&tool)
        )));
    };
    let at = format!("tools[{i}]");
    let mut args = Args { cmd: &at, fields };
    let name = args
        .string("name")?
        .ok_or_else(|| ControlError::bad(format!("`{at}` needs `name`")))?;
    let description = args
        .string("description")?
        .ok_or_else(|| ControlError::bad(format!("`{at}` (tool {name:?}) needs `description`")))?;
    let input_schema = match args.take("input_schema") {
        None | Some(Value::Null) => None,
        Some(schema @ Value::Object(_)) => Some(schema),
        Some(other) => {
            return Err(ControlError::bad(format!(
                "`{at}.input_schema` must be a JSON Schema object, not {}",
                kind(&other)
            )))
        }
    };
    let timeout_ms = match args.take("timeout_ms") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(other) => {
            return Err(ControlError::bad(format!(
                "`{at}.timeout_ms` must be a whole number of milliseconds, not {}",
                kind(&other)
            )))
        }
    };
    args.finish()?;
    Ok(OfferedTool {
        name,
        description,
        input_schema,
        timeout_ms,
    })
}

pub use wsvisor_actors::json::kind;

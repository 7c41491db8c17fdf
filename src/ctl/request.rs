//! The command line turned into one control request (without its `id`).
//! Everything that can be checked here is, so that a typo is a usage error
//! (exit 2) before any daemon is contacted.

use std::io::Read;
use std::path::Path;

use base64::Engine;
use serde_json::{Map, Value};

use super::{AudioSource, CtlCommand};
use crate::protocol::{kind, to_line, Command, ListenState, Request, MAX_LINE_BYTES};

/// The command for the command line, or a usage message.
pub fn build(command: &CtlCommand) -> Result<Command, String> {
    build_with(command, &mut std::io::stdin())
}

/// [`build`] reading `-` arguments from `stdin`.
fn build_with(command: &CtlCommand, stdin: &mut dyn Read) -> Result<Command, String> {
    let command = match command {
        CtlCommand::Ping => Command::Ping,
        CtlCommand::Status => Command::Status,
        CtlCommand::Sessions => Command::Sessions,
        CtlCommand::Reload => Command::Reload,
        CtlCommand::Metrics => Command::Metrics,
        CtlCommand::Session { name } => Command::Session { session: name.clone() },
        CtlCommand::Connect { name } => Command::Connect { session: name.clone() },
        CtlCommand::Disconnect { name } => Command::Disconnect { session: name.clone() },
        CtlCommand::Reconnect { name } => Command::Reconnect { session: name.clone() },
        CtlCommand::Identity { name } => Command::Identity { session: name.clone() },
        CtlCommand::Send { name, message } => {
            let text = if message == "-" {
                read_text(stdin)?
            } else {
                message.clone()
            };
            Command::Send {
                session: name.clone(),
                message: json_object(&text)?,
            }
        }
        CtlCommand::Listen {
            name,
            state,
            mode,
            text,
        } => Command::Listen {
            session: name.clone(),
            state: *state,
            mode: *mode,
            text: text.clone(),
        },
        CtlCommand::Abort { name, reason } => Command::Abort {
            session: name.clone(),
            reason: reason.clone(),
        },
        CtlCommand::Audio { name, source } => Command::Audio {
            session: name.clone(),
            data: audio_data(source, stdin)?,
        },
        CtlCommand::Subscribe { names, audio } => Command::Subscribe {
            sessions: (!names.is_empty()).then(|| names.clone()),
            audio: *audio,
        },
        CtlCommand::Tools { name } => Command::Tools { session: name.clone() },
        // Typed input, as the firmware sends it; `ask` then reads the answer.
        CtlCommand::Ask { name, text, .. } => Command::Listen {
            session: name.clone(),
            state: ListenState::Detect,
            mode: None,
            text: Some(text.clone()),
        },
    };
    // The daemon refuses longer lines; say so now, in terms of the input.
    let size = to_line(&Request {
        id: Value::from(u64::MAX),
        command: command.clone(),
    })
    .len();
    if size > MAX_LINE_BYTES {
        return Err(format!(
            "the request would be {size} bytes; the control socket takes at most {MAX_LINE_BYTES} per line"
        ));
    }
    Ok(command)
}

fn json_object(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(format!(
            "send: the message must be a JSON object such as '{{\"type\":\"listen\",\"state\":\"start\"}}', not {}",
            kind(&other)
        )),
        Err(err) => Err(format!("send: the message is not valid JSON: {err}")),
    }
}

fn read_text(stdin: &mut dyn Read) -> Result<String, String> {
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| format!("send: cannot read the message from stdin: {e}"))?;
    Ok(text)
}

/// The payload of `audio`: `--data` decoded (bad base64 is a usage error
/// here, before the daemon is contacted), or the file's bytes.
fn audio_data(source: &AudioSource, stdin: &mut dyn Read) -> Result<Vec<u8>, String> {
    if let Some(data) = &source.data {
        return base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .map_err(|e| format!("audio: --data is not base64: {e}"));
    }
    let path = source.file.as_deref().unwrap_or(Path::new("-"));
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        stdin.read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    read.map_err(|e| format!("audio: cannot read {}: {e}", path.display()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    use serde_json::json;

    use crate::protocol::{ListenMode, ListenState};

    /// The request as it goes on the wire, without its id.
    fn build_from(command: CtlCommand, stdin: &str) -> Result<Value, String> {
        let command = build_with(&command, &mut stdin.as_bytes())?;
        let mut request = serde_json::to_value(Request {
            id: Value::Null,
            command,
        })
        .unwrap();
        request.as_object_mut().unwrap().remove("id");
        Ok(request)
    }

    #[test]
    fn simple_commands_carry_only_cmd_and_session() {
        assert_eq!(build_from(CtlCommand::Ping, "").unwrap(), json!({"cmd": "ping"}));
        let request = build_from(CtlCommand::Disconnect { name: "kitchen".into() }, "").unwrap();
        assert_eq!(request, json!({"cmd": "disconnect", "session": "kitchen"}));
    }

    #[test]
    fn send_takes_an_object_inline_or_from_stdin() {
        let inline = CtlCommand::Send {
            name: "k".into(),
            message: r#"{"type":"abort"}"#.into(),
        };
        assert_eq!(build_from(inline, "").unwrap()["message"], json!({"type": "abort"}));
        let piped = CtlCommand::Send {
            name: "k".into(),
            message: "-".into(),
        };
        assert_eq!(
            build_from(piped, "{\"type\": \"hello\"}\n").unwrap()["message"],
            json!({"type": "hello"})
        );
    }

    #[test]
    fn send_rejects_what_is_not_an_object() {
        let err = build_from(
            CtlCommand::Send {
                name: "k".into(),
                message: "notjson".into(),
            },
            "",
        )
        .unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
        let err = build_from(
            CtlCommand::Send {
                name: "k".into(),
                message: "[1]".into(),
            },
            "",
        )
        .unwrap_err();
        assert!(err.contains("not an array"), "{err}");
    }

    #[test]
    fn listen_and_abort_omit_absent_options() {
        let listen = CtlCommand::Listen {
            name: "k".into(),
            state: ListenState::Detect,
            mode: None,
            text: Some("hi".into()),
        };
        assert_eq!(
            build_from(listen, "").unwrap(),
            json!({"cmd": "listen", "session": "k", "state": "detect", "text": "hi"})
        );
        let listen = CtlCommand::Listen {
            name: "k".into(),
            state: ListenState::Start,
            mode: Some(ListenMode::Realtime),
            text: None,
        };
        assert_eq!(build_from(listen, "").unwrap()["mode"], json!("realtime"));
        let abort = CtlCommand::Abort {
            name: "k".into(),
            reason: None,
        };
        assert_eq!(build_from(abort, "").unwrap(), json!({"cmd": "abort", "session": "k"}));
    }

    #[test]
    fn audio_from_data_file_or_stdin() {
        let data = CtlCommand::Audio {
            name: "k".into(),
            source: AudioSource {
                data: Some("AAEC".into()),
                file: None,
            },
        };
        assert_eq!(build_from(data, "").unwrap()["data"], json!("AAEC"));
        let bad = CtlCommand::Audio {
            name: "k".into(),
            source: AudioSource {
                data: Some("!!".into()),
                file: None,
            },
        };
        assert!(build_from(bad, "").unwrap_err().contains("not base64"));
        let stdin = CtlCommand::Audio {
            name: "k".into(),
            source: AudioSource {
                data: None,
                file: Some("-".into()),
            },
        };
        assert_eq!(build_from(stdin, "\u{0}\u{1}\u{2}").unwrap()["data"], json!("AAEC"));
        let missing = CtlCommand::Audio {
            name: "k".into(),
            source: AudioSource {
                data: None,
                file: Some(PathBuf::from("/nonexistent/frame.opus")),
            },
        };
        assert!(build_from(missing, "").unwrap_err().contains("/nonexistent/frame.opus"));
    }

    #[test]
    fn oversized_requests_are_refused_before_sending() {
        let big = CtlCommand::Send {
            name: "k".into(),
            message: format!("{{\"t\":\"{}\"}}", "x".repeat(MAX_LINE_BYTES)),
        };
        assert!(build_from(big, "").unwrap_err().contains("at most"));
    }

    #[test]
    fn subscribe_names_and_audio_only_when_given() {
        let all = CtlCommand::Subscribe {
            names: vec![],
            audio: false,
        };
        assert_eq!(build_from(all, "").unwrap(), json!({"cmd": "subscribe"}));
        let some = CtlCommand::Subscribe {
            names: vec!["a".into(), "b".into()],
            audio: true,
        };
        assert_eq!(
            build_from(some, "").unwrap(),
            json!({"cmd": "subscribe", "sessions": ["a", "b"], "audio": true})
        );
    }
}

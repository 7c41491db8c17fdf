//! `wsvisor ctl ask SESSION TEXT`: say TEXT to the assistant as the
//! firmware sends typed input (`listen`, `state: detect`, `text`), and
//! print its answer as it arrives: the answer's sentences (each `tts`
//! `sentence_start` text) on stdout, one per line, what the server heard
//! (`stt`) and the emotion (`llm`) on stderr. It ends 0 at the `tts`
//! `stop` that closes the answer, and 1 with a sentence saying why when
//! the session is lost, the daemon refuses, or nothing comes for
//! `--timeout`. With `--json` the event lines (messages and states) are
//! printed as received instead.
//!
//! The events are those of the session: a subscription opened before the
//! text is sent, so nothing of the answer is missed. What another program
//! says to the same session at the same time shows up too; the xiaozhi
//! protocol does not tell answers apart.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{client_failure, fail, units, Output};
use crate::control_client::blocking::Client;
use crate::control_client::ClientError;
use crate::exit;
use crate::protocol::{Command, Delivery, EventLine, SessionState};

/// What one event means for the answer.
#[derive(Debug, PartialEq)]
enum Step {
    /// Nothing to show.
    Nothing,
    /// `stt`: what the server heard.
    Heard(String),
    /// `llm`: the emotion's name and emoji.
    Emotion(String, String),
    /// One sentence of the answer.
    Sentence(String),
    /// The answer is over.
    Done,
    /// It will not come: why.
    Lost(String),
}

/// Where the answer is.
struct Answer {
    session: String,
    /// The session was ready (the text was written, or a ready state came).
    ready: bool,
    /// A `tts start` came: the next `tts stop` ends the answer. A `stop`
    /// before it ends something said earlier (the real server stops its
    /// current speech before it answers new text).
    speaking: bool,
}

impl Answer {
    fn step(&mut self, event: &EventLine) -> Step {
        match event {
            EventLine::Message { message, .. } => self.message(message),
            EventLine::State(state) => match state.state {
                SessionState::Ready => {
                    self.ready = true;
                    Step::Nothing
                }
                lost if self.ready || matches!(lost, SessionState::Stopped | SessionState::Failed) => {
                    let mut why = format!(
                        "session {} was lost before the answer ended: it is {lost}",
                        self.session
                    );
                    if let Some(cause) = state.cause {
                        why.push_str(&format!(" (cause {cause}"));
                        if let Some(code) = state.code {
                            why.push_str(&format!(", code {code}"));
                        }
                        why.push(')');
                    }
                    Step::Lost(why)
                }
                _ => Step::Nothing,
            },
            _ => Step::Nothing,
        }
    }

    fn message(&mut self, message: &Value) -> Step {
        let text = || {
            message
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match (
            message.get("type").and_then(Value::as_str),
            message.get("state").and_then(Value::as_str),
        ) {
            (Some("stt"), _) => Step::Heard(text()),
            (Some("llm"), _) => {
                let emotion = message.get("emotion").and_then(Value::as_str).unwrap_or_default();
                Step::Emotion(emotion.to_owned(), text())
            }
            (Some("tts"), Some("start")) => {
                self.speaking = true;
                Step::Nothing
            }
            (Some("tts"), Some("sentence_start")) if !text().is_empty() => Step::Sentence(text()),
            (Some("tts"), Some("stop")) if self.speaking => Step::Done,
            _ => Step::Nothing,
        }
    }
}

/// Asks `session` with `listen` (the `listen` command `request` built);
/// the exit code.
pub fn run(path: &Path, session: &str, listen: Command, timeout: Duration, json: bool) -> i32 {
    let subscriber = match Client::connect(path) {
        Ok(client) => client,
        Err(err) => return client_failure(&err),
    };
    // Subscribed before the text goes out: no part of the answer is missed.
    let (mut events, subscribed) = match subscriber.subscribe_raw(Some(vec![session.to_owned()]), false) {
        Ok(subscription) => subscription,
        Err(err) => return client_failure(&err),
    };
    if let Err(error) = subscribed.outcome {
        return fail(exit::FAILURE, &error.to_string());
    }
    let sent = match Client::connect(path).and_then(|mut control| control.call(&listen)) {
        Ok(response) => match response.outcome {
            Ok(result) => result,
            Err(error) => return fail(exit::FAILURE, &error.to_string()),
        },
        Err(err) => return client_failure(&err),
    };
    let ready = matches!(Delivery::deserialize(&sent), Ok(Delivery::Sent { .. }));
    if !ready {
        eprintln!(
            "wsvisor ctl: session {} is not ready; the text waits in its queue",
            units::clean(session)
        );
    }
    let mut answer = Answer {
        session: session.to_owned(),
        ready,
        speaking: false,
    };
    events.set_timeout(Some(timeout));
    let mut out = Output::default();
    while !out.broken() {
        let line = match events.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => {
                return fail(
                    exit::FAILURE,
                    "the daemon closed the event stream before the answer ended",
                )
            }
            Err(ClientError::TimedOut) => {
                let silence = humantime::format_duration(timeout);
                let why = format!("no answer from session {session}: it said nothing for {silence}");
                return fail(exit::FAILURE, &why);
            }
            Err(err) => return client_failure(&err),
        };
        let Ok(event) = serde_json::from_str::<EventLine>(&line) else {
            continue;
        };
        if json && !matches!(event, EventLine::Audio { .. }) {
            out.line(&line);
        }
        match answer.step(&event) {
            Step::Nothing => {}
            Step::Heard(text) if !json => eprintln!("heard: {}", units::clean(&text)),
            Step::Emotion(name, emoji) if !json => {
                eprintln!("emotion: {} {}", units::clean(&name), units::clean(&emoji))
            }
            Step::Sentence(text) if !json => out.human(&format!("{text}\n")),
            Step::Heard(_) | Step::Emotion(..) | Step::Sentence(_) => {}
            Step::Done => return out.finish(exit::OK),
            Step::Lost(why) => {
                let code = fail(exit::FAILURE, &why);
                return out.finish(code);
            }
        }
    }
    out.finish(exit::OK)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(value: Value) -> EventLine {
        serde_json::from_value(value).unwrap()
    }

    fn message(message: Value) -> EventLine {
        event(json!({"event": "message", "session": "k", "message": message}))
    }

    fn state(state: &str, cause: Option<&str>, code: Option<u16>) -> EventLine {
        event(
            json!({"event": "state", "session": "k", "state": state, "attempt": 0, "retry_in_ms": null,
                     "cause": cause, "code": code, "at": "2026-11-21T10:00:00Z"}),
        )
    }

    fn answer(ready: bool) -> Answer {
        Answer {
            session: "k".into(),
            ready,
            speaking: false,
        }
    }

    #[test]
    fn an_answer_from_stt_to_stop() {
        let mut a = answer(true);
        // The end of what was being said before: not our answer's end.
        assert_eq!(a.step(&message(json!({"type": "tts", "state": "stop"}))), Step::Nothing);
        assert_eq!(
            a.step(&message(json!({"type": "stt", "text": "天气"}))),
            Step::Heard("天气".into())
        );
        assert_eq!(
            a.step(&message(json!({"type": "tts", "state": "start"}))),
            Step::Nothing
        );
        assert_eq!(
            a.step(&message(json!({"type": "llm", "text": "🙂", "emotion": "happy"}))),
            Step::Emotion("happy".into(), "🙂".into())
        );
        assert_eq!(
            a.step(&message(
                json!({"type": "tts", "state": "sentence_start", "text": "晴。"})
            )),
            Step::Sentence("晴。".into())
        );
        assert_eq!(
            a.step(&event(json!({"event": "audio", "session": "k", "bytes": 120}))),
            Step::Nothing
        );
        assert_eq!(a.step(&message(json!({"type": "mcp", "payload": {}}))), Step::Nothing);
        assert_eq!(a.step(&message(json!({"type": "tts", "state": "stop"}))), Step::Done);
    }

    #[test]
    fn losing_the_session_ends_the_wait() {
        let mut a = answer(true);
        let Step::Lost(why) = a.step(&state("backoff", Some("server_close"), Some(1000))) else {
            panic!("lost")
        };
        assert_eq!(
            why,
            "session k was lost before the answer ended: it is backoff (cause server_close, code 1000)"
        );
        // Not ready yet (the text is queued): coming back is not a loss.
        let mut queued = answer(false);
        assert_eq!(queued.step(&state("connecting", None, None)), Step::Nothing);
        assert_eq!(queued.step(&state("ready", None, None)), Step::Nothing);
        assert!(matches!(
            queued.step(&state("backoff", Some("abnormal"), Some(1006))),
            Step::Lost(_)
        ));
        assert!(matches!(
            answer(false).step(&state("stopped", None, None)),
            Step::Lost(_)
        ));
    }
}

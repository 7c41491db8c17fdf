//! Request parser tests: examples of each error, and properties over
//! arbitrary input (never a panic; every error has a code and a message).
//! Then the bytes every wire type writes, against lines written by the
//! daemon before these types existed, and the client's requests read back
//! by the server's parser.

use proptest::prelude::*;
use serde_json::json;
use serde_json::Value;

use super::*;

fn parse(line: &str) -> Result<Request, (Value, ControlError)> {
    parse_request(line.as_bytes())
}

fn error_of(line: &str) -> (Value, ErrorCode, String) {
    let (id, error) = parse(line).unwrap_err();
    (id, error.code, error.message)
}

#[test]
fn commands_with_their_arguments() {
    assert_eq!(
        parse(r#"{"id":1,"cmd":"ping"}"#).unwrap(),
        Request {
            id: json!(1),
            command: Command::Ping
        }
    );
    assert_eq!(
        parse(r#"{"cmd":"session","session":"kitchen"}"#).unwrap().command,
        Command::Session {
            session: "kitchen".into()
        }
    );
    let send = parse(r#"{"id":"a","cmd":"send","session":"k","message":{"type":"mcp"}}"#).unwrap();
    assert_eq!(send.id, json!("a"));
    // An explicit null id is a request like one without an id (proptest found it).
    assert_eq!(parse(r#"{"id":null,"cmd":"subscribe"}"#).unwrap().id, Value::Null);
    assert!(
        matches!(send.command, Command::Send { ref session, ref message } if session == "k" && message["type"] == "mcp")
    );
    let listen = parse(r#"{"cmd":"listen","session":"k","state":"detect","text":"你好小智"}"#).unwrap();
    let Some((_, message)) = listen.command.into_text_message() else {
        panic!()
    };
    assert_eq!(
        Value::Object(message),
        json!({"type":"listen","state":"detect","text":"你好小智"})
    );
    let abort = parse(r#"{"cmd":"abort","session":"k","reason":"wake_word_detected"}"#).unwrap();
    let Some((_, message)) = abort.command.into_text_message() else {
        panic!()
    };
    assert_eq!(
        Value::Object(message),
        json!({"type":"abort","reason":"wake_word_detected"})
    );
    let audio = parse(r#"{"cmd":"audio","session":"k","data":"AAEC"}"#).unwrap();
    assert_eq!(
        audio.command,
        Command::Audio {
            session: "k".into(),
            data: vec![0, 1, 2]
        }
    );
    let subscribe = parse(r#"{"cmd":"subscribe","sessions":["a","b"],"audio":true}"#).unwrap();
    assert_eq!(
        subscribe.command,
        Command::Subscribe {
            sessions: Some(vec!["a".into(), "b".into()]),
            audio: true
        }
    );
}

#[cfg(feature = "fault-injection")]
#[test]
fn the_test_only_switches_parse_when_built_in() {
    let session = || "k".to_owned();
    assert_eq!(
        parse(r#"{"cmd":"wedge","session":"k"}"#).unwrap().command,
        Command::Wedge { session: session() }
    );
    assert_eq!(
        parse(r#"{"cmd":"panic","session":"k"}"#).unwrap().command,
        Command::Panic { session: session() }
    );
}

#[test]
fn each_malformed_request_gets_its_error() {
    assert_eq!(error_of("{nope").1, ErrorCode::BadRequest);
    assert_eq!(error_of("[1,2]").2, "a request must be a JSON object");
    assert_eq!(
        error_of(r#"{"id":7}"#),
        (json!(7), ErrorCode::BadRequest, "missing `cmd`".into())
    );
    assert_eq!(
        error_of(r#"{"id":7,"cmd":3}"#).2,
        "`cmd` must be a string, not a number"
    );
    assert_eq!(
        error_of(r#"{"id":7,"cmd":"fly"}"#),
        (json!(7), ErrorCode::UnknownCommand, "unknown command \"fly\"".into())
    );
    assert_eq!(error_of(r#"{"cmd":"session"}"#).2, "`session` needs `session`");
    assert_eq!(
        error_of(r#"{"cmd":"session","session":5}"#).2,
        "`session` must be a string, not a number"
    );
    assert_eq!(
        error_of(r#"{"cmd":"send","session":"k","message":"hi"}"#).2,
        "`message` must be a JSON object, not a string"
    );
    assert_eq!(
        error_of(r#"{"cmd":"listen","session":"k","state":"go"}"#).1,
        ErrorCode::BadRequest
    );
    assert_eq!(
        error_of(r#"{"cmd":"audio","session":"k","data":"!!"}"#).1,
        ErrorCode::BadRequest
    );
    assert_eq!(
        error_of(r#"{"cmd":"ping","sesion":"k"}"#).2,
        "`ping` takes no argument \"sesion\""
    );
    assert_eq!(
        error_of(r#"{"cmd":"subscribe","sessions":"k"}"#).2,
        "`sessions` must be an array, not a string"
    );
    let (id, error) = parse_request(b"{\"cmd\":\"ping\xff\"}").unwrap_err();
    assert_eq!(
        (id, error.code),
        (Value::Null, ErrorCode::BadRequest),
        "{}",
        error.message
    );
}

#[test]
fn a_request_of_too_many_values_is_refused_before_it_is_built() {
    let zeros = "0,".repeat(wsvisor_actors::json::MAX_JSON_VALUES);
    let line = format!(r#"{{"id":1,"cmd":"send","session":"k","message":{{"n":[{zeros}0]}}}}"#);
    assert!(
        line.len() < MAX_LINE_BYTES,
        "fits a line: the count, not the size, refuses it"
    );
    let (_, code, message) = error_of(&line);
    assert_eq!(code, ErrorCode::BadRequest);
    assert_eq!(message, "request refused: JSON with more than 65536 values");
    // Just inside the budget is a request like any other.
    let fewer = "0,".repeat(wsvisor_actors::json::MAX_JSON_VALUES - 20);
    let line = format!(r#"{{"id":1,"cmd":"send","session":"k","message":{{"n":[{fewer}0]}}}}"#);
    assert!(parse(&line).is_ok());
}

#[test]
fn responses_are_single_lines() {
    let line = error_response(
        &json!(3),
        &ControlError::new(ErrorCode::NotFound, "no session named 'attic'\nreally"),
    );
    assert!(!line.contains('\n'));
    let back: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(back["error"]["code"], "not_found");
    assert_eq!(back["id"], 3);
    assert_eq!(
        serde_json::from_str::<Value>(&ok_response(&Value::Null, json!({"x": 1}))).unwrap()["ok"],
        true
    );
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["ping", "send", "session", "listen", "audio", "subscribe", "abort"])
            .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "id", "cmd", "session", "message", "state", "data", "sessions", "audio", "x"
                ]),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err((_, error)) = parse_request(&bytes) {
            prop_assert!(!error.message.is_empty());
        }
    }

    #[test]
    fn arbitrary_json_never_panics_and_keeps_the_id(value in arbitrary_json()) {
        let line = value.to_string();
        match parse_request(line.as_bytes()) {
            // An absent id and `"id": null` are both answered with null.
            Ok(request) => prop_assert_eq!(&request.id, value.get("id").unwrap_or(&Value::Null)),
            Err((id, error)) => {
                prop_assert!(!error.message.is_empty());
                if let (Some(sent), Value::Object(_)) = (value.get("id"), &value) {
                    prop_assert_eq!(&id, sent);
                }
                let response: Value = serde_json::from_str(&error_response(&id, &error)).unwrap();
                prop_assert_eq!(response["ok"].clone(), json!(false));
            }
        }
    }
}

// ───────────── the bytes on the wire, as the daemon wrote them before ─────────────

mod bytes_on_the_wire {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use bytes::Bytes;
    use strum::EnumCount;
    use wsvisor_actors::events::{DropReason, Event};
    use wsvisor_actors::loss::{Cause, LossReport};
    use wsvisor_actors::state::{self, SessionCounters, SessionState, StateUpdate};

    use super::*;

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_000_000_123)
    }

    fn summary() -> state::SessionSummary {
        let mut losses = [0; Cause::COUNT];
        losses[1] = 2;
        state::SessionSummary {
            name: "kitchen".into(),
            state: SessionState::Backoff,
            session_id: Some("s-1".into()),
            url: Some("ws://x/".into()),
            attempt: 2,
            max_attempts: 10,
            since: at(),
            next_retry_in: Some(Duration::from_millis(930)),
            last_close: Some(state::LastClose {
                cause: Cause::HttpStatus,
                code: None,
                status: Some(503),
                reason: "r\n".into(),
                at: at(),
            }),
            rtt: Some(Duration::from_micros(412)),
            queued: 3,
            activation_code: Some("123456".into()),
            ota: None,
            counters: SessionCounters {
                connects: 3,
                losses,
                reconnect_attempts: 5,
                give_ups: 1,
                traffic: Default::default(),
                dropped: 7,
            },
        }
    }

    /// Lines captured from the daemon's `json!`-built answers before the wire types.
    const SUMMARY: &str = r#"{"activation_code":"123456","attempt":2,"last_close":{"at":"2026-11-18T11:06:40.123Z","cause":"http_status","code":null,"reason":"r\n","status":503},"max_attempts":10,"name":"kitchen","next_retry_in_ms":930,"queued":3,"rtt_ms":0.412,"session_id":"s-1","since":"2026-11-18T11:06:40.123Z","state":"backoff","url":"ws://x/"}"#;
    const DETAIL: &str = r#"{"activation_code":"123456","attempt":2,"counters":{"bytes_in":0,"bytes_out":0,"connects":3,"dropped":7,"frames_in":0,"frames_out":0,"give_ups":1,"losses":{"abnormal":2,"activation_required":0,"auth_failed":0,"connect_failed":0,"connect_timeout":0,"credentials_unavailable":0,"hello_timeout":0,"http_status":0,"internal":0,"local_stop":0,"ping_timeout":0,"protocol_error":0,"reset":0,"server_close":0,"write_stalled":0},"pings_sent":0,"pongs":0,"reconnect_attempts":5},"last_close":{"at":"2026-11-18T11:06:40.123Z","cause":"http_status","code":null,"reason":"r\n","status":503},"max_attempts":10,"name":"kitchen","next_retry_in_ms":930,"queued":3,"rtt_ms":0.412,"session_id":"s-1","since":"2026-11-18T11:06:40.123Z","state":"backoff","url":"ws://x/"}"#;
    const PLAIN: &str = r#"{"attempt":2,"last_close":null,"max_attempts":10,"name":"kitchen","next_retry_in_ms":null,"queued":3,"rtt_ms":null,"session_id":null,"since":"2026-11-18T11:06:40.123Z","state":"backoff","url":null}"#;

    #[test]
    fn summaries() {
        let s = summary();
        assert_eq!(to_line(&SessionSummary::from(&s)), SUMMARY);
        assert_eq!(to_line(&SessionSummary::with_counters(&s)), DETAIL);
        let plain = state::SessionSummary {
            session_id: None,
            url: None,
            next_retry_in: None,
            last_close: None,
            rtt: None,
            activation_code: None,
            ..s
        };
        assert_eq!(to_line(&SessionSummary::from(&plain)), PLAIN);
    }

    #[test]
    fn events() {
        let update = StateUpdate {
            session: "kitchen".into(),
            state: SessionState::Backoff,
            attempt: 2,
            max_attempts: 10,
            retry_in: Some(Duration::from_millis(930)),
            loss: Some(LossReport::new(Cause::HttpStatus, "x").with_status(503)),
            session_id: Some("id".into()),
            activation_code: Some("123".into()),
            at: at(),
        };
        assert_eq!(
            event_line(&Event::State(update.clone()), false),
            r#"{"activation_code":"123","at":"2026-11-18T11:06:40.123Z","attempt":2,"cause":"http_status","code":null,"event":"state","retry_in_ms":930,"session":"kitchen","session_id":"id","state":"backoff","status":503}"#
        );
        let ready = StateUpdate {
            retry_in: None,
            loss: None,
            session_id: None,
            activation_code: None,
            state: SessionState::Ready,
            ..update
        };
        assert_eq!(
            event_line(&Event::State(ready), false),
            r#"{"at":"2026-11-18T11:06:40.123Z","attempt":2,"cause":null,"code":null,"event":"state","retry_in_ms":null,"session":"kitchen","state":"ready"}"#
        );
        let message = Event::Message {
            session: "k".into(),
            message: r#"{"type":"stt","text":"hi","a":1}"#.into(),
        };
        // The server's message as it sent it (compacted), not re-sorted.
        assert_eq!(
            event_line(&message, false),
            r#"{"event":"message","message":{"type":"stt","text":"hi","a":1},"session":"k"}"#
        );
        let audio = Event::Audio {
            session: "k".into(),
            data: Bytes::from_static(&[0, 1, 2]),
        };
        assert_eq!(
            event_line(&audio, false),
            r#"{"bytes":3,"event":"audio","session":"k"}"#
        );
        assert_eq!(
            event_line(&audio, true),
            r#"{"bytes":3,"data":"AAEC","event":"audio","session":"k"}"#
        );
        let dropped = Event::Dropped {
            session: "k".into(),
            count: 3,
            why: DropReason::QueueTtl,
        };
        assert_eq!(
            event_line(&dropped, false),
            r#"{"count":3,"event":"dropped","session":"k","why":"queue_ttl"}"#
        );
        assert_eq!(
            event_line(&Event::Lagged { skipped: 120 }, false),
            r#"{"event":"lagged","skipped":120}"#
        );
    }

    #[test]
    fn responses() {
        let error = ControlError::new(ErrorCode::NotFound, "no \"x\"");
        assert_eq!(
            error_response(&json!(3), &error),
            r#"{"error":{"code":"not_found","message":"no \"x\""},"id":3,"ok":false}"#
        );
        assert_eq!(
            ok_response(&json!("a"), Delivery::sent()),
            r#"{"id":"a","ok":true,"result":{"sent":true}}"#
        );
        assert_eq!(
            ok_response(&json!(1), Delivery::queued(4)),
            r#"{"id":1,"ok":true,"result":{"position":4,"queued":true}}"#
        );
        let reload = ReloadSummary {
            added: vec!["d".into()],
            removed: vec!["c".into()],
            changed: vec![],
            unchanged: 1,
            ..ReloadSummary::default()
        };
        assert_eq!(
            to_line(&reload),
            r#"{"added":["d"],"changed":[],"removed":["c"],"unchanged":1}"#
        );
        let status = Status {
            version: "0.1.0".into(),
            pid: 7,
            uptime_s: 3,
            config: "/c.toml".into(),
            sessions: StateCounts {
                total: 1,
                by_state: [("ready".to_owned(), 1), ("backoff".to_owned(), 0)].into(),
            },
            extra: Extra::new(),
        };
        assert_eq!(
            to_line(&status),
            r#"{"config":"/c.toml","pid":7,"sessions":{"backoff":0,"ready":1,"total":1},"uptime_s":3,"version":"0.1.0"}"#
        );
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let detail = SessionSummary::with_counters(&summary());
        let back: SessionSummary = serde_json::from_str(&to_line(&detail)).unwrap();
        assert_eq!(back, detail);
        let line = event_line(
            &Event::Audio {
                session: "k".into(),
                data: Bytes::from_static(&[9, 8]),
            },
            true,
        );
        assert_eq!(
            serde_json::from_str::<EventLine>(&line).unwrap(),
            EventLine::Audio {
                session: "k".into(),
                bytes: 2,
                data: Some(vec![9, 8])
            }
        );
        let queued: Delivery = serde_json::from_str(r#"{"position":4,"queued":true}"#).unwrap();
        assert_eq!(queued, Delivery::queued(4));
    }

    #[test]
    fn fields_a_reader_does_not_know_are_kept() {
        let mut line: Value = serde_json::from_str(PLAIN).unwrap();
        line["battery"] = json!(0.5);
        let read: SessionSummary = serde_json::from_value(line).unwrap();
        assert_eq!(read.extra.get("battery"), Some(&json!(0.5)));
    }
}

// ───────────── what a client writes, the server reads as meant ─────────────

fn every_command() -> Vec<Command> {
    let session = || "kitchen".to_owned();
    let mut message = serde_json::Map::new();
    message.insert("type".into(), json!("mcp"));
    vec![
        Command::Ping,
        Command::Status,
        Command::Sessions,
        Command::Session { session: session() },
        Command::Connect { session: session() },
        Command::Disconnect { session: session() },
        Command::Reconnect { session: session() },
        Command::Send {
            session: session(),
            message,
        },
        Command::Listen {
            session: session(),
            state: ListenState::Detect,
            mode: Some(ListenMode::Realtime),
            text: Some("你好".into()),
        },
        Command::Listen {
            session: session(),
            state: ListenState::Stop,
            mode: None,
            text: None,
        },
        Command::Abort {
            session: session(),
            reason: Some("wake_word_detected".into()),
        },
        Command::Audio {
            session: session(),
            data: vec![0, 1, 2, 255],
        },
        Command::Subscribe {
            sessions: Some(vec!["a".into()]),
            audio: true,
        },
        Command::Subscribe {
            sessions: None,
            audio: false,
        },
        Command::Identity { session: session() },
        Command::Reload,
        Command::Metrics,
    ]
}

#[test]
fn every_request_a_client_writes_parses_back_to_itself() {
    for (i, command) in every_command().into_iter().enumerate() {
        let request = Request { id: json!(i), command };
        let line = to_line(&request);
        assert_eq!(parse(&line).unwrap(), request, "{line}");
        let name: Value = serde_json::from_str::<Value>(&line).unwrap()["cmd"].clone();
        assert_eq!(name, json!(request.command.name()));
    }
}

#[test]
fn optional_arguments_are_left_out() {
    let line = to_line(&Request {
        id: json!(1),
        command: Command::Subscribe {
            sessions: None,
            audio: false,
        },
    });
    assert_eq!(line, r#"{"cmd":"subscribe","id":1}"#);
}

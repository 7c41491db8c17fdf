//! Request parser tests: examples of each error, and properties over
//! arbitrary input (never a panic; every error has a code and a message).

use proptest::prelude::*;
use serde_json::json;

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
        Command::Session("kitchen".into())
    );
    let send = parse(r#"{"id":"a","cmd":"send","session":"k","message":{"type":"mcp"}}"#).unwrap();
    assert_eq!(send.id, json!("a"));
    assert!(
        matches!(send.command, Command::Send { ref session, ref message } if session == "k" && message["type"] == "mcp")
    );
    let listen = parse(r#"{"cmd":"listen","session":"k","state":"detect","text":"你好小智"}"#).unwrap();
    let Command::Send { message, .. } = listen.command else {
        panic!()
    };
    assert_eq!(
        Value::Object(message),
        json!({"type":"listen","state":"detect","text":"你好小智"})
    );
    let abort = parse(r#"{"cmd":"abort","session":"k","reason":"wake_word_detected"}"#).unwrap();
    let Command::Send { message, .. } = abort.command else {
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
            Ok(request) => prop_assert_eq!(Some(&request.id).filter(|id| !id.is_null()), value.get("id")),
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

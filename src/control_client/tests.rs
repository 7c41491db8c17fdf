//! The client's reading of response lines, and its errors.

use serde_json::json;

use super::*;

fn error(code: &str, message: &str) -> Result<Value, DaemonError> {
    Err(DaemonError {
        code: code.into(),
        message: message.into(),
    })
}

fn parsed(line: &str, id: u64) -> Result<Result<Value, DaemonError>, String> {
    parse_response(line, id).map_err(|err| err.to_string())
}

#[test]
fn ok_and_error_responses() {
    assert_eq!(
        parsed(r#"{"id":1,"ok":true,"result":{"pid":3}}"#, 1),
        Ok(Ok(json!({"pid": 3})))
    );
    let line = r#"{"id":2,"ok":false,"error":{"code":"not_found","message":"no session named 'x'"}}"#;
    assert_eq!(parsed(line, 2), Ok(error("not_found", "no session named 'x'")));
    let Ok(Err(err)) = parse_response(line, 2) else {
        panic!()
    };
    assert_eq!(err.code(), Some(crate::protocol::ErrorCode::NotFound));
}

#[test]
fn forbidden_with_null_id_is_an_answer() {
    let line = r#"{"id":null,"ok":false,"error":{"code":"forbidden","message":"uid 1000 may not connect"}}"#;
    assert_eq!(parsed(line, 1), Ok(error("forbidden", "uid 1000 may not connect")));
}

#[test]
fn mismatched_ids_and_garbage_are_refused() {
    assert!(parsed(r#"{"id":7,"ok":true,"result":{}}"#, 1)
        .unwrap_err()
        .contains("id 7"));
    assert!(parsed(r#"{"id":null,"ok":true,"result":{}}"#, 1).is_err());
    assert!(parsed("hello", 1).unwrap_err().contains("not JSON"));
    assert!(parsed("[1]", 1).is_err());
    assert!(parsed(r#"{"id":1}"#, 1).is_err());
}

#[test]
fn odd_error_shapes_still_say_something() {
    assert_eq!(
        parsed(r#"{"id":1,"ok":false,"error":"boom"}"#, 1),
        Ok(error("error", "\"boom\""))
    );
    assert_eq!(
        parsed(r#"{"id":1,"ok":false,"error":{"code":5}}"#, 1),
        Ok(error("error", "(no message)"))
    );
    assert_eq!(parsed(r#"{"id":1,"ok":true}"#, 1), Ok(Ok(Value::Null)));
}

#[test]
fn connect_failure_names_the_socket_and_the_reason() {
    let path = Path::new("/nonexistent/wsvisor/control.sock");
    let err = blocking::Client::connect(path).err().unwrap();
    assert!(err.daemon_unreachable());
    assert_eq!(
        err.to_string(),
        "no daemon answers on /nonexistent/wsvisor/control.sock (No such file or directory); \
         is wsvisor running? (systemctl status wsvisor)"
    );
    assert!(std::error::Error::source(&err).is_some(), "the io::Error is kept");
}

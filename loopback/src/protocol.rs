//! The xiaozhi messages the server writes outside of answers and MCP, and
//! how it recognises the client messages it reacts to. Kept apart from the
//! connection task so the wire shapes are in one place.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::clock;

/// What the server does with a client text message.
pub(crate) enum Incoming {
    /// `{"type":"hello",...}`, parsed.
    Hello(Value),
    /// `{"type":"ping"}`.
    AppPing,
    /// `{"type":"listen","state":"detect","text":T}`.
    Detect(String),
    /// `{"type":"abort",...}`.
    Abort,
    /// `{"type":"mcp","payload":P}`: the payload (`Null` when absent).
    Mcp(Value),
    /// Anything else, including a `detect` without `text`, JSON that is not
    /// an object, and invalid JSON: recorded only.
    Other,
}

pub(crate) fn classify(text: &str) -> Incoming {
    let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(text) else {
        return Incoming::Other;
    };
    let kind = message
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match kind.as_str() {
        "hello" => Incoming::Hello(Value::Object(message)),
        "ping" => Incoming::AppPing,
        "abort" => Incoming::Abort,
        "mcp" => Incoming::Mcp(message.remove("payload").unwrap_or(Value::Null)),
        "listen" if message.get("state").and_then(Value::as_str) == Some("detect") => {
            // The real server only answers a detect that carries `text`.
            match message.get("text") {
                Some(Value::String(text)) => Incoming::Detect(text.clone()),
                Some(other) => Incoming::Detect(other.to_string()),
                None => Incoming::Other,
            }
        }
        _ => Incoming::Other,
    }
}

/// The server hello: the real server's `xiaozhi` config section (type,
/// version 1, transport, audio_params) with the session id, and with the
/// client's own `audio_params` in place of the configured ones when the
/// client sent any (`core/handle/helloHandle.py`).
pub(crate) fn server_hello(session_id: &str, client_hello: &Value) -> String {
    let audio_params = match client_hello.get("audio_params") {
        Some(Value::Object(params)) if !params.is_empty() => Value::Object(params.clone()),
        _ => json!({"format": "opus", "sample_rate": 24000, "channels": 1, "frame_duration": 60}),
    };
    json!({
        "type": "hello",
        "version": 1,
        "transport": "websocket",
        "audio_params": audio_params,
        "session_id": session_id,
    })
    .to_string()
}

/// The answer to an app-level ping (`pingMessageHandler.py`).
pub(crate) fn app_pong(now: SystemTime) -> String {
    json!({"type": "pong", "timestamp": clock::datetime_utc(now)}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_messages_the_server_reacts_to() {
        assert!(matches!(
            classify(r#"{"type":"hello","version":1}"#),
            Incoming::Hello(_)
        ));
        assert!(matches!(classify(r#"{"type":"ping"}"#), Incoming::AppPing));
        assert!(
            matches!(classify(r#"{"type":"listen","state":"detect","text":"hi"}"#), Incoming::Detect(t) if t == "hi")
        );
        assert!(matches!(
            classify(r#"{"type":"listen","state":"detect"}"#),
            Incoming::Other
        ));
        assert!(matches!(
            classify(r#"{"type":"listen","state":"start"}"#),
            Incoming::Other
        ));
        assert!(matches!(classify(r#"{"type":"abort"}"#), Incoming::Abort));
        assert!(matches!(classify(r#"{"type":"mcp","payload":{"id":1}}"#), Incoming::Mcp(p) if p["id"] == 1));
        assert!(matches!(classify(r#"{"type":"mcp"}"#), Incoming::Mcp(Value::Null)));
        assert!(matches!(classify("not json"), Incoming::Other));
        assert!(matches!(classify("[1,2]"), Incoming::Other));
    }

    #[test]
    fn hello_echoes_the_client_audio_params() {
        let plain: Value = serde_json::from_str(&server_hello("s", &json!({"type": "hello"}))).unwrap();
        assert_eq!(plain["version"], 1);
        assert_eq!(plain["audio_params"]["sample_rate"], 24000);
        assert_eq!(plain["session_id"], "s");
        let client = json!({"audio_params": {"format": "opus", "sample_rate": 16000}});
        let echoed: Value = serde_json::from_str(&server_hello("s", &client)).unwrap();
        assert_eq!(echoed["audio_params"], client["audio_params"]);
    }

    #[test]
    fn pong_carries_a_timestamp() {
        let pong: Value = serde_json::from_str(&app_pong(std::time::UNIX_EPOCH)).unwrap();
        assert_eq!(pong, json!({"type": "pong", "timestamp": "1970-01-01 00:00:00"}));
    }
}

//! The xiaozhi wire types: hello messages and audio parameters.
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Audio parameters announced in the client hello.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioParams {
    /// Codec name, `opus` for every known server.
    pub format: String,
    /// Samples per second.
    pub sample_rate: u32,
    /// 1 for mono.
    pub channels: u32,
    /// Milliseconds of audio per frame.
    pub frame_duration: u32,
}

impl Default for AudioParams {
    fn default() -> Self {
        AudioParams {
            format: "opus".into(),
            sample_rate: 16000,
            channels: 1,
            frame_duration: 60,
        }
    }
}

/// What xiaozhi-esp32-server sends, as plain text, when the token is refused.
pub const AUTH_FAILED_TEXT: &str = "认证失败";

/// Message types of the xiaozhi protocol; others are passed on and logged.
const KNOWN_TYPES: &[&str] = &[
    "hello", "listen", "abort", "mcp", "stt", "tts", "llm", "iot", "ping", "pong", "goodbye", "alert", "system",
];

/// Our hello, the first message after the upgrade.
pub fn client_hello(audio_params: &AudioParams) -> String {
    json!({
        "type": "hello",
        "version": 1,
        "features": {"mcp": true},
        "transport": "websocket",
        "audio_params": audio_params,
    })
    .to_string()
}

/// The application-level ping that xiaozhi-esp32-server counts as activity.
pub fn app_ping() -> Map<String, Value> {
    let mut message = Map::new();
    message.insert("type".into(), Value::String("ping".into()));
    message
}

/// The parts of the server hello we use.
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub struct ServerHello {
    /// Must be `websocket`.
    pub transport: Option<String>,
    /// Filled into every message we send.
    pub session_id: Option<String>,
}

/// A text frame from the server, classified.
#[derive(Debug, PartialEq)]
pub enum ServerText {
    /// `认证失败`: the token was refused.
    AuthFailed,
    /// `{"type":"hello",...}`.
    Hello(ServerHello),
    /// Any other JSON object.
    Message(Value),
    /// Not JSON, or JSON that is not an object.
    Malformed(String),
}

/// Classify a text frame from the server.
pub fn classify_server_text(text: &str) -> ServerText {
    if text.trim() == AUTH_FAILED_TEXT {
        return ServerText::AuthFailed;
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => return ServerText::Malformed(err.to_string()),
    };
    if !value.is_object() {
        return ServerText::Malformed("not a JSON object".into());
    }
    if value.get("type").and_then(Value::as_str) == Some("hello") {
        return match ServerHello::deserialize(&value) {
            Ok(hello) => ServerText::Hello(hello),
            Err(err) => ServerText::Malformed(format!("bad hello: {err}")),
        };
    }
    ServerText::Message(value)
}

/// The `type` of a message, or `(none)`.
pub fn type_of(message: &Value) -> &str {
    message.get("type").and_then(Value::as_str).unwrap_or("(none)")
}

/// True for the message types of the xiaozhi protocol.
pub fn is_known_type(message: &Value) -> bool {
    KNOWN_TYPES.contains(&type_of(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_has_the_fields_servers_check() {
        let hello: Value = serde_json::from_str(&client_hello(&AudioParams::default())).unwrap();
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["version"], 1);
        assert_eq!(hello["transport"], "websocket");
        assert_eq!(hello["features"]["mcp"], true);
        assert_eq!(hello["audio_params"]["sample_rate"], 16000);
    }

    #[test]
    fn classifies_server_texts() {
        assert_eq!(classify_server_text("认证失败"), ServerText::AuthFailed);
        let hello = classify_server_text(r#"{"type":"hello","transport":"websocket","session_id":"s1"}"#);
        assert_eq!(
            hello,
            ServerText::Hello(ServerHello {
                transport: Some("websocket".into()),
                session_id: Some("s1".into())
            })
        );
        assert!(matches!(
            classify_server_text(r#"{"type": "tts", "#),
            ServerText::Malformed(_)
        ));
        assert!(matches!(classify_server_text("[1,2]"), ServerText::Malformed(_)));
        let stt = classify_server_text(r#"{"type":"stt","text":"hi"}"#);
        assert!(matches!(stt, ServerText::Message(ref v) if is_known_type(v)));
        let odd = classify_server_text(r#"{"type":"whatever"}"#);
        assert!(matches!(odd, ServerText::Message(ref v) if !is_known_type(v) && type_of(v) == "whatever"));
    }
}

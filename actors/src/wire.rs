//! The xiaozhi wire types: hello messages and audio parameters.
use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::json;

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

/// Our hello, the first message after the upgrade. `mcp`: announce
/// `features.mcp` (the server then sends MCP requests; without it, it
/// sends none).
pub fn client_hello(audio_params: &AudioParams, mcp: bool) -> String {
    let features = if mcp { json!({"mcp": true}) } else { json!({}) };
    json!({
        "type": "hello",
        "version": 1,
        "features": features,
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

/// A JSON object to send as a text frame, kept as compact text: its size
/// is what it costs a queue, and a held copy is shared, never deep-cloned.
/// `session_id` is filled in when it is written, by the connection that
/// writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundText {
    json: Arc<str>,
    has_session_id: bool,
}

impl OutboundText {
    /// The object, serialized once.
    pub fn from_object(message: &Map<String, Value>) -> Self {
        OutboundText {
            json: Value::Object(message.clone()).to_string().into(),
            has_session_id: message.contains_key("session_id"),
        }
    }

    /// Its JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Bytes of its JSON text.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// True for `{}`.
    pub fn is_empty(&self) -> bool {
        &*self.json == "{}"
    }

    /// The text to write: with `"session_id"` first when it had none and
    /// the connection has one.
    pub fn stamped(&self, session_id: Option<&str>) -> String {
        let Some(id) = session_id.filter(|_| !self.has_session_id) else {
            return self.json.to_string();
        };
        let id = Value::String(id.to_owned()).to_string();
        let rest = &self.json[1..];
        let separator = if rest == "}" { "" } else { "," };
        format!("{{\"session_id\":{id}{separator}{rest}")
    }
}

/// The parts of the server hello we use.
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub struct ServerHello {
    /// Must be `websocket`.
    pub transport: Option<String>,
    /// Filled into every message we send.
    pub session_id: Option<String>,
}

/// A server message that is passed on, not interpreted here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerMessage {
    /// Its `type`, when it has a string one.
    pub kind: Option<String>,
    /// The message as compact JSON text: one line, shared by every subscriber.
    pub json: Arc<str>,
}

impl ServerMessage {
    /// True for the message types of the xiaozhi protocol.
    pub fn is_known_type(&self) -> bool {
        self.kind.as_deref().is_some_and(|kind| KNOWN_TYPES.contains(&kind))
    }

    /// The `type`, or `(none)`.
    pub fn kind_or_none(&self) -> &str {
        self.kind.as_deref().unwrap_or("(none)")
    }
}

/// A text frame from the server, classified.
#[derive(Debug, PartialEq)]
pub enum ServerText {
    /// `认证失败`: the token was refused.
    AuthFailed,
    /// `{"type":"hello",...}`.
    Hello(ServerHello),
    /// Any other JSON object.
    Message(ServerMessage),
    /// Not JSON, or JSON that is not an object.
    Malformed(String),
}

/// Just the `type` of a message; the rest is skipped without being built.
#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
}

/// Classify a text frame from the server. Nothing is built into a JSON
/// tree: the type is read, the rest is validated and compacted.
pub fn classify_server_text(text: &str) -> ServerText {
    let trimmed = text.trim();
    if trimmed == AUTH_FAILED_TEXT {
        return ServerText::AuthFailed;
    }
    if !trimmed.starts_with('{') {
        return ServerText::Malformed("not a JSON object".into());
    }
    let kind = match serde_json::from_str::<TypeOnly>(text) {
        Ok(peek) => peek.kind.map(Cow::into_owned),
        Err(err) => return ServerText::Malformed(err.to_string()),
    };
    if kind.as_deref() == Some("hello") {
        return match serde_json::from_str::<ServerHello>(text) {
            Ok(hello) => ServerText::Hello(hello),
            Err(err) => ServerText::Malformed(format!("bad hello: {err}")),
        };
    }
    match json::compact(text) {
        Ok(compact) => ServerText::Message(ServerMessage {
            kind,
            json: compact.into(),
        }),
        Err(err) => ServerText::Malformed(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_has_the_fields_servers_check() {
        let hello: Value = serde_json::from_str(&client_hello(&AudioParams::default(), true)).unwrap();
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["version"], 1);
        assert_eq!(hello["transport"], "websocket");
        assert_eq!(hello["features"]["mcp"], true);
        assert_eq!(hello["audio_params"]["sample_rate"], 16000);
        let quiet: Value = serde_json::from_str(&client_hello(&AudioParams::default(), false)).unwrap();
        assert_eq!(quiet["features"], json!({}), "no features.mcp at all when off");
    }

    #[test]
    fn outbound_text_gets_the_session_id_unless_it_has_one() {
        let object = |v: Value| match v {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let listen = OutboundText::from_object(&object(json!({"type": "listen", "state": "detect"})));
        let stamped: Value = serde_json::from_str(&listen.stamped(Some("s\"1"))).unwrap();
        assert_eq!(
            stamped,
            json!({"session_id": "s\"1", "type": "listen", "state": "detect"})
        );
        assert_eq!(listen.stamped(None), listen.json());
        let own = OutboundText::from_object(&object(json!({"session_id": "mine"})));
        assert_eq!(own.stamped(Some("theirs")), r#"{"session_id":"mine"}"#);
        let empty = OutboundText::from_object(&Map::new());
        assert!(empty.is_empty());
        assert_eq!(empty.stamped(Some("x")), r#"{"session_id":"x"}"#);
        assert_eq!(listen.len(), listen.json().len());
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
        assert!(matches!(classify_server_text(r#"["hello"]"#), ServerText::Malformed(_)));
        assert!(matches!(
            classify_server_text(r#"{"type": 5}"#),
            ServerText::Malformed(_)
        ));
        let ServerText::Message(stt) = classify_server_text("{ \"type\": \"stt\",\n \"text\": \"hi there\" }") else {
            panic!("stt is a message")
        };
        assert!(stt.is_known_type());
        assert_eq!(&*stt.json, r#"{"type":"stt","text":"hi there"}"#, "compact, one line");
        let ServerText::Message(odd) = classify_server_text(r#"{"type":"whatever"}"#) else {
            panic!("a message")
        };
        assert!(!odd.is_known_type() && odd.kind_or_none() == "whatever");
        let ServerText::Message(untyped) = classify_server_text(r#"{"a":1}"#) else {
            panic!("a message")
        };
        assert_eq!((untyped.kind_or_none(), untyped.is_known_type()), ("(none)", false));
    }
}

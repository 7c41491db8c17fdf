//! The xiaozhi messages the server writes, and how it recognises the ones it
//! reacts to. Kept apart from the connection task so the wire shapes are in
//! one place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The text xiaozhi-esp32-server sends before closing an unauthenticated
/// connection.
pub const AUTH_FAILED_TEXT: &str = "认证失败";

/// What the server does with a client text message.
pub(crate) enum Incoming {
    /// `{"type":"hello",...}`, parsed.
    Hello(Value),
    /// `{"type":"ping"}`: answer with a pong.
    AppPing,
    /// `{"type":"listen","state":"detect","text":T}`: answer with an stt.
    Detect(String),
    /// Anything else (including invalid JSON): recorded only.
    Other,
}

pub(crate) fn classify(text: &str) -> Incoming {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Incoming::Other;
    };
    match value.get("type").and_then(Value::as_str) {
        Some("hello") => Incoming::Hello(value),
        Some("ping") => Incoming::AppPing,
        Some("listen") if value.get("state").and_then(Value::as_str) == Some("detect") => {
            let text = value.get("text").and_then(Value::as_str).unwrap_or_default();
            Incoming::Detect(text.to_owned())
        }
        _ => Incoming::Other,
    }
}

pub(crate) fn server_hello(session_id: &str) -> String {
    json!({
        "type": "hello",
        "transport": "websocket",
        "session_id": session_id,
        "audio_params": {"format": "opus", "sample_rate": 24000, "channels": 1, "frame_duration": 60},
    })
    .to_string()
}

pub(crate) fn app_pong() -> String {
    json!({"type": "pong"}).to_string()
}

pub(crate) fn stt(text: &str, session_id: Option<&str>) -> String {
    let mut msg = json!({"type": "stt", "text": text});
    if let Some(id) = session_id {
        msg["session_id"] = json!(id);
    }
    msg.to_string()
}

pub(crate) fn tts_start(session_id: Option<&str>) -> String {
    let mut msg = json!({"type": "tts", "state": "start"});
    if let Some(id) = session_id {
        msg["session_id"] = json!(id);
    }
    msg.to_string()
}

/// A fresh UUID-shaped session id, unique within the process (a counter mixed
/// with the clock, so ids also differ between runs without a random crate).
pub(crate) fn new_session_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let a = splitmix64(nanos ^ n.rotate_left(32));
    let b = splitmix64(a ^ n);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_unique_and_uuid_shaped() {
        let a = new_session_id();
        let b = new_session_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }

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
            classify(r#"{"type":"listen","state":"start"}"#),
            Incoming::Other
        ));
        assert!(matches!(classify("not json"), Incoming::Other));
        assert!(matches!(classify("[1,2]"), Incoming::Other));
    }
}

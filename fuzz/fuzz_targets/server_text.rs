//! The xiaozhi message decoder: a text frame from the server classified as
//! the auth failure, a hello, a message or malformed, never a panic; and
//! every string of it the daemon logs or shows (session_id, type) comes out
//! of `logsafe` on one line, with no control character and capped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsvisor_actors::logsafe;
use wsvisor_actors::wire::{self, ServerText};

/// What reaches a log line or a terminal for a server-chosen string.
fn assert_safe(text: &str) {
    let shown = logsafe::value(text).capped(64).to_string();
    assert!(!shown.chars().any(logsafe::needs_escape), "{shown:?}");
    // 64 characters, each escaped to at most 10 (\u{10ffff}), quotes and the tail.
    assert!(shown.len() <= 64 * 10 + 32, "{} bytes shown", shown.len());
}

fuzz_target!(|text: &str| {
    match wire::classify_server_text(text) {
        ServerText::Message(message) => {
            // Kept as compact JSON text: an object, on one line.
            assert!(message.json.starts_with('{') && message.json.ends_with('}'));
            assert!(!message.json.contains('\n'));
            assert_safe(message.kind_or_none());
            let _ = message.is_known_type();
        }
        ServerText::Hello(hello) => {
            for field in [&hello.session_id, &hello.transport].into_iter().flatten() {
                assert_safe(field);
            }
        }
        ServerText::AuthFailed | ServerText::Malformed(_) => {}
    }
});

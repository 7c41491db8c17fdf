//! The xiaozhi message decoder: a text frame from the server classified as
//! the auth failure, a hello, a message or malformed, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsvisor_actors::wire::{self, ServerText};

fuzz_target!(|text: &str| {
    match wire::classify_server_text(text) {
        ServerText::Message(message) => {
            // Kept as compact JSON text: an object, on one line.
            assert!(message.json.starts_with('{') && message.json.ends_with('}'));
            assert!(!message.json.contains('\n'));
            let _ = message.kind_or_none();
            let _ = message.is_known_type();
        }
        ServerText::Hello(_) | ServerText::AuthFailed | ServerText::Malformed(_) => {}
    }
});

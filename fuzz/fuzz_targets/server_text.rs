//! The xiaozhi message decoder: a text frame from the server classified as
//! the auth failure, a hello, a message or malformed, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsvisor_actors::wire::{self, ServerText};

fuzz_target!(|text: &str| {
    match wire::classify_server_text(text) {
        ServerText::Message(message) => {
            assert!(message.is_object());
            let _ = wire::type_of(&message);
            let _ = wire::is_known_type(&message);
        }
        ServerText::Hello(_) | ServerText::AuthFailed | ServerText::Malformed(_) => {}
    }
});

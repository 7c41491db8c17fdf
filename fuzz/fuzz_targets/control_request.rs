//! The control socket's request parser (src/control/protocol.rs, compiled
//! here from the daemon's own source) on arbitrary bytes: a request or a
//! `bad_request`/`unknown_command` error, never a panic; every answer it
//! leads to is one line of valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/control/protocol.rs"]
mod protocol;

fuzz_target!(|line: &[u8]| {
    // The line reader never hands over more than this.
    if line.len() > protocol::MAX_LINE_BYTES {
        return;
    }
    let answer = match protocol::parse_request(line) {
        Ok(request) => protocol::ok_response(
            &request.id,
            serde_json::json!({"parsed": format!("{:?}", request.command)}),
        ),
        Err((id, error)) => protocol::error_response(&id, &error),
    };
    assert!(!answer.contains('\n'), "an answer spans lines: {answer}");
    serde_json::from_str::<serde_json::Value>(&answer).expect("an answer is JSON");
});

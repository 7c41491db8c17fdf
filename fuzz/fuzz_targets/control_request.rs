//! The control socket's request parser (`wsvisor::protocol`, the daemon's
//! own) on arbitrary bytes: a request or a `bad_request`/`unknown_command`
//! error, never a panic; every answer it leads to is one line of valid
//! JSON; and a request that parses reads back the same after a client
//! writes it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsvisor::protocol;

fuzz_target!(|line: &[u8]| {
    // The line reader never hands over more than this.
    if line.len() > protocol::MAX_LINE_BYTES {
        return;
    }
    let answer = match protocol::parse_request(line) {
        Ok(request) => {
            let written = protocol::to_line(&request);
            let again = protocol::parse_request(written.as_bytes()).expect("a written request parses");
            assert_eq!(again, request, "{written}");
            protocol::ok_response(
                &request.id,
                serde_json::json!({"parsed": format!("{:?}", request.command)}),
            )
        }
        Err((id, error)) => protocol::error_response(&id, &error),
    };
    assert!(!answer.contains('\n'), "an answer spans lines: {answer}");
    serde_json::from_str::<serde_json::Value>(&answer).expect("an answer is JSON");
});

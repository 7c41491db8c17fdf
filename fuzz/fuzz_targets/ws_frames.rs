//! Everything a session does with bytes from the server: awc's client
//! codec cuts them into frames (with the 1 MiB limit sessions use), the
//! Connection's `FrameAssembler::step` reassembles, validates and decides
//! the reply, and text messages go to the xiaozhi decoder. Never a panic;
//! a declared length is never allocated beyond the limit; a whole message
//! never exceeds it.
#![no_main]

use actix_codec::Decoder;
use actix_http::ws::Codec;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsvisor_actors::connection::{FrameAssembler, Inbound, Reply, Step, MAX_MESSAGE_BYTES};
use wsvisor_actors::wire;

fuzz_target!(|data: &[u8]| {
    let mut codec = Codec::new().client_mode().max_size(MAX_MESSAGE_BYTES);
    let mut assembler = FrameAssembler::new(MAX_MESSAGE_BYTES);
    // Feed in two reads, so frames also arrive split.
    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut buf = BytesMut::new();
    for chunk in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(chunk);
        loop {
            let item = match codec.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(frame)) => Ok(frame),
                Err(err) => Err(err),
            };
            let failed = item.is_err();
            match assembler.step(item) {
                Step::Pending => {}
                Step::Inbound(inbound, reply) => match (&inbound, &reply) {
                    (Inbound::Ping(p), Some(Reply::Pong(q))) => assert_eq!(p, q),
                    (Inbound::Close(..), Some(Reply::Close(_))) => return,
                    (Inbound::Text(text), None) => {
                        assert!(text.len() <= MAX_MESSAGE_BYTES);
                        let _ = wire::classify_server_text(text);
                    }
                    (Inbound::Binary(data), None) => assert!(data.len() <= MAX_MESSAGE_BYTES),
                    (Inbound::Pong(_), None) => {}
                    other => panic!("unexpected reply: {other:?}"),
                },
                // The connection ends here, as a session's would.
                Step::Violation { code, .. } => {
                    assert!(matches!(code, 1002 | 1007 | 1009), "{code}");
                    return;
                }
                Step::Io(_) => return,
            }
            // A codec error is final in a session.
            if failed {
                return;
            }
        }
    }
});

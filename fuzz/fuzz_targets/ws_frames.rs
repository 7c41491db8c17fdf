//! Everything a session does with bytes from the server: the session's
//! decoder (awc's client codec behind the header check of `GuardedCodec`)
//! cuts them into frames, the
//! Connection's `FrameAssembler::step` reassembles, validates and decides
//! the reply, and text messages go to the xiaozhi decoder. Never a panic;
//! a frame announced over the limit is refused from its header, so the
//! read buffer never holds more than one frame of the limit; a whole
//! message never exceeds it. The limit is 4 KiB here (sessions use
//! `max_message`, 1 MiB by default) so that inputs of a few KiB reach it.
#![no_main]

use actix_codec::Decoder;
use actix_http::ws::Codec;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsvisor_actors::connection::{FrameAssembler, GuardedCodec, Inbound, Reply, Step};
use wsvisor_actors::wire;

const LIMIT: usize = 4096;
/// The longest frame header: 2 bytes, 8 of length, 4 of mask.
const HEADER: usize = 14;

fuzz_target!(|data: &[u8]| {
    let mut codec = GuardedCodec::new(Codec::new().client_mode(), LIMIT, 256);
    let mut assembler = FrameAssembler::new(LIMIT);
    // Feed in two reads, so frames also arrive split.
    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut buf = BytesMut::new();
    for chunk in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(chunk);
        loop {
            let item = match codec.decode(&mut buf) {
                Ok(None) => {
                    assert!(buf.len() <= LIMIT + HEADER, "{} bytes buffered", buf.len());
                    break;
                }
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
                        assert!(text.len() <= LIMIT);
                        let _ = wire::classify_server_text(text);
                    }
                    (Inbound::Binary(data), None) => assert!(data.len() <= LIMIT),
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

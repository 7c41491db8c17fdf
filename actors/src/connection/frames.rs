//! Turns awc's raw frames into whole messages and decides what the
//! protocol obliges us to send back, doing what awc leaves to its user
//! (RFC 6455): answering a Ping with a Pong of the same payload, echoing a
//! Close, reassembling continuation frames, rejecting text that is not
//! UTF-8 (1007), oversized messages (1009), and protocol errors and invalid
//! close codes (1002). Pure: no socket, no actor, no clock. The Connection
//! and the Autobahn conformance client (`actors/examples/autobahn_client.rs`)
//! both go through [`FrameAssembler::step`], so what the conformance suite
//! checks is exactly what sessions run.

use std::io;

use actix_http::ws::Item;
use awc::error::WsProtocolError;
use awc::ws::{CloseCode, CloseReason, Frame};
use bytes::{Bytes, BytesMut};

/// A whole inbound message or control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A complete text message, valid UTF-8.
    Text(String),
    /// A complete binary message.
    Binary(Bytes),
    /// A Ping: answer with a Pong of the same payload.
    Ping(Bytes),
    /// A Pong.
    Pong(Bytes),
    /// A Close frame: its raw code (None when the frame had no payload) and reason.
    Close(Option<u16>, String),
}

/// Why the peer's frames cannot be accepted; each maps to the close code
/// we answer with.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Text that is not UTF-8 (close 1007).
    InvalidUtf8,
    /// A message larger than the limit (close 1009).
    TooBig(usize),
    /// A Close frame with a code that must not be sent (close 1002).
    InvalidCloseCode(u16),
}

impl FrameError {
    /// The close code that answers this error (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::InvalidUtf8 => 1007,
            FrameError::TooBig(_) => 1009,
            FrameError::InvalidCloseCode(_) => 1002,
        }
    }

    /// What to log and report.
    pub fn describe(&self) -> String {
        match self {
            FrameError::InvalidUtf8 => "text frame is not valid UTF-8".into(),
            FrameError::TooBig(limit) => format!("message exceeds {limit} bytes"),
            FrameError::InvalidCloseCode(code) => format!("invalid close code {code}"),
        }
    }
}

/// What one item read from the socket means, decided.
#[derive(Debug)]
pub enum Step {
    /// A fragment of a message that is not complete yet: nothing to do.
    Pending,
    /// A whole message or control frame, and the frame the protocol obliges
    /// us to send back for it, if any.
    Inbound(Inbound, Option<Reply>),
    /// The peer broke the protocol: send a Close with this code, then end.
    Violation {
        /// The close code to send (1002, 1007 or 1009).
        code: u16,
        /// What to log and report.
        why: String,
    },
    /// The socket failed; nothing more can be sent on it.
    Io(io::Error),
}

/// A frame that answers an inbound one (RFC 6455 §5.5).
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Answer a Ping, with its payload (§5.5.2).
    Pong(Bytes),
    /// Echo a Close (§5.5.1): its code, 1000 when it had none; then the
    /// connection ends.
    Close(CloseReason),
}

/// The frame to send back for `inbound`: a Pong for a Ping, the echo of a
/// Close; nothing for messages and Pongs.
pub fn reply_to(inbound: &Inbound) -> Option<Reply> {
    match inbound {
        Inbound::Ping(payload) => Some(Reply::Pong(payload.clone())),
        // A Close without a code is answered with 1000: a Close frame
        // cannot carry 1005 ("no code"), which only names the absence.
        Inbound::Close(code, reason) => Some(Reply::Close(close_reason(code.unwrap_or(1000), reason))),
        Inbound::Text(_) | Inbound::Binary(_) | Inbound::Pong(_) => None,
    }
}

/// The close code that answers an error of awc's codec, which checks the
/// frame layer before we see a frame (masking, opcodes, control frame
/// lengths, fragment order, close payloads), or `None` when the socket
/// itself failed and cannot carry a Close.
pub fn close_code_for(err: &WsProtocolError) -> Option<u16> {
    match err {
        // actix-http reports non-zero reserved bits as an InvalidData I/O
        // error until its next major version (a TODO there): it is the
        // peer's protocol error, not a failed socket.
        WsProtocolError::Io(err) if is_reserved_bits_error(err) => Some(1002),
        WsProtocolError::Io(_) => None,
        WsProtocolError::Overflow => Some(1009),
        _ => Some(1002),
    }
}

fn is_reserved_bits_error(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::InvalidData && err.to_string().contains("reserved bits")
}

enum Partial {
    Text(BytesMut),
    Binary(BytesMut),
}

/// Reassembles fragmented messages of one connection.
pub struct FrameAssembler {
    partial: Option<Partial>,
    max_message: usize,
}

impl FrameAssembler {
    /// An assembler accepting messages up to `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        FrameAssembler {
            partial: None,
            max_message,
        }
    }

    /// Decide what one item read from the socket means: the single entry
    /// point of inbound frame handling.
    pub fn step(&mut self, item: Result<Frame, WsProtocolError>) -> Step {
        let frame = match item {
            Ok(frame) => frame,
            Err(WsProtocolError::Io(err)) if !is_reserved_bits_error(&err) => return Step::Io(err),
            Err(err) => {
                return Step::Violation {
                    code: close_code_for(&err).unwrap_or(1002),
                    why: err.to_string(),
                }
            }
        };
        match self.push(frame) {
            Ok(Some(inbound)) => {
                let reply = reply_to(&inbound);
                Step::Inbound(inbound, reply)
            }
            Ok(None) => Step::Pending,
            Err(err) => Step::Violation {
                code: err.close_code(),
                why: err.describe(),
            },
        }
    }

    /// Feed one frame; a whole message comes out when one is complete.
    /// Order of fragments is enforced by awc's codec already.
    pub fn push(&mut self, frame: Frame) -> Result<Option<Inbound>, FrameError> {
        match frame {
            Frame::Text(bytes) => text(bytes).map(Some),
            Frame::Binary(bytes) => self.check_size(bytes.len()).map(|_| Some(Inbound::Binary(bytes))),
            Frame::Ping(bytes) => Ok(Some(Inbound::Ping(bytes))),
            Frame::Pong(bytes) => Ok(Some(Inbound::Pong(bytes))),
            Frame::Close(reason) => close(reason).map(Some),
            Frame::Continuation(item) => self.continuation(item),
        }
    }

    fn continuation(&mut self, item: Item) -> Result<Option<Inbound>, FrameError> {
        match item {
            Item::FirstText(bytes) => {
                self.check_size(bytes.len())?;
                self.partial = Some(Partial::Text(BytesMut::from(&bytes[..])));
                self.check_partial_utf8()?;
                Ok(None)
            }
            Item::FirstBinary(bytes) => {
                self.check_size(bytes.len())?;
                self.partial = Some(Partial::Binary(BytesMut::from(&bytes[..])));
                Ok(None)
            }
            Item::Continue(bytes) => {
                self.append(&bytes)?;
                self.check_partial_utf8()?;
                Ok(None)
            }
            Item::Last(bytes) => {
                self.append(&bytes)?;
                match self.partial.take() {
                    Some(Partial::Text(buf)) => text(buf.freeze()).map(Some),
                    Some(Partial::Binary(buf)) => Ok(Some(Inbound::Binary(buf.freeze()))),
                    // awc's codec rejects a Last without a First before we see it.
                    None => Ok(None),
                }
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        let buf = match &mut self.partial {
            Some(Partial::Text(buf) | Partial::Binary(buf)) => buf,
            None => return Ok(()),
        };
        if buf.len() + bytes.len() > self.max_message {
            return Err(FrameError::TooBig(self.max_message));
        }
        buf.extend_from_slice(bytes);
        Ok(())
    }

    fn check_size(&self, len: usize) -> Result<(), FrameError> {
        if len > self.max_message {
            return Err(FrameError::TooBig(self.max_message));
        }
        Ok(())
    }

    /// Fail fast on a fragment that can never become UTF-8, rather than
    /// buffering the rest of a bad message (RFC 6455 §8.1).
    fn check_partial_utf8(&self) -> Result<(), FrameError> {
        if let Some(Partial::Text(buf)) = &self.partial {
            if let Err(err) = std::str::from_utf8(buf) {
                // error_len None: the text merely stops inside a character.
                if err.error_len().is_some() {
                    return Err(FrameError::InvalidUtf8);
                }
            }
        }
        Ok(())
    }
}

fn text(bytes: Bytes) -> Result<Inbound, FrameError> {
    match String::from_utf8(bytes.into()) {
        Ok(text) => Ok(Inbound::Text(text)),
        Err(_) => Err(FrameError::InvalidUtf8),
    }
}

fn close(reason: Option<CloseReason>) -> Result<Inbound, FrameError> {
    let Some(reason) = reason else {
        return Ok(Inbound::Close(None, String::new()));
    };
    let code = u16::from(reason.code);
    if !is_sendable_close_code(code) {
        return Err(FrameError::InvalidCloseCode(code));
    }
    Ok(Inbound::Close(Some(code), reason.description.unwrap_or_default()))
}

/// Codes a peer may put in a Close frame (RFC 6455 §7.4, IANA registry).
pub fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A Close frame payload for `code` and `reason`.
pub fn close_reason(code: u16, reason: &str) -> CloseReason {
    CloseReason {
        code: CloseCode::from(code),
        description: (!reason.is_empty()).then(|| reason.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assembler() -> FrameAssembler {
        FrameAssembler::new(16)
    }

    #[test]
    fn reassembles_text_across_fragments_split_inside_a_character() {
        let mut a = assembler();
        let word = "认证".as_bytes();
        assert_eq!(
            a.push(Frame::Continuation(Item::FirstText(Bytes::copy_from_slice(&word[..2])))),
            Ok(None)
        );
        assert_eq!(
            a.push(Frame::Continuation(Item::Continue(Bytes::copy_from_slice(&word[2..4])))),
            Ok(None)
        );
        let last = a.push(Frame::Continuation(Item::Last(Bytes::copy_from_slice(&word[4..]))));
        assert_eq!(last, Ok(Some(Inbound::Text("认证".into()))));
    }

    #[test]
    fn reassembles_binary() {
        let mut a = assembler();
        a.push(Frame::Continuation(Item::FirstBinary(Bytes::from_static(b"ab"))))
            .unwrap();
        let last = a.push(Frame::Continuation(Item::Last(Bytes::from_static(b"cd"))));
        assert_eq!(last, Ok(Some(Inbound::Binary(Bytes::from_static(b"abcd")))));
    }

    #[test]
    fn rejects_invalid_utf8_at_once_even_mid_message() {
        let mut a = assembler();
        assert_eq!(
            a.push(Frame::Text(Bytes::from_static(b"\xff"))),
            Err(FrameError::InvalidUtf8)
        );
        let first = a.push(Frame::Continuation(Item::FirstText(Bytes::from_static(b"ok\xc0\x80"))));
        assert_eq!(first, Err(FrameError::InvalidUtf8));
    }

    #[test]
    fn rejects_oversized_messages() {
        let mut a = assembler();
        a.push(Frame::Continuation(Item::FirstBinary(Bytes::from_static(&[0; 10]))))
            .unwrap();
        let more = a.push(Frame::Continuation(Item::Continue(Bytes::from_static(&[0; 10]))));
        assert_eq!(more, Err(FrameError::TooBig(16)));
        assert_eq!(FrameError::TooBig(16).close_code(), 1009);
    }

    #[test]
    fn step_answers_pings_and_echoes_closes() {
        let mut a = assembler();
        match a.step(Ok(Frame::Ping(Bytes::from_static(b"p1")))) {
            Step::Inbound(Inbound::Ping(_), Some(Reply::Pong(payload))) => assert_eq!(&payload[..], b"p1"),
            other => panic!("{other:?}"),
        }
        match a.step(Ok(Frame::Close(Some(close_reason(4001, "bye"))))) {
            Step::Inbound(Inbound::Close(Some(4001), _), Some(Reply::Close(echo))) => {
                assert_eq!((u16::from(echo.code), echo.description.as_deref()), (4001, Some("bye")));
            }
            other => panic!("{other:?}"),
        }
        // A Close without a code cannot be echoed as 1005: 1000 it is.
        match a.step(Ok(Frame::Close(None))) {
            Step::Inbound(Inbound::Close(None, _), Some(Reply::Close(echo))) => assert_eq!(u16::from(echo.code), 1000),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            a.step(Ok(Frame::Text(Bytes::from_static(b"hi")))),
            Step::Inbound(Inbound::Text(_), None)
        ));
        assert!(matches!(
            a.step(Ok(Frame::Continuation(Item::FirstBinary(Bytes::from_static(b"a"))))),
            Step::Pending
        ));
    }

    #[test]
    fn step_fails_the_connection_with_the_right_code() {
        let mut a = assembler();
        assert!(matches!(
            a.step(Ok(Frame::Text(Bytes::from_static(b"\xff")))),
            Step::Violation { code: 1007, .. }
        ));
        assert!(matches!(
            a.step(Err(WsProtocolError::Overflow)),
            Step::Violation { code: 1009, .. }
        ));
        for err in [
            WsProtocolError::InvalidOpcode(3),
            WsProtocolError::InvalidLength(126),
            WsProtocolError::BadOpCode,
            WsProtocolError::ContinuationNotStarted,
            WsProtocolError::MaskedFrame,
        ] {
            assert!(matches!(a.step(Err(err)), Step::Violation { code: 1002, .. }));
        }
        // actix-http's spelling of non-zero reserved bits.
        let rsv = io::Error::new(
            io::ErrorKind::InvalidData,
            "Received a frame with non-zero reserved bits",
        );
        assert!(matches!(
            a.step(Err(WsProtocolError::Io(rsv))),
            Step::Violation { code: 1002, .. }
        ));
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(matches!(a.step(Err(WsProtocolError::Io(reset))), Step::Io(_)));
    }

    #[test]
    fn a_message_of_exactly_the_limit_passes_and_one_byte_more_does_not() {
        let mut a = assembler();
        assert_eq!(
            a.push(Frame::Binary(Bytes::from_static(&[1; 16]))),
            Ok(Some(Inbound::Binary(Bytes::from_static(&[1; 16]))))
        );
        assert_eq!(
            a.push(Frame::Binary(Bytes::from_static(&[1; 17]))),
            Err(FrameError::TooBig(16))
        );
        assert_eq!(
            a.push(Frame::Continuation(Item::FirstText(Bytes::from_static(&[b'a'; 17])))),
            Err(FrameError::TooBig(16))
        );
        a.push(Frame::Continuation(Item::FirstBinary(Bytes::from_static(&[2; 10]))))
            .unwrap();
        assert_eq!(
            a.push(Frame::Continuation(Item::Last(Bytes::from_static(&[3; 6])))),
            Ok(Some(Inbound::Binary(Bytes::from(
                [[2u8; 10].as_slice(), &[3; 6]].concat()
            ))))
        );
    }

    #[test]
    fn errors_are_described_for_the_log() {
        assert_eq!(FrameError::TooBig(16).describe(), "message exceeds 16 bytes");
        assert_eq!(FrameError::InvalidUtf8.describe(), "text frame is not valid UTF-8");
        assert_eq!(FrameError::InvalidCloseCode(1005).describe(), "invalid close code 1005");
        match assembler().step(Ok(Frame::Binary(Bytes::from_static(&[0; 17])))) {
            Step::Violation { code, why } => assert_eq!((code, why.as_str()), (1009, "message exceeds 16 bytes")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_reserved_bits_make_an_io_error_a_protocol_error() {
        let reset = || io::Error::from(io::ErrorKind::ConnectionReset);
        let rsv = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "Received a frame with non-zero reserved bits",
            )
        };
        assert_eq!(close_code_for(&WsProtocolError::Io(reset())), None);
        assert_eq!(close_code_for(&WsProtocolError::Io(rsv())), Some(1002));
        assert_eq!(close_code_for(&WsProtocolError::Overflow), Some(1009));
        assert_eq!(close_code_for(&WsProtocolError::MaskedFrame), Some(1002));
        // Invalid data that is not about reserved bits, and reserved bits
        // named in another kind of error, are failed sockets.
        let other_data = io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8");
        let other_kind = io::Error::new(io::ErrorKind::Other, "non-zero reserved bits");
        for err in [other_data, other_kind] {
            assert_eq!(
                close_code_for(&WsProtocolError::Io(io::Error::new(err.kind(), err.to_string()))),
                None
            );
            assert!(matches!(assembler().step(Err(WsProtocolError::Io(err))), Step::Io(_)));
        }
    }

    #[test]
    fn close_codes() {
        let mut a = assembler();
        assert_eq!(
            a.push(Frame::Close(None)),
            Ok(Some(Inbound::Close(None, String::new())))
        );
        let normal = a.push(Frame::Close(Some(close_reason(1000, "bye"))));
        assert_eq!(normal, Ok(Some(Inbound::Close(Some(1000), "bye".into()))));
        for bad in [999, 1004, 1005, 1006, 1015, 2000, 5000] {
            assert_eq!(
                a.push(Frame::Close(Some(close_reason(bad, "")))),
                Err(FrameError::InvalidCloseCode(bad))
            );
        }
        assert!(is_sendable_close_code(1012) && is_sendable_close_code(4000));
    }
}

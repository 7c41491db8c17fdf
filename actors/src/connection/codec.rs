//! The read side's decoder: awc's WebSocket codec behind a check of the
//! frame header. actix-http compares a frame's length with its limit only
//! once the whole payload has been buffered, so a header announcing 8 GiB
//! followed by a trickle of bytes made the daemon buffer until it died.
//! Here the announced length is read from the header and a frame over the
//! limit is refused (1009) before a byte of its payload is kept; and a read
//! buffer that grew for a large frame is released once it is empty again.

use awc::error::WsProtocolError;
use awc::ws::{Codec, Frame};
use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// A read buffer this large is replaced by a small one once it holds
/// little again, so one large frame does not cost memory for ever.
const KEEP_BUFFER: usize = 16 * 1024;

/// awc's decoder, refusing oversized frames from their header.
pub struct GuardedCodec {
    inner: Codec,
    max_frame: usize,
    fresh_capacity: usize,
}

impl GuardedCodec {
    /// A decoder of server frames of at most `max_frame` payload bytes; an
    /// emptied oversized read buffer is replaced by one of `fresh_capacity`.
    pub fn new(inner: Codec, max_frame: usize, fresh_capacity: usize) -> Self {
        GuardedCodec {
            inner: inner.max_size(max_frame),
            max_frame,
            fresh_capacity,
        }
    }
}

/// The payload length a frame header announces, once enough of the header
/// has arrived (RFC 6455 §5.2).
pub fn announced_length(header: &[u8]) -> Option<u64> {
    let len = u64::from(*header.get(1)? & 0x7f);
    match len {
        126 => header.get(2..4).map(|b| u64::from(u16::from_be_bytes([b[0], b[1]]))),
        127 => header
            .get(2..10)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0xff; 8]))),
        small => Some(small),
    }
}

impl Decoder for GuardedCodec {
    type Item = Frame;
    type Error = WsProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WsProtocolError> {
        if announced_length(src).is_some_and(|len| len > self.max_frame as u64) {
            src.clear();
            return Err(WsProtocolError::Overflow);
        }
        let frame = self.inner.decode(src)?;
        if src.capacity() > KEEP_BUFFER && src.len() <= self.fresh_capacity {
            let mut fresh = BytesMut::with_capacity(self.fresh_capacity);
            fresh.extend_from_slice(src);
            *src = fresh;
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u64) -> Vec<u8> {
        let mut h = vec![0x82];
        match len {
            0..=125 => h.push(len as u8),
            126..=0xffff => {
                h.push(126);
                h.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                h.push(127);
                h.extend_from_slice(&len.to_be_bytes());
            }
        }
        h
    }

    #[test]
    fn reads_the_announced_length_from_a_partial_header() {
        assert_eq!(announced_length(&[0x82]), None);
        assert_eq!(announced_length(&header(5)), Some(5));
        assert_eq!(announced_length(&header(300)), Some(300));
        assert_eq!(announced_length(&header(300)[..3]), None);
        assert_eq!(announced_length(&header(8 << 30)), Some(8 << 30));
        assert_eq!(announced_length(&header(8 << 30)[..9]), None);
    }

    #[test]
    fn a_huge_announced_frame_is_refused_before_its_payload() {
        let mut codec = GuardedCodec::new(Codec::new().client_mode(), 1 << 20, 256);
        let mut src = BytesMut::from(&header(8 << 30)[..]);
        src.extend_from_slice(b"only a trickle");
        assert!(matches!(codec.decode(&mut src), Err(WsProtocolError::Overflow)));
        let mut at_limit = BytesMut::from(&header(1 << 20)[..]);
        assert!(
            matches!(codec.decode(&mut at_limit), Ok(None)),
            "exactly the limit waits for its payload"
        );
        let mut over = BytesMut::from(&header((1 << 20) + 1)[..]);
        assert!(matches!(codec.decode(&mut over), Err(WsProtocolError::Overflow)));
    }

    #[test]
    fn a_grown_buffer_is_released_once_it_holds_little() {
        let mut codec = GuardedCodec::new(Codec::new().client_mode(), 1 << 20, 256);
        let mut src = BytesMut::with_capacity(200_000);
        src.extend_from_slice(&[0x82, 3, 1, 2, 3, 0x82]);
        let frame = codec.decode(&mut src).unwrap();
        assert!(matches!(frame, Some(Frame::Binary(ref b)) if b[..] == [1, 2, 3]));
        assert_eq!(&src[..], [0x82], "the start of the next frame is kept");
        assert!(src.capacity() <= KEEP_BUFFER, "capacity {}", src.capacity());
    }

    #[test]
    fn a_buffer_of_ordinary_size_is_kept() {
        // Replacing it after every frame would cost an allocation per frame.
        let mut codec = GuardedCodec::new(Codec::new().client_mode(), 1 << 20, 256);
        let frame = [0x82, 3, 1, 2, 3];
        // A typical socket read (8 KiB), and KEEP_BUFFER (16 KiB) exactly,
        // left once the frame is taken out.
        for kept in [8 * 1024, 16 * 1024] {
            let mut src = BytesMut::with_capacity(kept + frame.len());
            src.extend_from_slice(&frame);
            assert!(matches!(codec.decode(&mut src), Ok(Some(Frame::Binary(_)))));
            assert!(src.is_empty());
            assert_eq!(src.capacity(), kept, "replaced by a buffer of the fresh capacity");
        }
    }
}

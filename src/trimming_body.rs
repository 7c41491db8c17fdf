//! The body of a large HTTP response (`/metrics`): sent in slices, and
//! followed by a heap trim once actix-web has written and dropped it.
//!
//! A scrape of 1,000 sessions is 2 MB of text, rendered from a copy of
//! every summary. Given whole, actix-web copies it into its connection's
//! write buffer, which keeps that size for as long as the scraper keeps
//! the connection alive; and glibc keeps what the text and the summaries
//! freed: each scrape left more resident, 7 MB after four (16 → 23 MB at
//! 1,000 idle sessions). In slices, the write buffer stays at one slice;
//! the trim, as after a large control reply ([`heap::large_reply`]), gives
//! the rest back.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;

use crate::heap;

/// Bytes handed to actix-web at a time.
pub const SLICE: usize = 32 << 10;

/// A response body that trims the heap when dropped, if it was large.
pub struct TrimmingBody {
    rest: Bytes,
    size: usize,
    trim: fn(),
}

impl TrimmingBody {
    /// `text` as a body, trimming with `heap::trim` afterwards.
    pub fn new(text: String) -> Self {
        Self::with_trim(text, heap::trim)
    }

    fn with_trim(text: String, trim: fn()) -> Self {
        TrimmingBody {
            size: text.len(),
            rest: Bytes::from(text),
            trim,
        }
    }
}

impl MessageBody for TrimmingBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.size as u64)
    }

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Infallible>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let take = self.rest.len().min(SLICE);
        Poll::Ready(Some(Ok(self.rest.split_to(take))))
    }
}

impl Drop for TrimmingBody {
    fn drop(&mut self) {
        // What is left of the text goes first, so that the trim gets it too.
        self.rest = Bytes::new();
        if heap::large_reply(self.size) {
            (self.trim)();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    static TRIMS: AtomicUsize = AtomicUsize::new(0);

    fn count_trim() {
        TRIMS.fetch_add(1, Ordering::SeqCst);
    }

    fn slices(body: &mut TrimmingBody) -> Vec<Bytes> {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        for _ in 0..1000 {
            match Pin::new(&mut *body).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(slice))) => out.push(slice),
                Poll::Ready(None) => return out,
                Poll::Pending => panic!("a body in memory is never pending"),
            }
        }
        panic!("a body of at most 1000 slices ended");
    }

    #[test]
    fn a_large_body_goes_in_slices_then_trims_once_when_dropped() {
        let text: String = (0..100_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let before = TRIMS.load(Ordering::SeqCst);
        let mut body = TrimmingBody::with_trim(text.clone(), count_trim);
        assert_eq!(body.size(), BodySize::Sized(100_000));
        let sent = slices(&mut body);
        assert_eq!(sent.len(), 100_000usize.div_ceil(SLICE));
        assert!(sent.iter().all(|slice| !slice.is_empty() && slice.len() <= SLICE));
        assert_eq!(sent.concat(), text.as_bytes());
        assert_eq!(TRIMS.load(Ordering::SeqCst), before, "not before it is dropped");
        drop(body);
        assert_eq!(TRIMS.load(Ordering::SeqCst), before + 1);
    }

    #[test]
    fn a_small_body_goes_whole_and_does_not_trim() {
        let text = "wsvisor_sessions 1\n".repeat(10);
        let mut body = TrimmingBody::with_trim(text.clone(), || panic!("a small body trimmed"));
        let sent = slices(&mut body);
        assert_eq!(sent, vec![Bytes::from(text)]);
        drop(body);
    }
}

//! The write side of a connection's socket, bounded in bytes.
//!
//! Frames are encoded into one buffer that a writer task drains into the
//! socket. Everything the server has not yet taken (encoded, or being
//! written) counts against the budget, and a frame that would not fit is
//! refused before it is encoded: a server that stops reading can never make
//! the daemon buffer more than `budget` bytes, whether the frames are our
//! Pongs to its Pings or audio from a local program. An idle connection
//! holds no write buffer at all: the drained buffer is handed to the
//! writer whole and freed once written.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use awc::ws::{Codec, Message};
use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::codec::Encoder;

/// Bytes a WebSocket frame header takes at most (client frames are masked).
const MAX_FRAME_HEADER: usize = 14;

/// Why a frame was not queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WriteRefused {
    /// It does not fit in the budget: the server is not reading.
    #[error("the server has not taken {pending} bytes; outbound_buffer is {budget} bytes")]
    Full {
        /// Bytes waiting for the server.
        pending: usize,
        /// The budget.
        budget: usize,
    },
    /// The connection is closing or failed; nothing more is written.
    #[error("the connection is closing")]
    Closed,
}

#[derive(Default)]
struct Pending {
    /// Encoded frames not yet handed to the writer.
    buf: BytesMut,
    /// Bytes handed to the writer and not yet written.
    in_flight: usize,
    /// Shut the socket's write side once everything queued is written.
    closing: bool,
}

/// The encoding end, owned by the Connection.
pub struct Outbox {
    pending: Rc<RefCell<Pending>>,
    wake: Rc<Notify>,
    codec: Codec,
    budget: usize,
}

impl Outbox {
    /// An outbox of `budget` bytes writing into `io`, and the writer task
    /// that must be spawned for anything to be written: it ends with `Ok`
    /// once a `close` was written and the write side shut, or with the
    /// socket's error.
    pub fn new<W: AsyncWrite + Unpin>(
        codec: Codec,
        budget: usize,
        io: W,
    ) -> (Outbox, impl std::future::Future<Output = io::Result<()>>) {
        let pending = Rc::new(RefCell::new(Pending::default()));
        let wake = Rc::new(Notify::new());
        let writer = drain(pending.clone(), wake.clone(), io);
        let outbox = Outbox {
            pending,
            wake,
            codec,
            budget,
        };
        (outbox, writer)
    }

    /// Bytes the server has not taken yet.
    pub fn pending(&self) -> usize {
        let pending = self.pending.borrow();
        pending.buf.len() + pending.in_flight
    }

    /// Queue one frame; refused when it would not fit or when closing.
    pub fn write(&mut self, message: Message) -> Result<(), WriteRefused> {
        let payload = match &message {
            Message::Text(text) => text.len(),
            Message::Binary(data) | Message::Ping(data) | Message::Pong(data) => data.len(),
            Message::Close(reason) => reason
                .as_ref()
                .map_or(0, |r| 2 + r.description.as_ref().map_or(0, String::len)),
            Message::Continuation(_) | Message::Nop => 0,
        };
        let pending = self.pending();
        let mut state = self.pending.borrow_mut();
        if state.closing {
            return Err(WriteRefused::Closed);
        }
        if pending + payload + MAX_FRAME_HEADER > self.budget {
            return Err(WriteRefused::Full {
                pending,
                budget: self.budget,
            });
        }
        // Encoding a message we built cannot fail; a failure would only
        // mean the frame is not sent, which the peer's silence then shows.
        if self.codec.encode(message, &mut state.buf).is_err() {
            return Err(WriteRefused::Closed);
        }
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Write what is queued, then shut the write side; nothing more is taken.
    pub fn close(&mut self) {
        self.pending.borrow_mut().closing = true;
        self.wake.notify_one();
    }
}

async fn drain<W: AsyncWrite + Unpin>(pending: Rc<RefCell<Pending>>, wake: Rc<Notify>, mut io: W) -> io::Result<()> {
    loop {
        let (chunk, closing) = {
            let mut state = pending.borrow_mut();
            let chunk = std::mem::take(&mut state.buf);
            state.in_flight = chunk.len();
            (chunk, state.closing)
        };
        if chunk.is_empty() {
            if closing {
                io.flush().await?;
                return io.shutdown().await;
            }
            wake.notified().await;
            continue;
        }
        io.write_all(&chunk).await?;
        pending.borrow_mut().in_flight = 0;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Bound of every wait on the writer.
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

    #[tokio::test]
    async fn nothing_past_the_budget_is_taken_and_a_reader_frees_it() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let (mut outbox, writer) = Outbox::new(Codec::new().client_mode(), 1_000, ours);
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let writer = tokio::task::spawn_local(writer);
                let frame = || Message::Binary(Bytes::from(vec![7u8; 200]));
                let taken = (0..10).take_while(|_| outbox.write(frame()).is_ok()).count();
                assert_eq!(taken, 4, "4 frames of 208 bytes fit in 1,000, a fifth does not");
                assert_eq!(outbox.pending(), 4 * 208);
                assert!(matches!(
                    outbox.write(frame()),
                    Err(WriteRefused::Full {
                        pending: 832,
                        budget: 1_000
                    })
                ));
                outbox
                    .write(Message::Pong(Bytes::new()))
                    .expect("a small frame still fits");
                // The peer reads everything: the budget is free again.
                let mut sink = vec![0u8; 4096];
                let mut read = 0;
                let drained = async {
                    while outbox.pending() > 0 {
                        read += theirs.read(&mut sink).await.unwrap();
                    }
                };
                tokio::time::timeout(LIMIT, drained)
                    .await
                    .expect("the writer drains what the peer reads");
                assert!(read >= 4 * 200, "read {read} bytes");
                outbox.write(frame()).unwrap();
                outbox.close();
                assert_eq!(outbox.write(frame()), Err(WriteRefused::Closed));
                let mut rest = Vec::new();
                tokio::time::timeout(LIMIT, theirs.read_to_end(&mut rest))
                    .await
                    .expect("the write side is shut after a close")
                    .unwrap();
                assert_eq!(rest.len(), 208, "the last frame, then the end of the stream");
                writer.await.unwrap().unwrap();
            })
            .await;
    }

    /// Whether `message` is taken by an outbox of `budget` bytes holding nothing.
    fn fits(budget: usize, message: Message) -> bool {
        let (ours, _theirs) = tokio::io::duplex(64);
        let (mut outbox, _writer) = Outbox::new(Codec::new().client_mode(), budget, ours);
        match outbox.write(message) {
            Ok(()) => true,
            Err(WriteRefused::Full { pending: 0, budget: b }) if b == budget => false,
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_frame_counts_its_payload_and_the_largest_header() {
        let binary = || Message::Binary(Bytes::from(vec![7u8; 200]));
        assert!(fits(200 + MAX_FRAME_HEADER, binary()), "exactly the budget");
        assert!(!fits(200 + MAX_FRAME_HEADER - 1, binary()));
        // A Close carries its code (2 bytes) and its reason.
        let close = || Message::Close(Some(awc::ws::CloseReason::from((awc::ws::CloseCode::Normal, "bye!"))));
        assert!(fits(2 + 4 + MAX_FRAME_HEADER, close()));
        assert!(!fits(2 + 4 + MAX_FRAME_HEADER - 1, close()));
    }
}

//! The write half of a connection's socket, closed safely.
//!
//! actix-codec's `Framed::close` flushes the socket but not its own frame
//! buffer, so a Close frame queued just before closing would be thrown
//! away and the peer would see the TCP end without it. This adapter
//! flushes the frames first.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::Sink;

/// A sink whose `poll_close` flushes buffered frames before closing.
pub struct FlushThenClose<S>(pub S);

impl<S: Sink<I> + Unpin, I> Sink<I> for FlushThenClose<S> {
    type Error = S::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Pin::new(&mut self.0).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: I) -> Result<(), S::Error> {
        Pin::new(&mut self.0).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        ready!(Pin::new(&mut self.0).poll_flush(cx))?;
        Pin::new(&mut self.0).poll_close(cx)
    }
}

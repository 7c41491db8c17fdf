//! The floods and trickles of a hostile server, written as raw WebSocket
//! frames straight to the TCP socket (bypassing tungstenite, whose buffers
//! would otherwise hold what the attack wants the *client* to hold).
//!
//! A plan is stepped by the connection task with `poll_step`, one socket
//! write at a time, so controls (the next fault) still get through. Bytes of
//! a frame the socket did not take yet stay in `pending`: the task never
//! lets tungstenite write (nor read, which can write a queued Pong) while a
//! frame is half written, except where the plan says a frame never ends.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::time::{sleep, Sleep};

use crate::fault::Fault;

/// Bytes handed to the socket per write when frames are small.
const BATCH_BYTES: usize = 64 * 1024;

/// Payload of every flood Ping: the most a control frame may carry, so each
/// Pong the client owes costs it the most.
const FLOOD_PING_PAYLOAD: usize = 125;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_PING: u8 = 0x9;

/// What a plan does next.
enum Plan {
    PingFlood {
        until: Instant,
        frame: Vec<u8>,
    },
    TextFlood {
        frame: Vec<u8>,
        left: u64,
    },
    /// The header went out first; `left` payload bytes remain.
    HugeFrame {
        left: u64,
        chunk: usize,
        every: Duration,
    },
    /// The opening frame went out first; continuation frames forever.
    Continuation {
        chunk: usize,
        every: Duration,
    },
}

/// How far a step got.
pub(crate) enum Step {
    /// Bytes were written; step again.
    Progress,
    /// The plan is over (count or duration reached).
    Done,
}

/// A running flood or trickle.
pub(crate) struct Hostile {
    plan: Plan,
    pending: Vec<u8>,
    offset: usize,
    pause: Option<Pin<Box<Sleep>>>,
}

impl Hostile {
    /// The plan for a hostile fault, or `None` for the other faults.
    pub(crate) fn for_fault(fault: &Fault) -> Option<Hostile> {
        let (plan, first) = match fault {
            Fault::PingFlood { duration } => {
                let frame = frame(true, OP_PING, &[b'p'; FLOOD_PING_PAYLOAD]);
                let until = Instant::now() + *duration;
                (Plan::PingFlood { until, frame }, Vec::new())
            }
            Fault::TextFlood { text, count } => text_flood(text, *count),
            Fault::HugeFrame {
                announced,
                chunk,
                every,
            } => {
                let plan = Plan::HugeFrame {
                    left: *announced,
                    chunk: (*chunk).max(1),
                    every: *every,
                };
                (plan, header(true, OP_BINARY, *announced))
            }
            Fault::EndlessContinuation { chunk, every } => {
                let chunk = (*chunk).max(1);
                let opening = frame(false, OP_TEXT, &vec![b'a'; chunk]);
                (Plan::Continuation { chunk, every: *every }, opening)
            }
            _ => return None,
        };
        Some(Hostile {
            plan,
            pending: first,
            offset: 0,
            pause: None,
        })
    }

    /// `count` copies of a text frame (the `TextBeforeHello` mode).
    pub(crate) fn text_flood(text: &str, count: u64) -> Hostile {
        let (plan, pending) = text_flood(text, count);
        Hostile {
            plan,
            pending,
            offset: 0,
            pause: None,
        }
    }

    /// Whether the client may be read now. Reading lets tungstenite write
    /// a queued Pong or Close echo, which must not land inside a frame that
    /// is half written; a ping flood never reads, by design; a huge frame
    /// never ends, so reading (to see the client's Close) is allowed and
    /// whatever tungstenite writes becomes payload.
    pub(crate) fn reading_allowed(&self) -> bool {
        match self.plan {
            Plan::PingFlood { .. } => false,
            Plan::HugeFrame { .. } => true,
            Plan::TextFlood { .. } | Plan::Continuation { .. } => !self.mid_frame(),
        }
    }

    /// Bytes of a frame are still unwritten.
    pub(crate) fn mid_frame(&self) -> bool {
        self.offset < self.pending.len()
    }

    /// The unwritten rest of the current frame(s), so that it can be
    /// finished before anything else is written.
    pub(crate) fn take_pending(&mut self) -> Vec<u8> {
        let rest = self.pending.split_off(self.offset);
        self.pending.clear();
        self.offset = 0;
        rest
    }

    /// Writes what the socket takes; never blocks the caller.
    pub(crate) fn poll_step(
        &mut self,
        mut stream: Pin<&mut TcpStream>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Step>> {
        if !self.mid_frame() && !self.refill(cx)? {
            return Poll::Ready(Ok(Step::Done));
        }
        if !self.mid_frame() {
            // Refilling is waiting on the pause between writes.
            return Poll::Pending;
        }
        let written = ready!(stream.as_mut().poll_write(cx, &self.pending[self.offset..]))?;
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.offset += written;
        if self.offset == self.pending.len() {
            self.pending.clear();
            self.offset = 0;
        }
        Poll::Ready(Ok(Step::Progress))
    }

    /// Fills `pending` with the next bytes; `Ok(false)` when the plan is
    /// over. Leaves it empty (and registers the waker) during a pause.
    fn refill(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        if let Some(pause) = self.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Ok(true);
            }
            self.pause = None;
        }
        let every = match &mut self.plan {
            Plan::PingFlood { until, frame } => {
                if Instant::now() >= *until {
                    return Ok(false);
                }
                repeat_into(&mut self.pending, frame, u64::MAX);
                Duration::ZERO
            }
            Plan::TextFlood { frame, left } => {
                if *left == 0 {
                    return Ok(false);
                }
                *left -= repeat_into(&mut self.pending, frame, *left);
                Duration::ZERO
            }
            Plan::HugeFrame { left, chunk, every } => {
                if *left == 0 {
                    return Ok(false);
                }
                let n = (*chunk as u64).min(*left);
                self.pending.resize(n as usize, 0);
                *left -= n;
                *every
            }
            Plan::Continuation { chunk, every } => {
                self.pending = frame(false, OP_CONTINUATION, &vec![b'a'; *chunk]);
                *every
            }
        };
        if !every.is_zero() {
            self.pause = Some(Box::pin(sleep(every)));
        }
        Ok(true)
    }
}

fn text_flood(text: &str, count: u64) -> (Plan, Vec<u8>) {
    let frame = frame(true, OP_TEXT, text.as_bytes());
    (Plan::TextFlood { frame, left: count }, Vec::new())
}

/// Appends copies of `frame` up to a batch (at least one, at most `limit`);
/// returns how many.
fn repeat_into(out: &mut Vec<u8>, frame: &[u8], limit: u64) -> u64 {
    let fit = (BATCH_BYTES / frame.len().max(1)).max(1) as u64;
    let n = fit.min(limit);
    out.reserve(frame.len() * n as usize);
    for _ in 0..n {
        out.extend_from_slice(frame);
    }
    n
}

/// A server frame header (servers never mask, RFC 6455 section 5.1).
pub(crate) fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out
}

/// A whole server frame.
pub(crate) fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(fin, opcode, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_the_three_length_forms() {
        assert_eq!(header(true, OP_TEXT, 5), vec![0x81, 5]);
        assert_eq!(header(true, OP_BINARY, 300), vec![0x82, 126, 1, 44]);
        let huge = header(true, OP_BINARY, 8 << 30);
        assert_eq!(huge[..2], [0x82, 127]);
        assert_eq!(u64::from_be_bytes(huge[2..10].try_into().unwrap()), 8 << 30);
        assert_eq!(header(false, OP_CONTINUATION, 1), vec![0x00, 1]);
        assert_eq!(frame(true, OP_PING, b"ab"), vec![0x89, 2, b'a', b'b']);
    }

    #[test]
    fn batches_hold_whole_frames() {
        let mut out = Vec::new();
        assert_eq!(repeat_into(&mut out, &[1, 2, 3], 5), 5);
        assert_eq!(out.len(), 15);
        let mut big = Vec::new();
        assert_eq!(repeat_into(&mut big, &vec![0; 100_000], 9), 1);
        let mut small = Vec::new();
        assert_eq!(repeat_into(&mut small, &[0; 127], u64::MAX), (BATCH_BYTES / 127) as u64);
    }

    #[test]
    fn only_hostile_faults_have_plans() {
        assert!(Hostile::for_fault(&Fault::Drop).is_none());
        let huge = Hostile::for_fault(&Fault::HugeFrame {
            announced: 10,
            chunk: 1,
            every: Duration::ZERO,
        })
        .unwrap();
        assert!(huge.mid_frame(), "the header is written first");
        assert!(huge.reading_allowed());
        let flood = Hostile::for_fault(&Fault::PingFlood {
            duration: Duration::from_secs(1),
        })
        .unwrap();
        assert!(!flood.reading_allowed());
    }
}

//! The text messages a session holds while it is not ready: bounded in
//! count, bytes and age, kept in the order they were accepted even when a
//! connection hands some back unsent. Pure: time comes in as a parameter.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::wire::OutboundText;

/// One held message.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// Order of acceptance across the session's life.
    pub seq: u64,
    /// When it was accepted; it expires `ttl` later.
    pub accepted_at: Instant,
    /// The message.
    pub text: OutboundText,
}

/// Which bound of the queue a message did not fit in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueBound {
    /// `queue_limit` messages.
    Messages(usize),
    /// `queue_bytes` bytes.
    Bytes(usize),
}

/// Bounds of one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Messages at most.
    pub messages: usize,
    /// Bytes of message text at most.
    pub bytes: usize,
}

/// Held messages of one session, oldest first.
#[derive(Debug, Default)]
pub struct OutboundQueue {
    held: VecDeque<Held>,
    bytes: usize,
    next_seq: u64,
}

impl OutboundQueue {
    /// Messages held now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Bytes of message text held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// A sequence number for a newly accepted message.
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Hold a message; its 1-based position, or the bound it does not fit in.
    pub fn push(&mut self, held: Held, bounds: Bounds) -> Result<usize, QueueBound> {
        if self.held.len() >= bounds.messages {
            return Err(QueueBound::Messages(bounds.messages));
        }
        if self.bytes + held.text.len() > bounds.bytes {
            return Err(QueueBound::Bytes(bounds.bytes));
        }
        Ok(self.insert_in_order(held) + 1)
    }

    /// Take back messages a connection could not write, in acceptance
    /// order among the rest. Returns how many of the oldest had to be
    /// dropped to stay within `bounds`.
    pub fn restore(&mut self, returned: Vec<Held>, bounds: Bounds) -> u64 {
        for held in returned {
            self.insert_in_order(held);
        }
        let mut dropped = 0;
        while self.held.len() > bounds.messages || self.bytes > bounds.bytes {
            // An empty queue ends the loop whatever its byte count says:
            // accounting gone wrong must not spin the Supervisor.
            let Some(oldest) = self.held.pop_front() else { break };
            self.bytes -= oldest.text.len();
            dropped += 1;
        }
        dropped
    }

    fn insert_in_order(&mut self, held: Held) -> usize {
        let at = self.held.partition_point(|h| h.seq < held.seq);
        self.bytes += held.text.len();
        self.held.insert(at, held);
        at
    }

    /// Drop what is older than `ttl` at `now`; how many went.
    pub fn expire(&mut self, now: Instant, ttl: Duration) -> u64 {
        let before = self.held.len();
        self.held.retain(|h| now.saturating_duration_since(h.accepted_at) < ttl);
        self.bytes = self.held.iter().map(|h| h.text.len()).sum();
        (before - self.held.len()) as u64
    }

    /// When the oldest message expires.
    pub fn next_expiry(&self, ttl: Duration) -> Option<Instant> {
        self.held.iter().map(|h| h.accepted_at).min().map(|at| at + ttl)
    }

    /// Everything, oldest first, leaving the queue empty.
    pub fn drain(&mut self) -> Vec<Held> {
        self.bytes = 0;
        self.held.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ROOMY: Bounds = Bounds {
        messages: 10,
        bytes: 1 << 20,
    };

    fn held(queue: &mut OutboundQueue, at: Instant, n: i64) -> Held {
        let Ok(serde_json::Value::Object(message)) = serde_json::from_value(json!({ "n": n })) else {
            unreachable!()
        };
        Held {
            seq: queue.next_seq(),
            accepted_at: at,
            text: OutboundText::from_object(&message),
        }
    }

    fn numbers(queue: &mut OutboundQueue) -> Vec<i64> {
        let texts: Vec<_> = queue.drain().into_iter().map(|h| h.text).collect();
        texts
            .iter()
            .map(|t| {
                serde_json::from_str::<serde_json::Value>(t.json()).unwrap()["n"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn keeps_acceptance_order_when_messages_come_back() {
        let now = Instant::now();
        let mut q = OutboundQueue::default();
        assert!(q.is_empty() && q.len() == 0);
        let (a, b, c, d) = (
            held(&mut q, now, 1),
            held(&mut q, now, 2),
            held(&mut q, now, 3),
            held(&mut q, now, 4),
        );
        assert_eq!(q.push(c, ROOMY), Ok(1));
        assert_eq!(q.push(d, ROOMY), Ok(2));
        assert_eq!((q.len(), q.is_empty()), (2, false));
        assert_eq!(q.restore(vec![b, a], ROOMY), 0);
        assert_eq!(q.len(), 4);
        assert_eq!(q.bytes(), 4 * r#"{"n":1}"#.len());
        assert_eq!(numbers(&mut q), vec![1, 2, 3, 4]);
        assert_eq!(q.bytes(), 0);
        assert!(q.is_empty() && q.len() == 0);
    }

    #[test]
    fn bounded_by_count() {
        let now = Instant::now();
        let mut q = OutboundQueue::default();
        let (a, b, c) = (held(&mut q, now, 1), held(&mut q, now, 2), held(&mut q, now, 3));
        let two = Bounds {
            messages: 2,
            bytes: 1 << 20,
        };
        assert_eq!(q.push(a, two), Ok(1));
        assert_eq!(q.push(b, two), Ok(2));
        assert_eq!(q.push(c.clone(), two), Err(QueueBound::Messages(2)));
        assert_eq!(q.restore(vec![c], two), 1, "the oldest gives way");
        assert_eq!(numbers(&mut q), vec![2, 3]);
    }

    #[test]
    fn bounded_by_bytes() {
        let now = Instant::now();
        let mut q = OutboundQueue::default();
        let one = r#"{"n":1}"#.len();
        let tight = Bounds {
            messages: 100,
            bytes: 2 * one,
        };
        let (a, b, c) = (held(&mut q, now, 1), held(&mut q, now, 2), held(&mut q, now, 3));
        assert_eq!(q.push(a, tight), Ok(1));
        assert_eq!(q.push(b, tight), Ok(2));
        assert_eq!(q.push(c.clone(), tight), Err(QueueBound::Bytes(2 * one)));
        assert_eq!(q.restore(vec![c], tight), 1);
        assert_eq!(q.bytes(), 2 * one);
        assert_eq!(numbers(&mut q), vec![2, 3]);
    }

    #[test]
    fn expires_by_age() {
        let start = Instant::now();
        let ttl = Duration::from_secs(30);
        let mut q = OutboundQueue::default();
        let old = held(&mut q, start, 1);
        let young = held(&mut q, start + Duration::from_secs(20), 2);
        q.push(old, ROOMY).unwrap();
        q.push(young, ROOMY).unwrap();
        assert_eq!(q.next_expiry(ttl), Some(start + ttl));
        assert_eq!(
            q.expire(start + Duration::from_secs(30) - Duration::from_millis(1), ttl),
            0
        );
        assert_eq!(q.expire(start + Duration::from_secs(30), ttl), 1);
        assert_eq!(q.bytes(), r#"{"n":2}"#.len());
        assert_eq!(numbers(&mut q), vec![2]);
    }
}

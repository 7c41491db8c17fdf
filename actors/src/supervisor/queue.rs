//! The text messages a session holds while it is not ready: bounded in
//! count and age, kept in the order they were accepted even when a
//! connection hands some back unsent. Pure: time comes in as a parameter.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

/// One held message.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// Order of acceptance across the session's life.
    pub seq: u64,
    /// When it was accepted; it expires `ttl` later.
    pub accepted_at: Instant,
    /// The message.
    pub message: Map<String, Value>,
}

/// Held messages of one session, oldest first.
#[derive(Debug, Default)]
pub struct OutboundQueue {
    held: VecDeque<Held>,
    next_seq: u64,
}

impl OutboundQueue {
    /// Messages held now.
    pub fn len(&self) -> usize {
        self.held.len()
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

    /// Hold a message; its 1-based position, or the message back when `limit` is reached.
    pub fn push(&mut self, held: Held, limit: usize) -> Result<usize, Held> {
        if self.held.len() >= limit {
            return Err(held);
        }
        self.insert_in_order(held);
        Ok(self.held.len())
    }

    /// Take back messages a connection could not write, in acceptance
    /// order among the rest. Returns how many of the oldest had to be
    /// dropped to stay within `limit`.
    pub fn restore(&mut self, returned: Vec<Held>, limit: usize) -> u64 {
        for held in returned {
            self.insert_in_order(held);
        }
        let mut dropped = 0;
        while self.held.len() > limit {
            self.held.pop_front();
            dropped += 1;
        }
        dropped
    }

    fn insert_in_order(&mut self, held: Held) {
        let at = self.held.partition_point(|h| h.seq < held.seq);
        self.held.insert(at, held);
    }

    /// Drop what is older than `ttl` at `now`; how many went.
    pub fn expire(&mut self, now: Instant, ttl: Duration) -> u64 {
        let before = self.held.len();
        self.held.retain(|h| now.saturating_duration_since(h.accepted_at) < ttl);
        (before - self.held.len()) as u64
    }

    /// When the oldest message expires.
    pub fn next_expiry(&self, ttl: Duration) -> Option<Instant> {
        self.held.iter().map(|h| h.accepted_at).min().map(|at| at + ttl)
    }

    /// Everything, oldest first, leaving the queue empty.
    pub fn drain(&mut self) -> Vec<Held> {
        self.held.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(queue: &mut OutboundQueue, at: Instant, n: i64) -> Held {
        let mut message = Map::new();
        message.insert("n".into(), n.into());
        Held {
            seq: queue.next_seq(),
            accepted_at: at,
            message,
        }
    }

    fn numbers(queue: &mut OutboundQueue) -> Vec<i64> {
        queue.drain().iter().map(|h| h.message["n"].as_i64().unwrap()).collect()
    }

    #[test]
    fn keeps_acceptance_order_when_messages_come_back() {
        let now = Instant::now();
        let mut q = OutboundQueue::default();
        let (a, b, c) = (held(&mut q, now, 1), held(&mut q, now, 2), held(&mut q, now, 3));
        assert_eq!(q.push(c, 10), Ok(1));
        assert_eq!(q.restore(vec![a, b], 10), 0);
        assert_eq!(numbers(&mut q), vec![1, 2, 3]);
    }

    #[test]
    fn bounded_by_limit() {
        let now = Instant::now();
        let mut q = OutboundQueue::default();
        let (a, b, c) = (held(&mut q, now, 1), held(&mut q, now, 2), held(&mut q, now, 3));
        assert_eq!(q.push(a, 2), Ok(1));
        assert_eq!(q.push(b, 2), Ok(2));
        assert!(q.push(c.clone(), 2).is_err());
        assert_eq!(q.restore(vec![c], 2), 1, "the oldest gives way");
        assert_eq!(numbers(&mut q), vec![2, 3]);
    }

    #[test]
    fn expires_by_age() {
        let start = Instant::now();
        let ttl = Duration::from_secs(30);
        let mut q = OutboundQueue::default();
        let old = held(&mut q, start, 1);
        let young = held(&mut q, start + Duration::from_secs(20), 2);
        q.push(old, 10).unwrap();
        q.push(young, 10).unwrap();
        assert_eq!(q.next_expiry(ttl), Some(start + ttl));
        assert_eq!(q.expire(start + Duration::from_secs(31), ttl), 1);
        assert_eq!(numbers(&mut q), vec![2]);
    }
}

//! Per-session traffic counters: written by the session's connections on
//! every frame, read by the Monitor for summaries and metrics. Atomics, not
//! messages, because counting a frame must cost nothing on the hot path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Frames, bytes and pings of one session since the daemon started.
#[derive(Debug, Default)]
pub struct TrafficCounters {
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    pings_sent: AtomicU64,
    pongs: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficSnapshot {
    /// Frames received.
    pub frames_in: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
    /// WebSocket Pings sent by the heartbeat.
    pub pings_sent: u64,
    /// Pongs that answered them.
    pub pongs: u64,
}

impl TrafficCounters {
    /// One frame of `len` payload bytes arrived.
    pub fn frame_in(&self, len: usize) {
        self.frames_in.fetch_add(1, Relaxed);
        self.bytes_in.fetch_add(len as u64, Relaxed);
    }

    /// One frame of `len` payload bytes was written.
    pub fn frame_out(&self, len: usize) {
        self.frames_out.fetch_add(1, Relaxed);
        self.bytes_out.fetch_add(len as u64, Relaxed);
    }

    /// The heartbeat sent a Ping.
    pub fn ping_sent(&self) {
        self.pings_sent.fetch_add(1, Relaxed);
    }

    /// A Pong answered our Ping.
    pub fn pong(&self) {
        self.pongs.fetch_add(1, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            frames_in: self.frames_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            frames_out: self.frames_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            pings_sent: self.pings_sent.load(Relaxed),
            pongs: self.pongs.load(Relaxed),
        }
    }
}

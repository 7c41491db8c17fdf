//! Counts of live actors by kind. Tests use them to prove that no
//! connection or heartbeat outlives its session; the Monitor reports them.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Live `Connection` actors.
pub static CONNECTIONS: AtomicUsize = AtomicUsize::new(0);
/// Live `Heartbeat` actors.
pub static HEARTBEATS: AtomicUsize = AtomicUsize::new(0);

/// Holds one count for as long as it lives.
#[derive(Debug)]
pub struct Census(&'static AtomicUsize);

impl Census {
    /// Count one more live actor of this kind.
    pub fn enter(counter: &'static AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Census(counter)
    }
}

impl Drop for Census {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Live connections and heartbeats right now.
pub fn live() -> (usize, usize) {
    (CONNECTIONS.load(Ordering::Relaxed), HEARTBEATS.load(Ordering::Relaxed))
}

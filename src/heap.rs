//! Giving the memory of a burst of connection attempts back to the system.
//!
//! Each upgrade holds awc's handshake buffers (16 KiB) until the socket is
//! re-framed, and at start-up or after a mass loss up to 64 are in flight
//! at once (`UPGRADES_IN_FLIGHT` in wsvisor-actors). glibc keeps what they
//! freed, interleaved with the sessions' long-lived allocations, for ever:
//! about 0.8 MB of 20 at 1,000 idle sessions. Once a burst is over (no
//! session connecting or handshaking, after at least [`BURST`] attempts
//! since the last trim), `malloc_trim(0)` hands the free pages back.
//!
//! A large control reply (`sessions` of a thousand sessions is 0.25 MB of
//! JSON, built from a copy of every session's summary) leaves the same kind
//! of free heap behind, 2.3 MB at 1,000 sessions: after writing one,
//! the control server trims too ([`large_reply`]), and so does a `/metrics`
//! response once sent (`trimming_body`).
//!
//! [`BurstTrim`] only decides when; [`trim`] does it, on glibc only (no
//! other allocator has the call; elsewhere it does nothing). Nothing here
//! frees or moves anything the daemon uses.

/// Attempts since the last trim that make a burst worth trimming after:
/// as many as can be in flight at once. A single session flapping can
/// then cause at most one trim per 64 of its attempts.
pub const BURST: u64 = 64;

/// When to trim: counts attempts, and says so once they are all over.
#[derive(Debug, Default)]
pub struct BurstTrim {
    attempts: u64,
}

impl BurstTrim {
    /// A session started a connection attempt.
    pub fn attempt(&mut self) {
        self.attempts += 1;
    }

    /// Whether the sessions' state counts are worth reading: a burst
    /// happened that a trim may follow.
    pub fn pending(&self) -> bool {
        self.attempts >= BURST
    }

    /// With `in_flight` sessions still connecting or handshaking: true
    /// (once) when a burst just ended and the heap should be trimmed.
    pub fn settled(&mut self, in_flight: usize) -> bool {
        if in_flight == 0 && self.pending() {
            self.attempts = 0;
            return true;
        }
        false
    }
}

/// A control reply of `bytes` bytes is worth a trim once written: the
/// summaries of about 250 sessions and more. Smaller ones leave too little behind
/// to pay for the walk over the heap that a trim is.
pub fn large_reply(bytes: usize) -> bool {
    bytes >= LARGE_REPLY
}

/// See [`large_reply`].
pub const LARGE_REPLY: usize = 64 << 10;

/// Returns the allocator's free pages to the system (glibc's
/// `malloc_trim(0)`; a no-op elsewhere).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory glibc's allocator holds
    // free; it takes the allocator's own locks and touches nothing of ours.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_after_a_burst_is_over() {
        let mut trim = BurstTrim::default();
        for _ in 0..BURST {
            trim.attempt();
        }
        assert!(trim.pending());
        assert!(!trim.settled(3), "not while attempts are in flight");
        assert!(trim.settled(0));
        assert!(!trim.pending());
        assert!(!trim.settled(0), "once per burst");
    }

    #[test]
    fn a_few_attempts_are_no_burst() {
        let mut trim = BurstTrim::default();
        for _ in 0..BURST - 1 {
            trim.attempt();
        }
        assert!(!trim.pending());
        assert!(!trim.settled(0));
        trim.attempt();
        assert!(trim.settled(0));
    }

    #[test]
    fn only_large_replies_are_worth_a_trim() {
        assert!(!large_reply(0));
        assert!(!large_reply(LARGE_REPLY - 1));
        assert!(large_reply(LARGE_REPLY));
        assert!(large_reply(512 << 10));
    }

    #[test]
    fn trimming_keeps_live_memory_intact() {
        let kept: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 16 << 10]).collect();
        let freed: Vec<Vec<u8>> = (0..64).map(|_| vec![0; 16 << 10]).collect();
        drop(freed);
        trim();
        for (i, block) in kept.iter().enumerate() {
            assert!(block.iter().all(|&b| b == i as u8));
        }
    }
}

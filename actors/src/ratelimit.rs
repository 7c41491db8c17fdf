//! Rate limiting of the log lines a peer can trigger once per frame
//! (unknown message types, malformed JSON, text before the hello, …): a
//! hostile server must not flood the journal, whose own rate limiting would
//! then drop the lines that matter. The first line of a kind is always
//! written; after `burst` lines in one window the rest are counted and
//! summed up in one `suppressed N similar lines` line when the next one of
//! that kind is allowed. Pure: time comes in as a parameter.

use std::time::Duration;

use tokio::time::Instant;

/// What to do with one more line of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Write,
    /// Write it, after a line saying this many similar ones were suppressed.
    WriteAfterSuppressed(u64),
    /// Count it, write nothing.
    Suppress,
}

/// The budget of one kind of line.
#[derive(Clone, Debug)]
pub struct LineLimiter {
    window: Duration,
    burst: u32,
    window_start: Option<Instant>,
    written: u32,
    suppressed: u64,
}

impl LineLimiter {
    /// At most `burst` lines per `window`.
    pub fn new(window: Duration, burst: u32) -> Self {
        LineLimiter {
            window,
            burst: burst.max(1),
            window_start: None,
            written: 0,
            suppressed: 0,
        }
    }

    /// Decide about one more line at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let in_window = self
            .window_start
            .is_some_and(|start| now.saturating_duration_since(start) < self.window);
        if !in_window {
            self.window_start = Some(now);
            self.written = 0;
        }
        if self.written >= self.burst {
            self.suppressed += 1;
            return Verdict::Suppress;
        }
        self.written += 1;
        match std::mem::take(&mut self.suppressed) {
            0 => Verdict::Write,
            n => Verdict::WriteAfterSuppressed(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_window_then_one_summary() {
        let start = Instant::now();
        let mut limiter = LineLimiter::new(Duration::from_secs(10), 3);
        let verdicts: Vec<_> = (0..6).map(|_| limiter.check(start)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Write,
                Verdict::Write,
                Verdict::Write,
                Verdict::Suppress,
                Verdict::Suppress,
                Verdict::Suppress
            ]
        );
        // Still inside the window: still suppressed.
        assert_eq!(limiter.check(start + Duration::from_millis(9_999)), Verdict::Suppress);
        let next = start + Duration::from_secs(10);
        assert_eq!(limiter.check(next), Verdict::WriteAfterSuppressed(4));
        assert_eq!(limiter.check(next), Verdict::Write);
    }

    #[test]
    fn the_first_line_is_always_written() {
        let mut limiter = LineLimiter::new(Duration::from_secs(1), 0);
        assert_eq!(limiter.check(Instant::now()), Verdict::Write);
    }
}

//! The one place that knows the `backoff` crate: a jittered exponential
//! schedule. `backoff` is unmaintained upstream; swapping it touches only
//! this file.

use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;

use crate::settings::ReconnectSettings;

/// Successive jittered delays `initial · multiplier^k`, capped at `max`
/// before jitter, so jitter stays in effect at the cap.
#[derive(Debug)]
pub struct BackoffSchedule {
    inner: ExponentialBackoff,
}

impl BackoffSchedule {
    /// A schedule at its first step.
    pub fn new(settings: &ReconnectSettings) -> Self {
        let inner = ExponentialBackoff {
            current_interval: settings.initial_delay,
            initial_interval: settings.initial_delay,
            randomization_factor: settings.jitter,
            multiplier: settings.multiplier,
            max_interval: settings.max_delay,
            // Giving up is counted in attempts by the policy, never in elapsed time.
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        BackoffSchedule { inner }
    }

    /// The same delay every time, jittered by `jitter`: the probes of a
    /// parked session.
    pub fn steady(every: Duration, jitter: f64) -> Self {
        let inner = ExponentialBackoff {
            current_interval: every,
            initial_interval: every,
            randomization_factor: jitter,
            multiplier: 1.0,
            max_interval: every,
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        BackoffSchedule { inner }
    }

    /// The next delay; the schedule then moves one step up.
    pub fn next_delay(&mut self) -> Duration {
        // With max_elapsed_time None the crate always yields a delay.
        self.inner.next_backoff().unwrap_or(self.inner.max_interval)
    }

    /// Back to the first step.
    pub fn restart(&mut self) {
        self.inner.reset();
    }
}

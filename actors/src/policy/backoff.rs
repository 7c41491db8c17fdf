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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_schedule_stays_at_its_delay_after_a_restart() {
        let every = Duration::from_secs(60);
        let mut probes = BackoffSchedule::steady(every, 0.0);
        assert_eq!(probes.next_delay(), every);
        assert_eq!(probes.next_delay(), every);
        probes.restart();
        assert_eq!(probes.next_delay(), every, "back to the first step: the same delay");
        // The cap at `every` hides any multiplier from the delays; a steady
        // schedule still means one that does not grow (cargo-mutants cannot
        // exclude field deletions, so the setting itself is checked).
        assert_eq!(probes.inner.multiplier, 1.0);
    }

    #[test]
    fn jitter_never_expires() {
        // The crate's default gives up jittering (and yields its bare
        // maximum) once 15 minutes have passed since the schedule began.
        let every = Duration::from_secs(60);
        let settings = ReconnectSettings {
            initial_delay: every,
            max_delay: every,
            multiplier: 2.0,
            jitter: 0.5,
            max_attempts: 10,
            stable_after: Duration::from_secs(10),
            revive_after: None,
        };
        for mut schedule in [BackoffSchedule::new(&settings), BackoffSchedule::steady(every, 0.5)] {
            schedule.inner.start_time -= Duration::from_secs(3600);
            let delays: Vec<_> = (0..20).map(|_| schedule.next_delay()).collect();
            assert!(
                delays.iter().any(|d| *d != every),
                "an hour in, every delay is the bare {every:?}"
            );
        }
    }
}

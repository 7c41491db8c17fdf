//! ReconnectPolicy: what to do after a connection ended. A pure decision
//! per session (`SessionPolicy`, testable with no socket and no sleep)
//! wrapped in an actor that holds one per session.
//!
//! The rules:
//! - `auth_failed` parks at once: retrying a refused token only storms the
//!   server; with an OTA endpoint, one refresh and one immediate retry come first;
//! - `activation_required` waits on a person: it backs off without counting
//!   towards `max_attempts`, asking the OTA endpoint again each time;
//! - `credentials_unavailable` (an unreadable or empty token file) backs
//!   off without counting either: no server refused anything;
//! - a clean close (1000/1001) with `keep = "on_demand"` stays down;
//! - a clean close of a session that had been ready is a success that
//!   ended, not a failure: a fresh burst at the first backoff step (a server
//!   idling sessions out every few seconds must not park them);
//! - everything else (1011, 1012/1013, refusals, resets, timeouts) backs off
//!   exponentially with jitter;
//! - the first retry after losing a session that had been stable (ready for
//!   `stable_after`) is spread evenly over `[0, (1+jitter)·initial_delay]`
//!   across sessions (`spread`: each such loss takes the next place of one
//!   golden-ratio sequence, in the order the losses come), so a mass loss
//!   (a server restart, a network blip) comes back at an even rate, not in
//!   a burst;
//! - a session ready for `stable_after` starts a fresh burst;
//! - `max_attempts` consecutive failures park the session as `failed`;
//! - no retry of a burst waits longer than a probe could
//!   (`revive_after·(1 + jitter/2)`), so recovery after the server's return
//!   is bounded by that, in the burst as after it;
//! - a parked session keeps probing, one attempt every `revive_after`
//!   (jittered by half of `jitter`), so recovery after an outage of any
//!   length takes at most about one `revive_after`, while a dead server
//!   sees one attempt per session per `revive_after`; a probe that reaches
//!   `ready` ends the park.

mod backoff;

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;

pub use self::backoff::BackoffSchedule;
use crate::loss::{Cause, LossReport};
use crate::messages::{ConfigurePolicy, Decide, Decision, ForgetPolicy, Probe, ResetAttempts};
use crate::settings::{Keep, ReconnectSettings};

/// The reconnect state of one session: consecutive failures, retries of
/// the burst, whether it is parked, and the position in the backoff schedule.
#[derive(Debug)]
pub struct SessionPolicy {
    settings: ReconnectSettings,
    keep: Keep,
    refresh_on_auth_failure: bool,
    refreshed: bool,
    failures: u32,
    retries: u32,
    parked: bool,
    schedule: BackoffSchedule,
    probes: Option<BackoffSchedule>,
    /// This session's place in the spread of first retries, in `[0, 1)`.
    spread: f64,
    /// The last decision took its delay from `spread`.
    spread_taken: bool,
}

impl SessionPolicy {
    /// A policy at the start of a burst.
    pub fn new(settings: ReconnectSettings, keep: Keep) -> Self {
        SessionPolicy {
            schedule: BackoffSchedule::new(&settings),
            probes: settings
                .revive_after
                .map(|every| BackoffSchedule::steady(every, settings.jitter / 2.0)),
            settings,
            keep,
            refresh_on_auth_failure: false,
            refreshed: false,
            failures: 0,
            retries: 0,
            parked: false,
            spread: 0.5,
            spread_taken: false,
        }
    }

    /// Place this session at `position` (in `[0, 1)`) of the spread of
    /// first retries after a stable session is lost.
    pub fn spread_at(mut self, position: f64) -> Self {
        self.place_in_spread(position);
        self
    }

    /// The same, for the next loss of a live policy.
    pub fn place_in_spread(&mut self, position: f64) {
        self.spread = position.clamp(0.0, 1.0);
    }

    /// Whether the last decision took its place in the spread (a stable
    /// session's first retry), so the next loss needs the next place.
    pub fn took_spread_place(&self) -> bool {
        self.spread_taken
    }

    /// Let an auth failure first refresh the token through OTA (once per burst).
    pub fn refreshing_on_auth_failure(mut self, enabled: bool) -> Self {
        self.refresh_on_auth_failure = enabled;
        self
    }

    /// Consecutive failed attempts so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Start a fresh burst (a `connect` command, a success).
    pub fn reset(&mut self) {
        self.failures = 0;
        self.retries = 0;
        self.parked = false;
        self.refreshed = false;
        self.schedule.restart();
    }

    /// A retry of the burst never waits longer than a probe could: with
    /// the defaults, `max_delay` jittered reaches 90 s, a probe 75 s, and
    /// recovery is bounded by the longest wait whatever the phase. A delay
    /// past that is drawn like a probe instead, so it stays jittered (a
    /// plain cap would line every session up on it).
    fn capped(&mut self, delay: Duration) -> Duration {
        let Some(every) = self.settings.revive_after else {
            return delay;
        };
        if delay <= every.mul_f64(1.0 + self.settings.jitter / 2.0) {
            return delay;
        }
        self.next_probe().unwrap_or(delay)
    }

    fn next_probe(&mut self) -> Option<Duration> {
        self.probes.as_mut().map(BackoffSchedule::next_delay)
    }

    fn retry(&mut self, after: Duration, refresh: bool) -> Decision {
        self.retries += 1;
        Decision::Retry {
            attempt: self.retries,
            after,
            refresh,
        }
    }

    /// Decide what follows a connection that ended with `report` after
    /// being ready for `ready_for` (None: it never reached ready).
    pub fn decide(&mut self, report: &LossReport, ready_for: Option<Duration>) -> Decision {
        self.spread_taken = false;
        let was_stable = ready_for.is_some_and(|up| up >= self.settings.stable_after);
        let ended_well = was_stable || (ready_for.is_some() && report.is_clean_close());
        // A probe that got through: the server is back, the park is over.
        if ended_well || (self.parked && ready_for.is_some()) {
            self.reset();
        }
        if report.cause == Cause::LocalStop {
            return Decision::StayDown;
        }
        if report.is_clean_close() && self.keep == Keep::OnDemand {
            return Decision::StayDown;
        }
        if report.cause == Cause::ActivationRequired {
            return Decision::AwaitActivation {
                after: self.schedule.next_delay(),
            };
        }
        if report.cause == Cause::AuthFailed && self.refresh_on_auth_failure && !self.refreshed {
            self.refreshed = true;
            return self.retry(Duration::ZERO, true);
        }
        let counts = report.cause != Cause::CredentialsUnavailable;
        if counts && !ended_well {
            self.failures += 1;
        }
        if self.parked {
            return Decision::KeepProbing {
                probe_in: self.next_probe(),
            };
        }
        if counts && (report.cause == Cause::AuthFailed || self.failures >= self.settings.max_attempts) {
            self.parked = true;
            return Decision::GiveUp {
                attempts: self.failures.max(1),
                probe_in: self.next_probe(),
            };
        }
        let next = self.schedule.next_delay();
        let after = self.capped(next);
        if was_stable {
            // Its own place in the spread, not a random draw: 1,000 random
            // draws over 750 ms put 15-17 % of the sessions in the busiest
            // 100 ms; evenly placed, 13-14 %.
            let widest = self.settings.initial_delay.mul_f64(1.0 + self.settings.jitter);
            self.spread_taken = true;
            return self.retry(widest.mul_f64(self.spread), false);
        }
        self.retry(after, false)
    }
}

/// The golden ratio's fractional part: consecutive multiples of it, modulo
/// 1, fill `[0, 1)` as evenly as any sequence can (a Weyl sequence), so
/// the sessions of any burst, however many, are spread evenly.
const GOLDEN: f64 = 0.618_033_988_749_894_9;

/// Position `index` of the spread, from a start of `offset`.
pub fn spread_position(offset: f64, index: u64) -> f64 {
    (offset + index as f64 * GOLDEN).fract()
}

/// The actor holding every session's policy, and the tree's sequence of
/// places in the spread.
pub struct ReconnectPolicy {
    /// Boxed: a hash table keeps up to twice as many buckets as entries
    /// (1,000 sessions: 2,048), and a 300-byte policy in each would make
    /// the empty half cost as much as the policies themselves.
    sessions: HashMap<String, Box<SessionPolicy>>,
    /// Where this daemon's spread starts: random, so that daemons (and
    /// restarts) do not line their sessions up alike.
    spread_offset: f64,
    next_spread_index: u64,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // std seeds every RandomState afresh from the OS: a random number
        // without a dependency.
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
        ReconnectPolicy {
            sessions: HashMap::new(),
            spread_offset: (seed >> 11) as f64 / (1u64 << 53) as f64,
            next_spread_index: 0,
        }
    }
}

impl Actor for ReconnectPolicy {
    type Context = Context<Self>;
}

impl Handler<ConfigurePolicy> for ReconnectPolicy {
    type Result = ();

    fn handle(&mut self, msg: ConfigurePolicy, _: &mut Context<Self>) {
        let unchanged = self.sessions.get(&msg.session).is_some_and(|p| {
            p.settings == msg.reconnect
                && p.keep == msg.keep
                && p.refresh_on_auth_failure == msg.refresh_on_auth_failure
        });
        if !unchanged {
            let policy =
                SessionPolicy::new(msg.reconnect, msg.keep).refreshing_on_auth_failure(msg.refresh_on_auth_failure);
            self.sessions.insert(msg.session, Box::new(policy));
        }
    }
}

impl Handler<ForgetPolicy> for ReconnectPolicy {
    type Result = ();

    fn handle(&mut self, msg: ForgetPolicy, _: &mut Context<Self>) {
        self.sessions.remove(&msg.0);
    }
}

impl Handler<ResetAttempts> for ReconnectPolicy {
    type Result = ();

    fn handle(&mut self, msg: ResetAttempts, _: &mut Context<Self>) {
        if let Some(policy) = self.sessions.get_mut(&msg.0) {
            policy.reset();
        }
    }
}

impl Handler<Decide> for ReconnectPolicy {
    type Result = Decision;

    fn handle(&mut self, msg: Decide, _: &mut Context<Self>) -> Decision {
        match self.sessions.get_mut(&msg.session) {
            Some(policy) => {
                // Each stable loss takes the next place of the sequence, in
                // the order the losses come: any run of consecutive places
                // is even, so the sessions lost together come back at an
                // even rate whatever order, and in however many bursts,
                // the server cut them. Places fixed per session were even
                // only over all of them: a server cutting them in bursts
                // put up to 20 % of 1,000 into one 100 ms.
                policy.place_in_spread(spread_position(self.spread_offset, self.next_spread_index));
                let decision = policy.decide(&msg.report, msg.ready_for);
                if policy.took_spread_place() {
                    self.next_spread_index += 1;
                }
                decision
            }
            // A session removed while its connection was ending.
            None => Decision::StayDown,
        }
    }
}

impl Handler<Probe> for ReconnectPolicy {
    type Result = ();

    fn handle(&mut self, _: Probe, _: &mut Context<Self>) {}
}

#[cfg(test)]
mod tests;

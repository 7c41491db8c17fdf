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
//! - a session ready for `stable_after` starts a fresh burst;
//! - `max_attempts` consecutive failures park the session as `failed`;
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
        }
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
        let ended_well = ready_for.is_some_and(|up| up >= self.settings.stable_after)
            || (ready_for.is_some() && report.is_clean_close());
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
        let after = self.schedule.next_delay();
        self.retry(after, false)
    }
}

/// The actor holding every session's policy.
#[derive(Default)]
pub struct ReconnectPolicy {
    sessions: HashMap<String, SessionPolicy>,
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
            self.sessions.insert(msg.session, policy);
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
            Some(policy) => policy.decide(&msg.report, msg.ready_for),
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

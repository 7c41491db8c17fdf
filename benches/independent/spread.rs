//! Reconnect spread after a mass fault: every session of the real daemon
//! hit at once (RST, or Close 1000 with an empty reason, as the real
//! server's idle close), timed twice on one clock (CLOCK_MONOTONIC): as the
//! daemon starts each new attempt (its `connecting` event: the spread the
//! reconnect policy makes) and as the server answers each new hello (what
//! the server lives through, its own queueing included). Rounds are spaced past `stable_after` (1 s here,
//! only so that rounds need not wait 10 s), so each fault is the first
//! failure of a burst, as after a long-lived session.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, DaemonSettings};
use crate::procfs::busiest;
use crate::servers::{ServerChild, ServerKind};

/// A mass fault.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MassFault {
    /// TCP reset of every connection.
    Reset,
    /// Close 1000, empty reason, on every connection.
    Close1000,
}

impl MassFault {
    fn command(self) -> &'static str {
        match self {
            MassFault::Reset => "rst",
            MassFault::Close1000 => "close 1000",
        }
    }

    /// How the table names it.
    pub fn label(self) -> &'static str {
        match self {
            MassFault::Reset => "mass RST",
            MassFault::Close1000 => "mass Close 1000",
        }
    }
}

/// One round, times from the fault.
pub struct Round {
    /// Most scheduled attempts within any 100 ms.
    pub busiest_scheduled_100ms: usize,
    /// Most new attempts (`connecting` events) within any 100 ms.
    pub busiest_attempts_100ms: usize,
    /// The last session's new attempt.
    pub last_attempt: Duration,
    /// Sessions that were hit.
    pub hit: usize,
    /// The median session's new hello.
    pub median_back: Duration,
    /// The last session's new hello.
    pub all_back: Duration,
    /// Most new hellos within any 100 ms.
    pub busiest_100ms: usize,
    /// The earliest new hello.
    pub first_back: Duration,
}

/// Longest wait for every session to be back in one round.
const LIMIT: Duration = Duration::from_secs(30);

/// `rounds` rounds of `fault` against a fresh `kind` server, with `settings`.
pub fn measure(kind: ServerKind, settings: &DaemonSettings, fault: MassFault, rounds: usize) -> Vec<Round> {
    let n = settings.sessions;
    let mut server = ServerChild::start(kind);
    let daemon = Daemon::start(settings, server.url());
    daemon.wait_ready(n, Duration::from_secs(120));
    let heard = daemon.subscribe();
    let mut results = Vec::new();
    for _ in 0..rounds {
        std::thread::sleep(settings.stable_after + Duration::from_millis(500));
        let answer = server.ask(fault.command());
        let at = answer["at"].as_f64().expect("fault time");
        let hit = answer["connections"].as_u64().unwrap_or(0) as usize;
        assert_eq!(hit, n, "the fault reached {hit} of {n} connections");
        let started = Instant::now();
        let backs = loop {
            let firsts = first_hellos(&mut server, at);
            if firsts.len() >= n {
                break firsts;
            }
            assert!(
                started.elapsed() < LIMIT,
                "only {} of {n} back within {LIMIT:?}",
                firsts.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut backs: Vec<Duration> = backs.into_values().collect();
        backs.sort();
        // Every session ready again on the daemon's side too before the next round.
        daemon.wait_ready(n, LIMIT);
        let mut attempts: HashMap<String, Duration> = HashMap::new();
        let mut scheduled: HashMap<String, Duration> = HashMap::new();
        // Stamps are to the millisecond: a loss may be stamped just before `at`.
        for event in heard.try_iter().filter(|e| e.at >= at - 0.002) {
            let since = Duration::from_secs_f64((event.at - at).max(0.0));
            match (event.state.as_str(), event.retry_in) {
                ("connecting", _) => {
                    attempts.entry(event.session).or_insert(since);
                }
                ("backoff", Some(delay)) => {
                    scheduled.entry(event.session).or_insert(since + delay);
                }
                _ => {}
            }
        }
        let sorted = |times: HashMap<String, Duration>| {
            let mut times: Vec<Duration> = times.into_values().collect();
            times.sort();
            times
        };
        let attempts = sorted(attempts);
        results.push(Round {
            busiest_scheduled_100ms: busiest(&sorted(scheduled), Duration::from_millis(100)),
            busiest_attempts_100ms: busiest(&attempts, Duration::from_millis(100)),
            last_attempt: attempts.last().copied().unwrap_or_default(),
            hit,
            median_back: backs[backs.len() / 2],
            all_back: *backs.last().unwrap(),
            busiest_100ms: busiest(&backs, Duration::from_millis(100)),
            first_back: backs[0],
        });
    }
    results
}

/// Each device's first hello at or after `at`, as time since `at`.
fn first_hellos(server: &mut ServerChild, at: f64) -> HashMap<String, Duration> {
    let answer = server.ask(&format!("hellos {at}"));
    let mut firsts: HashMap<String, Duration> = HashMap::new();
    for pair in answer["hellos"].as_array().into_iter().flatten() {
        let (Some(device), Some(t)) = (pair[0].as_str(), pair[1].as_f64()) else {
            continue;
        };
        let since = Duration::from_secs_f64((t - at).max(0.0));
        firsts
            .entry(device.to_owned())
            .and_modify(|d| *d = (*d).min(since))
            .or_insert(since);
    }
    firsts
}

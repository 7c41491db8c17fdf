//! The latency benchmarks, measured in one process so that the instant a
//! fault hit the wire (taken by the loopback server) and the instant the
//! tree's state event arrived compare directly: the actor tree of
//! wsvisor-actors on this thread's actix system, the loopback server on its
//! own thread, as tests/recovery.rs runs them.
//!
//! Detection: one fresh session per trial (its own device id, so a fault
//! reaches only it), the fault injected right after `ready`, the loss event
//! timed. Recovery: many sessions reset at once, every `ready` timed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wsvisor_actors::events::Event;
use wsvisor_actors::loss::Cause;
use wsvisor_actors::messages::{AddSession, RemoveSession, Subscribe};
use wsvisor_actors::settings::SessionSettings;
use wsvisor_actors::state::{SessionState, StateUpdate};
use wsvisor_actors::subscription::{SubscriberLimits, Subscription};
use wsvisor_actors::{start_tree, Tree};
use wsvisor_loopback::{Fault, Server, ServerOptions};

use crate::procfs::busiest;
use crate::report::{ms, Row, Samples};
use crate::support;

/// Any single wait in here; far above anything expected.
const LIMIT: Duration = Duration::from_secs(30);

/// A fault to detect.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Detect {
    /// Close 1000.
    Close,
    /// TCP reset.
    Reset,
    /// The server goes silent (heartbeat 200 ms + 200 ms).
    Silence,
}

impl Detect {
    fn fault(self) -> Fault {
        match self {
            Detect::Close => Fault::Close(1000, String::new()),
            Detect::Reset => Fault::Reset,
            Detect::Silence => Fault::Silence,
        }
    }

    fn cause(self) -> Cause {
        match self {
            Detect::Close => Cause::ServerClose,
            Detect::Reset => Cause::Reset,
            Detect::Silence => Cause::PingTimeout,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Detect::Close => "close",
            Detect::Reset => "rst",
            Detect::Silence => "silence",
        }
    }
}

/// Waits for the next state event of `session` that satisfies `pred`.
async fn wait_for(
    events: &mut Subscription,
    session: &str,
    pred: impl Fn(&StateUpdate) -> bool,
) -> (StateUpdate, Instant) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match actix_rt::time::timeout(left, recv(events)).await {
            Ok(Some(Event::State(update))) => {
                let at = Instant::now();
                if update.session == session && pred(&update) {
                    return (update, at);
                }
            }
            Ok(Some(Event::Lagged { skipped })) => panic!("the benchmark's subscription lagged by {skipped}"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the monitor went away"),
            Err(_) => panic!("{session}: no matching state within {LIMIT:?}"),
        }
    }
}

async fn subscribe(tree: &Tree, capacity: usize) -> Subscription {
    tree.monitor
        .send(Subscribe {
            sessions: None,
            limits: SubscriberLimits {
                events: capacity,
                bytes: 1 << 30,
                lag_limit: Duration::from_secs(3600),
            },
            states_only: false,
        })
        .await
        .expect("monitor")
}

async fn recv(events: &mut Subscription) -> Option<Event> {
    events.recv().await.map(|shared| shared.event.clone())
}

/// Detection latency of `kind` over `trials` trials: fault on the wire →
/// state event with the loss.
pub async fn detection(kind: Detect, trials: usize) -> Samples {
    let server = Server::start(ServerOptions::default()).expect("loopback server");
    let tree = start_tree(Default::default());
    let mut events = subscribe(&tree, 100_000).await;
    let mut samples = Vec::with_capacity(trials);
    for i in 0..trials {
        let name = format!("{}{i}", kind.tag());
        // Heartbeat 200 ms + 200 ms, the setting for silence.
        let settings = support::settings(&name, &server.url());
        let device = settings.device_id.clone();
        tree.supervisor
            .send(AddSession(settings.into()))
            .await
            .expect("supervisor")
            .expect("add session");
        wait_for(&mut events, &name, |u| u.state == SessionState::Ready).await;
        let injected = server.inject_for(&device, kind.fault());
        let (update, detected) = wait_for(&mut events, &name, |u| u.loss.is_some()).await;
        let cause = update.loss.as_ref().map(|l| l.cause);
        assert_eq!(cause, Some(kind.cause()), "{kind:?} was reported as {:?}", update.loss);
        samples.push(detected.saturating_duration_since(injected));
        let _ = tree.supervisor.send(RemoveSession(name)).await;
        if kind == Detect::Silence {
            // The silent server side stays open until told otherwise.
            server.inject_for(&device, Fault::Drop);
        }
    }
    Samples::new(samples)
}

/// The detection rows.
pub async fn detection_rows(trials: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for kind in [Detect::Close, Detect::Reset] {
        let samples = detection(kind, trials).await;
        let p99 = samples.pct(99.0);
        let label = match kind {
            Detect::Close => "detection: Close 1000",
            _ => "detection: RST",
        };
        rows.push(Row::check(
            format!("{label} ({} trials), median / p99 / max", samples.len()),
            samples.summary_ms(),
            "p99 < 5 ms",
            p99 < Duration::from_millis(5),
            format!("{} ms", ms(p99.saturating_sub(Duration::from_millis(5)))),
        ));
    }
    let samples = detection(Detect::Silence, trials).await;
    let bound = support::PING_INTERVAL + support::PING_TIMEOUT + Duration::from_millis(50);
    rows.push(Row::check(
        format!(
            "detection: silence, heartbeat 200 ms + 200 ms ({} trials), median / p99 / max",
            samples.len()
        ),
        samples.summary_ms(),
        format!("max < {} ms", bound.as_millis()),
        samples.max() < bound,
        format!("{} ms", ms(samples.max().saturating_sub(bound))),
    ));
    rows
}

/// Settings of the mass-reset sessions: the documented defaults, except
/// `stable_after` (1 s rather than 10 s) so that each round starts from a
/// stable session without waiting 10 s between rounds: either way the
/// reset is the first failure of a burst and waits `initial_delay` ± jitter.
fn default_session(name: &str, url: &str, jitter: f64) -> SessionSettings {
    let mut s = support::settings(name, url);
    s.liveness.ping_interval = Duration::from_secs(15);
    s.liveness.ping_timeout = Duration::from_secs(10);
    s.connect_timeout = Duration::from_secs(10);
    s.hello_timeout = Duration::from_secs(10);
    s.reconnect.initial_delay = Duration::from_millis(500);
    s.reconnect.max_delay = Duration::from_secs(60);
    s.reconnect.multiplier = 2.0;
    s.reconnect.jitter = jitter;
    s.reconnect.max_attempts = 10;
    s.reconnect.stable_after = Duration::from_secs(1);
    s
}

/// One mass reset: when each session lost its connection and was ready again.
struct Round {
    all_lost: Duration,
    all_back: Duration,
    median_back: Duration,
    /// Largest number of `ready` events within any 100 ms.
    busiest_window: usize,
}

/// `n` sessions, all hit by `fault` at once, `rounds` times.
async fn mass_fault(n: usize, rounds: usize, jitter: f64, fault: Fault) -> Vec<Round> {
    let server = Server::start(ServerOptions::default()).expect("loopback server");
    let tree = start_tree(Default::default());
    let mut events = subscribe(&tree, 1_000_000).await;
    let url = server.url();
    for i in 0..n {
        let settings = default_session(&format!("s{i}"), &url, jitter);
        tree.supervisor
            .send(AddSession(settings.into()))
            .await
            .expect("supervisor")
            .expect("add session");
    }
    wait_all(&mut events, n, |u| u.state == SessionState::Ready).await;
    let mut results = Vec::new();
    for _ in 0..rounds {
        // Past `stable_after`: every session starts this round afresh.
        actix_rt::time::sleep(Duration::from_millis(1500)).await;
        let injected = server.inject(fault.clone());
        let mut lost: HashMap<String, Instant> = HashMap::new();
        let mut back: HashMap<String, Instant> = HashMap::new();
        let deadline = Instant::now() + LIMIT;
        while back.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = actix_rt::time::timeout(left, recv(&mut events))
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} sessions back within {LIMIT:?}", back.len()));
            let Some(Event::State(update)) = event else { continue };
            let at = Instant::now();
            if update.loss.is_some() && update.state == SessionState::Backoff {
                lost.entry(update.session.clone()).or_insert(at);
            } else if update.state == SessionState::Ready && lost.contains_key(&update.session) {
                back.entry(update.session.clone()).or_insert(at);
            }
        }
        let mut backs: Vec<Duration> = back.values().map(|t| t.saturating_duration_since(injected)).collect();
        backs.sort();
        let all_lost = lost
            .values()
            .map(|t| t.saturating_duration_since(injected))
            .max()
            .unwrap_or_default();
        results.push(Round {
            all_lost,
            all_back: *backs.last().unwrap(),
            median_back: backs[backs.len() / 2],
            busiest_window: busiest(&backs, Duration::from_millis(100)),
        });
    }
    results
}

async fn wait_all(events: &mut Subscription, n: usize, pred: impl Fn(&StateUpdate) -> bool) {
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + LIMIT;
    while seen.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match actix_rt::time::timeout(left, recv(events)).await {
            Ok(Some(Event::State(update))) if pred(&update) => {
                seen.insert(update.session);
            }
            Ok(Some(_)) => {}
            _ => panic!("only {} of {n} sessions got there within {LIMIT:?}", seen.len()),
        }
    }
}

/// The recovery rows.
pub async fn recovery_rows(n: usize, rounds: usize) -> Vec<Row> {
    let results = mass_fault(n, rounds, 0.5, Fault::Reset).await;
    let all_back = Samples::new(results.iter().map(|r| r.all_back).collect());
    let median_back = Samples::new(results.iter().map(|r| r.median_back).collect());
    let all_lost = Samples::new(results.iter().map(|r| r.all_lost).collect());
    let busiest = results.iter().map(|r| r.busiest_window).max().unwrap_or(0);
    let share = busiest as f64 / n as f64 * 100.0;
    // initial_delay × (1 + jitter) + 1 s.
    let bound = Duration::from_millis(750) + Duration::from_secs(1);
    let worst = all_back.max();
    vec![
        Row::info(
            format!("mass RST of {n} sessions ({rounds} rounds): every loss reported, worst round"),
            format!("{} ms", ms(all_lost.max())),
        ),
        Row::check(
            format!(
                "mass RST of {n} sessions: all `ready` again, median / worst round (median session: {} ms)",
                ms(median_back.median())
            ),
            format!("{} / {} ms", ms(all_back.median()), ms(worst)),
            format!("< {} ms (500 ms × 1.5 + 1 s)", bound.as_millis()),
            worst < bound,
            format!("{} ms", ms(worst.saturating_sub(bound))),
        ),
        Row::check(
            format!("mass RST of {n} sessions: most reconnects in any 100 ms window, worst round"),
            format!("{share:.1} % ({busiest} of {n})"),
            "≤ 20 %",
            share <= 20.0,
            format!("{:.1} points", share - 20.0),
        ),
    ]
}

/// The same mass reset with a wider `jitter`: what a large fleet can set to
/// spread its reconnects further.
pub async fn wider_jitter_row(n: usize, rounds: usize, jitter: f64) -> Row {
    let results = mass_fault(n, rounds, jitter, Fault::Reset).await;
    let busiest = results.iter().map(|r| r.busiest_window).max().unwrap_or(0);
    let worst = results.iter().map(|r| r.all_back).max().unwrap_or_default();
    Row::info(
        format!("mass RST of {n} sessions with jitter = {jitter} ({rounds} rounds): all back, busiest 100 ms"),
        format!(
            "{} ms, {:.1} % ({busiest} of {n})",
            ms(worst),
            busiest as f64 / n as f64 * 100.0
        ),
    )
}

/// The clean close of every session at once (as a server idling them out
/// would): how soon they are all back.
pub async fn mass_close_row(n: usize, rounds: usize) -> Row {
    let results = mass_fault(n, rounds, 0.5, Fault::Close(1000, String::new())).await;
    let worst = results.iter().map(|r| r.all_back).max().unwrap_or_default();
    let median = results.iter().map(|r| r.median_back).max().unwrap_or_default();
    Row::info(
        format!("mass Close 1000 of {n} sessions ({rounds} rounds): median session / all back, worst round"),
        format!("{} / {} ms", ms(median), ms(worst)),
    )
}

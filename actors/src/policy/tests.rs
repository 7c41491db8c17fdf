//! Policy tests: pure decisions, no socket, no sleep.

use std::time::Duration;

use super::*;

fn settings() -> ReconnectSettings {
    ReconnectSettings {
        initial_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(60),
        multiplier: 2.0,
        jitter: 0.5,
        max_attempts: 10,
        stable_after: Duration::from_secs(10),
        revive_after: Some(Duration::from_secs(600)),
    }
}

fn refused() -> LossReport {
    LossReport::new(Cause::ConnectFailed, "Connection refused")
}

fn assert_within(delay: Duration, nominal: Duration, jitter: f64) {
    let low = nominal.as_secs_f64() * (1.0 - jitter);
    // The crate adds at most one nanosecond to the upper bound.
    let high = nominal.as_secs_f64() * (1.0 + jitter) + 1e-9;
    let got = delay.as_secs_f64();
    assert!(
        got >= low && got <= high,
        "delay {got}s outside [{low}, {high}] around {nominal:?}"
    );
}

#[test]
fn server_down_gives_exactly_max_attempts_with_growing_jittered_delays() {
    let s = settings();
    let mut policy = SessionPolicy::new(s, Keep::Always);
    let mut nominal = s.initial_delay;
    // The first attempt failed; retries 1 to 9 follow, the tenth failure gives up.
    for expected_attempt in 1..s.max_attempts {
        match policy.decide(&refused(), None) {
            Decision::Retry { attempt, after, .. } => {
                assert_eq!(attempt, expected_attempt);
                assert_within(after, nominal, s.jitter);
            }
            other => panic!("expected a retry before attempt {expected_attempt}, got {other:?}"),
        }
        nominal = (nominal * 2).min(s.max_delay);
    }
    match policy.decide(&refused(), None) {
        Decision::GiveUp { attempts, probe_in } => {
            assert_eq!(attempts, s.max_attempts);
            assert_within(probe_in.unwrap(), s.revive_after.unwrap(), s.jitter / 2.0);
        }
        other => panic!("expected to give up, got {other:?}"),
    }
}

#[test]
fn jitter_stays_in_effect_at_the_cap() {
    let s = ReconnectSettings {
        max_attempts: 1000,
        max_delay: Duration::from_secs(2),
        ..settings()
    };
    let mut policy = SessionPolicy::new(s, Keep::Always);
    let mut capped = Vec::new();
    for _ in 0..200 {
        if let Decision::Retry { after, .. } = policy.decide(&refused(), None) {
            capped.push(after);
        }
    }
    // Past the growth phase every delay is jittered around the cap...
    let tail = &capped[20..];
    for delay in tail {
        assert_within(*delay, s.max_delay, s.jitter);
    }
    // ...and they differ: a fixed cap would line every session up again.
    let spread = tail.iter().max().unwrap().as_secs_f64() - tail.iter().min().unwrap().as_secs_f64();
    assert!(spread > 0.5, "delays at the cap spread only {spread}s");
}

#[test]
fn auth_failure_parks_at_once() {
    let mut policy = SessionPolicy::new(settings(), Keep::Always);
    let report = LossReport::new(Cause::AuthFailed, "认证失败");
    assert!(matches!(
        policy.decide(&report, None),
        Decision::GiveUp {
            attempts: 1,
            probe_in: Some(_)
        }
    ));
}

#[test]
fn stable_session_starts_a_fresh_burst() {
    let s = settings();
    let mut policy = SessionPolicy::new(s, Keep::Always);
    for _ in 0..5 {
        policy.decide(&refused(), None);
    }
    assert_eq!(policy.failures(), 5);
    let reset = LossReport::new(Cause::Reset, "Connection reset by peer");
    match policy.decide(&reset, Some(s.stable_after)) {
        Decision::Retry { attempt, after, .. } => {
            assert_eq!(attempt, 1);
            assert_within(after, s.initial_delay, s.jitter);
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(policy.failures(), 0);
}

#[test]
fn short_lived_sessions_still_count_towards_giving_up() {
    let s = settings();
    let mut policy = SessionPolicy::new(s, Keep::Always);
    let internal_error = LossReport::server_close(Some(1011), "internal error");
    let mut last = None;
    for _ in 0..s.max_attempts {
        last = Some(policy.decide(&internal_error, Some(Duration::from_millis(50))));
    }
    assert!(
        matches!(last, Some(Decision::GiveUp { attempts, .. }) if attempts == s.max_attempts),
        "{last:?}"
    );
}

#[test]
fn clean_close_of_a_ready_session_retries_at_the_first_step() {
    let s = settings();
    let mut policy = SessionPolicy::new(s, Keep::Always);
    for _ in 0..4 {
        policy.decide(&refused(), None);
    }
    let idle_close = LossReport::server_close(Some(1000), "");
    for _ in 0..(s.max_attempts * 3) {
        match policy.decide(&idle_close, Some(Duration::from_secs(1))) {
            Decision::Retry { attempt, after, .. } => {
                assert_eq!(attempt, 1, "a clean close is not a failure");
                assert_within(after, s.initial_delay, s.jitter);
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }
}

#[test]
fn clean_close_before_ready_is_a_failure() {
    let s = settings();
    let mut policy = SessionPolicy::new(s, Keep::Always);
    let mut last = None;
    for _ in 0..s.max_attempts {
        last = Some(policy.decide(&LossReport::server_close(Some(1000), ""), None));
    }
    assert!(
        matches!(last, Some(Decision::GiveUp { attempts, .. }) if attempts == s.max_attempts),
        "{last:?}"
    );
}

#[test]
fn service_restart_backs_off() {
    let s = settings();
    let mut policy = SessionPolicy::new(s, Keep::Always);
    let restart = LossReport::server_close(Some(1012), "service restart");
    policy.decide(&restart, Some(Duration::from_secs(1)));
    match policy.decide(&restart, Some(Duration::from_secs(1))) {
        Decision::Retry { attempt, after, .. } => {
            assert_eq!(attempt, 2);
            assert_within(after, s.initial_delay * 2, s.jitter);
        }
        other => panic!("expected a retry, got {other:?}"),
    }
}

#[test]
fn on_demand_stays_down_after_a_clean_close_only() {
    let mut policy = SessionPolicy::new(settings(), Keep::OnDemand);
    let idle_close = LossReport::server_close(Some(1000), "");
    assert_eq!(
        policy.decide(&idle_close, Some(Duration::from_secs(200))),
        Decision::StayDown
    );
    let going_away = LossReport::server_close(Some(1001), "going away");
    assert_eq!(
        policy.decide(&going_away, Some(Duration::from_secs(1))),
        Decision::StayDown
    );
    assert!(matches!(policy.decide(&refused(), None), Decision::Retry { .. }));
}

#[test]
fn local_stop_never_restarts() {
    let mut policy = SessionPolicy::new(settings(), Keep::Always);
    let stop = LossReport::new(Cause::LocalStop, "disconnect");
    assert_eq!(policy.decide(&stop, Some(Duration::from_secs(1))), Decision::StayDown);
    assert_eq!(policy.failures(), 0);
}

#[test]
fn zero_jitter_gives_exact_delays() {
    let s = ReconnectSettings {
        jitter: 0.0,
        ..settings()
    };
    let mut policy = SessionPolicy::new(s, Keep::Always);
    let delays: Vec<_> = (0..4)
        .map(|_| match policy.decide(&refused(), None) {
            Decision::Retry { after, .. } => after.as_millis(),
            other => panic!("expected a retry, got {other:?}"),
        })
        .collect();
    assert_eq!(delays, vec![500, 1000, 2000, 4000]);
}

#[test]
fn with_ota_an_auth_failure_refreshes_once_then_parks() {
    let mut policy = SessionPolicy::new(settings(), Keep::Always).refreshing_on_auth_failure(true);
    let refused = LossReport::new(Cause::AuthFailed, "认证失败");
    assert_eq!(
        policy.decide(&refused, None),
        Decision::Retry {
            attempt: 1,
            after: Duration::ZERO,
            refresh: true
        }
    );
    assert!(matches!(policy.decide(&refused, None), Decision::GiveUp { .. }));
    policy.reset();
    assert!(
        matches!(policy.decide(&refused, None), Decision::Retry { refresh: true, .. }),
        "a new burst refreshes again"
    );
}

#[test]
fn activation_waits_without_giving_up() {
    let s = settings();
    let mut policy = SessionPolicy::new(s, Keep::Always);
    let activate = LossReport::new(Cause::ActivationRequired, "enter 123456");
    for _ in 0..(s.max_attempts * 3) {
        match policy.decide(&activate, None) {
            Decision::AwaitActivation { after } => {
                assert!(after <= s.max_delay.mul_f64(1.0 + s.jitter) + Duration::from_micros(1));
            }
            other => panic!("activation gave up: {other:?}"),
        }
    }
    assert_eq!(policy.failures(), 0, "waiting on a person is not a failure");
}

#[test]
fn a_parked_session_keeps_probing_and_a_probe_that_gets_through_ends_the_park() {
    let s = settings();
    let mut policy = SessionPolicy::new(s, Keep::Always);
    for _ in 0..s.max_attempts {
        policy.decide(&refused(), None);
    }
    let revive = s.revive_after.unwrap();
    for _ in 0..50 {
        match policy.decide(&refused(), None) {
            Decision::KeepProbing { probe_in: Some(after) } => assert_within(after, revive, s.jitter / 2.0),
            other => panic!("a parked session only probes, got {other:?}"),
        }
    }
    // The server is back: the probe was ready for a moment, then lost.
    let reset = LossReport::new(Cause::Reset, "Connection reset by peer");
    match policy.decide(&reset, Some(Duration::from_millis(100))) {
        Decision::Retry { attempt, after, .. } => {
            assert_eq!(attempt, 1, "a fresh burst");
            assert_within(after, s.initial_delay, s.jitter);
        }
        other => panic!("expected a fresh burst, got {other:?}"),
    }
}

#[test]
fn without_revive_after_a_parked_session_is_not_probed() {
    let s = ReconnectSettings {
        revive_after: None,
        max_attempts: 1,
        ..settings()
    };
    let mut policy = SessionPolicy::new(s, Keep::Always);
    assert_eq!(
        policy.decide(&refused(), None),
        Decision::GiveUp {
            attempts: 1,
            probe_in: None
        }
    );
}

#[test]
fn unavailable_credentials_back_off_without_ever_parking() {
    let s = settings();
    let mut policy = SessionPolicy::new(s, Keep::Always);
    let missing = LossReport::new(Cause::CredentialsUnavailable, "token_file /x is empty");
    for retry in 1..=(s.max_attempts * 3) {
        match policy.decide(&missing, None) {
            Decision::Retry { attempt, refresh, .. } => assert_eq!((attempt, refresh), (retry, false)),
            other => panic!("credentials_unavailable parked: {other:?}"),
        }
    }
    assert_eq!(policy.failures(), 0);
}

#[test]
fn first_retries_spread_over_the_whole_jitter_window() {
    let s = settings();
    let draws: Vec<f64> = (0..400)
        .map(|_| match SessionPolicy::new(s, Keep::Always).decide(&refused(), None) {
            Decision::Retry { after, .. } => after.as_secs_f64(),
            other => panic!("expected a retry, got {other:?}"),
        })
        .collect();
    let (low, high) = (0.25, 0.75);
    let min = draws.iter().cloned().fold(f64::MAX, f64::min);
    let max = draws.iter().cloned().fold(f64::MIN, f64::max);
    // 400 uniform draws leave less than 5 % of the window uncovered at
    // either end with probability 1 - 2·0.95^400 (all but certain).
    assert!(min < low + 0.05 * (high - low), "lowest first retry {min}s");
    assert!(max > high - 0.05 * (high - low), "highest first retry {max}s");
    let below_middle = draws.iter().filter(|d| **d < 0.5).count();
    assert!(
        (120..=280).contains(&below_middle),
        "{below_middle} of 400 below the middle"
    );
}

#[test]
fn after_a_mass_loss_of_stable_sessions_first_retries_come_at_an_even_rate() {
    let s = settings();
    let reset = LossReport::new(Cause::Reset, "Connection reset by peer");
    let widest = s.initial_delay.mul_f64(1.0 + s.jitter);
    for offset in [0.0, 0.37, 0.999] {
        let mut delays: Vec<Duration> = (0..1000u64)
            .map(|k| {
                let mut policy = SessionPolicy::new(s, Keep::Always).spread_at(spread_position(offset, k));
                match policy.decide(&reset, Some(s.stable_after)) {
                    Decision::Retry { attempt: 1, after, .. } => after,
                    other => panic!("expected a first retry, got {other:?}"),
                }
            })
            .collect();
        delays.sort();
        assert!(
            *delays.last().unwrap() <= widest,
            "all back within (1+jitter)·initial_delay"
        );
        assert!(delays[0] < Duration::from_millis(5), "the spread starts at once");
        // The busiest 100 ms (sliding) holds at most 16 % of the sessions,
        // and every 100 ms holds some: even, not merely bounded.
        let window = Duration::from_millis(100);
        let busiest = (0..delays.len())
            .map(|i| delays[i..].iter().take_while(|d| **d < delays[i] + window).count())
            .max()
            .unwrap();
        assert!(busiest <= 160, "{busiest} of 1,000 in the busiest 100 ms");
        assert!(busiest >= 120, "{busiest}: 100 ms of 750 ms holds about 133");
    }
}

#[test]
fn a_session_that_was_not_stable_keeps_the_ordinary_jitter() {
    let s = settings();
    let idle_close = LossReport::server_close(Some(1000), "");
    // Ready for a moment only: no place at the very start of the spread.
    for _ in 0..200 {
        let mut policy = SessionPolicy::new(s, Keep::Always).spread_at(0.0);
        match policy.decide(&idle_close, Some(Duration::from_millis(50))) {
            Decision::Retry { after, .. } => assert_within(after, s.initial_delay, s.jitter),
            other => panic!("expected a retry, got {other:?}"),
        }
    }
    // Stable: its place in the spread, the same every time.
    let mut policy = SessionPolicy::new(s, Keep::Always).spread_at(0.25);
    for _ in 0..3 {
        assert_eq!(
            policy.decide(&idle_close, Some(s.stable_after)),
            Decision::Retry {
                attempt: 1,
                after: s.initial_delay.mul_f64(1.5 * 0.25),
                refresh: false
            }
        );
    }
}

#[test]
fn no_wait_is_longer_than_a_probe_could_be() {
    let s = ReconnectSettings {
        max_attempts: 1000,
        revive_after: Some(Duration::from_secs(60)),
        ..settings()
    };
    let mut policy = SessionPolicy::new(s, Keep::Always);
    let bound = Duration::from_secs(75);
    let delays: Vec<Duration> = (0..200)
        .map(|_| match policy.decide(&refused(), None) {
            Decision::Retry { after, .. } => after,
            other => panic!("expected a retry, got {other:?}"),
        })
        .collect();
    assert!(delays.iter().all(|d| *d <= bound), "{:?}", delays.iter().max());
    // At the cap the delays still spread (30 to 75 s), none piled on 75 s.
    let tail = &delays[20..];
    assert!(tail.iter().any(|d| *d < Duration::from_secs(50)));
    assert!(tail.iter().any(|d| *d > Duration::from_secs(70)));
    assert!(tail.iter().filter(|d| **d == bound).count() <= 1, "piled on the cap");
}

/// The most instants within any 100 ms (sliding).
fn busiest_100ms(mut instants: Vec<Duration>) -> usize {
    instants.sort();
    let window = Duration::from_millis(100);
    (0..instants.len())
        .map(|i| instants[i..].iter().take_while(|d| **d < instants[i] + window).count())
        .max()
        .unwrap_or(0)
}

#[actix_rt::test]
async fn stable_sessions_cut_in_bursts_in_any_order_come_back_at_an_even_rate() {
    let s = settings();
    let policy = ReconnectPolicy::default().start();
    let names: Vec<String> = (0..1000).map(|i| format!("s{i}")).collect();
    for name in &names {
        let configure = ConfigurePolicy {
            session: name.clone(),
            reconnect: s,
            keep: Keep::Always,
            refresh_on_auth_failure: false,
        };
        policy.send(configure).await.unwrap();
    }
    let reset = LossReport::new(Cause::Reset, "Connection reset by peer");
    let first_retry = |decision: Decision| match decision {
        Decision::Retry { attempt: 1, after, .. } => after,
        other => panic!("expected a first retry, got {other:?}"),
    };
    // A mass loss: everyone back within (1+jitter)·initial_delay, evenly.
    let mut back_after = Vec::new();
    for name in &names {
        let decide = Decide {
            session: name.clone(),
            report: reset.clone(),
            ready_for: Some(s.stable_after),
        };
        back_after.push((first_retry(policy.send(decide).await.unwrap()), name.clone()));
    }
    let widest = s.initial_delay.mul_f64(1.0 + s.jitter);
    assert!(back_after.iter().all(|(after, _)| *after <= widest));
    let busiest = busiest_100ms(back_after.iter().map(|(after, _)| *after).collect());
    assert!(
        (120..=160).contains(&busiest),
        "{busiest} of 1,000 in the busiest 100 ms"
    );
    // Once stable again, the server cuts them in two bursts 150 ms apart,
    // those that came back last first (as a server that closes the
    // connections it accepted last first). Places fixed per session put
    // both halves into 375 ms of overlap: about 26 % in one 100 ms.
    back_after.sort();
    let mut retries = Vec::new();
    for (k, (_, name)) in back_after.iter().rev().enumerate() {
        let lost_at = if k < 500 {
            Duration::ZERO
        } else {
            Duration::from_millis(150)
        };
        let decide = Decide {
            session: name.clone(),
            report: reset.clone(),
            ready_for: Some(s.stable_after),
        };
        retries.push(lost_at + first_retry(policy.send(decide).await.unwrap()));
    }
    let busiest = busiest_100ms(retries);
    assert!(
        (120..=160).contains(&busiest),
        "{busiest} of 1,000 in the busiest 100 ms"
    );
}

// ───────────── the actor: one policy per session, kept across identical configs ─────────────

mod actor {
    use super::*;

    fn configure(keep: Keep, reconnect: ReconnectSettings, refresh: bool) -> ConfigurePolicy {
        ConfigurePolicy {
            session: "kitchen".into(),
            reconnect,
            keep,
            refresh_on_auth_failure: refresh,
        }
    }

    /// The attempt number of the retry that follows one more refusal.
    async fn next_attempt(policy: &Addr<ReconnectPolicy>) -> Option<u32> {
        let decide = Decide {
            session: "kitchen".into(),
            report: refused(),
            ready_for: None,
        };
        match policy.send(decide).await.unwrap() {
            Decision::Retry { attempt, .. } => Some(attempt),
            Decision::StayDown => None,
            other => panic!("expected a retry or nothing, got {other:?}"),
        }
    }

    #[actix_rt::test]
    async fn an_unknown_session_stays_down_and_a_configured_one_retries() {
        let policy = ReconnectPolicy::default().start();
        assert_eq!(next_attempt(&policy).await, None);
        policy.send(configure(Keep::Always, settings(), false)).await.unwrap();
        assert_eq!(next_attempt(&policy).await, Some(1));
        assert_eq!(next_attempt(&policy).await, Some(2));
        policy.send(ForgetPolicy("kitchen".into())).await.unwrap();
        assert_eq!(next_attempt(&policy).await, None, "forgotten");
    }

    #[actix_rt::test]
    async fn the_same_settings_again_keep_the_count_and_any_change_restarts_it() {
        let policy = ReconnectPolicy::default().start();
        policy.send(configure(Keep::Always, settings(), false)).await.unwrap();
        next_attempt(&policy).await;
        next_attempt(&policy).await;
        // A reload that did not touch this session configures it again.
        policy.send(configure(Keep::Always, settings(), false)).await.unwrap();
        assert_eq!(
            next_attempt(&policy).await,
            Some(3),
            "an unchanged config kept its count"
        );
        let changes = [
            configure(
                Keep::Always,
                ReconnectSettings {
                    max_attempts: 11,
                    ..settings()
                },
                false,
            ),
            configure(Keep::OnDemand, settings(), false),
            configure(Keep::Always, settings(), true),
        ];
        for change in changes {
            next_attempt(&policy).await;
            let what = format!(
                "{:?} {:?} {}",
                change.reconnect, change.keep, change.refresh_on_auth_failure
            );
            policy.send(change).await.unwrap();
            assert_eq!(
                next_attempt(&policy).await,
                Some(1),
                "changed to {what}: a fresh policy"
            );
        }
    }

    #[actix_rt::test]
    async fn reset_attempts_starts_a_fresh_burst() {
        let policy = ReconnectPolicy::default().start();
        policy.send(configure(Keep::Always, settings(), false)).await.unwrap();
        next_attempt(&policy).await;
        next_attempt(&policy).await;
        policy.send(ResetAttempts("kitchen".into())).await.unwrap();
        assert_eq!(next_attempt(&policy).await, Some(1));
    }
}

#[actix_rt::test]
async fn only_stable_losses_take_a_place_in_the_spread() {
    let s = settings();
    let policy = ReconnectPolicy::default().start();
    for name in ["a", "b", "c"] {
        let configure = ConfigurePolicy {
            session: name.into(),
            reconnect: s,
            keep: Keep::Always,
            refresh_on_auth_failure: false,
        };
        policy.send(configure).await.unwrap();
    }
    let reset = LossReport::new(Cause::Reset, "Connection reset by peer");
    let first_retry = |session: &str, ready_for: Duration| Decide {
        session: session.into(),
        report: reset.clone(),
        ready_for: Some(ready_for),
    };
    let widest = s.initial_delay.mul_f64(1.0 + s.jitter);
    let place = |decision: Decision| match decision {
        Decision::Retry { attempt: 1, after, .. } => after.as_secs_f64() / widest.as_secs_f64(),
        other => panic!("expected a first retry, got {other:?}"),
    };
    let a = place(policy.send(first_retry("a", s.stable_after)).await.unwrap());
    // Ready for a moment only: its retry is jittered, and takes no place.
    policy.send(first_retry("b", Duration::from_millis(50))).await.unwrap();
    let c = place(policy.send(first_retry("c", s.stable_after)).await.unwrap());
    // Consecutive places of the sequence are the golden ratio apart.
    let step = (c - a).rem_euclid(1.0);
    assert!((step - 0.618).abs() < 0.01, "{a} then {c}: a step of {step}");
}

#[test]
fn a_wait_within_a_probes_range_is_kept_not_drawn_again() {
    // The burst's delays (max_delay 120 s ± 50 %: 60 to 180 s) start inside
    // a probe's range (60 s ± 25 %: 45 to 75 s). Those up to 75 s are kept,
    // the rest drawn like a probe: 12.5 % kept in [60, 75], 87.5 % spread
    // over [45, 75], so 43.75 % fall below 60 s. Drawing every one again
    // would put 50 % there.
    let s = ReconnectSettings {
        initial_delay: Duration::from_secs(120),
        max_delay: Duration::from_secs(120),
        max_attempts: 100_000,
        revive_after: Some(Duration::from_secs(60)),
        ..settings()
    };
    let mut policy = SessionPolicy::new(s, Keep::Always);
    let draws = 4000;
    let below_60 = (0..draws)
        .map(|_| match policy.decide(&refused(), None) {
            Decision::Retry { after, .. } => after,
            other => panic!("expected a retry, got {other:?}"),
        })
        .inspect(|after| assert!((45.0..=75.0).contains(&after.as_secs_f64()), "{after:?}"))
        .filter(|after| *after < Duration::from_secs(60))
        .count();
    let share = below_60 as f64 / draws as f64;
    assert!((0.41..0.47).contains(&share), "{share} below 60 s");
}

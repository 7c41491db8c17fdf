//! The real `wsvisor` binary: clean stop on SIGTERM, `check` exit codes,
//! journald-style log lines, and no token in any line.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::process::{config_toml, read_all, signal, wait_with_timeout, wsvisor, Daemon, Scratch, TOKEN};

use wsvisor_loopback::{EventKind, Mode, Server, ServerEvent, ServerOptions};

#[test]
fn sigterm_closes_every_session_with_1000_and_exits_0_within_2s() {
    let ready = Server::start(ServerOptions::default()).unwrap();
    // A second session is refused over and over: its retries must stop with the signal.
    let refusing = Server::start(ServerOptions {
        mode: Mode::RefuseUpgrade(503),
        ..Default::default()
    })
    .unwrap();
    let scratch = Scratch::new("sigterm");
    let config = scratch.write(
        "config.toml",
        &config_toml(&scratch, "", &[("kitchen", &ready.url()), ("attic", &refusing.url())]),
    );
    let log = scratch.0.join("stderr.log");
    // Debug for the supervisor: a line as each connection attempt starts.
    let mut child = Daemon::spawn(
        wsvisor(&["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info,wsvisor_actors::supervisor=debug")
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    assert!(
        ready.wait_for_hellos(1, Duration::from_secs(5)),
        "the session never became ready"
    );
    assert!(
        refusing.wait_until(Duration::from_secs(5), |s| s.accepted() >= 3),
        "no retries seen"
    );

    let signalled = Instant::now();
    signal(&child, "TERM");
    let status = wait_with_timeout(&mut child, Duration::from_secs(2)).expect("did not exit within 2 s");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(ready.wait_until(Duration::from_secs(1), |s| s.closes_received().contains(&Some(1000))));

    // No attempt starts once the daemon has taken the signal, from its
    // first instant: in the daemon's own order of events, no attempt line
    // follows the stopping line. (The server's clock cannot tell: an
    // attempt started just before the daemon took the signal reaches it
    // after the test sent it.)
    let stderr = read_all(&log);
    let (logged, late) = attempts_around_the_stop(&stderr, "attic");
    assert!(late.is_empty(), "connection attempts after SIGTERM: {late:?}");
    assert!(logged >= 3, "attic retried {logged} times before the signal: {stderr}");
    // ...and the log is the truth about attempts: each one the server
    // accepted is one the log shows (a started attempt may be cut before
    // it connects, so the log may show one more).
    let accepted = |events: &[ServerEvent]| {
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Accepted { .. }))
            .count()
    };
    // Give the server the time to take in anything the daemon sent.
    std::thread::sleep(Duration::from_millis(100));
    let on_the_wire = accepted(&refusing.events());
    assert!(
        on_the_wire <= logged && on_the_wire + 1 >= logged,
        "{on_the_wire} attempts on the wire, {logged} in the log"
    );
    let after_signal: Vec<_> = refusing.events().into_iter().filter(|e| e.at > signalled).collect();
    assert!(
        accepted(&after_signal) <= 1,
        "more than the one attempt that can be on its way as the signal is sent: {after_signal:?}"
    );

    assert!(stderr.contains("session=kitchen connected url="), "{stderr}");
    assert!(
        stderr.contains("session=attic lost cause=http_status status=503"),
        "{stderr}"
    );
    assert!(stderr.contains("stopping signal=SIGTERM"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "the token leaked into the log");
    eprintln!("SIGTERM to exit: {took:?}");
}

/// The attempts of `session` in a daemon log, split at its stopping line:
/// (before, after).
fn attempts_around_the_stop<'a>(log: &'a str, session: &str) -> (usize, Vec<&'a str>) {
    let lines: Vec<&str> = log.lines().collect();
    let stopping = lines
        .iter()
        .position(|l| l.contains("stopping signal=SIGTERM"))
        .unwrap_or_else(|| panic!("no stopping line: {log}"));
    let needle = format!("session={session} connecting attempt=");
    let before = lines[..stopping].iter().filter(|l| l.contains(&needle)).count();
    let after = lines[stopping..]
        .iter()
        .filter(|l| l.contains(&needle))
        .copied()
        .collect();
    (before, after)
}

#[cfg(feature = "fault-injection")]
#[test]
fn no_attempt_starts_after_sigterm_even_while_a_wedged_session_holds_up_the_stop() {
    use wsvisor::protocol::Command;

    let ready = Server::start(ServerOptions::default()).unwrap();
    let refusing = Server::start(ServerOptions {
        mode: Mode::RefuseUpgrade(503),
        ..Default::default()
    })
    .unwrap();
    let scratch = Scratch::new("sigterm-wedged");
    let mut text = config_toml(&scratch, "", &[("kitchen", &ready.url()), ("attic", &refusing.url())]);
    // attic waits 150 to 450 ms between its refused attempts: the signal
    // finds it in backoff, with a retry due while the stop is held up.
    text.push_str("[session.reconnect]\ninitial_delay = \"300ms\"\nmax_delay = \"300ms\"\n");
    let config = scratch.write("config.toml", &text);
    let log = scratch.0.join("stderr.log");
    let mut child = Daemon::spawn(
        wsvisor(&["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info,wsvisor_actors::supervisor=debug")
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    assert!(ready.wait_for_hellos(1, Duration::from_secs(5)));
    assert!(refusing.wait_until(Duration::from_secs(5), |s| s.accepted() >= 3));
    // kitchen's connection stops handling anything: the stop waits for it
    // until its grace (1.5 s) runs out, and a retry of attic's that the
    // stop did not cancel would have that long to show.
    let mut control = support::process::control(&support::process::socket_of(&scratch));
    control
        .call(&Command::Wedge {
            session: "kitchen".into(),
        })
        .unwrap()
        .outcome
        .expect("wedged");
    // Past attic's last refusal and into its backoff (at least 150 ms).
    let last = refusing.accepted();
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        refusing.accepted() == last && refusing.open_connections() == 0,
        "attic is not waiting in backoff"
    );

    let signalled = Instant::now();
    signal(&child, "TERM");
    let status = wait_with_timeout(&mut child, Duration::from_secs(3)).expect("did not exit");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let stderr = read_all(&log);
    assert!(
        stderr.contains("stopped with sessions still closing") && took >= Duration::from_secs(1),
        "the wedged session did not hold up the stop ({took:?}): {stderr}"
    );
    let (before, after) = attempts_around_the_stop(&stderr, "attic");
    assert!(before >= 3, "{stderr}");
    assert!(after.is_empty(), "attempts after SIGTERM: {after:?}");
    let accepted_after: Vec<_> = refusing
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Accepted { .. }) && e.at > signalled)
        .collect();
    assert!(
        accepted_after.len() <= 1,
        "more than the one attempt that can be on its way as the signal is sent: {accepted_after:?}"
    );
}

#[test]
fn sigint_stops_too() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let scratch = Scratch::new("sigint");
    let config = scratch.write("config.toml", &config_toml(&scratch, "", &[("kitchen", &server.url())]));
    let mut child = Daemon::spawn(wsvisor(&["run", "--config", config.to_str().unwrap()]).stderr(Stdio::null()));
    assert!(server.wait_for_hellos(1, Duration::from_secs(5)));
    signal(&child, "INT");
    let status = wait_with_timeout(&mut child, Duration::from_secs(2)).expect("did not exit within 2 s");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn journald_lines_have_priorities_and_no_timestamps() {
    let server = Server::start(ServerOptions {
        mode: Mode::RefuseUpgrade(401),
        ..Default::default()
    })
    .unwrap();
    let scratch = Scratch::new("journal");
    let config = scratch.write("config.toml", &config_toml(&scratch, "", &[("kitchen", &server.url())]));
    let log = scratch.0.join("journal.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let meta = stderr.metadata().unwrap();
    let mut child = Daemon::spawn(
        wsvisor(&["run", "--config", config.to_str().unwrap()])
            .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
            .stderr(stderr),
    );
    assert!(server.wait_until(Duration::from_secs(5), |s| s.accepted() >= 1));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !read_all(&log).contains("gave up") {
        assert!(Instant::now() < deadline, "no give-up line: {}", read_all(&log));
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "TERM");
    wait_with_timeout(&mut child, Duration::from_secs(2)).expect("did not exit");
    let text = read_all(&log);
    for line in text.lines() {
        let priority = line.get(..3).unwrap_or_default();
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&priority),
            "no priority prefix: {line}"
        );
        assert!(
            !line.contains("2026-") && !line.contains("Z "),
            "timestamp in a journald line: {line}"
        );
    }
    assert!(
        text.contains("<3>session=kitchen lost cause=auth_failed status=401"),
        "{text}"
    );
    assert!(
        text.contains("<3>session=kitchen gave up attempts=1 last_cause=auth_failed; probing every 1m"),
        "{text}"
    );
    assert!(!text.contains(TOKEN));
}

#[test]
fn terminal_lines_have_timestamps() {
    let scratch = Scratch::new("terminal");
    let config = scratch.write("config.toml", &config_toml(&scratch, "", &[]));
    let log = scratch.0.join("stderr.log");
    let mut child = Daemon::spawn(
        wsvisor(&["run", "--config", config.to_str().unwrap()]).stderr(std::fs::File::create(&log).unwrap()),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !read_all(&log).contains("started") {
        assert!(Instant::now() < deadline, "no start line");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "TERM");
    wait_with_timeout(&mut child, Duration::from_secs(2)).expect("did not exit");
    let text = read_all(&log);
    let started = text
        .lines()
        .find(|l| l.contains("started version="))
        .expect("a start line");
    assert!(started.contains("Z INFO  started version="), "{started}");
    assert!(
        text.lines().all(|l| l.starts_with("20")),
        "a line without a timestamp: {text}"
    );
}

#[test]
fn check_accepts_the_shipped_config() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let output = wsvisor(&["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn check_reports_file_line_col_and_exits_2() {
    let scratch = Scratch::new("check");
    let config = scratch.write("bad.toml", "[defaults]\nping_interval = \"15x\"\n");
    let output = wsvisor(&["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!("{}:2:17: ping_interval: invalid duration", config.display())),
        "{stderr}"
    );
    let unknown = scratch.write("unknown.toml", "[daemon]\nsocket_path = \"/tmp/x\"\n");
    let output = wsvisor(&["run", "--config", unknown.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "run refuses a bad config too");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(":2:1: "),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn bad_usage_exits_2() {
    let output = wsvisor(&["run"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn every_session_gave_up_with_on_give_up_exit_exits_75() {
    let server = Server::start(ServerOptions {
        mode: Mode::RefuseUpgrade(401),
        ..Default::default()
    })
    .unwrap();
    let scratch = Scratch::new("giveup");
    let text = config_toml(
        &scratch,
        "on_give_up = \"exit\"",
        &[("a", &server.url()), ("b", &server.url())],
    );
    let config = scratch.write("config.toml", &text);
    let mut child = Daemon::spawn(wsvisor(&["run", "--config", config.to_str().unwrap()]).stderr(Stdio::null()));
    let status = wait_with_timeout(&mut child, Duration::from_secs(5)).expect("did not exit");
    assert_eq!(status.code(), Some(75));
}

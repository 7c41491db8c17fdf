//! The control socket of the real binary: reload (socket and SIGHUP), one
//! daemon per socket, access by uid, and nothing sent is ever lost
//! silently across outages and idle closes.

mod support;

use std::collections::HashSet;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::process::{
    config_toml, control, read_all, signal, socket_of, wait_sessions, wait_with_timeout, Daemon, Scratch,
};
use wsvisor::protocol::{
    Command, Delivery, DropReason, ErrorCode, EventLine, ListenState, Pong, ReloadSummary, SessionState, SessionSummary,
};
use wsvisor_loopback::{EventKind, Fault, Server, ServerOptions};

const LIMIT: Duration = Duration::from_secs(10);

fn all_ready(names: &'static [&'static str]) -> impl Fn(&[SessionSummary]) -> bool {
    move |sessions| {
        sessions.len() == names.len()
            && names
                .iter()
                .all(|n| sessions.iter().any(|s| s.name == *n && s.state == SessionState::Ready))
    }
}

fn session_id(sessions: &[SessionSummary], name: &str) -> Option<String> {
    sessions.iter().find(|s| s.name == name).unwrap().session_id.clone()
}

/// The code of the error the daemon answered `command` with.
fn error_of(control: &mut support::process::Control, command: &Command) -> (ErrorCode, String) {
    match control.call(command).unwrap().outcome {
        Err(err) => (err.code().expect("a contract error code"), err.message),
        Ok(result) => panic!("{} succeeded: {result}", command.name()),
    }
}

#[test]
fn reload_adds_removes_and_changes_sessions_and_leaves_the_rest_alone() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let url = server.url();
    let scratch = Scratch::new("reload");
    let config = scratch.write(
        "config.toml",
        &config_toml(&scratch, "", &[("a", &url), ("b", &url), ("c", &url)]),
    );
    let daemon = Daemon::run(&config, &scratch.0.join("stderr.log"));
    let mut control = control(&socket_of(&scratch));
    let before = wait_sessions(&mut control, "all ready", all_ready(&["a", "b", "c"]));

    let mut changed = config_toml(&scratch, "", &[("a", &url), ("b", &url), ("d", &url)]);
    changed = changed.replace("device_id = \"dev-b\"", "device_id = \"dev-b2\"");
    std::fs::write(&config, changed).unwrap();
    let summary: ReloadSummary = control.result(&Command::Reload).unwrap();
    assert_eq!(
        serde_json::to_value(summary).unwrap(),
        json!({"added": ["d"], "removed": ["c"], "changed": ["b"], "unchanged": 1})
    );
    let after = wait_sessions(&mut control, "a, b, d ready", all_ready(&["a", "b", "d"]));
    assert_eq!(
        session_id(&after, "a"),
        session_id(&before, "a"),
        "an unchanged session reconnected"
    );
    assert_ne!(
        session_id(&after, "b"),
        session_id(&before, "b"),
        "a changed session kept its connection"
    );
    assert_eq!(
        error_of(&mut control, &Command::Session { session: "c".into() }).0,
        ErrorCode::NotFound
    );

    std::fs::write(&config, "[daemon]\nsocket_mode = 0660\n").unwrap();
    let refused = error_of(&mut control, &Command::Reload);
    assert_eq!(refused.0, ErrorCode::BadConfig, "{refused:?}");
    assert!(refused.1.contains("config.toml:2:"), "{refused:?}");
    let unchanged = wait_sessions(&mut control, "still a, b, d", all_ready(&["a", "b", "d"]));
    assert_eq!(session_id(&unchanged, "a"), session_id(&before, "a"));

    std::fs::write(
        &config,
        config_toml(&scratch, "", &[("a", &url), ("b", &url), ("d", &url), ("e", &url)]),
    )
    .unwrap();
    signal(&daemon, "HUP");
    let hup = wait_sessions(&mut control, "e added by SIGHUP", all_ready(&["a", "b", "d", "e"]));
    assert_eq!(session_id(&hup, "a"), session_id(&before, "a"));
    daemon.stop();
}

#[test]
fn one_daemon_per_socket_and_the_file_goes_with_it() {
    let scratch = Scratch::new("claim");
    let config = scratch.write("config.toml", &config_toml(&scratch, "", &[]));
    let first = Daemon::run(&config, &scratch.0.join("first.log"));
    let mut control = control(&socket_of(&scratch));
    let pid = control.result::<Pong>(&Command::Ping).unwrap().pid;
    assert_eq!(pid, first.id());

    let second_log = scratch.0.join("second.log");
    let mut second = Daemon::run(&config, &second_log);
    let status = wait_with_timeout(&mut second, Duration::from_secs(5)).expect("the second daemon kept running");
    assert_eq!(status.code(), Some(1));
    let said = read_all(&second_log);
    assert!(said.contains(&format!("is in use by process {pid}")), "{said}");
    assert_eq!(
        control.result::<Pong>(&Command::Ping).unwrap().pid,
        pid,
        "the first daemon was disturbed"
    );

    first.stop();
    assert!(!socket_of(&scratch).exists(), "the socket file outlived the daemon");
}

/// Run `wsvisor ctl --json ping` as uid/gid 65534 (nobody); setpriv
/// (util-linux) missing fails the test rather than skipping it.
fn ping_as_nobody(socket: &std::path::Path) -> std::process::Output {
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("setpriv (util-linux) is needed to run ctl as another uid");
    let output = std::process::Command::new(setpriv)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_wsvisor"),
        ])
        .args(["ctl", "--json", "--socket", socket.to_str().unwrap(), "ping"])
        .output()
        .expect("setpriv runs");
    output
}

#[test]
fn a_peer_whose_uid_is_not_allowed_is_refused() {
    if !support::as_user::root_or_skip() {
        return;
    }
    let scratch = Scratch::new("uid");
    std::fs::set_permissions(&scratch.0, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for (allowed, expect_ok) in [("[]", false), ("[65534]", true)] {
        let daemon_keys = format!("socket_mode = \"0666\"\nallowed_uids = {allowed}");
        let config = scratch.write("config.toml", &config_toml(&scratch, &daemon_keys, &[]));
        let daemon = Daemon::run(&config, &scratch.0.join("stderr.log"));
        let mut control = control(&socket_of(&scratch));
        assert_eq!(
            control.result::<Pong>(&Command::Ping).unwrap().pid,
            daemon.id(),
            "root is let in"
        );
        let output = ping_as_nobody(&socket_of(&scratch));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if expect_ok {
            assert!(output.status.success(), "allowed uid refused: {stdout} {stderr}");
        } else {
            assert_eq!(output.status.code(), Some(1), "{stdout} {stderr}");
            assert!(stdout.contains("\"forbidden\""), "{stdout} {stderr}");
        }
        assert_eq!(control.result::<Pong>(&Command::Ping).unwrap().pid, daemon.id());
        daemon.stop();
    }
}

fn listen(i: usize) -> Command {
    Command::Listen {
        session: "kitchen".into(),
        state: ListenState::Detect,
        mode: None,
        text: Some(format!("msg-{i}")),
    }
}

fn seq_of(text: &str) -> Option<usize> {
    let value: Value = serde_json::from_str(text).ok()?;
    value["text"].as_str()?.strip_prefix("msg-")?.parse().ok()
}

/// Sequence numbers the server received, in arrival order.
fn received(server: &Server) -> Vec<usize> {
    server.received_texts().iter().filter_map(|t| seq_of(&t.text)).collect()
}

#[test]
fn two_hundred_sends_across_outages_and_idle_closes_arrive_once_in_order_or_are_reported() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let scratch = Scratch::new("nothing-lost");
    let mut text = config_toml(&scratch, "", &[("kitchen", &server.url())]);
    text.push_str("queue_ttl = \"1s\"\n");
    let config = scratch.write("config.toml", &text);
    let daemon = Daemon::run(&config, &scratch.0.join("stderr.log"));
    let mut control = control(&socket_of(&scratch));
    wait_sessions(&mut control, "ready", all_ready(&["kitchen"]));

    let (events_tx, events) = mpsc::channel::<EventLine>();
    let mut subscriber = support::process::control(&socket_of(&scratch))
        .subscribe(None, false)
        .unwrap();
    let reader = std::thread::spawn(move || {
        while let Some(event) = subscriber.next_event().expect("an event") {
            if events_tx.send(event).is_err() {
                break;
            }
        }
    });

    let mut handed_over = Vec::new();
    for i in 0..200 {
        match i {
            25 => fault(&server, &handed_over, || {
                server.inject(Fault::Close(1000, String::new()));
            }),
            50 => fault(&server, &handed_over, || {
                server.inject(Fault::Reset);
            }),
            75 | 130 => fault(&server, &handed_over, || {
                server.stop_listening();
                server.inject(Fault::Reset);
            }),
            100 | 150 => server.start_listening().unwrap(),
            110 => fault(&server, &handed_over, || {
                server.restart().unwrap();
            }),
            175 => fault(&server, &handed_over, || {
                server.inject(Fault::CloseNoCode);
            }),
            _ => {}
        }
        if i == 149 {
            // Long enough for everything held since 130 to pass queue_ttl.
            std::thread::sleep(Duration::from_millis(1500));
        }
        match control.result::<Delivery>(&listen(i)).unwrap() {
            Delivery::Sent { sent } => {
                assert!(sent);
                handed_over.push(i)
            }
            Delivery::Queued { queued, .. } => assert!(queued),
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    let mut dropped = 0u64;
    let mut seen_events = Vec::new();
    let deadline = Instant::now() + LIMIT;
    while received(&server).len() as u64 + dropped < 200 {
        assert!(
            Instant::now() < deadline,
            "received {} and dropped {dropped} of 200",
            received(&server).len()
        );
        if let Ok(event) = events.recv_timeout(Duration::from_millis(20)) {
            if let EventLine::Dropped { why, count, .. } = &event {
                assert_eq!(*why, DropReason::QueueTtl, "{event:?}");
                dropped += count;
            }
            seen_events.push(event);
        }
    }
    let got = received(&server);
    let unique: HashSet<_> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "a message arrived twice: {got:?}");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
    assert_eq!(got.len() as u64 + dropped, 200);
    assert!(
        dropped >= 15,
        "the long outage should have expired most of 130..149, dropped {dropped}"
    );
    assert!(
        (130..150).filter(|i| unique.contains(i)).count() <= 5,
        "held past queue_ttl: {got:?}"
    );
    for text in server.received_texts().iter().filter(|t| seq_of(&t.text).is_some()) {
        let message: Value = serde_json::from_str(&text.text).unwrap();
        assert_eq!(
            message["session_id"].as_str(),
            text.session_id.as_deref(),
            "stale session_id on {}",
            text.text
        );
    }

    // Every session the server opened, the subscriber saw become ready, in order.
    while let Ok(event) = events.recv_timeout(Duration::from_millis(100)) {
        seen_events.push(event);
    }
    let served: Vec<String> = server
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::HelloSent { session_id } => Some(session_id),
            _ => None,
        })
        .collect();
    let ready: Vec<String> = seen_events
        .iter()
        .filter_map(|e| match e {
            EventLine::State(state) if state.state == SessionState::Ready => state.session_id.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(
        ready,
        served[1..],
        "the subscriber's ready events differ from the server's sessions"
    );
    eprintln!(
        "200 sends: {} delivered, {dropped} dropped and reported, {} connections",
        got.len(),
        served.len()
    );
    daemon.stop();
    let _ = reader.join();
}

/// Before breaking the connection, let everything already written arrive:
/// a frame the server never reads is lost in any WebSocket client without
/// application acknowledgements, and is not what this test is about.
fn fault(server: &Server, handed_over: &[usize], inject: impl FnOnce()) {
    let want: HashSet<usize> = handed_over.iter().copied().collect();
    let all_in = server.wait_until(LIMIT, |s| {
        let got: HashSet<usize> = received(s).into_iter().collect();
        want.is_subset(&got)
    });
    assert!(all_in, "messages handed to a live connection never arrived");
    inject();
}

#[test]
fn a_down_session_holds_queue_limit_messages_refuses_the_next_and_delivers_the_held_in_order() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let scratch = Scratch::new("queue-limit");
    let mut text = config_toml(&scratch, "", &[("kitchen", &server.url())]);
    text.push_str("queue_limit = 3\n");
    let config = scratch.write("config.toml", &text);
    let daemon = Daemon::run(&config, &scratch.0.join("stderr.log"));
    let mut control = control(&socket_of(&scratch));
    wait_sessions(&mut control, "ready", all_ready(&["kitchen"]));

    // Down, and meant to come back: the session holds what is sent.
    server.stop_listening();
    server.inject(Fault::Reset);
    wait_sessions(&mut control, "kitchen in backoff", |s| {
        s[0].state == SessionState::Backoff
    });
    for (i, position) in [(1, 1), (2, 2), (3, 3)] {
        let delivery: Delivery = control.result(&listen(i)).unwrap();
        assert_eq!(
            serde_json::to_value(delivery).unwrap(),
            json!({"queued": true, "position": position}),
            "message {i}"
        );
    }
    let (code, message) = error_of(&mut control, &listen(4));
    assert_eq!(code, ErrorCode::QueueFull);
    assert!(message.contains("queue_limit = 3 messages"), "{message}");
    assert_eq!(
        control.session("kitchen").unwrap().queued,
        3,
        "the refused one is not held"
    );

    server.start_listening().unwrap();
    assert!(
        server.wait_until(LIMIT, |s| received(s).len() >= 3),
        "the held messages never arrived: {:?}",
        received(&server)
    );
    // Anything more would arrive at once on loopback.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        received(&server),
        [1, 2, 3],
        "held in order, the refused one never sent"
    );
    assert_eq!(control.session("kitchen").unwrap().queued, 0);
    daemon.stop();
}

#[test]
fn a_bad_config_on_sighup_keeps_the_old_one_running_and_the_log_says_why() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let url = server.url();
    let scratch = Scratch::new("bad-hup");
    let config = scratch.write("config.toml", &config_toml(&scratch, "", &[("a", &url)]));
    let log = scratch.0.join("stderr.log");
    let mut daemon = Daemon::run(&config, &log);
    let mut control = control(&socket_of(&scratch));
    let before = wait_sessions(&mut control, "a ready", all_ready(&["a"]));

    std::fs::write(&config, "[daemon]\nlog_levle = \"debug\"\n").unwrap();
    signal(&daemon, "HUP");
    let deadline = Instant::now() + LIMIT;
    let line = loop {
        let text = read_all(&log);
        if let Some(line) = text.lines().find(|l| l.contains("reload failed")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no reload failure in the log:\n{text}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        line.contains("reload failed, nothing changed: ") && line.contains("config.toml:2:1: unknown key `log_levle`"),
        "the line names the file, the place and the problem: {line}"
    );
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon exited on a bad config"
    );
    let _: Pong = control.result(&Command::Ping).expect("still answering");
    let after = wait_sessions(&mut control, "a still ready", all_ready(&["a"]));
    assert_eq!(session_id(&after, "a"), session_id(&before, "a"), "a was touched");

    // The old config is still the one in effect: a good file is applied
    // against it, adding b and leaving a alone.
    std::fs::write(&config, config_toml(&scratch, "", &[("a", &url), ("b", &url)])).unwrap();
    signal(&daemon, "HUP");
    let fixed = wait_sessions(&mut control, "b added", all_ready(&["a", "b"]));
    assert_eq!(session_id(&fixed, "a"), session_id(&before, "a"));
    assert!(read_all(&log).contains("reloaded added=[\"b\"] removed=[] changed=[] unchanged=1"));
    daemon.stop();
}

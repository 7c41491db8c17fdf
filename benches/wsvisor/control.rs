//! The control plane and forwarding, through the real daemon's control
//! socket, with the loopback server in its own process:
//! - `session` and `send` round trips, one request at a time;
//! - `message` events delivered to 50 subscribers while `listen detect`
//!   requests (echoed by the server as `stt`) are pipelined;
//! - `audio` frames from the control socket to the server across 100
//!   sessions, pipelined on a few connections, counted by the server.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use wsvisor::control_client::blocking::Client;
use wsvisor::protocol::{Command, EventLine, ListenState, Subscribed};

use crate::children::{Daemon, ServerProcess};
use crate::report::{us, Row, Samples};

/// Requests in flight per pipelining connection.
const WINDOW: usize = 128;

/// The next line from the daemon, which must not have closed.
fn next_line(conn: &mut Client) -> String {
    conn.next_line()
        .expect("control read")
        .expect("the daemon closed the control connection")
}

/// Time of `n` sequential requests of `command`, after a warm-up.
fn round_trips(conn: &mut Client, n: usize, command: &Command) -> Samples {
    for _ in 0..n / 10 {
        conn.send(command).expect("control write");
        next_line(conn);
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        conn.send(command).expect("control write");
        let line = next_line(conn);
        samples.push(started.elapsed());
        assert!(line.contains("\"ok\":true"), "{} failed: {line}", command.name());
    }
    Samples::new(samples)
}

/// Sends `total` requests from `next` with up to [`WINDOW`] in flight;
/// returns how many were answered with an error.
fn pipeline(conn: &mut Client, total: usize, mut next: impl FnMut(usize) -> Command) -> usize {
    let mut sent = 0;
    let mut answered = 0;
    let mut errors = 0;
    while answered < total {
        let room = (WINDOW - (sent - answered)).min(total - sent);
        if room > 0 {
            let batch: Vec<Command> = (sent..sent + room).map(&mut next).collect();
            conn.send_batch(&batch).expect("control write");
            sent += batch.len();
        }
        let line = next_line(conn);
        if line.contains("\"id\"") {
            answered += 1;
            if !line.contains("\"ok\":true") {
                errors += 1;
            }
        }
    }
    errors
}

/// `session` and `send` round trips, and events to 50 subscribers.
pub fn control_plane(round_trip_count: usize, messages: usize) -> Vec<Row> {
    let sessions = 10;
    let mut server = ServerProcess::start();
    let daemon = Daemon::start("control", sessions, server.url());
    daemon.wait_ready(sessions, Duration::from_secs(30));
    let mut conn = daemon.connect();

    let session = round_trips(&mut conn, round_trip_count, &Command::Session { session: "s0".into() });
    let message = serde_json::json!({"type": "mcp", "payload": {"jsonrpc": "2.0"}});
    let send = Command::Send {
        session: "s1".into(),
        message: message.as_object().cloned().unwrap_or_default(),
    };
    let send = round_trips(&mut conn, round_trip_count, &send);
    // Every `send` reached the server (the warm-up's too).
    let texts_deadline = Instant::now() + Duration::from_secs(10);
    while server.stats().texts < send.len() as u64 && Instant::now() < texts_deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        server.stats().texts >= send.len() as u64,
        "some `send`s never reached the server"
    );

    let subscribers = 50;
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut threads = Vec::new();
    for _ in 0..subscribers {
        let mut sub = daemon.connect();
        let ready_tx = ready_tx.clone();
        threads.push(thread::spawn(move || {
            let answer: Subscribed = sub
                .result(&Command::Subscribe {
                    sessions: None,
                    audio: false,
                })
                .expect("subscribe");
            assert!(answer.subscribed);
            ready_tx.send(()).unwrap();
            let (mut delivered, mut skipped) = (0usize, 0u64);
            let deadline = Instant::now() + Duration::from_secs(120);
            while delivered < messages && Instant::now() < deadline {
                // Counting is cheap on the raw line; only a `lagged` is parsed.
                let Ok(Some(line)) = sub.next_line() else { break };
                if line.contains("\"event\":\"message\"") {
                    delivered += 1;
                } else if line.contains("\"event\":\"lagged\"") {
                    if let Ok(EventLine::Lagged { skipped: n }) = serde_json::from_str(&line) {
                        skipped += n;
                    }
                    if delivered as u64 + skipped >= messages as u64 {
                        break;
                    }
                }
            }
            (delivered, skipped, Instant::now())
        }));
    }
    for _ in 0..subscribers {
        ready_rx.recv().unwrap();
    }
    let started = Instant::now();
    let errors = pipeline(&mut conn, messages, |i| Command::Listen {
        session: format!("s{}", i % sessions),
        state: ListenState::Detect,
        mode: None,
        text: Some(format!("m{i}")),
    });
    let mut delivered = 0;
    let mut skipped = 0;
    let mut finished = started;
    for t in threads {
        let (d, s, at) = t.join().unwrap();
        delivered += d;
        skipped += s;
        finished = finished.max(at);
    }
    let took = finished.saturating_duration_since(started);
    let rate = delivered as f64 / took.as_secs_f64();
    daemon.stop();
    drop(server);

    vec![
        Row::check(
            format!("control: `session` round trip ({} requests), p50 / p99 / max", session.len()),
            format!("{} / {} / {} µs", us(session.median()), us(session.pct(99.0)), us(session.max())),
            "p99 < 1 ms",
            session.pct(99.0) < Duration::from_millis(1),
            format!("{} µs", us(session.pct(99.0).saturating_sub(Duration::from_millis(1)))),
        ),
        Row::info(
            format!("control: `send` round trip ({} requests), p50 / p99 / max", send.len()),
            format!("{} / {} / {} µs", us(send.median()), us(send.pct(99.0)), us(send.max())),
        ),
        Row::info(
            format!("control: `message` events to {subscribers} subscribers ({messages} stt echoes each)"),
            format!(
                "{:.0} events/s ({delivered} delivered in {:.2} s, {skipped} skipped as lagged, {errors} requests refused)",
                rate,
                took.as_secs_f64()
            ),
        ),
    ]
}

/// `audio` frames from the control socket to the server across 100 sessions.
pub fn forwarding(frames: usize) -> Vec<Row> {
    let sessions = 100;
    let connections = 4;
    let mut server = ServerProcess::start();
    let daemon = Daemon::start("forwarding", sessions, server.url());
    daemon.wait_ready(sessions, Duration::from_secs(30));
    // An Opus frame of 60 ms at 16 kHz is about 100-200 bytes.
    let payload: Vec<u8> = (0..160u32).map(|i| (i * 37 % 251) as u8).collect();
    let before = server.stats().binary_frames;
    let per_connection = frames / connections;
    let total = per_connection * connections;
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let mut conn = daemon.connect();
            let data = payload.clone();
            thread::spawn(move || {
                pipeline(&mut conn, per_connection, |i| {
                    let session = (i * connections + c) % sessions;
                    Command::Audio {
                        session: format!("s{session}"),
                        data: data.clone(),
                    }
                })
            })
        })
        .collect();
    let errors: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut arrived;
    loop {
        arrived = server.stats().binary_frames - before;
        if arrived >= (total - errors) as u64 || Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    daemon.stop();
    drop(server);
    let rate = arrived as f64 / took.as_secs_f64();
    vec![Row::info(
        format!("forwarding: `audio` frames of 160 bytes, {connections} control connections → {sessions} sessions"),
        format!(
            "{rate:.0} frames/s ({arrived} of {total} at the server in {:.2} s, {errors} refused)",
            took.as_secs_f64()
        ),
    )]
}

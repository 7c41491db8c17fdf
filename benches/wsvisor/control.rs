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

use base64::Engine;
use serde_json::{json, Value};

use crate::children::{Conn, Daemon, ServerProcess};
use crate::report::{us, Row, Samples};

/// Requests in flight per pipelining connection.
const WINDOW: usize = 128;

/// Time of `n` sequential requests built by `request`, after a warm-up.
fn round_trips(conn: &mut Conn, n: usize, request: impl Fn() -> (String, Value)) -> Samples {
    let mut line = String::new();
    for _ in 0..n / 10 {
        let (cmd, args) = request();
        conn.send(&cmd, args);
        conn.recv_raw(&mut line);
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let (cmd, args) = request();
        let started = Instant::now();
        conn.send(&cmd, args);
        conn.recv_raw(&mut line);
        samples.push(started.elapsed());
        assert!(line.contains("\"ok\":true"), "{cmd} failed: {line}");
    }
    Samples::new(samples)
}

/// Sends `total` requests from `next` with up to [`WINDOW`] in flight;
/// returns how many were answered with an error.
fn pipeline(conn: &mut Conn, total: usize, mut next: impl FnMut(usize) -> (String, Value)) -> usize {
    let mut sent = 0;
    let mut answered = 0;
    let mut errors = 0;
    let mut line = String::new();
    while answered < total {
        let room = (WINDOW - (sent - answered)).min(total - sent);
        if room > 0 {
            let batch: Vec<_> = (sent..sent + room).map(&mut next).collect();
            sent += conn.send_batch(batch.into_iter());
        }
        assert!(conn.recv_raw(&mut line) > 0, "the daemon closed the connection");
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

    let session = round_trips(&mut conn, round_trip_count, || {
        ("session".into(), json!({"session": "s0"}))
    });
    let send = round_trips(&mut conn, round_trip_count, || {
        (
            "send".into(),
            json!({"session": "s1", "message": {"type": "mcp", "payload": {"jsonrpc": "2.0"}}}),
        )
    });
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
            let answer = sub.call("subscribe", json!({}));
            assert_eq!(answer["ok"], true, "{answer}");
            ready_tx.send(()).unwrap();
            let (mut delivered, mut skipped) = (0usize, 0u64);
            let mut line = String::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while delivered < messages && Instant::now() < deadline {
                if sub.recv_raw(&mut line) == 0 {
                    break;
                }
                if line.contains("\"event\":\"message\"") {
                    delivered += 1;
                } else if line.contains("\"event\":\"lagged\"") {
                    let v: Value = serde_json::from_str(&line).unwrap_or_default();
                    skipped += v["skipped"].as_u64().unwrap_or(0);
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
    let errors = pipeline(&mut conn, messages, |i| {
        (
            "listen".into(),
            json!({"session": format!("s{}", i % sessions), "state": "detect", "text": format!("m{i}")}),
        )
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
    let data = base64::engine::general_purpose::STANDARD.encode(&payload);
    let before = server.stats().binary_frames;
    let per_connection = frames / connections;
    let total = per_connection * connections;
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let mut conn = daemon.connect();
            let data = data.clone();
            thread::spawn(move || {
                pipeline(&mut conn, per_connection, |i| {
                    let session = (i * connections + c) % sessions;
                    ("audio".into(), json!({"session": format!("s{session}"), "data": data}))
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

//! The loopback server's role of this bench binary: wsvisor's loopback
//! server in a process of its own, answering the same control lines as the
//! Python server (benches/pyserver/server.py), so every measurement treats
//! both alike. Times are CLOCK_MONOTONIC seconds, as Python's
//! `time.monotonic()`.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wsvisor_loopback::{EventKind, Fault, Server, ServerOptions};

use crate::procfs;

/// Set in the environment of this binary started as the loopback server.
pub const ROLE: &str = "WSVISOR_INDEPENDENT_ROLE";

/// Milliseconds between the server's own Pings, when set.
pub const PING_MS: &str = "WSVISOR_INDEPENDENT_PING_MS";

/// Set: the server sends every binary frame back.
pub const ECHO: &str = "WSVISOR_INDEPENDENT_ECHO";

/// Runs the role and exits, when this process was started as one.
pub fn serve_if_asked() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
    let ping_interval = std::env::var(PING_MS)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    let server = Server::start(ServerOptions {
        ping_interval,
        echo_binary: std::env::var_os(ECHO).is_some(),
        ..ServerOptions::default()
    })
    .expect("loopback server");
    let clock = Clock::now();
    let mut out = std::io::stdout().lock();
    let mut answer = |value: Value| {
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    };
    answer(json!({"url": server.url(), "pid": std::process::id()}));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["quit"] => break,
            ["stats"] => answer(json!({
                "open": server.open_connections(),
                "ready": ready_connections(&server),
                "binary": server.received_binary_frames(),
                "texts": server.received_text_count(),
                "hellos": server.hellos(),
            })),
            ["now"] => answer(json!({"now": clock.seconds(Instant::now())})),
            ["rst"] => {
                let injected = server.inject_where(None, Fault::Reset);
                answer(json!({"fault": "rst", "at": clock.seconds(injected.at), "connections": injected.connections}));
            }
            ["close", rest @ ..] => {
                let code = rest.first().and_then(|c| c.parse().ok()).unwrap_or(1000);
                let injected = server.inject_where(None, Fault::Close(code, String::new()));
                answer(json!({
                    "fault": "close", "code": code, "at": clock.seconds(injected.at), "connections": injected.connections
                }));
            }
            ["hellos", rest @ ..] => {
                let since: f64 = rest.first().and_then(|s| s.parse().ok()).unwrap_or(0.0);
                let hellos: Vec<Value> = server
                    .events()
                    .into_iter()
                    .filter(|e| matches!(e.kind, EventKind::HelloSent { .. }))
                    .map(|e| (e.device_id.unwrap_or_default(), clock.seconds(e.at)))
                    .filter(|(_, at)| *at >= since)
                    .map(|(device, at)| json!([device, at]))
                    .collect();
                answer(json!({ "hellos": hellos }));
            }
            other => answer(json!({"error": format!("unknown command {other:?}")})),
        }
    }
    drop(server);
    std::process::exit(0);
}

/// Open connections that were answered a hello (the loopback answers every
/// hello at once, so: those open after their hello).
fn ready_connections(server: &Server) -> usize {
    server.open_connections().min(server.hellos() as usize)
}

/// Instants as CLOCK_MONOTONIC seconds.
struct Clock {
    instant: Instant,
    seconds: f64,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            instant: Instant::now(),
            seconds: procfs::monotonic_seconds(),
        }
    }

    fn seconds(&self, at: Instant) -> f64 {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.seconds + after.as_secs_f64(),
            None => self.seconds - self.instant.duration_since(at).as_secs_f64(),
        }
    }
}

//! Idle cost: the real daemon holding N sessions to the loopback server (in
//! another process, so none of its memory or CPU is counted) with every
//! setting at its default (heartbeat 15 s + 10 s), left alone for a while:
//! its resident memory at the end and the CPU seconds it used meanwhile,
//! both read from /proc.

use std::time::Duration;

use crate::children::{Daemon, ServerProcess};
use crate::report::Row;

/// What one idle run measured.
pub struct Idle {
    /// Sessions.
    pub sessions: usize,
    /// From start to every session ready.
    pub startup: Duration,
    /// CPU seconds the start-up took.
    pub startup_cpu: f64,
    /// RSS at the end of the idle period, KiB.
    pub rss_kib: u64,
    /// Peak RSS, KiB.
    pub hwm_kib: u64,
    /// CPU seconds during the idle period.
    pub idle_cpu: f64,
    /// The idle period.
    pub idle_for: Duration,
    /// The loopback server's RSS holding them, KiB.
    pub server_rss_kib: u64,
}

/// Resident memory of a daemon with no session, KiB: the base that the
/// per-session figures are counted from.
pub fn empty_daemon_kib() -> u64 {
    let daemon = Daemon::start("idle0", 0, "ws://127.0.0.1:9/xiaozhi/v1/");
    daemon.wait_ready(0, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    let (rss, _) = daemon.memory_kib();
    daemon.stop();
    rss
}

/// Runs the daemon with `sessions` sessions, idle for `idle_for`.
pub fn measure(sessions: usize, idle_for: Duration) -> Idle {
    let mut server = ServerProcess::start();
    let daemon = Daemon::start(&format!("idle{sessions}"), sessions, server.url());
    let startup = daemon.wait_ready(sessions, Duration::from_secs(120));
    let startup_cpu = daemon.cpu_seconds();
    assert_eq!(
        server.stats().open as usize,
        sessions,
        "the server does not see every session"
    );
    // Let the start-up's last writes and frees settle before the clock starts.
    std::thread::sleep(Duration::from_secs(2));
    let cpu_before = daemon.cpu_seconds();
    std::thread::sleep(idle_for);
    let idle_cpu = daemon.cpu_seconds() - cpu_before;
    let (rss_kib, hwm_kib) = daemon.memory_kib();
    let server_rss_kib = server.rss_kib();
    // Still all there: idleness cost nobody a session.
    daemon.wait_ready(sessions, Duration::from_secs(1));
    daemon.stop();
    drop(server);
    Idle {
        sessions,
        startup,
        startup_cpu,
        rss_kib,
        hwm_kib,
        idle_cpu,
        idle_for,
        server_rss_kib,
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// Rows for one idle run, per-session memory counted above `base_kib`;
/// targets only where the issue sets them.
pub fn rows(idle: &Idle, base_kib: u64) -> Vec<Row> {
    let n = idle.sessions;
    let per_minute = idle.idle_cpu * 60.0 / idle.idle_for.as_secs_f64();
    let rss = mb(idle.rss_kib);
    let secs = idle.idle_for.as_secs();
    let mut rows = vec![Row::info(
        format!("start-up with {n} sessions: all ready after, CPU used"),
        format!("{:.2} s, {:.2} CPU-s", idle.startup.as_secs_f64(), idle.startup_cpu),
    )];
    let rss_target = match n {
        1000 => Some(24.0),
        10_000 => Some(200.0),
        _ => None,
    };
    let rss_text = format!(
        "{rss:.1} MB (peak {:.1} MB; {:.1} KB a session above the empty daemon's {:.1} MB)",
        mb(idle.hwm_kib),
        idle.rss_kib.saturating_sub(base_kib) as f64 * 1024.0 / 1e3 / n.max(1) as f64,
        mb(base_kib)
    );
    rows.push(match rss_target {
        Some(target) => Row::check(
            format!("idle {n} sessions for {secs} s: daemon RSS"),
            rss_text,
            format!("≤ {target:.0} MB"),
            rss <= target,
            format!("{:.1} MB ({:.0} %)", rss - target, (rss / target - 1.0) * 100.0),
        ),
        None => Row::info(format!("idle {n} sessions for {secs} s: daemon RSS"), rss_text),
    });
    let cpu_text = format!("{:.2} CPU-s ({per_minute:.3} CPU-s a minute)", idle.idle_cpu);
    rows.push(if n == 1000 {
        Row::check(
            format!("idle {n} sessions for {secs} s: daemon CPU"),
            cpu_text,
            "≤ 0.15 CPU-s a minute",
            per_minute <= 0.15,
            format!("{:.3} CPU-s a minute", per_minute - 0.15),
        )
    } else {
        Row::info(format!("idle {n} sessions for {secs} s: daemon CPU"), cpu_text)
    });
    rows.push(Row::info(
        format!("loopback server (its own process) holding the {n} connections: RSS"),
        format!("{:.1} MB", mb(idle.server_rss_kib)),
    ));
    rows
}

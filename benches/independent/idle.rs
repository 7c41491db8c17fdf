//! Idle cost against one server: the real daemon holding N sessions with
//! the default heartbeat (15 s + 10 s), left alone; its resident memory at
//! the end and the CPU seconds it used meanwhile, read from /proc, with a
//! sample every 10 s so that periodic work (the server's 20 s Pings, the
//! daemon's own) shows; and how long the daemon took from its start until
//! every session was ready.

use std::time::{Duration, Instant};

use crate::daemon::{Daemon, DaemonSettings};
use crate::procfs;
use crate::servers::{ServerChild, ServerKind};

/// What one idle run measured.
pub struct IdleRun {
    /// From the daemon's start until every session was ready (to within
    /// the polling step, `daemon::READY_POLL`).
    pub startup: Duration,
    /// Daemon CPU seconds used by then.
    pub startup_cpu: f64,
    /// The server's CPU seconds by then (since its own start): near the
    /// start-up time when the server's accept rate is what limits it.
    pub startup_server_cpu: f64,
    /// The idle period.
    pub idle_for: Duration,
    /// Daemon RSS at the end, KiB.
    pub rss_kib: u64,
    /// Daemon peak RSS, KiB.
    pub hwm_kib: u64,
    /// Daemon CPU seconds during the idle period (utime + stime).
    pub cpu: f64,
    /// The same from the scheduler's nanosecond clock.
    pub cpu_precise: f64,
    /// Daemon CPU seconds (scheduler clock) in each 10 s of the idle period.
    pub cpu_per_step: Vec<f64>,
    /// The server's RSS (KiB) and CPU seconds during the idle period.
    pub server: (u64, f64),
    /// 1-minute load average before and after.
    pub load: (f64, f64),
}

impl IdleRun {
    /// Daemon CPU seconds a minute: (utime + stime, scheduler clock).
    pub fn cpu_per_minute(&self) -> (f64, f64) {
        let minutes = self.idle_for.as_secs_f64() / 60.0;
        (self.cpu / minutes, self.cpu_precise / minutes)
    }
}

/// Sampling step of the CPU time line.
const STEP: Duration = Duration::from_secs(10);

/// Holds `sessions` idle sessions against a fresh `kind` server for
/// `idle_for`, the clock starting `settle` after every session is ready
/// (2 s lets start-up's last writes and frees end; about 45 s also lets a
/// heartbeat that learns the server's Ping cadence reach its steady state).
pub fn measure(kind: ServerKind, sessions: usize, settle: Duration, idle_for: Duration) -> IdleRun {
    let load_before = procfs::load().0;
    let mut server = ServerChild::start(kind);
    let daemon = Daemon::start(&DaemonSettings::defaults(sessions), server.url());
    let startup = daemon.wait_ready(sessions, Duration::from_secs(120));
    let startup_cpu = daemon.usage().3;
    let startup_server_cpu = server.usage().1;
    assert_eq!(
        server.ready() as usize,
        sessions,
        "the server does not see every session"
    );
    std::thread::sleep(settle);
    let (_, _, cpu_start, precise_start) = daemon.usage();
    let (_, server_cpu_start) = server.usage();
    let started = Instant::now();
    let mut cpu_per_step = Vec::new();
    let mut last = precise_start;
    while started.elapsed() < idle_for {
        let left = idle_for.saturating_sub(started.elapsed());
        std::thread::sleep(left.min(STEP));
        let (_, _, _, now) = daemon.usage();
        cpu_per_step.push(now - last);
        last = now;
    }
    let (rss_kib, hwm_kib, cpu_end, precise_end) = daemon.usage();
    let (server_rss, server_cpu_end) = server.usage();
    // Still all there: idleness cost nobody a session.
    daemon.wait_ready(sessions, Duration::from_secs(5));
    assert_eq!(server.ready() as usize, sessions, "a session was lost while idle");
    IdleRun {
        startup,
        startup_cpu,
        startup_server_cpu,
        idle_for,
        rss_kib,
        hwm_kib,
        cpu: cpu_end - cpu_start,
        cpu_precise: precise_end - precise_start,
        cpu_per_step,
        server: (server_rss, server_cpu_end - server_cpu_start),
        load: (load_before, procfs::load().0),
    }
}

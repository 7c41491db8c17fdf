//! /proc readings of a process (resident memory, CPU time), the one way
//! the benchmarks start the daemon and wait for its sessions, and the
//! count they report a reconnect spread by. Shared by benches/wsvisor and
//! benches/independent (`#[path]`). A reading that fails fails the
//! benchmark: a 0 would be reported as a figure.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// `sysconf(_SC_CLK_TCK)` on Linux: /proc CPU times are in these.
const CLOCK_TICKS: f64 = 100.0;

/// A `kB` field of /proc/PID/status (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("cannot read /proc/{pid}/status: {err}"));
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// User + system CPU seconds of every thread of `pid` so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|err| panic!("cannot read /proc/{pid}/stat: {err}"));
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of proc(5); `rest` starts at field 3.
    let field = |i: usize| -> u64 {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("/proc/{pid}/stat without utime and stime: {stat}"))
    };
    (field(11) + field(12)) as f64 / CLOCK_TICKS
}

/// CPU seconds of every live thread of `pid` so far, from the scheduler's
/// nanosecond clock (/proc/PID/task/*/schedstat): the 10 ms ticks of
/// `cpu_seconds` are too coarse for an idle daemon's tenths of a second.
/// Threads that already ended are not counted.
pub fn cpu_seconds_precise(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap_or_else(|err| panic!("cannot read /proc/{pid}/task: {err}"));
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    nanos as f64 / 1e9
}

/// CLOCK_MONOTONIC now, in seconds: the clock of the servers' timestamps
/// (Python's `time.monotonic()`).
pub fn monotonic_seconds() -> f64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    ts.tv_sec() as f64 + ts.tv_nsec() as f64 / 1e9
}

/// A wall-clock instant as CLOCK_MONOTONIC seconds, through the two clocks'
/// offset now (the daemon stamps its events with the wall clock).
pub fn monotonic_from_wall(at: std::time::SystemTime) -> f64 {
    let wall_now = std::time::SystemTime::now();
    let mono_now = monotonic_seconds();
    match wall_now.duration_since(at) {
        Ok(ago) => mono_now - ago.as_secs_f64(),
        Err(ahead) => mono_now + ahead.duration().as_secs_f64(),
    }
}

/// The 1-minute load average and the machine's CPU count, for the report.
pub fn load() -> (f64, usize) {
    let one = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    (one, std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `wsvisor run --config CONFIG` as the benchmarks start it: logging to
/// `log`, no journal or systemd notification inherited, in its own process
/// group (a Ctrl-C on the benchmark is the benchmark's to handle).
pub fn daemon_command(binary: &Path, config: &Path, log: std::fs::File) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("run")
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0);
    command
}

/// Polls `status` every `poll` until `n` sessions are ready; panics past `limit`.
pub fn wait_ready(
    control: &mut wsvisor::control_client::blocking::Client,
    n: usize,
    limit: std::time::Duration,
    poll: std::time::Duration,
) {
    let started = std::time::Instant::now();
    loop {
        let status: wsvisor::protocol::Status = control.result(&wsvisor::protocol::Command::Status).expect("status");
        let ready = status.sessions.by_state.get("ready").copied().unwrap_or(0) as usize;
        if ready >= n {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "only {ready} of {n} sessions ready after {limit:?}"
        );
        std::thread::sleep(poll);
    }
}

/// The largest number of instants within any `window` (sliding), `sorted` ascending.
pub fn busiest(sorted: &[std::time::Duration], window: std::time::Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end] - sorted[start] >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

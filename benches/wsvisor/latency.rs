//! The forwarding-latency rows: the shared measurement
//! (benches/shared/forward_latency.rs) against the loopback server in its
//! own process, echoing binary frames, and the real daemon.

use std::time::Duration;

use crate::children::{Daemon, ServerProcess};
use crate::forward_latency::{self, Latency, PathRun, Plan, FRAME_BYTES, FRAME_EVERY};
use crate::report::{ms, Row};

/// The bound on what the daemon adds at p99.
const ADDED_P99: Duration = Duration::from_micros(500);

/// Measures both paths and words them.
pub fn rows(plan: Plan) -> Vec<Row> {
    let mut server = ServerProcess::start_echoing();
    let daemon = Daemon::start("latency", plan.sessions, server.url());
    daemon.wait_ready(plan.sessions, Duration::from_secs(30));
    let cpu_before = daemon.cpu_seconds();
    let run = forward_latency::measure(server.url(), daemon.socket(), plan);
    let cpu = daemon.cpu_seconds() - cpu_before;
    // The server saw every frame of both paths, warm-up included.
    assert!(server.stats().binary_frames as usize >= run.direct.sent + run.daemon.sent);
    daemon.stop();
    words(&run, plan, cpu)
}

/// The rows of one run; `cpu`: the daemon's CPU seconds meanwhile.
fn words(run: &Latency, plan: Plan, cpu: f64) -> Vec<Row> {
    let setup = format!(
        "{FRAME_BYTES}-byte frames every {} ms × {} sessions, round trip to an echoing server",
        FRAME_EVERY.as_millis(),
        plan.sessions
    );
    let summary = |path: &PathRun| {
        format!(
            "{} / {} / {} ms ({} frames, {} lost)",
            ms(path.pct(50.0)),
            ms(path.pct(99.0)),
            ms(path.max()),
            path.samples.len(),
            path.lost()
        )
    };
    let added = run.added(99.0);
    vec![
        Row::info(
            format!("forwarding latency: {setup}, direct (the floor), p50 / p99 / max"),
            summary(&run.direct),
        ),
        Row::info(
            format!(
                "forwarding latency: {setup}, through the daemon, p50 / p99 / max; daemon CPU a frame (up and down)"
            ),
            format!(
                "{}, {} refused; {:.0} µs",
                summary(&run.daemon),
                run.refused,
                cpu * 1e6 / run.through_daemon.max(1) as f64
            ),
        ),
        Row::check(
            "forwarding latency: added by the daemon (up and down together), p50 / p99 / max",
            format!("{} / {} / {} ms", ms(run.added(50.0)), ms(added), ms(run.added_max())),
            "p99 ≤ 0.5 ms",
            added <= ADDED_P99 && run.daemon.lost() == 0 && run.refused == 0,
            if added > ADDED_P99 {
                format!("{} ms", ms(added - ADDED_P99))
            } else {
                format!("{} frames lost or refused", run.daemon.lost() + run.refused)
            },
        ),
    ]
}

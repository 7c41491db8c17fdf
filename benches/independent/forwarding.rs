//! Forwarding latency against one server: the shared measurement
//! (benches/shared/forward_latency.rs) with `kind` echoing binary frames,
//! and the real daemon's sessions at their defaults.

use std::time::Duration;

use crate::daemon::{Daemon, DaemonSettings};
use crate::forward_latency::{self, Latency, Plan};
use crate::servers::{ServerChild, ServerKind};

/// Both paths against a fresh `kind` server, and the daemon's CPU
/// seconds (scheduler clock) meanwhile.
pub fn measure(kind: ServerKind, plan: Plan) -> (Latency, f64) {
    let server = ServerChild::start_echoing(kind);
    let daemon = Daemon::start(&DaemonSettings::defaults(plan.sessions), server.url());
    daemon.wait_ready(plan.sessions, Duration::from_secs(60));
    let cpu_before = daemon.usage().3;
    let run = forward_latency::measure(server.url(), daemon.socket(), plan);
    (run, daemon.usage().3 - cpu_before)
}

//! wsvisor's benchmarks (issue 5), one command:
//!
//! ```sh
//! cargo bench --bench wsvisor               # the full run of the README (about 6 minutes)
//! cargo bench --bench wsvisor -- --quick    # the same, smaller (about a minute; CI)
//! cargo bench --bench wsvisor -- idle       # only some: detection recovery idle control forwarding
//! ```
//!
//! Prints a Markdown table of results, each against the issue's target where
//! it sets one, and the machine it ran on. Latencies are measured in one
//! process (`inprocess`); costs and the control plane on the real daemon in
//! a child process, with the loopback server in another (`children`), so
//! neither's memory, CPU or file descriptors count for the other. Every loop
//! is bounded in count and time; only loopback addresses are used.

mod children;
mod control;
#[path = "../shared/forward_latency.rs"]
mod forward_latency;
mod idle;
mod inprocess;
mod latency;
// This bench reads less of /proc than the independent one (no clocks).
#[allow(dead_code)]
#[path = "../shared/procfs.rs"]
mod procfs;
mod report;
// The tests' session settings and state watcher, shared rather than copied:
// Cargo gives a package's test and bench targets no common module of their
// own, and these are test helpers, not library API. The control socket
// itself is reached through the library's one client (`wsvisor::control_client`).
#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use report::Row;

/// Sizes of a run.
struct Plan {
    quick: bool,
    trials: usize,
    mass_reset_sessions: usize,
    mass_reset_rounds: usize,
    idle: Vec<usize>,
    idle_for: Duration,
    round_trips: usize,
    event_messages: usize,
    audio_frames: usize,
    latency: forward_latency::Plan,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            quick: false,
            trials: 200,
            mass_reset_sessions: 1000,
            mass_reset_rounds: 5,
            idle: vec![1000, 10_000],
            idle_for: Duration::from_secs(60),
            round_trips: 10_000,
            event_messages: 5_000,
            audio_frames: 200_000,
            latency: forward_latency::Plan::full(),
        }
    }

    fn quick() -> Plan {
        Plan {
            quick: true,
            trials: 50,
            mass_reset_sessions: 1000,
            mass_reset_rounds: 1,
            idle: vec![200],
            idle_for: Duration::from_secs(10),
            round_trips: 2_000,
            event_messages: 1_000,
            audio_frames: 20_000,
            latency: forward_latency::Plan::quick(),
        }
    }
}

const ALL: [&str; 5] = ["detection", "recovery", "idle", "control", "forwarding"];

fn main() {
    // The server role of this same binary (see `children`) runs and exits here.
    children::serve_if_asked();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = if args.iter().any(|a| a == "--quick") {
        Plan::quick()
    } else {
        Plan::full()
    };
    // `cargo bench` adds `--bench`; other flags are not ours either.
    let only: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    if let Some(unknown) = only.iter().find(|name| !ALL.contains(name)) {
        eprintln!("unknown benchmark {unknown:?}; choose from {}", ALL.join(", "));
        std::process::exit(2);
    }
    let wanted = |name: &str| only.is_empty() || only.contains(&name);
    let fd_limit = children::raise_fd_limit();
    if wanted("idle") && plan.idle.iter().any(|&n| n as u64 + 100 > fd_limit) {
        eprintln!("warning: the open-file limit is {fd_limit}; 10,000 sessions need more than that");
    }

    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut section = |name: &str, run: &mut dyn FnMut() -> Vec<Row>| {
        if !wanted(name) {
            return;
        }
        eprintln!("== {name}");
        let t = Instant::now();
        let new = run();
        for row in &new {
            eprintln!("   {}: {} [{}]", row.bench, row.result, row.verdict);
        }
        eprintln!("   ({:.1} s)", t.elapsed().as_secs_f64());
        rows.extend(new);
    };

    section("detection", &mut || {
        actix_rt::System::new().block_on(inprocess::detection_rows(plan.trials))
    });
    section("recovery", &mut || {
        actix_rt::System::new().block_on(async {
            let n = plan.mass_reset_sessions;
            let mut rows = inprocess::recovery_rows(n, plan.mass_reset_rounds).await;
            rows.push(inprocess::mass_close_row(n, plan.mass_reset_rounds).await);
            if !plan.quick {
                rows.push(inprocess::wider_jitter_row(n, plan.mass_reset_rounds, 0.8).await);
            }
            rows
        })
    });
    section("idle", &mut || {
        let base = idle::empty_daemon_kib();
        plan.idle
            .iter()
            .flat_map(|&n| idle::rows(&idle::measure(n, plan.idle_for), base))
            .collect()
    });
    section("control", &mut || {
        control::control_plane(plan.round_trips, plan.event_messages)
    });
    section("forwarding", &mut || {
        let mut rows = control::forwarding(plan.audio_frames);
        rows.extend(latency::rows(plan.latency));
        rows
    });

    println!(
        "\n## wsvisor benchmarks ({} run, {:.0} s)\n\nMachine: {}\n\n{}",
        if plan.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64(),
        report::machine(),
        report::table(&rows)
    );
}

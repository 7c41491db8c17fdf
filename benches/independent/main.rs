//! The daemon against an independent server (issue 14): the same
//! measurements against wsvisor's own loopback server and against a Python
//! `websockets` 14.2 server that behaves like xiaozhi-esp32-server
//! (benches/pyserver/server.py, installed on first use into
//! target/pyserver-venv by scripts/pyserver-venv.sh), each in its own
//! process, the real daemon (`wsvisor run`) in a third.
//!
//! ```sh
//! cargo bench --bench independent                       # idle (with its start-up floor) + spread + forwarding, loopback and python
//! cargo bench --bench independent -- idle --for 180     # 3 minutes, so the server's 20 s Pings matter
//! cargo bench --bench independent -- idle --settle 45   # the clock starts 45 s after all are ready
//! cargo bench --bench independent -- spread --servers python --rounds 5
//! cargo bench --bench independent -- forwarding         # latency the daemon adds to audio frames
//! cargo bench --bench independent -- --quick            # 200 sessions, 10 s, 1 round, 3 s of frames a path
//! ```
//!
//! Servers (`--servers a,b`): `loopback`, `loopback-ping` (it sends its own
//! Ping every 20 s), `python` (the library's keep-alive: a Ping every 20 s,
//! as in the field), `python-noping`. Prints a Markdown table. Every loop is
//! bounded in count and time; only 127.0.0.1 is used.

mod daemon;
mod floor;
#[path = "../shared/forward_latency.rs"]
mod forward_latency;
mod forwarding;
mod idle;
mod loopback_role;
#[path = "../shared/procfs.rs"]
mod procfs;
mod servers;
mod spread;

use std::time::Duration;

use daemon::DaemonSettings;
use servers::ServerKind;
use spread::MassFault;

/// The sections, in the order they run for each server.
const SECTIONS: [&str; 3] = ["idle", "spread", "forwarding"];

/// What to run.
struct Plan {
    sections: Vec<String>,
    servers: Vec<ServerKind>,
    sessions: usize,
    idle_for: Duration,
    settle: Duration,
    rounds: usize,
    variants: bool,
    latency: forward_latency::Plan,
}

impl Plan {
    fn from_args() -> Plan {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .map(String::as_str)
        };
        let number = |flag: &str, default: u64| {
            value(flag).map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| usage(&format!("{flag} takes a number, not {v:?}")))
            })
        };
        let servers = value("--servers")
            .unwrap_or("loopback,python")
            .split(',')
            .map(|name| ServerKind::parse(name).unwrap_or_else(|| usage(&format!("unknown server {name:?}"))))
            .collect();
        // Bare words are sections; flag values and cargo's own `--bench` are not.
        let mut sections = Vec::new();
        let mut skip_next = false;
        for arg in &args {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            if ["--servers", "--sessions", "--for", "--settle", "--rounds"].contains(&arg.as_str()) {
                skip_next = true;
            } else if !arg.starts_with("--") {
                if !SECTIONS.contains(&arg.as_str()) {
                    usage(&format!("unknown section {arg:?}"));
                }
                sections.push(arg.clone());
            }
        }
        if sections.is_empty() {
            sections = SECTIONS.iter().map(|s| s.to_string()).collect();
        }
        Plan {
            sections,
            servers,
            sessions: number("--sessions", if quick { 200 } else { 1000 }) as usize,
            idle_for: Duration::from_secs(number("--for", if quick { 10 } else { 60 })),
            settle: Duration::from_secs(number("--settle", 2)),
            rounds: number("--rounds", if quick { 1 } else { 3 }) as usize,
            variants: args.iter().any(|a| a == "--variants"),
            latency: if quick {
                forward_latency::Plan::quick()
            } else {
                forward_latency::Plan::full()
            },
        }
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "{why}\nusage: cargo bench --bench independent -- [idle] [spread] [forwarding] [--servers loopback,loopback-ping,python,python-noping] \
         [--sessions N] [--for SECONDS] [--settle SECONDS] [--rounds N] [--variants] [--quick]"
    );
    std::process::exit(2);
}

/// Raises the soft open-file limit to the hard one (children inherit it):
/// 10,000 sessions need 10,000 sockets in the daemon and as many in the
/// server; says so when that is still too few.
fn raise_fd_limit(sessions: usize) {
    let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return;
    };
    let limit = if soft < hard && rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    if limit < sessions as u64 + 100 {
        eprintln!("warning: the open-file limit is {limit}; {sessions} sessions need more than that");
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// Milliseconds to the microsecond.
fn ms3(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

/// Reconnect settings a spread run uses: the defaults (initial_delay
/// 500 ms, jitter 0.5); with `--variants` also a wider jitter (0.99) at
/// 375 ms and at 500 ms, to compare with phase 1's policy studies.
fn policies(sessions: usize, variants: bool) -> Vec<(&'static str, DaemonSettings)> {
    let quick_rounds = |mut s: DaemonSettings| {
        s.stable_after = Duration::from_secs(1);
        s
    };
    let default = quick_rounds(DaemonSettings::defaults(sessions));
    let mut full = default.clone();
    full.initial_delay = Duration::from_millis(375);
    full.jitter = 0.99;
    let mut wider = default.clone();
    wider.jitter = 0.99;
    let mut chosen = vec![("defaults (500 ms, jitter 0.5)", default)];
    if variants {
        chosen.push(("375 ms, jitter 0.99", full));
        chosen.push(("500 ms, jitter 0.99", wider));
    }
    chosen
}

fn main() {
    loopback_role::serve_if_asked();
    let plan = Plan::from_args();
    raise_fd_limit(plan.sessions);
    let (load, cpus) = procfs::load();
    eprintln!("load average {load:.2} on {cpus} CPUs at the start");
    let mut rows: Vec<[String; 3]> = Vec::new();
    let mut row = |server: String, what: String, result: String| {
        eprintln!("   {server} | {what} | {result}");
        rows.push([server, what, result]);
    };
    for &kind in &plan.servers {
        if plan.sections.iter().any(|s| s == "idle") {
            let n = plan.sessions;
            let secs = plan.idle_for.as_secs();
            eprintln!("== idle {n} sessions, {secs} s, {}", kind.label());
            let secs = format!("{secs} s (clock from {} s after ready)", plan.settle.as_secs());
            let floor = floor::measure(kind, n);
            row(
                kind.label(),
                format!(
                    "start-up floor: {n} plain WebSocket clients ({} upgrades in flight, as the daemon), all answered after; server CPU by then",
                    wsvisor_actors::connection::UPGRADES_IN_FLIGHT
                ),
                format!("{:.2} s; {:.2} CPU-s", floor.all_answered.as_secs_f64(), floor.server_cpu),
            );
            let run = idle::measure(kind, n, plan.settle, plan.idle_for);
            row(
                kind.label(),
                format!("start-up with {n} sessions: all ready after (± 50 ms), daemon CPU used; server CPU by then"),
                format!(
                    "{:.2} s, {:.2} CPU-s; {:.2} CPU-s",
                    run.startup.as_secs_f64(),
                    run.startup_cpu,
                    run.startup_server_cpu
                ),
            );
            row(
                kind.label(),
                format!("idle {n} sessions {secs}: daemon RSS (peak)"),
                format!("{:.1} MB ({:.1} MB)", mb(run.rss_kib), mb(run.hwm_kib)),
            );
            let steps: Vec<String> = run.cpu_per_step.iter().map(|c| format!("{c:.3}")).collect();
            let (ticks, precise) = run.cpu_per_minute();
            row(
                kind.label(),
                format!("idle {n} sessions {secs}: daemon CPU-s a minute (utime+stime; scheduler ns)"),
                format!("{ticks:.3}; {precise:.3} (per 10 s: {})", steps.join(" ")),
            );
            row(
                kind.label(),
                format!("idle {n} sessions {secs}: server RSS, CPU"),
                format!(
                    "{:.1} MB, {:.2} CPU-s (load {:.1} → {:.1})",
                    mb(run.server.0),
                    run.server.1,
                    run.load.0,
                    run.load.1
                ),
            );
        }
        if plan.sections.iter().any(|s| s == "spread") {
            for fault in [MassFault::Reset, MassFault::Close1000] {
                for (policy, settings) in policies(plan.sessions, plan.variants) {
                    eprintln!(
                        "== {} of {}, reconnect {policy}, {}",
                        fault.label(),
                        plan.sessions,
                        kind.label()
                    );
                    let rounds = spread::measure(kind, &settings, fault, plan.rounds);
                    let worst = rounds.iter().map(|r| r.busiest_100ms).max().unwrap_or(0);
                    let worst_attempts = rounds.iter().map(|r| r.busiest_attempts_100ms).max().unwrap_or(0);
                    let worst_scheduled = rounds.iter().map(|r| r.busiest_scheduled_100ms).max().unwrap_or(0);
                    let n = rounds.first().map_or(0, |r| r.hit).max(1);
                    let pct = |count: usize| count as f64 * 100.0 / n as f64;
                    let per_round: Vec<String> = rounds
                        .iter()
                        .map(|r| {
                            format!(
                                "scheduled {:.1} %, attempts {:.1} % by {} ms, hellos {}/{}/{} ms {:.1} %",
                                pct(r.busiest_scheduled_100ms),
                                pct(r.busiest_attempts_100ms),
                                ms(r.last_attempt),
                                ms(r.first_back),
                                ms(r.median_back),
                                ms(r.all_back),
                                pct(r.busiest_100ms)
                            )
                        })
                        .collect();
                    row(
                        kind.label(),
                        format!(
                            "{} of {n}, reconnect {policy}: busiest 100 ms of scheduled / started attempts / \
                             server hellos (worst of {}); per round: the same, last attempt; hellos first/median/all",
                            fault.label(),
                            rounds.len()
                        ),
                        format!(
                            "{:.1} % / {:.1} % / {:.1} %; {}",
                            pct(worst_scheduled),
                            pct(worst_attempts),
                            pct(worst),
                            per_round.join("; ")
                        ),
                    );
                }
            }
        }
        if plan.sections.iter().any(|s| s == "forwarding") {
            let p = plan.latency;
            eprintln!("== forwarding latency, {} sessions, {}", p.sessions, kind.label());
            let load_before = procfs::load().0;
            let (run, cpu) = forwarding::measure(kind, p);
            let summary = |path: &forward_latency::PathRun| {
                format!(
                    "{} / {} / {} ms ({} frames, {} lost)",
                    ms3(path.pct(50.0)),
                    ms3(path.pct(99.0)),
                    ms3(path.max()),
                    path.samples.len(),
                    path.lost()
                )
            };
            row(
                kind.label(),
                format!(
                    "forwarding: {}-byte frames every {} ms × {} sessions, round trip to the echo: direct (the floor) p50 / p99 / max; through the daemon",
                    forward_latency::FRAME_BYTES,
                    forward_latency::FRAME_EVERY.as_millis(),
                    p.sessions
                ),
                format!("{}; {}, {} refused", summary(&run.direct), summary(&run.daemon), run.refused),
            );
            row(
                kind.label(),
                "forwarding: latency the daemon adds (up and down together), p50 / p99 / max; daemon CPU a frame"
                    .to_owned(),
                format!(
                    "{} / {} / {} ms; {:.0} µs (load {load_before:.1} → {:.1})",
                    ms3(run.added(50.0)),
                    ms3(run.added(99.0)),
                    ms3(run.added_max()),
                    cpu * 1e6 / run.through_daemon.max(1) as f64,
                    procfs::load().0
                ),
            );
        }
    }
    let (load_end, _) = procfs::load();
    println!("\n## wsvisor against an independent server\n");
    println!("Load average {load:.2} at the start, {load_end:.2} at the end, on {cpus} CPUs.\n");
    println!("| server | measurement | result |\n|---|---|---|");
    for [server, what, result] in rows {
        println!("| {server} | {what} | {result} |");
    }
}

//! The daemon against an independent server (issue 14): the same
//! measurements against wsvisor's own loopback server and against a Python
//! `websockets` 14.2 server that behaves like xiaozhi-esp32-server
//! (benches/pyserver/server.py, installed on first use into
//! target/pyserver-venv by scripts/pyserver-venv.sh), each in its own
//! process, the real daemon (`wsvisor run`) in a third.
//!
//! ```sh
//! cargo bench --bench independent                       # idle + spread, loopback and python
//! cargo bench --bench independent -- idle --for 180     # 3 minutes, so the server's 20 s Pings matter
//! cargo bench --bench independent -- idle --settle 45   # the clock starts 45 s after all are ready
//! cargo bench --bench independent -- spread --servers python --rounds 5
//! cargo bench --bench independent -- --quick            # 200 sessions, 10 s, 1 round
//! ```
//!
//! Servers (`--servers a,b`): `loopback`, `loopback-ping` (it sends its own
//! Ping every 20 s), `python` (the library's keep-alive: a Ping every 20 s,
//! as in the field), `python-noping`. Prints a Markdown table. Every loop is
//! bounded in count and time; only 127.0.0.1 is used.

mod daemon;
mod idle;
mod loopback_role;
mod procfs;
mod servers;
mod spread;

use std::time::Duration;

use daemon::DaemonSettings;
use servers::ServerKind;
use spread::MassFault;

/// What to run.
struct Plan {
    sections: Vec<String>,
    servers: Vec<ServerKind>,
    sessions: usize,
    idle_for: Duration,
    settle: Duration,
    rounds: usize,
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
                if !["idle", "spread"].contains(&arg.as_str()) {
                    usage(&format!("unknown section {arg:?}"));
                }
                sections.push(arg.clone());
            }
        }
        if sections.is_empty() {
            sections = vec!["idle".into(), "spread".into()];
        }
        Plan {
            sections,
            servers,
            sessions: number("--sessions", if quick { 200 } else { 1000 }) as usize,
            idle_for: Duration::from_secs(number("--for", if quick { 10 } else { 60 })),
            settle: Duration::from_secs(number("--settle", 2)),
            rounds: number("--rounds", if quick { 1 } else { 3 }) as usize,
        }
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "{why}\nusage: cargo bench --bench independent -- [idle] [spread] [--servers loopback,loopback-ping,python,python-noping] \
         [--sessions N] [--for SECONDS] [--settle SECONDS] [--rounds N] [--quick]"
    );
    std::process::exit(2);
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

/// Reconnect policies compared: today's default first retry, [250, 750] ms,
/// and "full jitter" over [0, 750] ms (375 ms ± 99 %; jitter must stay
/// below 1) and over [0, 1000] ms.
fn policies(sessions: usize) -> Vec<(&'static str, DaemonSettings)> {
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
    vec![
        ("500 ms ± 50 %", default),
        ("375 ms ± 99 % (≈ full jitter 0-750 ms)", full),
        ("500 ms ± 99 % (≈ full jitter 0-1000 ms)", wider),
    ]
}

fn main() {
    loopback_role::serve_if_asked();
    let plan = Plan::from_args();
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
            let run = idle::measure(kind, n, plan.settle, plan.idle_for);
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
                for (policy, settings) in policies(plan.sessions) {
                    eprintln!(
                        "== {} of {}, first retry {policy}, {}",
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
                            "{} of {n}, first retry {policy}: busiest 100 ms of scheduled / started attempts / \
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
    }
    let (load_end, _) = procfs::load();
    println!("\n## wsvisor against an independent server\n");
    println!("Load average {load:.2} at the start, {load_end:.2} at the end, on {cpus} CPUs.\n");
    println!("| server | measurement | result |\n|---|---|---|");
    for [server, what, result] in rows {
        println!("| {server} | {what} | {result} |");
    }
}

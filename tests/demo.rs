//! `wsvisor demo`, run as a user would but with stdout not a terminal (so it
//! prints plain lines): it injects faults, every one is repaired, the summary
//! says so, and it leaves neither its daemon nor its files behind; Ctrl-C
//! ends it early in the same clean way; a fault that cannot be repaired
//! makes it exit 1 naming the fault.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::process::{signal, wait_with_timeout, wsvisor};

/// The whole demo: 6 s of faults, a few seconds to start, the repair of the
/// last fault (at most 10 s by the demo's own bound) and the stop.
const DEMO_LIMIT: Duration = Duration::from_secs(60);

/// The demo's stdout, line by line as it comes.
struct Output {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Output {
    fn of(child: &mut Child) -> Output {
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Output {
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads until a line contains `needle` (bounded).
    fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {limit:?}; got:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Everything up to the end of the stream.
    fn rest(mut self) -> String {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

/// The number after `label` on its line of the summary.
fn number_after(text: &str, label: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?}: {line}"))
}

/// M of the summary's `recovered: N of M session losses`.
fn losses(text: &str) -> u64 {
    text.lines()
        .find(|l| l.trim_start().starts_with("recovered:"))
        .and_then(|l| l.split(" of ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `recovered: N of M` in:\n{text}"))
}

/// The daemon's pid and the scratch directory, from the introduction.
fn intro(output: &mut Output) -> (u32, PathBuf) {
    let daemon = output.wait_for("  daemon ", Duration::from_secs(10));
    let pid = daemon
        .split_whitespace()
        .nth(2)
        .and_then(|p| p.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {daemon:?}"));
    let files = output.wait_for("  files ", Duration::from_secs(1));
    let dir = PathBuf::from(files.split_whitespace().nth(1).unwrap());
    assert!(dir.join("config.toml").exists(), "{} has no config", dir.display());
    (pid, dir)
}

/// Whether `pid` is still a wsvisor process (a zombie counts as gone).
fn daemon_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.contains("(wsvisor)") && !stat.contains(") Z "),
        Err(_) => false,
    }
}

#[test]
fn demo_injects_faults_and_every_one_is_repaired() {
    let mut child = wsvisor(&["demo", "--duration", "6s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = Output::of(&mut child);
    let (pid, dir) = intro(&mut output);
    output.wait_for("sessions ready", Duration::from_secs(15));
    output.wait_for("FAULT", Duration::from_secs(10));
    let status = wait_with_timeout(&mut child, DEMO_LIMIT).expect("the demo did not end in time");
    let text = output.rest();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "exit {status}\nstdout:\n{text}\nstderr:\n{stderr}");

    let faults = number_after(&text, "faults injected:");
    assert!(faults >= 3, "only {faults} faults in 6 s:\n{text}");
    let recovered = number_after(&text, "recovered:");
    let losses = losses(&text);
    assert!(losses >= faults, "{text}");
    assert_eq!(recovered, losses, "not every loss was repaired:\n{text}");
    // The faults come in the documented order.
    for (kind, cause) in [
        ("idle close", "server_close 1000"),
        ("close 1005", "server_close 1005"),
        ("RST", "reset"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(kind) && l.contains(cause)),
            "no {kind} row with {cause}:\n{text}"
        );
    }
    let sent = number_after(&text, "messages:");
    assert!(sent > 0, "{text}");
    assert_stopped_cleanly(&text, pid, &dir);
}

#[test]
fn ctrl_c_stops_the_demo_cleanly() {
    let mut child = wsvisor(&["demo", "--duration", "60s", "--sessions", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut output = Output::of(&mut child);
    let (pid, dir) = intro(&mut output);
    output.wait_for("sessions ready", Duration::from_secs(15));
    assert!(daemon_alive(pid));
    signal(&child, "INT");
    let status = wait_with_timeout(&mut child, Duration::from_secs(10)).expect("the demo ignored SIGINT");
    let text = output.rest();
    assert!(status.success(), "exit {status}:\n{text}");
    assert!(text.contains("(interrupted)"), "{text}");
    assert!(text.contains("faults injected:"), "{text}");
    assert_stopped_cleanly(&text, pid, &dir);
}

/// The demo stopped its daemon with SIGTERM, the daemon is gone, and so is
/// the demo's scratch directory.
fn assert_stopped_cleanly(text: &str, pid: u32, dir: &std::path::Path) {
    assert!(text.contains("stopped by SIGTERM, exit 0"), "{text}");
    assert!(!daemon_alive(pid), "the daemon (pid {pid}) outlived the demo");
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

/// The loopback server's port, from the introduction's `server` line.
fn server_port(output: &Output) -> u16 {
    let line = output
        .seen
        .iter()
        .find(|l| l.trim_start().starts_with("server "))
        .expect("a server line in the introduction");
    line.split("ws://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

#[test]
fn a_fault_that_is_never_repaired_fails_the_demo_and_is_named() {
    // The outage closes the server's listener for 2 s. Taking its port
    // meanwhile keeps the server from ever listening again: the sessions
    // can never come back, and the demo must say so and exit 1.
    let mut child = wsvisor(&["demo", "--duration", "15s", "--sessions", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = Output::of(&mut child);
    let (pid, dir) = intro(&mut output);
    let port = server_port(&output);
    output.wait_for("sessions ready", Duration::from_secs(15));
    // The outage is the fifth fault of the cycle, due a few seconds in.
    output.wait_for("FAULT outage", Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_millis(1500);
    let squatter = loop {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => break listener,
            Err(err) => {
                assert!(
                    Instant::now() < deadline,
                    "port {port} never free during the outage: {err}"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    let status = wait_with_timeout(&mut child, DEMO_LIMIT).expect("the demo did not end in time");
    drop(squatter);
    let text = output.rest();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "stdout:\n{text}\nstderr:\n{stderr}");
    let (recovered, losses) = (number_after(&text, "recovered:"), losses(&text));
    assert_eq!(
        losses - recovered,
        2,
        "the outage's two losses, and only they, stay unrepaired:\n{text}"
    );
    let outage = text
        .lines()
        .find(|l| l.trim_start().starts_with("outage"))
        .unwrap_or_else(|| panic!("no outage row in the summary:\n{text}"));
    assert!(outage.contains(" 0/2 "), "both sessions are still down: {outage}");
    assert!(
        stderr.contains(&format!(
            "2 of {losses} session losses were not repaired within 10s after the run: outage ("
        )),
        "the exit names the fault not repaired:\n{stderr}"
    );
    assert_stopped_cleanly(&text, pid, &dir);
}

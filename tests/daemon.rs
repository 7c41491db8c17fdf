//! The real `wsvisor` binary: clean stop on SIGTERM, `check` exit codes,
//! journald-style log lines, and no token in any line.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use wsvisor_loopback::{EventKind, Mode, Server, ServerOptions};

const TOKEN: &str = "s3cr3t-token-never-logged";

/// A scratch directory removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("wsvisor-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn session_toml(name: &str, url: &str) -> String {
    format!(
        "[[session]]\nname = \"{name}\"\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\ndevice_id = \"dev-{name}\"\n\
         client_id = \"6f1c0b8e-0000-4000-8000-000000000001\"\n"
    )
}

fn config_toml(sessions: &[(&str, &str)]) -> String {
    let mut text = String::from(
        "[defaults]\nhello_timeout = \"1s\"\n[defaults.reconnect]\ninitial_delay = \"20ms\"\nmax_delay = \"100ms\"\n\
         max_attempts = 1000\n",
    );
    for (name, url) in sessions {
        text.push_str(&session_toml(name, url));
    }
    text
}

fn wsvisor(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsvisor"));
    command.args(args).env_remove("RUST_LOG").env_remove("JOURNAL_STREAM");
    command
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    None
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn read_all(path: &Path) -> String {
    let mut text = String::new();
    std::fs::File::open(path).unwrap().read_to_string(&mut text).unwrap();
    text
}

#[test]
fn sigterm_closes_every_session_with_1000_and_exits_0_within_2s() {
    let ready = Server::start(ServerOptions::default()).unwrap();
    // A second session is refused over and over: its retries must stop with the signal.
    let refusing = Server::start(ServerOptions {
        mode: Mode::RefuseUpgrade(503),
        ..Default::default()
    })
    .unwrap();
    let scratch = Scratch::new("sigterm");
    let config = scratch.write(
        "config.toml",
        &config_toml(&[("kitchen", &ready.url()), ("attic", &refusing.url())]),
    );
    let log = scratch.0.join("stderr.log");
    let mut child = wsvisor(&["run", "--config", config.to_str().unwrap()])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    assert!(
        ready.wait_for_hellos(1, Duration::from_secs(5)),
        "the session never became ready"
    );
    assert!(
        refusing.wait_until(Duration::from_secs(5), |s| s.accepted() >= 3),
        "no retries seen"
    );

    let signalled = Instant::now();
    signal(&child, "TERM");
    let status = wait_with_timeout(&mut child, Duration::from_secs(2)).expect("did not exit within 2 s");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(ready.wait_until(Duration::from_secs(1), |s| s.closes_received().contains(&Some(1000))));

    // Anything accepted well after the signal was an attempt started after it.
    let late: Vec<_> = refusing
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Accepted { .. }))
        .filter(|e| e.at > signalled + Duration::from_millis(20))
        .collect();
    assert!(late.is_empty(), "connection attempts after SIGTERM: {late:?}");

    let stderr = read_all(&log);
    assert!(stderr.contains("session=kitchen connected url="), "{stderr}");
    assert!(
        stderr.contains("session=attic lost cause=http_status status=503"),
        "{stderr}"
    );
    assert!(stderr.contains("stopping signal=SIGTERM"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "the token leaked into the log");
    eprintln!("SIGTERM to exit: {took:?}");
}

#[test]
fn sigint_stops_too() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let scratch = Scratch::new("sigint");
    let config = scratch.write("config.toml", &config_toml(&[("kitchen", &server.url())]));
    let mut child = wsvisor(&["run", "--config", config.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(server.wait_for_hellos(1, Duration::from_secs(5)));
    signal(&child, "INT");
    let status = wait_with_timeout(&mut child, Duration::from_secs(2)).expect("did not exit within 2 s");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn journald_lines_have_priorities_and_no_timestamps() {
    let server = Server::start(ServerOptions {
        mode: Mode::RefuseUpgrade(401),
        ..Default::default()
    })
    .unwrap();
    let scratch = Scratch::new("journal");
    let config = scratch.write("config.toml", &config_toml(&[("kitchen", &server.url())]));
    let log = scratch.0.join("journal.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let meta = stderr.metadata().unwrap();
    let mut child = wsvisor(&["run", "--config", config.to_str().unwrap()])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(stderr)
        .spawn()
        .unwrap();
    assert!(server.wait_until(Duration::from_secs(5), |s| s.accepted() >= 1));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !read_all(&log).contains("gave up") {
        assert!(Instant::now() < deadline, "no give-up line: {}", read_all(&log));
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "TERM");
    wait_with_timeout(&mut child, Duration::from_secs(2)).expect("did not exit");
    let text = read_all(&log);
    for line in text.lines() {
        let priority = line.get(..3).unwrap_or_default();
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&priority),
            "no priority prefix: {line}"
        );
        assert!(
            !line.contains("2026-") && !line.contains("Z "),
            "timestamp in a journald line: {line}"
        );
    }
    assert!(
        text.contains("<3>session=kitchen lost cause=auth_failed status=401"),
        "{text}"
    );
    assert!(
        text.contains("<3>session=kitchen gave up attempts=1 last_cause=auth_failed; will revive in 10m"),
        "{text}"
    );
    assert!(!text.contains(TOKEN));
}

#[test]
fn terminal_lines_have_timestamps() {
    let scratch = Scratch::new("terminal");
    let config = scratch.write("config.toml", "");
    let log = scratch.0.join("stderr.log");
    let mut child = wsvisor(&["run", "--config", config.to_str().unwrap()])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !read_all(&log).contains("started") {
        assert!(Instant::now() < deadline, "no start line");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "TERM");
    wait_with_timeout(&mut child, Duration::from_secs(2)).expect("did not exit");
    let first = read_all(&log).lines().next().unwrap().to_owned();
    assert!(first.contains("Z INFO  started version="), "{first}");
}

#[test]
fn check_accepts_the_shipped_config() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let output = wsvisor(&["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn check_reports_file_line_col_and_exits_2() {
    let scratch = Scratch::new("check");
    let config = scratch.write("bad.toml", "[defaults]\nping_interval = \"15x\"\n");
    let output = wsvisor(&["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!("{}:2:17: ping_interval: invalid duration", config.display())),
        "{stderr}"
    );
    let unknown = scratch.write("unknown.toml", "[daemon]\nsocket_path = \"/tmp/x\"\n");
    let output = wsvisor(&["run", "--config", unknown.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "run refuses a bad config too");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(":2:1: "),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn bad_usage_exits_2() {
    let output = wsvisor(&["run"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn every_session_gave_up_with_on_give_up_exit_exits_75() {
    let server = Server::start(ServerOptions {
        mode: Mode::RefuseUpgrade(401),
        ..Default::default()
    })
    .unwrap();
    let scratch = Scratch::new("giveup");
    let text = format!(
        "[daemon]\non_give_up = \"exit\"\n{}",
        config_toml(&[("a", &server.url()), ("b", &server.url())])
    );
    let config = scratch.write("config.toml", &text);
    let mut child = wsvisor(&["run", "--config", config.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(5)).expect("did not exit");
    assert_eq!(status.code(), Some(75));
}

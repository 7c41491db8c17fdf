//! The control socket cannot be hijacked while the daemon starts: another
//! user (uid 65534, a forked child) swaps the socket path for a symlink to
//! a root-only file in a tight loop while a root daemon starts, 200 times
//! in a shared sticky directory (like /tmp): the stranger is never let in,
//! and the file behind the link never changes mode. In a directory others
//! can write without the sticky bit, the daemon refuses to start at all.
//!
//! Needs root (to be two users); CI runs as root, so it runs there. Set
//! WSVISOR_TEST_BINARY to try another build of wsvisor (an older one, to
//! see the race it had).

mod support;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::as_user::{self, Ids, NOBODY};
use support::process::{read_all, wait_with_timeout, Daemon, Scratch};
use wsvisor::control_client::blocking::Client;
use wsvisor::protocol::{Command as Request, Pong};

const STARTS: usize = 200;
const LIMIT: Duration = Duration::from_secs(5);
const SECRET: &str = "root only\n";

fn binary() -> PathBuf {
    std::env::var_os("WSVISOR_TEST_BINARY").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wsvisor")), PathBuf::from)
}

fn run_daemon(config: &Path, log: &Path) -> Daemon {
    let stderr = std::fs::File::create(log).unwrap();
    let mut command = Command::new(binary());
    command
        .args(["run", "--config", config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stderr(stderr);
    Daemon::spawn(&mut command).logging_to(log)
}

/// The stranger: swap `link` for a symlink to `target` until killed (or
/// two minutes pass).
fn swapper(link: PathBuf, target: PathBuf) -> as_user::Child {
    as_user::background(&Ids::plain(NOBODY), move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            for _ in 0..1000 {
                // Succeeds whenever the path is free; removes only its own
                // link in a sticky directory, anything in an open one.
                let _ = std::os::unix::fs::symlink(&target, &link);
                let _ = std::fs::remove_file(&link);
                let _ = std::os::unix::fs::symlink(&target, &link);
            }
        }
    })
}

/// The root-only file behind the link, as it must stay.
fn assert_untouched(target: &Path, round: usize) {
    let meta = std::fs::symlink_metadata(target).unwrap();
    assert!(
        meta.is_file(),
        "round {round}: {} is no longer a file",
        target.display()
    );
    assert_eq!(
        meta.mode() & 0o7777,
        0o600,
        "round {round}: the mode of {} was changed through the link",
        target.display()
    );
    assert_eq!(std::fs::read_to_string(target).unwrap(), SECRET, "round {round}");
}

/// Pings as uid 65534: "ok" when let in, else the error code or failure.
fn ping_as_stranger(socket: &Path) -> String {
    as_user::run(&Ids::plain(NOBODY), LIMIT, || {
        use std::io::{BufRead, Write};
        let mut stream = match std::os::unix::net::UnixStream::connect(socket) {
            Ok(stream) => stream,
            Err(err) => return format!("connect: {}", err.kind()),
        };
        stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = stream.write_all(b"{\"id\":1,\"cmd\":\"ping\"}\n");
        let mut line = String::new();
        let _ = std::io::BufReader::new(stream).read_line(&mut line);
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(v) if v["ok"] == true => "ok".to_owned(),
            Ok(v) => v["error"]["code"].as_str().unwrap_or("?").to_owned(),
            Err(_) => format!("no answer: {line:?}"),
        }
    })
}

/// One start of the daemon while the swapper runs: "started" or why not.
fn one_start(config: &Path, socket: &Path, log: &Path, target: &Path, round: usize) -> String {
    let mut daemon = run_daemon(config, log);
    let deadline = Instant::now() + LIMIT;
    let outcome = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            let said = read_all(log);
            let why = said
                .lines()
                .find(|l| l.contains("control socket"))
                .unwrap_or("")
                .to_owned();
            break format!("exit {:?}: {why}", status.code());
        }
        // Root trusts only root's socket; a link or a stranger's is refused.
        if let Ok(mut client) = Client::connect(socket) {
            if client
                .result::<Pong>(&Request::Ping)
                .is_ok_and(|p| p.pid == daemon.id())
            {
                break "started".to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "round {round}: neither started nor exited: {}",
            read_all(log)
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    if outcome == "started" {
        let meta = std::fs::symlink_metadata(socket).unwrap();
        assert!(meta.file_type().is_socket(), "round {round}: not a socket at the path");
        assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o666), "round {round}");
        assert_eq!(
            ping_as_stranger(socket),
            "forbidden",
            "round {round}: the stranger was let in"
        );
        support::process::signal(&daemon, "TERM");
        let status = wait_with_timeout(&mut daemon, Duration::from_secs(2));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "round {round}: {}",
            read_all(log)
        );
    }
    assert_untouched(target, round);
    outcome
}

#[test]
fn a_stranger_swapping_the_socket_for_a_symlink_never_gets_in_nor_a_chmod() {
    if !as_user::is_root() {
        if std::env::var("WSVISOR_ROOT_TESTS").as_deref() == Ok("skip") {
            eprintln!("skipped: needs root to act as another user (WSVISOR_ROOT_TESTS=skip)");
            return;
        }
        panic!("this test needs root to act as another user; run it as root (CI does) or set WSVISOR_ROOT_TESTS=skip");
    }
    let scratch = Scratch::new("race");
    std::fs::set_permissions(&scratch.0, PermissionsExt::from_mode(0o755)).unwrap();
    let target = scratch.path("root-only");
    std::fs::write(&target, SECRET).unwrap();
    std::fs::set_permissions(&target, PermissionsExt::from_mode(0o600)).unwrap();
    let log = scratch.path("stderr.log");

    // 1. A directory others can write, without the sticky bit: refused.
    let open = scratch.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, PermissionsExt::from_mode(0o777)).unwrap();
    let config = scratch.write(
        "open.toml",
        &format!(
            "[daemon]\ncontrol_socket = \"{}/control.sock\"\nsocket_mode = \"0666\"\n",
            open.display()
        ),
    );
    let attacker = swapper(open.join("control.sock"), target.clone());
    for round in 0..20 {
        let outcome = one_start(&config, &open.join("control.sock"), &log, &target, round);
        assert!(
            outcome.starts_with("exit Some(2)") && outcome.contains("can be written by other users (mode 0777)"),
            "round {round}: {outcome}"
        );
    }
    drop(attacker);

    // 2. A sticky shared directory (like /tmp): 200 starts under attack.
    let shared = scratch.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, PermissionsExt::from_mode(0o1777)).unwrap();
    let socket = shared.join("control.sock");
    let config = scratch.write(
        "shared.toml",
        &format!(
            "[daemon]\ncontrol_socket = \"{}\"\nsocket_mode = \"0666\"\n",
            socket.display()
        ),
    );
    let attacker = swapper(socket.clone(), target.clone());
    let started_at = Instant::now();
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    for round in 0..STARTS {
        let outcome = one_start(&config, &socket, &log, &target, round);
        // The reason without the pid or path details.
        let kind = match outcome.as_str() {
            "started" => "started, the stranger refused".to_owned(),
            o if o.contains("exists and is not a socket") => "refused to start: a symlink at the path".to_owned(),
            o if o.contains("belongs to uid 65534") => "refused to start: the stranger's file at the path".to_owned(),
            o if o.contains("Address already in use") || o.contains("File exists") => {
                "refused to start: the path taken during bind".to_owned()
            }
            o => panic!("round {round}: an outcome without a clear reason: {o}"),
        };
        *outcomes.entry(kind).or_default() += 1;
    }
    drop(attacker);
    eprintln!(
        "{STARTS} starts in {:.1}s under a symlink-swapping stranger: {outcomes:?}; never let in, no chmod through the link",
        started_at.elapsed().as_secs_f64()
    );
    assert!(
        outcomes.get("started, the stranger refused").copied().unwrap_or(0) > 0,
        "the daemon never started under attack, so the stranger's access was never tried: {outcomes:?}"
    );
}

//! Who gets through the control socket, tried with real other users (a
//! forked child that drops to uid 65534 and chosen groups): a refused
//! peer always reads its `forbidden` line and nothing it sends afterwards
//! is answered, while the daemon's other clients go on; group members get
//! in by primary or supplementary group; `ctl` refuses to talk to a
//! listener that is not the daemon; a daemon run by hand by an ordinary
//! user takes the per-user socket and `ctl` finds it.
//!
//! These need root (to become another user). CI runs as root, so there
//! they run; elsewhere each says it needs root and fails, unless
//! WSVISOR_ROOT_TESTS=skip asks to skip them.

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::as_user::{self, root_or_skip, Ids, NOBODY};
use support::process::{config_toml, control, read_all, socket_of, wsvisor, Daemon, Scratch};
use wsvisor::control_client::blocking::Client;
use wsvisor::control_client::ClientError;
use wsvisor::protocol::{Command, Pong};

const LIMIT: Duration = Duration::from_secs(5);

/// A scratch directory other users can enter (0755), with a daemon whose
/// socket is 0666: only the daemon's own check stands between them.
fn open_daemon(tag: &str, daemon_keys: &str) -> (Scratch, Daemon) {
    let scratch = Scratch::new(tag);
    std::fs::set_permissions(&scratch.0, PermissionsExt::from_mode(0o755)).unwrap();
    let keys = format!("socket_mode = \"0666\"\n{daemon_keys}");
    let config = scratch.write("config.toml", &config_toml(&scratch, &keys, &[]));
    let daemon = Daemon::run(&config, &scratch.0.join("stderr.log"));
    drop(control(&socket_of(&scratch)));
    (scratch, daemon)
}

/// What a raw client saw: the lines before the end, and how it ended.
fn raw_client(socket: &Path, first: &[u8], after_reading: &[u8]) -> String {
    let mut stream = match UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(err) => return format!("connect failed: {err}"),
    };
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let sent = stream
        .write_all(first)
        .map_or_else(|e| format!("write: {}", e.kind()), |()| "sent".into());
    let mut got = Vec::new();
    let end = match stream.read_to_end(&mut got) {
        Ok(_) => "eof".to_owned(),
        Err(err) => format!("read: {}", err.kind()),
    };
    // Anything sent now must go unanswered.
    let _ = stream.write_all(after_reading);
    let mut later = Vec::new();
    let _ = stream.read_to_end(&mut later);
    format!(
        "{sent}\n{end}\nlater={}\n{}",
        later.len(),
        String::from_utf8_lossy(&got)
    )
}

fn ping_line(id: u32) -> String {
    format!("{{\"id\":{id},\"cmd\":\"ping\"}}\n")
}

#[test]
fn a_refused_peer_reads_its_forbidden_line_and_nothing_after_it_is_answered() {
    if !root_or_skip() {
        return;
    }
    let (scratch, daemon) = open_daemon("refused", "allowed_uids = []");
    let socket = socket_of(&scratch);
    let mut root_client = control(&socket);
    let started = Instant::now();
    let rounds = 50;
    for round in 0..rounds {
        // Three requests at once, the answer unread until all are out.
        let first: String = (1..=3).map(ping_line).collect();
        let seen = as_user::run(&Ids::plain(NOBODY), LIMIT, || {
            raw_client(&socket, first.as_bytes(), ping_line(4).as_bytes())
        });
        let mut parts = seen.splitn(4, '\n');
        let (sent, end, later, lines) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap_or(""),
        );
        assert_eq!(sent, "sent", "round {round}: {seen}");
        assert_eq!(end, "eof", "round {round}: the connection did not end cleanly: {seen}");
        assert_eq!(
            later, "later=0",
            "round {round}: something was answered after the refusal: {seen}"
        );
        let lines: Vec<&str> = lines.lines().collect();
        assert_eq!(lines.len(), 1, "round {round}: not exactly one line: {seen}");
        let answer: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(answer["ok"], false, "{seen}");
        assert_eq!(answer["id"], serde_json::Value::Null, "{seen}");
        assert_eq!(answer["error"]["code"], "forbidden", "{seen}");
        assert_eq!(
            answer["error"]["message"], "uid 65534 may not use this socket",
            "{seen}"
        );
        // The daemon's own clients are untouched, connection and all.
        assert_eq!(root_client.result::<Pong>(&Command::Ping).unwrap().pid, daemon.id());
    }
    eprintln!(
        "{rounds} refused peers, each read its forbidden line, in {:?}",
        started.elapsed()
    );
    let log = read_all(&scratch.0.join("stderr.log"));
    assert_eq!(
        log.matches("control: refused a client with uid=65534 gid=65534")
            .count(),
        rounds,
        "{log}"
    );
    daemon.stop();
}

/// `ping` as `ids`: "ok PID" or the error code.
fn ping_as(ids: &Ids, socket: &Path) -> String {
    as_user::run(ids, LIMIT, || {
        let mut stream = match UnixStream::connect(socket) {
            Ok(stream) => stream,
            Err(err) => return format!("connect failed: {err}"),
        };
        stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        if let Err(err) = stream.write_all(ping_line(1).as_bytes()) {
            return format!("write failed: {err}");
        }
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stream), &mut line);
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(v) if v["ok"] == true => format!("ok {}", v["result"]["pid"]),
            Ok(v) => v["error"]["code"].as_str().unwrap_or("?").to_owned(),
            Err(_) => format!("no answer: {line:?}"),
        }
    })
}

#[test]
fn members_of_an_allowed_group_get_in_by_primary_or_supplementary_group() {
    if !root_or_skip() {
        return;
    }
    let (scratch, daemon) = open_daemon("groups", "allowed_groups = [4242, \"root\"]");
    let socket = socket_of(&scratch);
    let ok = format!("ok {}", daemon.id());
    let member = |gid, groups: &[u32]| Ids {
        uid: NOBODY,
        gid,
        groups: groups.to_vec(),
    };
    assert_eq!(ping_as(&member(NOBODY, &[4242]), &socket), ok, "supplementary 4242");
    assert_eq!(ping_as(&member(4242, &[]), &socket), ok, "primary 4242");
    assert_eq!(ping_as(&member(NOBODY, &[7, 0]), &socket), ok, "group root, by name");
    assert_eq!(ping_as(&member(NOBODY, &[]), &socket), "forbidden");
    assert_eq!(ping_as(&member(NOBODY, &[4243, 100]), &socket), "forbidden");
    daemon.stop();
}

/// A directory that anyone may create entries in, like /tmp.
fn sticky_dir(scratch: &Scratch, name: &str) -> PathBuf {
    let dir = scratch.path(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o1777)).unwrap();
    dir
}

#[test]
fn ctl_sends_nothing_to_a_listener_that_is_not_the_daemon() {
    if !root_or_skip() {
        return;
    }
    let scratch = Scratch::new("impostor");
    std::fs::set_permissions(&scratch.0, PermissionsExt::from_mode(0o755)).unwrap();
    let socket = sticky_dir(&scratch, "shared").join("control.sock");
    // Another user got to the path first and listens there.
    let impostor_socket = socket.clone();
    let impostor = as_user::spawn(&Ids::plain(NOBODY), move || {
        let listener = match std::os::unix::net::UnixListener::bind(&impostor_socket) {
            Ok(listener) => listener,
            Err(err) => return format!("bind: {err}"),
        };
        let _ = std::fs::set_permissions(&impostor_socket, PermissionsExt::from_mode(0o666));
        let mut total = 0;
        for _ in 0..2 {
            let Ok((mut stream, _)) = listener.accept() else { break };
            stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                total += n;
            }
        }
        format!("received {total} bytes")
    });
    let deadline = Instant::now() + LIMIT;
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the impostor never listened");
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = wsvisor(&["ctl", "--socket", socket.to_str().unwrap(), "ping"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("runs as uid 65534, which is not root, not you"),
        "{stderr}"
    );
    match Client::connect(&socket) {
        Err(ClientError::Untrusted { uid, .. }) => assert_eq!(uid, NOBODY),
        Err(other) => panic!("expected Untrusted, got {other}"),
        Ok(_) => panic!("the library client trusted the impostor"),
    }
    assert_eq!(
        impostor.answer(LIMIT),
        "received 0 bytes",
        "something reached the impostor"
    );
}

/// A directory owned by `uid`, mode 0700.
fn private_dir_of(scratch: &Scratch, name: &str, uid: u32) -> PathBuf {
    let dir = scratch.path(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o700)).unwrap();
    nix::unistd::chown(&dir, Some(uid.into()), Some(uid.into())).unwrap();
    dir
}

#[test]
fn a_daemon_run_by_an_ordinary_user_takes_the_per_user_socket_and_ctl_finds_it() {
    if !root_or_skip() {
        return;
    }
    if Path::new("/run/wsvisor").exists() && std::fs::metadata("/run/wsvisor").unwrap().uid() == NOBODY {
        panic!("/run/wsvisor belongs to uid 65534 here: this test cannot tell the per-user socket from it");
    }
    let scratch = Scratch::new("per-user");
    std::fs::set_permissions(&scratch.0, PermissionsExt::from_mode(0o755)).unwrap();
    let home = private_dir_of(&scratch, "home", NOBODY);
    let runtime = private_dir_of(&scratch, "runtime", NOBODY);
    // The default control_socket, as in the example config.
    let config = home.join("config.toml");
    std::fs::write(&config, "[daemon]\ncontrol_socket = \"/run/wsvisor/control.sock\"\n").unwrap();
    nix::unistd::chown(&config, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
    let log = scratch.path("stderr.log");
    let as_nobody = |command: &mut std::process::Command| {
        use std::os::unix::process::CommandExt;
        command.uid(NOBODY).gid(NOBODY).env("XDG_RUNTIME_DIR", &runtime);
    };
    let mut run = wsvisor(&["run", "--config", config.to_str().unwrap()]);
    as_nobody(&mut run);
    let daemon = Daemon::spawn(run.stderr(std::fs::File::create(&log).unwrap())).logging_to(&log);
    let expected = runtime.join("wsvisor/control.sock");
    let deadline = Instant::now() + LIMIT;
    while !expected.exists() {
        assert!(Instant::now() < deadline, "no per-user socket: {}", read_all(&log));
        std::thread::sleep(Duration::from_millis(10));
    }
    let said = read_all(&log);
    assert!(
        said.contains(&format!(
            "control socket: /run/wsvisor is not writable by this user; using {} ($XDG_RUNTIME_DIR) instead",
            expected.display()
        )),
        "{said}"
    );
    let created = std::fs::metadata(runtime.join("wsvisor")).unwrap();
    assert_eq!((created.uid(), created.mode() & 0o7777), (NOBODY, 0o750));
    // ctl, as that user, with nothing but the same config finds it...
    let mut ping = wsvisor(&["ctl", "--config", config.to_str().unwrap(), "ping"]);
    as_nobody(&mut ping);
    let output = ping.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("(pid {})", daemon.id())));
    // ...and root trusts it: uid 65534 owns the socket's private directory.
    let mut root = Client::connect(&expected).expect("root trusts the owner of the private directory");
    assert_eq!(root.result::<Pong>(&Command::Ping).unwrap().pid, daemon.id());
    daemon.stop();
}

//! The real `wsvisor ctl` binary against a fake daemon: a Unix socket in a
//! scratch directory that answers each connection with canned lines.
//! Every wait is bounded: accepts, reads and the child process itself.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::process::Scratch;

const LIMIT: Duration = Duration::from_secs(20);

/// What the fake daemon does with one connection: the lines it writes
/// after reading the request (`{id}` becomes the request's id), with a
/// pause before each, and then it closes.
struct Reply {
    lines: Vec<String>,
    pause: Duration,
    read_request: bool,
}

fn answer(line: &str) -> Reply {
    Reply {
        lines: vec![line.to_owned()],
        pause: Duration::ZERO,
        read_request: true,
    }
}

/// A fake daemon serving one connection per reply, in order; joining it
/// gives the requests it read.
struct FakeDaemon {
    socket: PathBuf,
    thread: Option<JoinHandle<Vec<Value>>>,
}

impl FakeDaemon {
    fn start(socket: PathBuf, replies: Vec<Reply>) -> FakeDaemon {
        let listener = UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let thread = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for reply in replies {
                let deadline = Instant::now() + LIMIT;
                let stream = loop {
                    match listener.accept() {
                        Ok((stream, _)) => break stream,
                        Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                        Err(err) => panic!("no client came: {err}"),
                    }
                };
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(LIMIT)).unwrap();
                let mut id = Value::Null;
                if reply.read_request {
                    let mut line = String::new();
                    BufReader::new(&stream).read_line(&mut line).unwrap();
                    let request: Value = serde_json::from_str(&line).unwrap();
                    id = request["id"].clone();
                    requests.push(request);
                }
                let mut writer = &stream;
                for line in reply.lines {
                    std::thread::sleep(reply.pause);
                    let line = line.replace("{id}", &id.to_string());
                    if writeln!(writer, "{line}").is_err() {
                        break;
                    }
                }
            }
            requests
        });
        FakeDaemon {
            socket,
            thread: Some(thread),
        }
    }

    fn requests(mut self) -> Vec<Value> {
        self.thread.take().unwrap().join().unwrap()
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `wsvisor ctl ARGS`, killing it if it outlives `LIMIT`.
fn ctl(args: &[&str], env: &[(&str, &Path)], stdin: &str) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsvisor"));
    command
        .arg("ctl")
        .args(args)
        .env_remove("WSVISOR_SOCKET")
        .env_remove("RUST_LOG");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsvisor");
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wsvisor ctl {args:?} did not end within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code().expect("exit code"),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn sock(path: &Path) -> &str {
    path.to_str().unwrap()
}

const SESSIONS: &str = r#"{"id":{id},"ok":true,"result":{"sessions":[{"name":"kitchen","state":"ready","session_id":"s-1","url":"ws://127.0.0.1:8000/xiaozhi/v1/","attempt":0,"max_attempts":10,"since":"2020-01-01T00:00:00.000Z","next_retry_in_ms":null,"last_close":null,"rtt_ms":0.4,"queued":0},{"name":"attic","state":"backoff","session_id":null,"url":"ws://127.0.0.1:8000/xiaozhi/v1/","attempt":2,"max_attempts":10,"since":"2020-01-01T00:00:00.000Z","next_retry_in_ms":930,"last_close":{"code":1006,"reason":"","at":"2020-01-01T00:00:00.000Z","cause":"abnormal"},"rtt_ms":null,"queued":3}]}}"#;

#[test]
fn sessions_prints_a_table() {
    let dir = Scratch::new("table");
    let daemon = FakeDaemon::start(dir.path("s.sock"), vec![answer(SESSIONS)]);
    let run = ctl(&["--socket", sock(&daemon.socket), "sessions"], &[], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert_eq!(
        lines[0],
        "NAME     STATE            ATTEMPT  SINCE  LAST-CAUSE  CODE  RTT    QUEUED"
    );
    assert!(
        lines[1].starts_with("kitchen  ready            -        "),
        "{}",
        run.stdout
    );
    assert!(lines[1].ends_with("  -           -     0.4ms  0"), "{}", run.stdout);
    assert!(
        lines[2].starts_with("attic    backoff (930ms)  2/10     "),
        "{}",
        run.stdout
    );
    assert!(lines[2].ends_with("  abnormal    1006  -      3"), "{}", run.stdout);
    assert_eq!(daemon.requests(), vec![serde_json::json!({"id": 1, "cmd": "sessions"})]);
}

#[test]
fn json_prints_the_raw_response() {
    let dir = Scratch::new("json");
    let line = r#"{"id":{id},"ok":true,"result":{"version":"0.1.0","pid":123}}"#;
    let daemon = FakeDaemon::start(dir.path("s.sock"), vec![answer(line), answer(line)]);
    // Global options may also follow the command.
    let run = ctl(&["ping", "--json", "--socket", sock(&daemon.socket)], &[], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "{\"id\":1,\"ok\":true,\"result\":{\"version\":\"0.1.0\",\"pid\":123}}\n"
    );
    let run = ctl(&["--socket", sock(&daemon.socket), "ping"], &[], "");
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "wsvisor 0.1.0 (pid 123) is alive\n")
    );
    daemon.requests();
}

#[test]
fn error_response_exits_1_with_the_message() {
    let dir = Scratch::new("error");
    let line = r#"{"id":{id},"ok":false,"error":{"code":"not_found","message":"no session named 'attic'"}}"#;
    let daemon = FakeDaemon::start(dir.path("s.sock"), vec![answer(line), answer(line)]);
    let run = ctl(&["--socket", sock(&daemon.socket), "disconnect", "attic"], &[], "");
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "wsvisor ctl: not_found: no session named 'attic'\n");
    let run = ctl(
        &["--json", "--socket", sock(&daemon.socket), "session", "attic"],
        &[],
        "",
    );
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains(r#""code":"not_found""#), "{}", run.stdout);
    let requests = daemon.requests();
    assert_eq!(
        requests[0],
        serde_json::json!({"id": 1, "cmd": "disconnect", "session": "attic"})
    );
    assert_eq!(
        requests[1],
        serde_json::json!({"id": 1, "cmd": "session", "session": "attic"})
    );
}

#[test]
fn forbidden_peer_exits_1() {
    let dir = Scratch::new("forbidden");
    let line = r#"{"id":null,"ok":false,"error":{"code":"forbidden","message":"uid 1000 may not use this socket"}}"#;
    let reply = Reply {
        lines: vec![line.into()],
        pause: Duration::ZERO,
        read_request: false,
    };
    let daemon = FakeDaemon::start(dir.path("s.sock"), vec![reply]);
    let run = ctl(&["--socket", sock(&daemon.socket), "status"], &[], "");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "wsvisor ctl: forbidden: uid 1000 may not use this socket\n")
    );
    daemon.requests();
}

#[test]
fn no_daemon_exits_3_with_a_sentence() {
    let dir = Scratch::new("absent");
    let socket = dir.path("absent.sock");
    let run = ctl(&["--socket", sock(&socket), "ping"], &[], "");
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        format!(
            "wsvisor ctl: no daemon answers on {} (No such file or directory); is wsvisor running? \
             (systemctl status wsvisor)\n",
            socket.display()
        )
    );
}

#[test]
fn closing_before_answering_exits_3() {
    let dir = Scratch::new("mute");
    let reply = Reply {
        lines: vec![],
        pause: Duration::ZERO,
        read_request: true,
    };
    let daemon = FakeDaemon::start(dir.path("s.sock"), vec![reply]);
    let run = ctl(&["--socket", sock(&daemon.socket), "ping"], &[], "");
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("closed the connection without answering"),
        "{}",
        run.stderr
    );
    daemon.requests();
}

#[test]
fn mismatched_id_exits_1() {
    let dir = Scratch::new("badid");
    let daemon = FakeDaemon::start(dir.path("s.sock"), vec![answer(r#"{"id":99,"ok":true,"result":{}}"#)]);
    let run = ctl(&["--socket", sock(&daemon.socket), "ping"], &[], "");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("id 99"), "{}", run.stderr);
    daemon.requests();
}

#[test]
fn send_of_something_not_json_exits_2_without_contacting() {
    // The socket does not exist: reaching for it would be exit 3.
    let dir = Scratch::new("notjson");
    let run = ctl(
        &["--socket", sock(&dir.path("absent.sock")), "send", "kitchen", "notjson"],
        &[],
        "",
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("wsvisor ctl: send: the message is not valid JSON"),
        "{}",
        run.stderr
    );
    let run = ctl(
        &["--socket", sock(&dir.path("absent.sock")), "send", "kitchen", "[1,2]"],
        &[],
        "",
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("must be a JSON object"), "{}", run.stderr);
}

#[test]
fn send_reads_stdin_and_reports_queueing() {
    let dir = Scratch::new("stdin");
    let daemon = FakeDaemon::start(
        dir.path("s.sock"),
        vec![answer(r#"{"id":{id},"ok":true,"result":{"queued":true,"position":2}}"#)],
    );
    let run = ctl(
        &["--socket", sock(&daemon.socket), "send", "kitchen", "-"],
        &[],
        "{\"type\":\"abort\"}\n",
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "queued at position 2\n"),
        "{}",
        run.stderr
    );
    let requests = daemon.requests();
    assert_eq!(requests[0]["message"], serde_json::json!({"type": "abort"}));
}

#[test]
fn socket_from_env_and_from_config() {
    let dir = Scratch::new("resolve");
    let line = r#"{"id":{id},"ok":true,"result":{"session":"kitchen","requested":"reconnect"}}"#;
    let daemon = FakeDaemon::start(dir.path("s.sock"), vec![answer(line), answer(line)]);
    let run = ctl(&["reconnect", "kitchen"], &[("WSVISOR_SOCKET", &daemon.socket)], "");
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "kitchen: reconnect requested\n"),
        "{}",
        run.stderr
    );
    let config = dir.path("config.toml");
    std::fs::write(
        &config,
        format!("[daemon]\ncontrol_socket = {:?}\n", sock(&daemon.socket)),
    )
    .unwrap();
    let elsewhere = dir.path("elsewhere.sock");
    let run = ctl(
        &["--config", sock(&config), "reconnect", "kitchen"],
        &[("WSVISOR_SOCKET", &elsewhere)],
        "",
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "kitchen: reconnect requested\n"),
        "{}",
        run.stderr
    );
    daemon.requests();
}

#[test]
fn a_config_the_daemon_would_refuse_still_gives_ctl_its_socket() {
    let dir = Scratch::new("badconfig");
    let line = r#"{"id":{id},"ok":true,"result":{"version":"0.1.0","pid":7}}"#;
    let daemon = FakeDaemon::start(dir.path("s.sock"), vec![answer(line)]);
    let config = dir.path("config.toml");
    // An unknown key and a token file that is not there: the daemon's
    // business, not ctl's.
    std::fs::write(
        &config,
        format!(
            "[daemon]\ncontrol_socket = {:?}\nsocket = 1\n[[session]]\nname = \"k\"\n\
             token_file = \"/nonexistent/k.token\"\n",
            sock(&daemon.socket)
        ),
    )
    .unwrap();
    let run = ctl(&["--config", sock(&config), "ping"], &[], "");
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "wsvisor 0.1.0 (pid 7) is alive\n"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr, "");
    daemon.requests();
}

#[test]
fn a_config_that_cannot_be_read_is_said_and_the_default_socket_tried() {
    let dir = Scratch::new("noconfig");
    let config = dir.path("absent.toml");
    let run = ctl(&["--config", sock(&config), "ping"], &[], "");
    assert!(
        run.stderr.starts_with(&format!(
            "wsvisor ctl: cannot read control_socket from {} (no such file); trying ",
            config.display()
        )),
        "{}",
        run.stderr
    );
}

const EVENTS: [&str; 4] = [
    r#"{"event":"state","session":"kitchen","state":"backoff","attempt":2,"retry_in_ms":930,"cause":"abnormal","code":1006,"at":"2026-11-21T10:00:00.123Z"}"#,
    r#"{"event":"message","session":"kitchen","message":{"type":"stt","text":"hello"}}"#,
    r#"{"event":"dropped","session":"kitchen","count":3,"why":"queue_ttl"}"#,
    r#"{"event":"lagged","skipped":120}"#,
];

fn subscription() -> Reply {
    let mut lines = vec![r#"{"id":{id},"ok":true,"result":{"subscribed":true}}"#.to_owned()];
    lines.extend(EVENTS.iter().map(|e| e.to_string()));
    // The pause proves lines are printed as they come, not at the end.
    Reply {
        lines,
        pause: Duration::from_millis(50),
        read_request: true,
    }
}

#[test]
fn subscribe_prints_events_until_the_daemon_closes() {
    let dir = Scratch::new("subscribe");
    let daemon = FakeDaemon::start(dir.path("s.sock"), vec![subscription()]);
    let run = ctl(
        &["--socket", sock(&daemon.socket), "subscribe", "kitchen", "--audio"],
        &[],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert_eq!(
        lines[0],
        "10:00:00.123 kitchen state backoff attempt=2 retry_in=930ms cause=abnormal code=1006"
    );
    assert!(
        lines[1].ends_with(r#" kitchen message {"text":"hello","type":"stt"}"#),
        "{}",
        lines[1]
    );
    assert!(lines[2].ends_with(" kitchen dropped 3 (queue_ttl)"), "{}", lines[2]);
    assert!(lines[3].ends_with(" lagged: 120 events skipped"), "{}", lines[3]);
    assert!(run.stderr.contains("closed the event stream"), "{}", run.stderr);
    let requests = daemon.requests();
    assert_eq!(
        requests[0],
        serde_json::json!({"id": 1, "cmd": "subscribe", "sessions": ["kitchen"], "audio": true})
    );
}

#[test]
fn subscribe_json_prints_raw_lines() {
    let dir = Scratch::new("subjson");
    let daemon = FakeDaemon::start(dir.path("s.sock"), vec![subscription()]);
    let run = ctl(&["--json", "--socket", sock(&daemon.socket), "subscribe"], &[], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut expected = String::from("{\"id\":1,\"ok\":true,\"result\":{\"subscribed\":true}}\n");
    for event in EVENTS {
        expected.push_str(event);
        expected.push('\n');
    }
    assert_eq!(run.stdout, expected);
    assert_eq!(daemon.requests()[0], serde_json::json!({"id": 1, "cmd": "subscribe"}));
}

// ───────────── a daemon's strings never drive the operator's terminal ─────────────

/// ESC sequences (clear screen, set title), a newline that would forge a
/// line, C1 controls (CSI, NEL) and DEL, in JSON escapes and raw.
const HOSTILE: &str = r#"x\u001b[2J\u001b]0;owned\u0007\nforged: yes\u009b31m\u0085\u007f"#;

fn hostile_summary(name: &str, with_counters: bool) -> String {
    let counters = if with_counters {
        r#","counters":{"connects":1,"losses":{"abnormal":1},"reconnect_attempts":0,"give_ups":0,"pings_sent":0,"pongs":0,"frames_in":0,"bytes_in":0,"frames_out":0,"bytes_out":0,"dropped":0}"#
    } else {
        ""
    };
    format!(
        r#"{{"name":"{name}","state":"backoff","session_id":"{HOSTILE}","url":"ws://{HOSTILE}/","attempt":1,"max_attempts":10,"since":"2020-01-01T00:00:00.000Z","next_retry_in_ms":10,"last_close":{{"code":1006,"reason":"{HOSTILE}","at":"2020-01-01T00:00:00.000Z","cause":"abnormal"}},"rtt_ms":null,"queued":0,"activation_code":"{HOSTILE}","future_{HOSTILE}":"{HOSTILE}"{counters}}}"#
    )
}

/// No raw control character but the newlines that end lines.
fn assert_terminal_safe(what: &str, text: &str) {
    let raw: Vec<char> = text.chars().filter(|c| c.is_control() && *c != '\n').collect();
    assert!(raw.is_empty(), "{what} printed raw {raw:?}: {text:?}");
    assert!(
        !text.lines().any(|line| line.starts_with("forged")),
        "{what} let a newline forge a line: {text}"
    );
}

#[test]
fn human_output_escapes_control_characters_from_the_daemon() {
    let dir = Scratch::new("hostile");
    let sessions = format!(
        r#"{{"id":{{id}},"ok":true,"result":{{"sessions":[{}]}}}}"#,
        hostile_summary(HOSTILE, false)
    );
    let session = format!(
        r#"{{"id":{{id}},"ok":true,"result":{}}}"#,
        hostile_summary("kitchen", true)
    );
    let error = format!(r#"{{"id":{{id}},"ok":false,"error":{{"code":"not_found","message":"{HOSTILE}"}}}}"#);
    let mut events = vec![r#"{"id":{id},"ok":true,"result":{"subscribed":true}}"#.to_owned()];
    events.push(format!(
        r#"{{"event":"state","session":"kitchen","state":"ready","attempt":0,"retry_in_ms":null,"cause":null,"code":null,"at":"2020-01-01T00:00:00.000Z","session_id":"{HOSTILE}"}}"#
    ));
    events.push(format!(
        r#"{{"event":"message","session":"kitchen","message":{{"type":"stt","text":"{HOSTILE}"}}}}"#
    ));
    events.push(format!(r#"{{"event":"future","x":"{HOSTILE}"}}"#));
    events.push("not json \u{1b}[2J \u{9b}".to_owned());
    let subscription = Reply {
        lines: events,
        pause: Duration::ZERO,
        read_request: true,
    };
    let daemon = FakeDaemon::start(
        dir.path("s.sock"),
        vec![answer(&sessions), answer(&session), answer(&error), subscription],
    );
    let socket = sock(&daemon.socket);

    let table = ctl(&["--socket", socket, "sessions"], &[], "");
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert_terminal_safe("sessions", &table.stdout);
    assert!(table.stdout.contains(r"x\u{1b}[2J"), "{}", table.stdout);

    let detail = ctl(&["--socket", socket, "session", "kitchen"], &[], "");
    assert_eq!(detail.code, 0, "{}", detail.stderr);
    assert_terminal_safe("session", &detail.stdout);
    for field in ["session_id:", "url:", "last close:", "activation_code:", "future_x"] {
        assert!(detail.stdout.contains(field), "{field} missing: {}", detail.stdout);
    }
    assert!(detail.stdout.contains(r"\u{9b}31m\u{85}\u{7f}"), "{}", detail.stdout);

    let refused = ctl(&["--socket", socket, "disconnect", "kitchen"], &[], "");
    assert_eq!(refused.code, 1);
    assert_terminal_safe("an error message", &refused.stderr);
    assert!(refused.stderr.contains(r"not_found: x\u{1b}[2J"), "{}", refused.stderr);

    let follow = ctl(&["--socket", socket, "subscribe"], &[], "");
    assert_eq!(follow.code, 0, "{}", follow.stderr);
    assert_terminal_safe("subscribe", &follow.stdout);
    let lines: Vec<&str> = follow.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", follow.stdout);
    assert!(lines[0].contains(r"session_id=x\u{1b}[2J"), "{}", lines[0]);
    assert_eq!(lines[3], r"not json \u{1b}[2J \u{9b}");
    daemon.requests();
}

#[test]
fn json_output_stays_exact_even_with_control_characters() {
    let dir = Scratch::new("hostile-json");
    let session = format!(
        r#"{{"id":{{id}},"ok":true,"result":{}}}"#,
        hostile_summary("kitchen", true)
    );
    let daemon = FakeDaemon::start(dir.path("s.sock"), vec![answer(&session)]);
    let run = ctl(
        &["--json", "--socket", sock(&daemon.socket), "session", "kitchen"],
        &[],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, format!("{}\n", session.replace("{id}", "1")));
    daemon.requests();
}

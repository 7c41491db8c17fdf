//! What running wsvisor as a service relies on, against the real binary:
//! a config error at start logged at error priority under the journal;
//! `ctl --config` reading only the socket path (never a token file), while
//! `ctl reload` still reports a broken config as the daemon's error and
//! returns only once the reload is applied; the Prometheus endpoint
//! (`metrics_listen`); debug lines that name commands and nothing more;
//! completions and man pages from the CLI.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use support::process::{config_toml, control, read_all, socket_of, wait_sessions, wsvisor, Daemon, Scratch, TOKEN};
use wsvisor::protocol::SessionState;
use wsvisor_loopback::{Server, ServerOptions};

const LIMIT: Duration = Duration::from_secs(5);

fn ctl(args: &[&str]) -> Output {
    let mut all = vec!["ctl"];
    all.extend_from_slice(args);
    wsvisor(&all).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_config_error_at_start_is_logged_at_error_priority_under_the_journal() {
    let scratch = Scratch::new("start-error");
    let config = scratch.write("config.toml", "[daemon]\nbogus_key = 1\n");
    let log = scratch.path("journal.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let meta = stderr.metadata().unwrap();
    let status = wsvisor(&["run", "--config", config.to_str().unwrap()])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(stderr)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    let said = read_all(&log);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.starts_with(&format!("<3>{}:2:1: unknown key `bogus_key`", config.display())),
        "{said}"
    );
    // On a terminal (no journal) the line is the same as `wsvisor check`'s.
    let output = wsvisor(&["run", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).starts_with(&format!("{}:2:1: ", config.display())));
}

#[test]
fn ctl_reads_only_the_socket_of_its_config_and_reload_reports_the_daemons_error() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let scratch = Scratch::new("ctl-config");
    let config = scratch.write("config.toml", &config_toml(&scratch, "", &[("kitchen", &server.url())]));
    let daemon = Daemon::run(&config, &scratch.path("stderr.log"));
    let mut client = control(&socket_of(&scratch));
    wait_sessions(&mut client, "kitchen ready", |s| {
        s.len() == 1 && s[0].state == SessionState::Ready
    });
    let path = config.to_str().unwrap();

    // Added: a session whose token file is missing, and a key the daemon refuses.
    let mut broken = read_all(&config);
    broken.push_str(
        "[[session]]\nname = \"attic\"\nurl = \"ws://127.0.0.1:9/\"\ntoken_file = \"/nonexistent/attic.token\"\n\
         device_id = \"d\"\nclient_id = \"c\"\n",
    );
    std::fs::write(&config, &broken).unwrap();
    let sessions = ctl(&["--config", path, "sessions"]);
    assert!(sessions.status.success(), "{}", text(&sessions.stderr));
    assert!(text(&sessions.stdout).contains("kitchen"), "{}", text(&sessions.stdout));
    assert_eq!(
        text(&sessions.stderr),
        "",
        "a warning about a file ctl should not have judged"
    );
    let reload = ctl(&["--config", path, "reload"]);
    assert_eq!(reload.status.code(), Some(1), "{}", text(&reload.stderr));
    let said = text(&reload.stderr);
    assert!(
        said.starts_with("wsvisor ctl: bad_config: ") && said.contains("attic.token") && said.contains("config.toml:"),
        "{said}"
    );

    // Not TOML at all below the [daemon] table: the daemon still judges it.
    std::fs::write(&config, format!("{}this is not toml\n", read_all(&config))).unwrap();
    let reload = ctl(&["--config", path, "reload"]);
    assert_eq!(reload.status.code(), Some(1), "{}", text(&reload.stderr));
    assert!(
        text(&reload.stderr).contains("bad_config: "),
        "{}",
        text(&reload.stderr)
    );

    // A good config: `ctl reload` returns once it is applied.
    let both = config_toml(&scratch, "", &[("kitchen", &server.url()), ("attic", &server.url())]);
    std::fs::write(&config, both).unwrap();
    let reload = ctl(&["--config", path, "reload"]);
    assert!(reload.status.success(), "{}", text(&reload.stderr));
    assert_eq!(text(&reload.stdout), "reloaded: added attic; 1 unchanged\n");
    let sessions = ctl(&["--config", path, "--json", "sessions"]);
    assert!(
        text(&sessions.stdout).contains("\"name\":\"attic\""),
        "attic missing right after reload returned: {}",
        text(&sessions.stdout)
    );
    assert!(!read_all(&scratch.path("stderr.log")).contains(TOKEN));
    daemon.stop();
}

/// A plain HTTP/1.1 GET: status code, headers (lower-case names), body.
fn get(addr: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The daemon's metrics address from its log line.
fn metrics_addr(log: &Path) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        let said = read_all(log);
        if let Some(at) = said.find("metrics endpoint listening url=http://") {
            let rest = &said[at + "metrics endpoint listening url=http://".len()..];
            return rest[..rest.find("/metrics").unwrap()].to_owned();
        }
        assert!(Instant::now() < deadline, "no metrics endpoint: {said}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn prometheus_scrapes_metrics_and_health_over_http() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let scratch = Scratch::new("metrics-http");
    let config = scratch.write(
        "config.toml",
        &config_toml(
            &scratch,
            "metrics_listen = \"127.0.0.1:0\"",
            &[("kitchen", &server.url())],
        ),
    );
    let log = scratch.path("stderr.log");
    let daemon = Daemon::run(&config, &log);
    let addr = metrics_addr(&log);
    let mut client = control(&socket_of(&scratch));
    wait_sessions(&mut client, "kitchen ready", |s| {
        s.len() == 1 && s[0].state == SessionState::Ready
    });

    let (status, headers, body) = get(&addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        header(&headers, "content-type").is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{headers:?}"
    );
    assert!(body.contains("# TYPE wsvisor_session_connects_total counter"), "{body}");
    assert!(
        body.contains("wsvisor_session_connects_total{session=\"kitchen\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("wsvisor_session_state{session=\"kitchen\",state=\"ready\"} 1"),
        "{body}"
    );
    // The same families as the control socket's `metrics`.
    let socket_text = client
        .result::<wsvisor::protocol::MetricsText>(&wsvisor::protocol::Command::Metrics)
        .unwrap()
        .text;
    let families = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(families(&body), families(&socket_text));

    let (status, _, body) = get(&addr, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, _) = get(&addr, "/nothing-here");
    assert_eq!(status, 404);

    #[cfg(feature = "fault-injection")]
    {
        let wedge = wsvisor::protocol::Command::Wedge {
            session: "kitchen".into(),
        };
        client.result::<wsvisor::protocol::Requested>(&wedge).unwrap();
        // The verdict is reused for 0.5 s and the probe waits 1 s.
        let deadline = Instant::now() + LIMIT;
        let (status, body) = loop {
            let t0 = Instant::now();
            let (status, _, body) = get(&addr, "/healthz");
            if status != 200 {
                assert!(
                    t0.elapsed() < Duration::from_secs(3),
                    "/healthz took {:?}",
                    t0.elapsed()
                );
                break (status, body);
            }
            assert!(
                Instant::now() < deadline,
                "/healthz stayed 200 with a wedged connection"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status, 503);
        assert!(body.contains("the session=kitchen connection did not answer"), "{body}");
        // The endpoint itself still answers metrics meanwhile.
        assert_eq!(get(&addr, "/metrics").0, 200);
    }
    daemon.stop();
}

#[test]
fn a_metrics_address_in_use_stops_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let scratch = Scratch::new("metrics-taken");
    let keys = format!("metrics_listen = \"{}\"", taken.local_addr().unwrap());
    let config = scratch.write("config.toml", &config_toml(&scratch, &keys, &[]));
    let output = wsvisor(&["run", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("metrics_listen 127.0.0.1:"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn debug_lines_name_the_command_and_nothing_it_carries() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let scratch = Scratch::new("debug");
    let config = scratch.write("config.toml", &config_toml(&scratch, "", &[("kitchen", &server.url())]));
    let log = scratch.path("stderr.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let daemon = Daemon::spawn(
        wsvisor(&["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "wsvisor=debug")
            .stderr(stderr),
    )
    .logging_to(&log);
    let mut client = control(&socket_of(&scratch));
    wait_sessions(&mut client, "kitchen ready", |s| {
        s.len() == 1 && s[0].state == SessionState::Ready
    });
    let secret = "do-not-log-this-text";
    let sent = ctl(&[
        "--socket",
        socket_of(&scratch).to_str().unwrap(),
        "send",
        "kitchen",
        &format!("{{\"type\":\"listen\",\"text\":\"{secret}\"}}"),
    ]);
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    let said = read_all(&log);
    assert!(said.contains("control: request cmd=send"), "{said}");
    assert!(said.contains("control: request cmd=sessions"), "{said}");
    assert!(said.contains("control: client connected uid="), "{said}");
    assert!(!said.contains(secret), "a message's content reached the log: {said}");
    assert!(!said.contains(TOKEN));
    daemon.stop();
}

#[test]
fn completions_and_man_pages_come_from_the_cli() {
    for shell in ["bash", "zsh", "fish"] {
        let output = wsvisor(&["completions", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}");
        let script = text(&output.stdout);
        assert!(
            script.contains("subscribe") && script.contains("metrics"),
            "{shell}: {script}"
        );
    }
    let output = wsvisor(&["man"]).output().unwrap();
    assert!(output.status.success());
    let page = text(&output.stdout);
    assert!(
        page.contains(".TH wsvisor 1") && page.contains("wsvisor\\-ctl(1)"),
        "{page}"
    );
    let scratch = Scratch::new("man");
    let output = wsvisor(&["man", "--dir", scratch.0.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    for page in [
        "wsvisor.1",
        "wsvisor-ctl.1",
        "wsvisor-ctl-reload.1",
        "wsvisor-completions.1",
    ] {
        assert!(scratch.path(page).exists(), "no {page}");
    }
    assert_eq!(
        wsvisor(&["completions", "tcsh"]).output().unwrap().status.code(),
        Some(2)
    );
}

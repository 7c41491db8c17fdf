//! Tokens never show (CONTRACT §4): a token read from a `token_file` and
//! tokens the OTA endpoint issued, through connections, a rotation, an
//! auth failure and its refresh, are used on the wire and appear nowhere a
//! user can look: the daemon's log at debug level, `ctl` output (human and
//! `--json`), subscribed events and metrics.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use support::ota::OtaEndpoint;
use support::process::{control, read_all, socket_of, wait_sessions, wsvisor, Daemon, Scratch};
use wsvisor::protocol::SessionState;
use wsvisor_loopback::{Fault, Server, ServerOptions};

const FILE_TOKEN: &str = "file-tok-8c1d0e7a";
const FILE_TOKEN_NEXT: &str = "file-tok-5b2f9a64";
const OTA_TOKEN: &str = "ota-tok-3e9a71c2";
const OTA_TOKEN_NEXT: &str = "ota-tok-d40b6f18";
const TOKENS: [&str; 4] = [FILE_TOKEN, FILE_TOKEN_NEXT, OTA_TOKEN, OTA_TOKEN_NEXT];

const LIMIT: Duration = Duration::from_secs(10);

fn expecting(token: &str) -> Server {
    Server::start(ServerOptions {
        expected_token: Some(token.to_owned()),
        ..Default::default()
    })
    .unwrap()
}

fn ota_answer(server: &Server, token: &str) -> serde_json::Value {
    json!({"server_time": {"timestamp": 0}, "websocket": {"url": server.url(), "token": token}})
}

fn write_token(path: &Path, token: &str) {
    std::fs::write(path, format!("{token}\n")).unwrap();
}

/// What `wsvisor ctl` prints for `args`, stdout and stderr.
fn ctl(socket: &Path, args: &[&str]) -> String {
    let mut argv = vec!["ctl", "--socket", socket.to_str().unwrap()];
    argv.extend_from_slice(args);
    let out = wsvisor(&argv).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "ctl {args:?}: {out:?}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_token(what: &str, text: &str) {
    for token in TOKENS {
        assert!(!text.contains(token), "{token} in {what}:\n{text}");
    }
}

#[test]
fn file_and_ota_tokens_appear_on_the_wire_only() {
    let filed = expecting(FILE_TOKEN);
    let issued = expecting(OTA_TOKEN);
    let ota = OtaEndpoint::start(ota_answer(&issued, OTA_TOKEN));
    let scratch = Scratch::new("secrets");
    let token_file = scratch.path("filed.token");
    write_token(&token_file, FILE_TOKEN);
    std::fs::set_permissions(&token_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let socket = socket_of(&scratch);
    let config = format!(
        "[daemon]\ncontrol_socket = \"{}\"\nstate_dir = \"{}\"\n\
         [defaults]\nhello_timeout = \"1s\"\n[defaults.reconnect]\ninitial_delay = \"20ms\"\nmax_delay = \"100ms\"\n\
         [[session]]\nname = \"filed\"\nurl = \"{}\"\ntoken_file = \"{}\"\n\
         [[session]]\nname = \"issued\"\nota_url = \"{}\"\n",
        socket.display(),
        scratch.path("state").display(),
        filed.url(),
        token_file.display(),
        ota.url()
    );
    let config = scratch.write("config.toml", &config);
    let log = scratch.path("stderr.log");
    // Trace, ours and the libraries': every line there is, not only those an
    // operator sees.
    let daemon = Daemon::spawn(
        wsvisor(&["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "trace,wsvisor=trace")
            .stderr(std::fs::File::create(&log).unwrap()),
    )
    .logging_to(&log);
    let mut control = control(&socket);
    let both_ready =
        |s: &[wsvisor::protocol::SessionSummary]| s.len() == 2 && s.iter().all(|s| s.state == SessionState::Ready);
    wait_sessions(&mut control, "both ready", both_ready);

    let (lines_tx, lines) = mpsc::channel::<String>();
    let mut events = support::process::control(&socket).subscribe(None, false).unwrap();
    std::thread::spawn(move || {
        while let Ok(Some(line)) = events.next_line() {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    // The file's token rotates: read again at the next attempt.
    write_token(&token_file, FILE_TOKEN_NEXT);
    filed.set_expected_token(Some(FILE_TOKEN_NEXT.into()));
    filed.inject(Fault::Reset);
    // The OTA token rotates: refused once, asked again, accepted.
    issued.set_expected_token(Some(OTA_TOKEN_NEXT.into()));
    ota.set_answer(ota_answer(&issued, OTA_TOKEN_NEXT));
    issued.inject(Fault::Close(1000, String::new()));
    assert!(
        filed.wait_until(LIMIT, |s| s.hellos() >= 2) && issued.wait_until(LIMIT, |s| s.hellos() >= 2),
        "the sessions never came back with the new tokens"
    );
    wait_sessions(&mut control, "both ready again", both_ready);
    // The tokens were used: this test is about where else they go.
    let bearer = |server: &Server| server.last_headers().and_then(|h| h.authorization);
    assert_eq!(bearer(&filed), Some(format!("Bearer {FILE_TOKEN_NEXT}")));
    assert_eq!(bearer(&issued), Some(format!("Bearer {OTA_TOKEN_NEXT}")));
    assert!(ota.requests().len() >= 2, "the refusal asked the OTA endpoint again");

    let mut shown = String::new();
    for args in [
        &["sessions"][..],
        &["--json", "sessions"],
        &["session", "filed"],
        &["--json", "session", "filed"],
        &["session", "issued"],
        &["--json", "session", "issued"],
        &["identity", "issued"],
        &["--json", "identity", "issued"],
        &["status"],
        &["metrics"],
    ] {
        let out = ctl(&socket, args);
        assert_no_token(&format!("ctl {args:?}"), &out);
        shown.push_str(&out);
    }
    assert!(
        shown.contains("filed") && shown.contains("issued") && shown.contains("wsvisor_"),
        "{shown}"
    );
    daemon.stop();

    let mut events = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
        events.push(line);
    }
    let events = events.join("\n");
    assert!(
        events.contains(r#""state":"backoff""#),
        "no loss in the events:\n{events}"
    );
    assert_no_token("the events", &events);
    let text = read_all(&log);
    assert!(
        text.contains("session=filed connected") && text.contains("session=issued connected"),
        "{text}"
    );
    assert!(text.contains("server hello session_id="), "debug lines are in: {text}");
    assert_no_token("the log", &text);
}

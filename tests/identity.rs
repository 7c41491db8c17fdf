//! Device identities with the real binary: made once in the state
//! directory and sent unchanged after a restart, two sessions two devices,
//! a corrupt file refused and left alone, `check` writing nothing, and a
//! whole activation as an operator sees it (log, `ctl`, events, systemd
//! STATUS) with the HMAC key nowhere in it.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::process::{control, read_all, socket_of, wait_sessions, wait_with_timeout, wsvisor, Daemon, Scratch};
use wsvisor::protocol::{ActivationStatus, Command, IdentityInfo, SessionState};
use wsvisor_loopback::{ActivationOptions, OtaOptions, OtaRequest, OtaServer, Server, ServerOptions};

const LIMIT: Duration = Duration::from_secs(10);

/// A config whose sessions learn everything from `ota_url` and keep their
/// identities in `scratch/state`.
fn config(scratch: &Scratch, ota_url: &str, sessions: &[&str], autostart: bool) -> PathBuf {
    let mut text = format!(
        "[daemon]\ncontrol_socket = \"{}\"\nstate_dir = \"{}\"\n\
         [defaults]\nhello_timeout = \"1s\"\n[defaults.reconnect]\ninitial_delay = \"20ms\"\nmax_delay = \"100ms\"\n",
        socket_of(scratch).display(),
        scratch.path("state").display()
    );
    for name in sessions {
        text.push_str(&format!(
            "[[session]]\nname = \"{name}\"\nota_url = \"{ota_url}\"\nautostart = {autostart}\n"
        ));
    }
    scratch.write("config.toml", &text)
}

/// The identity file of `session`, parsed.
fn stored(scratch: &Scratch, session: &str) -> Value {
    let path = scratch.path(&format!("state/identity/{session}.json"));
    serde_json::from_str(&read_all(&path)).unwrap()
}

fn bytes_and_mtime(path: &Path) -> (Vec<u8>, SystemTime) {
    (
        std::fs::read(path).unwrap(),
        std::fs::metadata(path).unwrap().modified().unwrap(),
    )
}

/// The OTA requests a device made, by its `Device-Id`.
fn asked_by(ota: &OtaServer, device_id: &str, from: usize) -> Vec<OtaRequest> {
    ota.ota_requests()
        .into_iter()
        .skip(from)
        .filter(|r| r.header("device-id") == Some(device_id))
        .collect()
}

fn all_ready(control: &mut support::process::Control, n: usize) {
    wait_sessions(control, "all ready", |s| {
        s.len() == n && s.iter().all(|s| s.state == SessionState::Ready)
    });
}

#[test]
fn an_identity_survives_a_restart_byte_for_byte_and_two_sessions_are_two_devices() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let ota = OtaServer::start(OtaOptions::for_url(&server.url(), "")).unwrap();
    let scratch = Scratch::new("identity-restart");
    let config = config(&scratch, &ota.url(), &["kitchen", "attic"], true);
    let first_log = scratch.path("first.log");
    let daemon = Daemon::run(&config, &first_log);
    let mut c = control(&socket_of(&scratch));
    all_ready(&mut c, 2);
    let kitchen_file = scratch.path("state/identity/kitchen.json");
    let before = bytes_and_mtime(&kitchen_file);
    let (kitchen, attic) = (stored(&scratch, "kitchen"), stored(&scratch, "attic"));
    for field in ["device_id", "client_id", "serial_number", "hmac_key"] {
        assert_ne!(kitchen[field], attic[field], "two sessions share {field}");
    }
    let device = kitchen["device_id"].as_str().unwrap().to_owned();
    let key = kitchen["hmac_key"].as_str().unwrap().to_owned();
    let identity: IdentityInfo = c
        .result(&Command::Identity {
            session: "kitchen".into(),
        })
        .unwrap();
    assert_eq!(identity.device_id, device);
    assert_eq!(identity.client_id, kitchen["client_id"].as_str().unwrap());
    assert_eq!(identity.serial_number.as_deref(), kitchen["serial_number"].as_str());
    assert_eq!(identity.activation_version, 2);
    assert_eq!(identity.file.as_deref(), Some(kitchen_file.to_str().unwrap()));
    assert!(identity.configured.is_empty());
    assert_eq!(identity.activation, ActivationStatus::Bound);
    let first_run = asked_by(&ota, &device, 0);
    assert!(!first_run.is_empty());
    let asked_before_restart = ota.ota_requests().len();
    daemon.stop();

    let second_log = scratch.path("second.log");
    let daemon = Daemon::run(&config, &second_log);
    let mut c = control(&socket_of(&scratch));
    all_ready(&mut c, 2);
    daemon.stop();
    assert_eq!(bytes_and_mtime(&kitchen_file), before, "the file was not rewritten");
    let second_run = asked_by(&ota, &device, asked_before_restart);
    assert!(!second_run.is_empty(), "the same Device-Id after the restart");
    for request in first_run.iter().chain(&second_run) {
        assert_eq!(request.header("client-id"), kitchen["client_id"].as_str());
        assert_eq!(request.header("serial-number"), kitchen["serial_number"].as_str());
        assert_eq!(request.header("activation-version"), Some("2"));
        let body = request.payload.as_ref().unwrap();
        assert_eq!(body["application"]["elf_sha256"], key.as_str());
        assert_eq!(body["mac_address"], device.as_str());
    }
    let upgraded = server.last_headers().unwrap().device_id.unwrap();
    assert!(
        [kitchen["device_id"].as_str(), attic["device_id"].as_str()].contains(&Some(upgraded.as_str())),
        "the WebSocket upgrade carries a stored Device-Id: {upgraded}"
    );
    let (first, second) = (read_all(&first_log), read_all(&second_log));
    assert!(first.contains("session=kitchen identity created file="), "{first}");
    assert!(
        second.contains("session=kitchen identity file=") && !second.contains("identity created"),
        "{second}"
    );
    assert!(
        !first.contains(&key) && !second.contains(&key),
        "the key is never logged"
    );
}

#[test]
fn a_corrupt_identity_file_stops_the_daemon_and_is_left_untouched() {
    let scratch = Scratch::new("identity-corrupt");
    let config = config(&scratch, "http://127.0.0.1:9/xiaozhi/ota/", &["kitchen"], true);
    let dir = scratch.path("state/identity");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("kitchen.json");
    std::fs::write(
        &file,
        "{\"format\": 1,\n \"device_id\": \"02:00:00:00:00:01\",\n \"client_id\"",
    )
    .unwrap();
    let before = bytes_and_mtime(&file);

    let check = wsvisor(&["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(said.starts_with(&format!("{}:3:", file.display())), "{said}");
    assert!(
        said.contains("identity file is corrupt") && said.contains("left untouched"),
        "{said}"
    );

    let log = scratch.path("daemon.log");
    let mut daemon = Daemon::run(&config, &log);
    let status = wait_with_timeout(&mut daemon, LIMIT).expect("the daemon exits");
    assert_eq!(status.code(), Some(2), "like a bad config: {}", read_all(&log));
    let said = read_all(&log);
    assert!(
        said.contains(&format!("{}:3:", file.display())) && said.contains("corrupt"),
        "{said}"
    );
    assert!(!socket_of(&scratch).exists(), "nothing started");
    assert_eq!(bytes_and_mtime(&file), before, "the file is exactly as it was");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["kitchen.json"], "no new identity beside it");
}

#[test]
fn check_says_what_it_would_create_and_creates_nothing() {
    let scratch = Scratch::new("identity-check");
    let config = config(&scratch, "http://127.0.0.1:9/xiaozhi/ota/", &["kitchen"], true);
    let out = wsvisor(&["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    let file = scratch.path("state/identity/kitchen.json");
    assert!(
        said.contains(&format!(
            "session=kitchen identity {} does not exist yet",
            file.display()
        )),
        "{said}"
    );
    assert!(!scratch.path("state").exists(), "check wrote nothing");
}

/// `wsvisor ctl --socket S ARGS…`, which must succeed; its stdout.
fn ctl(scratch: &Scratch, args: &[&str]) -> String {
    let socket = socket_of(scratch);
    let mut all = vec!["ctl", "--socket", socket.to_str().unwrap()];
    all.extend_from_slice(args);
    let Output { status, stdout, stderr } = wsvisor(&all).output().unwrap();
    assert!(status.success(), "ctl {args:?}: {}", String::from_utf8_lossy(&stderr));
    String::from_utf8(stdout).unwrap()
}

/// Datagrams sent to a fake `NOTIFY_SOCKET`, read until dropped.
struct Notify {
    texts: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Notify {
    fn listen(path: &Path) -> Notify {
        let socket = UnixDatagram::bind(path).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let (texts, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (sink, stopped) = (texts.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    sink.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        });
        Notify { texts, stop }
    }

    fn all(&self) -> Vec<String> {
        self.texts.lock().unwrap().clone()
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The worked activation of the README, at the real pace (one 202, then
/// 3 s, then 200): what the log, `ctl`, the events and systemd show.
#[test]
fn a_whole_activation_as_the_operator_sees_it_with_the_key_nowhere() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let ota = OtaServer::start(OtaOptions {
        activation: Some(ActivationOptions {
            pending_polls: 1,
            ..ActivationOptions::default()
        }),
        ..OtaOptions::for_url(&server.url(), "")
    })
    .unwrap();
    let scratch = Scratch::new("identity-activation");
    let config = config(&scratch, &ota.url(), &["kitchen"], false);
    let notify = Notify::listen(&scratch.path("notify.sock"));
    let log = scratch.path("daemon.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let daemon = Daemon::spawn(
        wsvisor(&["run", "--config", config.to_str().unwrap()])
            .env("NOTIFY_SOCKET", scratch.path("notify.sock"))
            .stderr(stderr),
    )
    .logging_to(&log);
    let events = control(&socket_of(&scratch)).subscribe(None, false).unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (mut events, lines) = (events, lines.clone());
        // Ends when the daemon closes the stream at its stop.
        std::thread::spawn(move || {
            while let Ok(Some(line)) = events.next_line() {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let mut captured = vec![("connect", ctl(&scratch, &["connect", "kitchen"]))];
    let mut c = control(&socket_of(&scratch));
    let sessions = wait_sessions(&mut c, "activating", |s| {
        s[0].state == SessionState::Activating && s[0].activation_code.is_some()
    });
    let code = sessions[0].activation_code.clone().unwrap();
    for args in [&["sessions"][..], &["session", "kitchen"], &["identity", "kitchen"]] {
        captured.push((args[0], ctl(&scratch, args)));
    }
    let json_identity = ctl(&scratch, &["--json", "identity", "kitchen"]);
    wait_sessions(&mut c, "ready", |s| s[0].state == SessionState::Ready);
    captured.push(("identity", ctl(&scratch, &["identity", "kitchen"])));
    captured.push(("session", ctl(&scratch, &["session", "kitchen"])));
    let deadline = Instant::now() + LIMIT;
    while !notify.all().iter().any(|n| n.contains("STATUS=1/1 sessions ready")) {
        assert!(Instant::now() < deadline, "{:#?}", notify.all());
        std::thread::sleep(Duration::from_millis(10));
    }
    daemon.stop();
    reader.join().unwrap();

    let key = stored(&scratch, "kitchen")["hmac_key"].as_str().unwrap().to_owned();
    let log = read_all(&log);
    let events = lines.lock().unwrap().join("\n");
    let statuses = notify.all().join("\n");
    let shown: String = captured.iter().map(|(_, out)| out.as_str()).collect();
    // The worked example, for the README and the closing note (--nocapture).
    eprintln!("--- log ---\n{log}");
    for (what, out) in &captured {
        eprintln!("--- wsvisor ctl {what} ---\n{out}");
    }
    eprintln!("--- events ---\n{events}\n--- STATUS ---\n{statuses}");

    for (place, text) in [
        ("log", &log),
        ("ctl", &shown),
        ("events", &events),
        ("STATUS", &statuses),
    ] {
        assert!(!text.contains(&key), "the HMAC key is in the {place}");
        assert!(!json_identity.contains(&key));
    }
    assert!(
        log.contains(&format!("session=kitchen activation required code={code} ")),
        "{log}"
    );
    assert!(log.contains("session=kitchen activated:"), "{log}");
    assert!(log.contains("session=kitchen connected url="), "{log}");
    assert!(
        captured[1].1.contains(&format!("activating (code {code})")),
        "{}",
        captured[1].1
    );
    assert!(
        captured[2].1.contains(&format!("activation_code:  {code}")),
        "{}",
        captured[2].1
    );
    assert!(captured[3]
        .1
        .contains(&format!("activating: enter code {code} in the server's console")));
    assert!(captured[4].1.contains("bound"), "{}", captured[4].1);
    assert!(
        captured[5].1.contains("ota:") && captured[5].1.contains("websocket"),
        "{}",
        captured[5].1
    );
    assert!(events.contains(&format!("\"activation_code\":\"{code}\"")), "{events}");
    assert!(
        statuses.contains(&format!("kitchen: enter code {code} in the server's console")),
        "{statuses}"
    );
    let confirms: Vec<u16> = ota.activate_requests().iter().map(|r| r.status).collect();
    assert_eq!(confirms, [202, 200]);
    let gap = ota.activate_requests()[1]
        .at
        .duration_since(ota.activate_requests()[0].at);
    assert!(
        gap >= Duration::from_millis(2900) && gap < Duration::from_secs(6),
        "the firmware's 3 s: {gap:?}"
    );
}

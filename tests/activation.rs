//! Activation v2 end to end against the loopback OTA + `/activate`
//! endpoint, which verifies the HMAC with the key the device registered
//! in `application.elf_sha256`: the code shown, the confirmations at their
//! pace, binding, expiry, a refused key, and MQTT-only answers. Timings
//! are milliseconds (`ActivationPace`); the real ones are 3 s and 10 s.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{settings, start};
use wsvisor_actors::loss::Cause;
use wsvisor_actors::messages::GetSession;
use wsvisor_actors::settings::{ActivationKey, ActivationPace, HmacKey, OtaSettings, SessionSettings};
use wsvisor_actors::state::SessionState;
use wsvisor_actors::Tree;
use wsvisor_loopback::{hmac_sha256_hex, ActivationOptions, OtaOptions, OtaRequest, OtaServer, Server, ServerOptions};

const LIMIT: Duration = Duration::from_secs(5);
const KEY: &str = "4f7d1c2b9a8e6f5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918071625a";
const SERIAL: &str = "SN-0A1B2C3D-021a2b3c4d5e";
const DEVICE: &str = "02:1a:2b:3c:4d:5e";
const PENDING: Duration = Duration::from_millis(40);
const ERROR: Duration = Duration::from_millis(150);

fn v2_session(ota: &OtaServer) -> SessionSettings {
    let mut session = settings("kitchen", "unused");
    session.url = None;
    session.credential = None;
    session.ota = Some(OtaSettings { url: ota.url() });
    session.device_id = DEVICE.into();
    session.activation.key = Some(ActivationKey {
        serial_number: SERIAL.into(),
        hmac_key: HmacKey::new(KEY),
    });
    session.activation.pace = ActivationPace {
        after_pending: PENDING,
        after_error: ERROR,
        polls_per_round: 10,
    };
    session
}

fn activating_endpoint(server: &Server, options: ActivationOptions) -> OtaServer {
    OtaServer::start(OtaOptions {
        activation: Some(options),
        ..OtaOptions::for_url(&server.url(), "")
    })
    .unwrap()
}

/// `pred` within `LIMIT`, checked every 5 ms without blocking the actors.
async fn eventually(pred: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        if pred() {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    pred()
}

async fn code_in_summary(tree: &Tree) -> Option<String> {
    let summary = tree.monitor.send(GetSession("kitchen".into())).await.unwrap().unwrap();
    summary.activation_code
}

fn assert_device_headers(request: &OtaRequest) {
    assert_eq!(request.header("activation-version"), Some("2"));
    assert_eq!(request.header("device-id"), Some(DEVICE));
    assert_eq!(
        request.header("client-id"),
        Some("6f1c0b8e-0000-4000-8000-000000000001")
    );
    assert_eq!(request.header("serial-number"), Some(SERIAL));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("accept-language"), Some("zh-CN"));
    let agent = request.header("user-agent").unwrap();
    assert_eq!(agent, concat!("wsvisor/", env!("CARGO_PKG_VERSION")));
}

#[actix_rt::test]
async fn a_v2_device_shows_its_code_confirms_and_connects_once_bound() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let ota = activating_endpoint(&server, ActivationOptions::default());
    let (tree, mut watcher) = start(v2_session(&ota)).await;

    let (activating, _) = watcher.wait_state(SessionState::Activating, LIMIT).await;
    let issued = ota.device(DEVICE).unwrap().activation.unwrap();
    assert_eq!(activating.activation_code.as_deref(), Some(issued.code.as_str()));
    assert_eq!(activating.loss.as_ref().unwrap().cause, Cause::ActivationRequired);
    assert_eq!(activating.retry_in, None, "confirming, not waiting for a retry");
    let (ready, _) = watcher.wait_state(SessionState::Ready, LIMIT).await;
    assert_eq!(ready.activation_code, None);
    assert_eq!(code_in_summary(&tree).await, None);
    assert_eq!(server.hellos(), 1);

    // The first OTA request registered the key and got code + challenge.
    let asked = ota.ota_requests();
    assert!(asked.len() >= 2, "OTA again after binding: {}", asked.len());
    assert_device_headers(&asked[0]);
    let body = asked[0].payload.clone().unwrap();
    assert_eq!(body["application"]["elf_sha256"], KEY);
    assert_eq!(body["mac_address"], DEVICE);
    assert_eq!(body["uuid"], "6f1c0b8e-0000-4000-8000-000000000001");
    assert!(body["application"]["version"].is_string() && body["board"]["type"].is_string());
    let first = asked[0].answer_json().unwrap();
    assert_eq!(first["activation"]["challenge"], issued.challenge.as_str());
    assert!(asked.last().unwrap().answer_json().unwrap().get("activation").is_none());

    // 202 three times, then 200, each signed with the registered key.
    let confirms = ota.activate_requests();
    let statuses: Vec<u16> = confirms.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [202, 202, 202, 200]);
    for confirm in &confirms {
        assert_device_headers(confirm);
        assert_eq!(confirm.path, "/xiaozhi/ota/activate");
        let sent = confirm.json.clone().unwrap();
        assert!(sent.get("Payload").is_none(), "the firmware's plain form");
        assert_eq!(sent["algorithm"], "hmac-sha256");
        assert_eq!(sent["serial_number"], SERIAL);
        assert_eq!(sent["challenge"], issued.challenge.as_str());
        assert_eq!(sent["hmac"], hmac_sha256_hex(KEY, &issued.challenge));
    }
    // At the firmware's pace after each 202, not faster.
    for pair in confirms.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= PENDING - Duration::from_millis(5), "{gap:?}");
        assert!(gap < PENDING + Duration::from_secs(1), "{gap:?}");
    }
    let summary = tree.monitor.send(GetSession("kitchen".into())).await.unwrap().unwrap();
    let offered = summary.ota.unwrap();
    assert!(offered.websocket && !offered.activation && !offered.mqtt);
    assert_eq!(summary.attempt, 0);
    assert_eq!(summary.counters.give_ups, 0);
}

#[actix_rt::test]
async fn an_expired_code_is_replaced_by_a_new_one_that_is_shown() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let ota = activating_endpoint(
        &server,
        ActivationOptions {
            pending_polls: u32::MAX,
            ..ActivationOptions::default()
        },
    );
    let (tree, mut watcher) = start(v2_session(&ota)).await;
    let (first, _) = watcher.wait_state(SessionState::Activating, LIMIT).await;
    let first_code = first.activation_code.unwrap();
    // The code lived a while (longer than `after_error`): a real expiry.
    assert!(eventually(|| ota.activate_requests().len() >= 5).await);
    let asked_before = ota.ota_requests().len();
    ota.expire_codes();
    let (second, _) = watcher
        .wait_for(LIMIT, |u| {
            u.state == SessionState::Activating && u.activation_code.as_deref() != Some(first_code.as_str())
        })
        .await;
    let second_code = second.activation_code.unwrap();
    assert_eq!(ota.device(DEVICE).unwrap().codes_issued, 2);
    assert_eq!(ota.device(DEVICE).unwrap().activation.unwrap().code, second_code);
    assert_eq!(code_in_summary(&tree).await.as_deref(), Some(second_code.as_str()));
    assert_eq!(
        ota.ota_requests().len(),
        asked_before + 1,
        "one OTA request for the new code"
    );
    assert!(ota.activate_requests().iter().any(|r| r.status == 410));

    // The user enters the new one.
    ota.update_options(|o| o.activation.as_mut().unwrap().pending_polls = 0);
    watcher.wait_state(SessionState::Ready, LIMIT).await;
}

/// An OTA request as another device with the same id would send it,
/// registering `key` first.
fn register_key(ota: &OtaServer, key: &str) {
    let body = json!({"application": {"version": "1.0.0", "elf_sha256": key}}).to_string();
    let mut stream = TcpStream::connect(ota.addr()).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let head = format!(
        "POST /xiaozhi/ota/ HTTP/1.1\r\nHost: x\r\nDevice-Id: {DEVICE}\r\nClient-Id: c\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[actix_rt::test]
async fn a_refused_key_is_a_clear_error_that_backs_off_without_a_storm() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let ota = activating_endpoint(
        &server,
        ActivationOptions {
            first_key_wins: true,
            ..ActivationOptions::default()
        },
    );
    // The server remembers another key for this device id (an identity
    // that was lost and made anew would be in this very situation).
    register_key(&ota, "the-key-the-server-remembers");
    let mut session = v2_session(&ota);
    session.reconnect.max_attempts = 2;
    let (tree, mut watcher) = start(session).await;
    let (refused, _) = watcher
        .wait_for(LIMIT, |u| u.loss.as_ref().is_some_and(|l| l.status == Some(401)))
        .await;
    assert_eq!(refused.state, SessionState::Activating);
    let loss = refused.loss.unwrap();
    assert_eq!(loss.cause, Cause::ActivationRequired);
    assert!(
        loss.reason.contains("activation refused") && loss.reason.contains("hmac mismatch"),
        "{}",
        loss.reason
    );
    assert!(refused.retry_in.is_some(), "waiting on the backoff");
    assert!(refused.activation_code.is_some(), "the code stays shown");
    let summary = tree.monitor.send(GetSession("kitchen".into())).await.unwrap().unwrap();
    assert_eq!(summary.last_close.unwrap().status, Some(401));

    // Over a second: a bounded number of requests (the backoff grows from
    // 20 ms to its 200 ms cap), never a storm, and never `failed` however
    // often it is refused (activation does not count against max_attempts).
    let since = Instant::now();
    let before = ota.requests().len();
    watcher.record_for(Duration::from_secs(1)).await;
    let made = ota.requests().len() - before;
    let elapsed = since.elapsed();
    assert!(made >= 4, "it keeps trying: {made} in {elapsed:?}");
    assert!(made <= 30, "{made} requests in {elapsed:?}");
    assert!(
        !watcher.history().iter().any(|h| h.starts_with("failed")),
        "{:?}",
        watcher.history()
    );
    assert!(ota.activate_requests().iter().all(|r| r.status == 401));
    assert!(!ota.device(DEVICE).unwrap().bound);
}

#[actix_rt::test]
async fn mqtt_is_shown_and_an_answer_with_only_mqtt_says_what_to_ask_for() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let mqtt = json!({"endpoint": "mqtt.example.com:8883", "client_id": "GID_test@@@x", "username": "u",
                      "password": "mqtt-secret-password", "publish_topic": "device-server"});
    let ota = OtaServer::start(OtaOptions {
        websocket: None,
        mqtt: Some(mqtt),
        ..OtaOptions::default()
    })
    .unwrap();
    let mut session = v2_session(&ota);
    session.activation.key = None;
    let (tree, mut watcher) = start(session).await;
    let (loss, _, _) = watcher.wait_loss(LIMIT).await;
    assert_eq!(loss.cause, Cause::ConnectFailed);
    assert!(
        loss.reason.contains("only MQTT (endpoint mqtt.example.com:8883)"),
        "{}",
        loss.reason
    );
    assert!(loss.reason.contains("`websocket` section"), "{}", loss.reason);
    let summary = tree.monitor.send(GetSession("kitchen".into())).await.unwrap().unwrap();
    let offered = summary.ota.unwrap();
    assert!(offered.mqtt && !offered.websocket);
    assert_eq!(offered.mqtt_endpoint.as_deref(), Some("mqtt.example.com:8883"));
    assert!(!format!("{offered:?}").contains("mqtt-secret"));
    // A v1 device says so in its headers.
    assert_eq!(ota.ota_requests()[0].header("activation-version"), Some("1"));
    assert_eq!(ota.ota_requests()[0].header("serial-number"), None);

    // Both offered: WebSocket is taken, MQTT still shown.
    ota.set_websocket(&server.url(), "");
    watcher.wait_state(SessionState::Ready, LIMIT).await;
    let summary = tree.monitor.send(GetSession("kitchen".into())).await.unwrap().unwrap();
    let offered = summary.ota.unwrap();
    assert!(offered.mqtt && offered.websocket);
}

#[actix_rt::test]
async fn a_v1_device_asks_ota_again_until_bound_and_never_calls_activate() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let ota = activating_endpoint(&server, ActivationOptions::default());
    let mut session = v2_session(&ota);
    session.activation.key = None;
    let (_tree, mut watcher) = start(session).await;
    let (first, _) = watcher.wait_state(SessionState::Activating, LIMIT).await;
    assert!(first.retry_in.is_some(), "waits, then asks OTA again");
    assert!(eventually(|| ota.ota_requests().len() >= 3).await);
    ota.bind(DEVICE);
    watcher.wait_state(SessionState::Ready, LIMIT).await;
    assert!(ota.activate_requests().is_empty());
    assert!(ota.ota_requests()[0].payload.as_ref().unwrap()["application"]
        .get("elf_sha256")
        .is_none());
}

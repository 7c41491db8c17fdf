//! Credentials that stay valid: OTA discovery, a token that rotates and is
//! refreshed after an auth failure, activation, token files re-read at
//! every attempt, and wss:// against a private CA.

mod support;

use std::time::Duration;

use serde_json::json;
use support::ota::{ota_session, OtaEndpoint};
use support::tls::PrivateCa;
use support::{settings, start};
use wsvisor_actors::loss::Cause;
use wsvisor_actors::messages::GetSession;
use wsvisor_actors::settings::{Credential, OtaSettings, SessionSettings, TlsSettings};
use wsvisor_actors::state::SessionState;

use wsvisor_loopback::{Fault, Server, ServerOptions};

const LIMIT: Duration = Duration::from_secs(5);

fn websocket(server: &Server, token: &str) -> serde_json::Value {
    json!({"server_time": {"timestamp": 0}, "websocket": {"url": server.url(), "token": token}})
}

#[actix_rt::test]
async fn learns_url_and_token_from_ota_and_survives_a_token_rotation() {
    let server = Server::start(ServerOptions {
        expected_token: Some("t1".into()),
        ..Default::default()
    })
    .unwrap();
    let ota = OtaEndpoint::start(websocket(&server, "t1"));
    let (tree, mut watcher) = start(ota_session(&ota)).await;
    watcher.wait_state(SessionState::Ready, LIMIT).await;
    assert_eq!(
        server.last_headers().unwrap().authorization.as_deref(),
        Some("Bearer t1")
    );

    let asked = &ota.requests()[0];
    assert_eq!(asked.header("device-id"), Some("dev-kitchen"));
    assert_eq!(asked.header("client-id"), Some("6f1c0b8e-0000-4000-8000-000000000001"));
    assert_eq!(asked.header("content-type"), Some("application/json"));
    assert!(asked.header("user-agent").is_some_and(|ua| ua.starts_with("wsvisor/")));
    assert!(asked.body["application"]["version"].is_string() && asked.body["board"]["type"].is_string());
    let summary = tree.monitor.send(GetSession("kitchen".into())).await.unwrap().unwrap();
    assert_eq!(summary.url, Some(server.url()), "the learnt URL shows in the summary");

    // The server rotates the token; the next connection is refused once,
    // refreshes at once, recovers: a repair, not a loss.
    server.set_expected_token(Some("t2".into()));
    ota.set_answer(websocket(&server, "t2"));
    server.inject(Fault::Close(1000, String::new()));
    watcher.wait_state(SessionState::Handshaking, LIMIT).await;
    watcher.wait_state(SessionState::Ready, LIMIT).await;
    assert_eq!(
        server.last_headers().unwrap().authorization.as_deref(),
        Some("Bearer t2")
    );
    assert_eq!(
        ota.requests().len(),
        2,
        "asked once at start, once after the auth failure"
    );
    assert!(
        !watcher.history().iter().any(|h| h.contains("auth_failed")),
        "a refusal one refresh repaired is not shown as a loss: {:?}",
        watcher.history()
    );
    let summary = tree.monitor.send(GetSession("kitchen".into())).await.unwrap().unwrap();
    assert_eq!(summary.counters.losses_of(Cause::AuthFailed), 0);
    assert_eq!(summary.counters.connects, 2);
}

#[actix_rt::test]
async fn a_token_refused_after_a_refresh_parks() {
    let server = Server::start(ServerOptions {
        expected_token: Some("right".into()),
        ..Default::default()
    })
    .unwrap();
    let ota = OtaEndpoint::start(websocket(&server, "wrong"));
    let (_tree, mut watcher) = start(ota_session(&ota)).await;
    let (failed, _) = watcher.wait_state(SessionState::Failed, LIMIT).await;
    assert_eq!(failed.loss.unwrap().cause, Cause::AuthFailed);
    assert_eq!(ota.requests().len(), 2, "one refresh, not a storm");
    watcher.assert_no_state_change(Duration::from_millis(300)).await;
}

#[actix_rt::test]
async fn activation_shows_its_code_and_retries_until_activated() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let activation = json!({"activation": {"code": "123456", "message": "xiaozhi.me 123456", "challenge": "x"}});
    let ota = OtaEndpoint::start(activation);
    let (tree, mut watcher) = start(ota_session(&ota)).await;
    let (activating, _) = watcher.wait_state(SessionState::Activating, LIMIT).await;
    assert_eq!(activating.activation_code.as_deref(), Some("123456"));
    let summary = tree.monitor.send(GetSession("kitchen".into())).await.unwrap().unwrap();
    assert_eq!(
        (summary.state, summary.activation_code.as_deref()),
        (SessionState::Activating, Some("123456"))
    );
    watcher.wait_state(SessionState::Activating, LIMIT).await;
    assert!(ota.requests().len() >= 2, "activation asks the endpoint again");

    // The user entered the code: the endpoint now hands out the WebSocket.
    ota.set_answer(websocket(&server, "t"));
    let (ready, _) = watcher.wait_state(SessionState::Ready, LIMIT).await;
    assert_eq!(ready.activation_code, None);
    let summary = tree.monitor.send(GetSession("kitchen".into())).await.unwrap().unwrap();
    assert_eq!(summary.activation_code, None);
}

#[actix_rt::test]
async fn explicit_url_and_token_win_over_discovered_ones() {
    let server = Server::start(ServerOptions {
        expected_token: Some("mine".into()),
        ..Default::default()
    })
    .unwrap();
    let elsewhere = Server::start(ServerOptions::default()).unwrap();
    let ota = OtaEndpoint::start(websocket(&elsewhere, "theirs"));
    let mut session = ota_session(&ota);
    session.url = Some(server.url());
    session.credential = Some(Credential::Token("mine".into()));
    let (_tree, mut watcher) = start(session).await;
    watcher.wait_state(SessionState::Ready, LIMIT).await;
    assert_eq!(server.hellos(), 1);
    assert_eq!(elsewhere.accepted(), 0);
    assert_eq!(
        ota.requests().len(),
        1,
        "the endpoint is still asked (activation lives there)"
    );
}

#[actix_rt::test]
async fn token_file_is_read_again_at_every_attempt() {
    let server = Server::start(ServerOptions {
        expected_token: Some("first".into()),
        ..Default::default()
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("wsvisor-token-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("kitchen.token");
    std::fs::write(&file, "first\n").unwrap();
    let mut session = settings("kitchen", &server.url());
    session.credential = Some(Credential::TokenFile(file.clone()));
    let (_tree, mut watcher) = start(session).await;
    watcher.wait_state(SessionState::Ready, LIMIT).await;

    std::fs::write(&file, "second\n").unwrap();
    server.set_expected_token(Some("second".into()));
    server.inject(Fault::Close(1000, String::new()));
    watcher.wait_loss(LIMIT).await;
    watcher.wait_state(SessionState::Ready, LIMIT).await;
    assert_eq!(
        server.last_headers().unwrap().authorization.as_deref(),
        Some("Bearer second")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn wss_session(ca: &PrivateCa, server: &Server, tls: TlsSettings) -> SessionSettings {
    let front = ca.front(server.addr());
    settings("kitchen", &format!("wss://localhost:{}/xiaozhi/v1/", front.port())).with_tls(tls)
}

trait WithTls {
    fn with_tls(self, tls: TlsSettings) -> Self;
}

impl WithTls for SessionSettings {
    fn with_tls(mut self, tls: TlsSettings) -> Self {
        self.tls = tls;
        self
    }
}

#[actix_rt::test]
async fn wss_with_a_private_ca_connects_only_when_the_ca_is_given() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let ca = PrivateCa::new();
    let dir = std::env::temp_dir().join(format!("wsvisor-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();

    let trusted = wss_session(
        &ca,
        &server,
        TlsSettings {
            ca_file: Some(ca_file),
            insecure: false,
        },
    );
    let (_tree, mut watcher) = start(trusted).await;
    watcher.wait_state(SessionState::Ready, LIMIT).await;

    let untrusted = wss_session(&ca, &server, TlsSettings::default());
    let (_tree2, mut watcher2) = start(untrusted).await;
    let (loss, _, _) = watcher2.wait_loss(LIMIT).await;
    assert_eq!(loss.cause, Cause::ConnectFailed, "{loss:?}");
    assert!(loss.reason.to_lowercase().contains("certificate"), "{loss:?}");

    let insecure = wss_session(
        &ca,
        &server,
        TlsSettings {
            ca_file: None,
            insecure: true,
        },
    );
    let (_tree3, mut watcher3) = start(insecure).await;
    watcher3.wait_state(SessionState::Ready, LIMIT).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn an_unreachable_ota_endpoint_does_not_block_explicit_settings() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let gone = OtaEndpoint::start(json!({}));
    let ota_url = gone.url();
    drop(gone);
    std::thread::sleep(Duration::from_millis(20));
    let mut session = settings("kitchen", &server.url());
    session.ota = Some(OtaSettings { url: ota_url });
    let (_tree, mut watcher) = start(session).await;
    watcher.wait_state(SessionState::Ready, LIMIT).await;
}

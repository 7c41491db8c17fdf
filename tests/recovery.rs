//! Every way a xiaozhi connection dies, against a real loopback server:
//! the loss is detected by an event within its bound, reported once with
//! the right cause and code, and the session comes back to `ready` by
//! itself (or parks, for auth failures).

mod support;

use std::time::{Duration, Instant};

use support::{settings, start, Watcher, PING_INTERVAL, PING_TIMEOUT};
use wsvisor_actors::loss::Cause;
use wsvisor_actors::messages::{DisconnectSession, SendText};
use wsvisor_actors::state::SessionState;
use wsvisor_actors::Tree;
use wsvisor_loopback::{Fault, Mode, Server, ServerOptions};

/// Close frames and RSTs arrive as socket events: detection is immediate.
const CLOSE_DETECTION: Duration = Duration::from_millis(50);
/// Silence is only seen by the heartbeat.
const SILENCE_DETECTION: Duration = PING_INTERVAL
    .saturating_add(PING_TIMEOUT)
    .saturating_add(Duration::from_millis(100));
const RECOVERY_LIMIT: Duration = Duration::from_secs(3);
const SHORT: Duration = Duration::from_secs(2);

fn server() -> Server {
    Server::start(ServerOptions::default()).expect("loopback server")
}

async fn ready_session(server: &Server) -> (Tree, Watcher) {
    let (tree, mut watcher) = start(settings("kitchen", &server.url())).await;
    watcher.wait_state(SessionState::Ready, RECOVERY_LIMIT).await;
    (tree, watcher)
}

/// Inject `fault` into a ready session; assert cause, code, detection time
/// and recovery.
async fn detects_and_recovers(fault: Fault, cause: Cause, code: Option<u16>, within: Duration) {
    let server = server();
    let (_tree, mut watcher) = ready_session(&server).await;
    let injected = server.inject(fault.clone());
    let (loss, update, detected_at) = watcher.wait_loss(SHORT).await;
    assert_eq!((loss.cause, loss.code), (cause, code), "{fault:?} gave {loss:?}");
    assert_eq!(update.state, SessionState::Backoff);
    let detection = detected_at.saturating_duration_since(injected);
    assert!(
        detection < within,
        "{fault:?}: detected after {detection:?}, bound {within:?}"
    );
    let (ready, ready_at) = watcher.wait_state(SessionState::Ready, RECOVERY_LIMIT).await;
    assert!(ready.session_id.is_some(), "ready without a session_id");
    eprintln!(
        "{fault:?}: cause={cause} detected in {detection:?}, ready again {:?} after the fault",
        ready_at.saturating_duration_since(injected)
    );
}

#[actix_rt::test]
async fn close_1000_is_detected_and_recovered() {
    detects_and_recovers(
        Fault::Close(1000, "idle".into()),
        Cause::ServerClose,
        Some(1000),
        CLOSE_DETECTION,
    )
    .await;
}

#[actix_rt::test]
async fn close_1001_is_detected_and_recovered() {
    detects_and_recovers(
        Fault::Close(1001, "going away".into()),
        Cause::ServerClose,
        Some(1001),
        CLOSE_DETECTION,
    )
    .await;
}

#[actix_rt::test]
async fn close_1011_is_detected_and_recovered() {
    detects_and_recovers(
        Fault::Close(1011, "internal".into()),
        Cause::ServerClose,
        Some(1011),
        CLOSE_DETECTION,
    )
    .await;
}

#[actix_rt::test]
async fn close_1012_is_detected_and_recovered() {
    detects_and_recovers(
        Fault::Close(1012, "restart".into()),
        Cause::ServerClose,
        Some(1012),
        CLOSE_DETECTION,
    )
    .await;
}

#[actix_rt::test]
async fn close_without_code_is_1005() {
    detects_and_recovers(Fault::CloseNoCode, Cause::ServerClose, Some(1005), CLOSE_DETECTION).await;
}

#[actix_rt::test]
async fn tcp_end_without_close_is_abnormal_1006() {
    detects_and_recovers(Fault::Drop, Cause::Abnormal, Some(1006), CLOSE_DETECTION).await;
}

#[actix_rt::test]
async fn reset_is_detected_and_recovered() {
    detects_and_recovers(Fault::Reset, Cause::Reset, None, CLOSE_DETECTION).await;
}

#[actix_rt::test]
async fn silence_is_a_ping_timeout() {
    detects_and_recovers(Fault::Silence, Cause::PingTimeout, None, SILENCE_DETECTION).await;
}

#[actix_rt::test]
async fn outage_then_the_server_comes_back() {
    let server = server();
    let (_tree, mut watcher) = ready_session(&server).await;
    server.stop_listening();
    server.inject(Fault::Reset);
    watcher
        .wait_for(SHORT, |u| u.loss.as_ref().is_some_and(|l| l.cause == Cause::Reset))
        .await;
    for _ in 0..2 {
        let (loss, _, _) = watcher.wait_loss(SHORT).await;
        assert_eq!(loss.cause, Cause::ConnectFailed, "{loss:?}");
    }
    server.start_listening().unwrap();
    watcher.wait_state(SessionState::Ready, RECOVERY_LIMIT).await;
}

#[actix_rt::test]
async fn refused_with_401_parks_at_once() {
    refused_auth_parks(401).await;
}

#[actix_rt::test]
async fn refused_with_403_parks_at_once() {
    refused_auth_parks(403).await;
}

async fn refused_auth_parks(status: u16) {
    let server = Server::start(ServerOptions {
        mode: Mode::RefuseUpgrade(status),
        ..Default::default()
    })
    .unwrap();
    let (_tree, mut watcher) = start(settings("kitchen", &server.url())).await;
    let (loss, update, _) = watcher.wait_loss(SHORT).await;
    assert_eq!((loss.cause, loss.status), (Cause::AuthFailed, Some(status)));
    assert_eq!(update.state, SessionState::Failed);
    watcher.assert_no_state_change(Duration::from_millis(300)).await;
    assert_eq!(server.accepted(), 1, "an auth failure must not be retried");
}

#[actix_rt::test]
async fn auth_failed_text_parks_at_once() {
    let server = Server::start(ServerOptions {
        mode: Mode::AuthFail,
        ..Default::default()
    })
    .unwrap();
    let (_tree, mut watcher) = start(settings("kitchen", &server.url())).await;
    let (loss, update, _) = watcher.wait_loss(SHORT).await;
    assert_eq!(loss.cause, Cause::AuthFailed, "{loss:?}");
    assert_eq!(update.state, SessionState::Failed);
    watcher.assert_no_state_change(Duration::from_millis(300)).await;
    assert_eq!(server.accepted(), 1);
}

#[actix_rt::test]
async fn refused_with_503_backs_off_until_the_server_accepts() {
    let server = Server::start(ServerOptions {
        mode: Mode::RefuseUpgrade(503),
        ..Default::default()
    })
    .unwrap();
    let (_tree, mut watcher) = start(settings("kitchen", &server.url())).await;
    let (loss, update, _) = watcher.wait_loss(SHORT).await;
    assert_eq!((loss.cause, loss.status), (Cause::HttpStatus, Some(503)));
    assert_eq!(update.state, SessionState::Backoff);
    server.set_mode(Mode::Normal);
    watcher.wait_state(SessionState::Ready, RECOVERY_LIMIT).await;
}

#[actix_rt::test]
async fn missing_hello_is_a_hello_timeout() {
    let server = Server::start(ServerOptions {
        mode: Mode::NeverHello,
        ..Default::default()
    })
    .unwrap();
    let session = settings("kitchen", &server.url());
    let hello_timeout = session.hello_timeout;
    let (_tree, mut watcher) = start(session).await;
    let (handshaking, since) = watcher.wait_state(SessionState::Handshaking, SHORT).await;
    assert_eq!(handshaking.loss, None);
    let (loss, _, at) = watcher.wait_loss(SHORT).await;
    assert_eq!(loss.cause, Cause::HelloTimeout);
    let waited = at.duration_since(since);
    assert!(
        waited >= hello_timeout && waited < hello_timeout + Duration::from_millis(150),
        "gave up after {waited:?}"
    );
    server.set_mode(Mode::Normal);
    watcher.wait_state(SessionState::Ready, RECOVERY_LIMIT).await;
}

#[actix_rt::test]
async fn late_hello_within_the_timeout_is_fine_and_past_it_is_not() {
    let server = Server::start(ServerOptions {
        mode: Mode::LateHello(Duration::from_millis(100)),
        ..Default::default()
    })
    .unwrap();
    let (_tree, mut watcher) = ready_session(&server).await;
    server.set_mode(Mode::LateHello(Duration::from_millis(600)));
    server.inject(Fault::Close(1000, String::new()));
    watcher.wait_loss(SHORT).await;
    let (loss, _, _) = watcher.wait_loss(SHORT).await;
    assert_eq!(loss.cause, Cause::HelloTimeout);
}

#[actix_rt::test]
async fn garbage_between_good_messages_does_not_end_the_session() {
    let server = server();
    let (tree, mut watcher) = ready_session(&server).await;
    server.inject(Fault::Garbage);
    watcher.assert_no_state_change(Duration::from_millis(300)).await;
    let mut message = serde_json::Map::new();
    message.insert("type".into(), "listen".into());
    message.insert("state".into(), "detect".into());
    message.insert("text".into(), "still here".into());
    tree.supervisor
        .send(SendText {
            session: "kitchen".into(),
            message,
        })
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + SHORT;
    while !server.received_texts().iter().any(|t| t.text.contains("still here")) {
        assert!(Instant::now() < deadline, "the message after the garbage never arrived");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    let texts = server.received_texts();
    let sent = texts.iter().find(|t| t.text.contains("still here")).unwrap();
    let sent: serde_json::Value = serde_json::from_str(&sent.text).unwrap();
    assert!(sent["session_id"].is_string(), "session_id was not filled in: {sent}");
}

#[actix_rt::test]
async fn server_pings_are_answered_with_the_same_payload() {
    let server = server();
    let (_tree, _watcher) = ready_session(&server).await;
    server.inject(Fault::Ping(b"are you there".to_vec()));
    let deadline = Instant::now() + SHORT;
    while !server.pongs_received().contains(&b"are you there".to_vec()) {
        assert!(Instant::now() < deadline, "no Pong with the Ping's payload");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn upgrade_carries_the_xiaozhi_headers_and_hello() {
    let server = server();
    let (_tree, _watcher) = ready_session(&server).await;
    let headers = server.last_headers().expect("headers recorded");
    assert_eq!(headers.authorization.as_deref(), Some("Bearer test-token"));
    assert_eq!(headers.protocol_version.as_deref(), Some("1"));
    assert_eq!(headers.device_id.as_deref(), Some("dev-kitchen"));
    assert_eq!(
        headers.client_id.as_deref(),
        Some("6f1c0b8e-0000-4000-8000-000000000001")
    );
    let hello = &server.client_hellos()[0];
    assert_eq!(hello["transport"], "websocket");
    assert_eq!(hello["features"]["mcp"], true);
}

#[actix_rt::test]
async fn disconnect_closes_with_1000_and_never_restarts() {
    let server = server();
    let (tree, mut watcher) = ready_session(&server).await;
    tree.supervisor
        .send(DisconnectSession("kitchen".into()))
        .await
        .unwrap()
        .unwrap();
    let (loss, update, _) = watcher.wait_loss(SHORT).await;
    assert_eq!((loss.cause, update.state), (Cause::LocalStop, SessionState::Stopped));
    watcher.assert_no_state_change(Duration::from_millis(300)).await;
    assert_eq!(server.accepted(), 1);
    let deadline = Instant::now() + SHORT;
    while !server.closes_received().contains(&Some(1000)) {
        assert!(Instant::now() < deadline, "the server never saw our Close 1000");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn server_down_exactly_max_attempts_with_jittered_delays_then_failed() {
    let server = server();
    server.stop_listening();
    let session = settings("kitchen", &server.url());
    let policy = session.reconnect;
    let (_tree, mut watcher) = start(session).await;
    let mut attempts = 0;
    let mut nominal = policy.initial_delay;
    loop {
        watcher.wait_state(SessionState::Connecting, SHORT).await;
        attempts += 1;
        let (loss, update, lost_at) = watcher.wait_loss(SHORT).await;
        assert_eq!(loss.cause, Cause::ConnectFailed);
        if update.state == SessionState::Failed {
            break;
        }
        assert_eq!(update.state, SessionState::Backoff);
        let delay = update.retry_in.expect("backoff names its delay");
        let (low, high) = (
            nominal.mul_f64(1.0 - policy.jitter),
            nominal.mul_f64(1.0 + policy.jitter),
        );
        assert!(
            delay >= low && delay <= high + Duration::from_micros(1),
            "delay {delay:?} outside [{low:?}, {high:?}]"
        );
        let (_, next_at) = watcher.wait_state(SessionState::Connecting, SHORT).await;
        let waited = next_at.duration_since(lost_at);
        assert!(
            waited + Duration::from_millis(2) >= delay,
            "retried after {waited:?}, before its delay {delay:?}"
        );
        assert!(
            waited < delay + Duration::from_millis(50),
            "retried after {waited:?}, delay was {delay:?}"
        );
        attempts += 1;
        let (loss, update, _) = watcher.wait_loss(SHORT).await;
        assert_eq!(loss.cause, Cause::ConnectFailed);
        nominal = (nominal * 2).min(policy.max_delay);
        if update.state == SessionState::Failed {
            break;
        }
        let delay = update.retry_in.unwrap();
        let (low, high) = (
            nominal.mul_f64(1.0 - policy.jitter),
            nominal.mul_f64(1.0 + policy.jitter),
        );
        assert!(
            delay >= low && delay <= high + Duration::from_micros(1),
            "delay {delay:?} outside [{low:?}, {high:?}]"
        );
        nominal = (nominal * 2).min(policy.max_delay);
    }
    assert_eq!(attempts, policy.max_attempts);
    watcher.assert_no_state_change(Duration::from_millis(300)).await;
}

#[actix_rt::test]
async fn app_ping_keeps_an_idle_closing_server_from_closing() {
    let server = Server::start(ServerOptions {
        idle_close: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .unwrap();
    let mut session = settings("kitchen", &server.url());
    session.liveness.app_ping_interval = Some(Duration::from_millis(100));
    let (_tree, mut watcher) = start(session).await;
    watcher.wait_state(SessionState::Ready, SHORT).await;
    watcher.assert_no_state_change(Duration::from_millis(1000)).await;
    let pings = server
        .received_texts()
        .iter()
        .filter(|t| t.text.contains(r#""type":"ping""#))
        .count();
    assert!(pings >= 8, "only {pings} application pings in 1 s");
}

#[actix_rt::test]
async fn websocket_pings_alone_do_not_keep_an_idle_closing_server_open() {
    // The reason app_ping_interval exists: xiaozhi-esp32-server ignores WebSocket Pings.
    let server = Server::start(ServerOptions {
        idle_close: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .unwrap();
    let mut session = settings("kitchen", &server.url());
    session.liveness.ping_interval = Duration::from_millis(50);
    let (_tree, mut watcher) = start(session).await;
    watcher.wait_state(SessionState::Ready, SHORT).await;
    let (loss, _, _) = watcher.wait_loss(SHORT).await;
    assert_eq!((loss.cause, loss.code), (Cause::ServerClose, Some(1000)));
    assert!(
        server.client_pings() >= 3,
        "the heartbeat sent {} pings",
        server.client_pings()
    );
}

#[actix_rt::test]
async fn a_failed_session_probes_after_revive_after() {
    let server = Server::start(ServerOptions {
        mode: Mode::RefuseUpgrade(401),
        ..Default::default()
    })
    .unwrap();
    let mut session = settings("kitchen", &server.url());
    session.reconnect.revive_after = Some(Duration::from_millis(300));
    let (_tree, mut watcher) = start(session).await;
    let (_, failed_at) = watcher.wait_state(SessionState::Failed, SHORT).await;
    server.set_mode(Mode::Normal);
    let (_, connecting_at) = watcher.wait_state(SessionState::Connecting, SHORT).await;
    let waited = connecting_at.duration_since(failed_at);
    // revive_after jittered by half of jitter (0.5): 225 to 375 ms.
    assert!(
        waited >= Duration::from_millis(220) && waited <= Duration::from_millis(475),
        "probed after {waited:?}"
    );
    watcher.wait_state(SessionState::Ready, SHORT).await;
}

#[actix_rt::test]
async fn on_demand_stays_down_after_a_clean_close_until_something_is_sent() {
    let server = server();
    let mut session = settings("kitchen", &server.url());
    session.keep = wsvisor_actors::settings::Keep::OnDemand;
    let (tree, mut watcher) = start(session).await;
    watcher.wait_state(SessionState::Ready, SHORT).await;
    server.inject(Fault::Close(1000, String::new()));
    let (loss, update, _) = watcher.wait_loss(SHORT).await;
    assert_eq!((loss.cause, update.state), (Cause::ServerClose, SessionState::Stopped));
    watcher.assert_no_state_change(Duration::from_millis(200)).await;
    assert_eq!(server.accepted(), 1);

    let outcome = support::send_listen(&tree, "kitchen", "wake up").await;
    assert_eq!(outcome, wsvisor_actors::messages::SendOutcome::Queued { position: 1 });
    let (ready, _) = watcher.wait_state(SessionState::Ready, SHORT).await;
    let deadline = Instant::now() + SHORT;
    while !server.received_texts().iter().any(|t| t.text.contains("wake up")) {
        assert!(Instant::now() < deadline, "the queued message never arrived");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    let texts = server.received_texts();
    let woke = texts.iter().find(|t| t.text.contains("wake up")).unwrap();
    assert_eq!(
        woke.session_id, ready.session_id,
        "sent on the new connection with its session_id"
    );
}

#[actix_rt::test]
async fn silence_right_after_a_pong_is_found_within_interval_plus_timeout() {
    let server = server();
    let mut session = settings("kitchen", &server.url());
    session.liveness.ping_interval = Duration::from_millis(100);
    session.liveness.ping_timeout = Duration::from_millis(300);
    let (_tree, mut watcher) = start(session).await;
    watcher.wait_state(SessionState::Ready, SHORT).await;
    // Let a Ping/Pong round pass, so a Pong is the last frame before the silence.
    let deadline = Instant::now() + SHORT;
    while server.client_pings() < 1 {
        assert!(Instant::now() < deadline, "no heartbeat Ping");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    actix_rt::time::sleep(Duration::from_millis(5)).await;
    let injected = server.inject(Fault::Silence);
    let (loss, _, at) = watcher.wait_loss(SHORT).await;
    assert_eq!(loss.cause, Cause::PingTimeout);
    let took = at.duration_since(injected);
    assert!(
        took < Duration::from_millis(100 + 300 + 100),
        "silence found after {took:?}"
    );
}

#[actix_rt::test]
async fn pongs_late_by_less_than_ping_timeout_never_kill_the_session() {
    // Dead only after ping_interval + ping_timeout of silence: a server that
    // stalls for 600 ms answers the Ping sent during the stall up to 600 ms
    // late, within the 1 s ping_timeout. A verdict a quarter as patient
    // (250 ms after a Ping at most 50 ms into the stall) would come first.
    let server = server();
    let mut session = settings("kitchen", &server.url());
    session.liveness.ping_interval = Duration::from_millis(50);
    session.liveness.ping_timeout = Duration::from_secs(1);
    let (_tree, mut watcher) = start(session).await;
    watcher.wait_state(SessionState::Ready, SHORT).await;
    for stall in 0..3 {
        server.inject(Fault::Stall(Duration::from_millis(600)));
        let pings = server.client_pings();
        watcher.assert_no_state_change(Duration::from_millis(400)).await;
        assert_eq!(
            server.client_pings(),
            pings,
            "stall {stall}: the server read nothing while stalled"
        );
        watcher.assert_no_state_change(Duration::from_millis(400)).await;
        assert!(
            server.client_pings() > pings,
            "stall {stall}: the Ping sent into the stall was answered once it ended"
        );
    }
    assert!(
        server.open_connections() == 1 && server.hellos() == 1,
        "one connection throughout"
    );
}

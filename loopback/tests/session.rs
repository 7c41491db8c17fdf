//! The xiaozhi conversation as a client sees it: hello, headers, app-level
//! ping, listen/detect, the per-connection modes, authentication and idle
//! close.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::{Error, Message};
use wsvisor_loopback::{EventKind, Mode, Server, ServerOptions, AUTH_FAILED_TEXT};

#[tokio::test]
async fn hello_exchange_yields_a_session_id_and_records_headers() {
    let server = Server::start(ServerOptions::default()).unwrap();
    assert!(server.url().starts_with("ws://127.0.0.1:"));
    assert!(server.url().ends_with("/xiaozhi/v1/"));
    let (_ws, id) = ready(&server, "aa:bb:cc:dd:ee:ff").await;
    assert_eq!(id.len(), 36);
    assert_eq!(server.hellos(), 1);
    assert_eq!(server.upgrades(), 1);
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.open_connections(), 1);
    assert_eq!(server.open_devices(), vec!["aa:bb:cc:dd:ee:ff".to_owned()]);
    let headers = server.last_headers().unwrap();
    assert_eq!(headers.path, "/xiaozhi/v1/");
    assert_eq!(headers.authorization.as_deref(), Some("Bearer token"));
    assert_eq!(headers.protocol_version.as_deref(), Some("1"));
    assert_eq!(headers.device_id.as_deref(), Some("aa:bb:cc:dd:ee:ff"));
    assert_eq!(
        headers.client_id.as_deref(),
        Some("6f1c0b8e-0000-4000-8000-000000000001")
    );
    let hellos = server.client_hellos();
    assert_eq!(hellos.len(), 1);
    assert_eq!(hellos[0]["features"]["mcp"], true);
    assert!(server.received_texts().is_empty(), "the hello is not a received text");
    let kinds: Vec<EventKind> = server.events().into_iter().map(|e| e.kind).collect();
    assert!(matches!(kinds[0], EventKind::Accepted { .. }));
    assert_eq!(kinds[1], EventKind::Upgraded);
    assert_eq!(kinds[2], EventKind::HelloReceived);
    assert_eq!(kinds[3], EventKind::HelloSent { session_id: id });
}

#[tokio::test]
async fn session_ids_differ_between_connections() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (_a, id_a) = ready(&server, "a").await;
    let (_b, id_b) = ready(&server, "b").await;
    assert_ne!(id_a, id_b);
}

#[tokio::test]
async fn app_ping_listen_detect_and_audio_are_answered_and_recorded() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, id) = ready(&server, "dev").await;

    ws.send(Message::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "pong");

    let detect = r#"{"type":"listen","state":"detect","text":"你好小智","mode":"auto"}"#;
    ws.send(Message::Text(detect.into())).await.unwrap();
    let stt = next_json(&mut ws).await;
    assert_eq!(stt["type"], "stt");
    assert_eq!(stt["text"], "你好小智");
    assert_eq!(stt["session_id"], id.as_str());

    ws.send(Message::Binary(vec![1; 100])).await.unwrap();
    ws.send(Message::Binary(vec![2; 20])).await.unwrap();
    assert!(server.wait_until(SOON, |s| s.received_binary_frames() == 2));
    assert_eq!(server.received_binary_bytes(), 120);

    let texts = server.received_texts();
    assert_eq!(texts.len(), 2);
    assert_eq!(texts[0].text, r#"{"type":"ping"}"#);
    assert_eq!(texts[1].text, detect);
    assert_eq!(texts[1].device_id, "dev");
    assert_eq!(texts[1].session_id.as_deref(), Some(id.as_str()));
    assert!(server.wait_for_texts(2, Duration::ZERO));
}

#[tokio::test]
async fn binary_frames_come_back_only_with_echo_binary() {
    let echoing = Server::start(ServerOptions {
        echo_binary: true,
        ..ServerOptions::default()
    })
    .unwrap();
    let (mut ws, _) = ready(&echoing, "dev").await;
    for i in 0..3u8 {
        ws.send(Message::Binary(vec![i; 120])).await.unwrap();
        match next(&mut ws).await {
            Some(Ok(Message::Binary(data))) => assert_eq!(data, vec![i; 120]),
            other => panic!("expected the frame back, got {other:?}"),
        }
    }
    assert_eq!(echoing.received_binary_frames(), 3);
    assert_eq!(echoing.sent_binary_frames(), 3);

    let quiet = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, _) = ready(&quiet, "dev").await;
    ws.send(Message::Binary(vec![7; 120])).await.unwrap();
    // A Ping after it: its Pong is the next frame only when nothing came back before it.
    ws.send(Message::Ping(b"after".to_vec())).await.unwrap();
    match next(&mut ws).await {
        Some(Ok(Message::Pong(payload))) => assert_eq!(payload, b"after"),
        other => panic!("expected only the Pong, got {other:?}"),
    }
    assert_eq!(quiet.received_binary_frames(), 1);
    assert_eq!(quiet.sent_binary_frames(), 0);
}

#[tokio::test]
async fn client_pings_are_answered_promptly_and_counted() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    ws.send(Message::Ping(b"are you there".to_vec())).await.unwrap();
    match next(&mut ws).await {
        Some(Ok(Message::Pong(payload))) => assert_eq!(payload, b"are you there"),
        other => panic!("expected a Pong, got {other:?}"),
    }
    assert!(server.wait_until(SOON, |s| s.client_pings() == 1));
}

#[tokio::test]
async fn client_close_is_recorded_with_its_code() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    ws.close(None).await.unwrap();
    // The server echoes and closes TCP first.
    loop {
        match next(&mut ws).await {
            Some(Ok(Message::Close(_))) => continue,
            None => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(server.wait_for_open(0, SOON));
    assert_eq!(server.closes_received(), vec![None]);

    let (mut ws, _) = ready(&server, "dev").await;
    let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    };
    ws.close(Some(frame)).await.unwrap();
    assert!(server.wait_until(SOON, |s| s.closes_received().len() == 2));
    assert_eq!(server.closes_received(), vec![None, Some(1000)]);
    assert!(server.wait_for_open(0, SOON));
}

#[tokio::test]
async fn refuse_upgrade_gives_the_client_that_status() {
    let server = Server::start(ServerOptions {
        mode: Mode::RefuseUpgrade(401),
        ..Default::default()
    })
    .unwrap();
    match try_connect(&server.url(), "dev", Some("t")).await {
        Err(Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected an HTTP 401 error, got {:?}", other.map(|_| ())),
    }
    server.set_mode(Mode::RefuseUpgrade(503));
    match try_connect(&server.url(), "dev", Some("t")).await {
        Err(Error::Http(resp)) => assert_eq!(resp.status(), 503),
        other => panic!("expected an HTTP 503 error, got {:?}", other.map(|_| ())),
    }
    assert_eq!(server.upgrades(), 0);
    assert_eq!(server.accepted(), 2);
    assert_eq!(server.last_headers().unwrap().device_id.as_deref(), Some("dev"));
    assert!(server
        .events()
        .iter()
        .any(|e| e.kind == EventKind::UpgradeRefused { status: 401 }));
    // Back to normal for new connections.
    server.set_mode(Mode::Normal);
    let _ = ready(&server, "dev").await;
}

#[tokio::test]
async fn never_hello_still_answers_pings() {
    let server = Server::start(ServerOptions {
        mode: Mode::NeverHello,
        ..Default::default()
    })
    .unwrap();
    let mut ws = connect(&server, "dev").await;
    send_hello(&mut ws).await;
    ws.send(Message::Ping(b"p".to_vec())).await.unwrap();
    match next(&mut ws).await {
        Some(Ok(Message::Pong(p))) => assert_eq!(p, b"p"),
        other => panic!("expected a Pong, got {other:?}"),
    }
    ws.send(Message::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "pong");
    assert!(next_within(&mut ws, Duration::from_millis(300)).await.is_none());
    assert_eq!(server.hellos(), 0);
    assert_eq!(server.client_hellos().len(), 1);
    assert_eq!(server.received_texts()[0].session_id, None);
}

#[tokio::test]
async fn late_hello_arrives_after_the_delay() {
    let server = Server::start(ServerOptions {
        mode: Mode::LateHello(Duration::from_millis(300)),
        ..Default::default()
    })
    .unwrap();
    let mut ws = connect(&server, "dev").await;
    let sent = Instant::now();
    send_hello(&mut ws).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["type"], "hello");
    let took = sent.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

async fn expect_auth_failure(ws: &mut Client) {
    match next(ws).await {
        Some(Ok(Message::Text(t))) => assert_eq!(t, AUTH_FAILED_TEXT),
        other => panic!("expected 认证失败, got {other:?}"),
    }
    assert_eq!(expect_close(ws).await.map(|c| c.0), Some(1000));
}

#[tokio::test]
async fn wrong_token_gets_auth_failure_then_close_1000() {
    let server = Server::start(ServerOptions {
        expected_token: Some("secret".into()),
        ..Default::default()
    })
    .unwrap();
    let mut ws = try_connect(&server.url(), "dev", Some("wrong")).await.unwrap();
    expect_auth_failure(&mut ws).await;
    let mut ws = try_connect(&server.url(), "dev", None).await.unwrap();
    expect_auth_failure(&mut ws).await;
    assert!(server.events().iter().any(|e| e.kind == EventKind::AuthFailed));
    assert!(server.wait_for_open(0, SOON));

    let mut ws = try_connect(&server.url(), "dev", Some("secret")).await.unwrap();
    hello(&mut ws).await;
    assert_eq!(server.hellos(), 1);
}

#[tokio::test]
async fn auth_fail_mode_rejects_any_token() {
    let server = Server::start(ServerOptions {
        mode: Mode::AuthFail,
        ..Default::default()
    })
    .unwrap();
    let mut ws = connect(&server, "dev").await;
    expect_auth_failure(&mut ws).await;
    assert_eq!(server.hellos(), 0);
}

#[tokio::test]
async fn idle_close_fires_for_a_silent_client_only() {
    let server = Server::start(ServerOptions {
        idle_close: Some(Duration::from_millis(200)),
        ..Default::default()
    })
    .unwrap();

    // Active: audio every 50 ms for 600 ms keeps it open.
    let (mut busy, _) = ready(&server, "busy").await;
    for _ in 0..12 {
        busy.send(Message::Binary(vec![0; 40])).await.unwrap();
        if let Some(msg) = next_within(&mut busy, Duration::from_millis(50)).await {
            panic!("unexpected message while active: {msg:?}");
        }
    }

    // Silent (WebSocket Pings do not count): closed with 1000 after ~200 ms.
    let (mut idle, _) = ready(&server, "idle").await;
    let start = Instant::now();
    idle.send(Message::Ping(vec![1])).await.unwrap();
    assert_eq!(expect_close(&mut idle).await, Some((1000, String::new())));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(server.events().iter().any(|e| e.kind == EventKind::IdleClosed));
}

#[tokio::test]
async fn device_and_token_may_come_from_the_query_string() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let url = format!(
        "{}?device-id=aa%3Abb&client-id=c1&authorization=Bearer+tok",
        server.url()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    hello(&mut ws).await;
    let headers = server.last_headers().unwrap();
    assert_eq!(headers.device_id.as_deref(), Some("aa:bb"));
    assert_eq!(headers.client_id.as_deref(), Some("c1"));
    assert_eq!(headers.authorization.as_deref(), Some("Bearer tok"));
}

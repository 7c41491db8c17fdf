//! Each injected fault as the client sees it.

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error, Message};
use wsvisor_loopback::{EventKind, Fault, Server, ServerOptions};

#[tokio::test]
async fn close_with_code_and_reason() {
    let server = Server::start(ServerOptions::default()).unwrap();
    for code in [1000u16, 1001, 1011, 1012] {
        let (mut ws, _) = ready(&server, "dev").await;
        let before = Instant::now();
        let at = server.inject(Fault::Close(code, format!("reason {code}")));
        assert!(at >= before);
        assert_eq!(expect_close(&mut ws).await, Some((code, format!("reason {code}"))));
        // The client echoes; the server then closes TCP.
        assert!(next(&mut ws).await.is_none());
        assert!(server.wait_for_open(0, SOON));
    }
    assert!(server.wait_until(SOON, |s| {
        s.events()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::CloseEchoed { .. }))
            .count()
            == 4
    }));
    assert!(server.closes_received().is_empty(), "echoes are not client closes");
}

#[tokio::test]
async fn close_without_code() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    server.inject(Fault::CloseNoCode);
    assert_eq!(expect_close(&mut ws).await, None);
}

#[tokio::test]
async fn drop_ends_the_stream_without_close() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    let injection = server.inject_where(None, Fault::Drop);
    assert_eq!(injection.connections, 1);
    match read_to_end(&mut ws).await {
        Some(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) | None => {}
        Some(other) => panic!("expected EOF without Close, got {other:?}"),
    }
    assert!(server.wait_for_open(0, SOON));
}

#[tokio::test]
async fn reset_gives_connection_reset() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    server.inject(Fault::Reset);
    match read_to_end(&mut ws).await {
        Some(Error::Io(e)) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
        other => panic!("expected ConnectionReset, got {other:?}"),
    }
    assert_eq!(server.open_connections(), 0);
}

#[tokio::test]
async fn silence_stops_pongs_and_can_still_be_dropped() {
    let server = Server::start(ServerOptions {
        idle_close: Some(Duration::from_millis(100)),
        ..Default::default()
    })
    .unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    server.inject(Fault::Silence);
    ws.send(Message::Ping(b"hello?".to_vec())).await.unwrap();
    ws.send(Message::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
    // No Pong, no app pong and no idle close either.
    assert!(next_within(&mut ws, Duration::from_millis(300)).await.is_none());
    assert_eq!(server.open_connections(), 1);
    server.inject(Fault::Drop);
    match read_to_end(&mut ws).await {
        Some(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) | None => {}
        // The unread Ping/text may turn the close into a reset.
        Some(Error::Io(e)) if e.kind() == ErrorKind::ConnectionReset => {}
        Some(other) => panic!("expected the stream to end, got {other:?}"),
    }
}

#[tokio::test]
async fn silence_then_reset() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    server.inject(Fault::Silence);
    server.inject(Fault::Reset);
    match read_to_end(&mut ws).await {
        Some(Error::Io(e)) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
        other => panic!("expected ConnectionReset, got {other:?}"),
    }
}

#[tokio::test]
async fn silence_ends_with_the_next_fault() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    server.inject(Fault::Silence);
    server.inject(Fault::Text("awake".into()));
    match next(&mut ws).await {
        Some(Ok(Message::Text(t))) => assert_eq!(t, "awake"),
        other => panic!("unexpected {other:?}"),
    }
    ws.send(Message::Ping(vec![7])).await.unwrap();
    match next(&mut ws).await {
        Some(Ok(Message::Pong(p))) => assert_eq!(p, vec![7]),
        other => panic!("expected a Pong, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_arrives_in_order_and_the_connection_stays_up() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, id) = ready(&server, "dev").await;
    server.inject(Fault::Garbage);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(next(&mut ws).await.unwrap().unwrap());
    }
    assert_eq!(got[0], Message::Text(r#"{"type": "tts", "#.into()));
    assert_eq!(got[1], Message::Text(r#"{"type":"whatever"}"#.into()));
    assert!(matches!(&got[2], Message::Binary(b) if b.len() == 3));
    assert_eq!(got[3], Message::Text("[1,2]".into()));
    let Message::Text(tts) = &got[4] else {
        panic!("{:?}", got[4])
    };
    let tts: serde_json::Value = serde_json::from_str(tts).unwrap();
    assert_eq!(tts["type"], "tts");
    assert_eq!(tts["state"], "start");
    assert_eq!(tts["session_id"], id.as_str());
    ws.send(Message::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "pong");
}

#[tokio::test]
async fn server_ping_is_answered_and_the_pong_recorded() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    server.inject(Fault::Ping(b"abc".to_vec()));
    match next(&mut ws).await {
        Some(Ok(Message::Ping(p))) => assert_eq!(p, b"abc"),
        other => panic!("expected a Ping, got {other:?}"),
    }
    // tokio-tungstenite queues the Pong; the next read flushes it.
    let _ = next_within(&mut ws, Duration::from_millis(50)).await;
    assert!(server.wait_until(SOON, |s| s.pongs_received() == vec![b"abc".to_vec()]));
}

#[tokio::test]
async fn ping_interval_sends_incrementing_pings() {
    let server = Server::start(ServerOptions {
        ping_interval: Some(Duration::from_millis(50)),
        ..Default::default()
    })
    .unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    let mut payloads = Vec::new();
    while payloads.len() < 3 {
        match next(&mut ws).await {
            Some(Ok(Message::Ping(p))) => payloads.push(String::from_utf8(p).unwrap()),
            other => panic!("expected a Ping, got {other:?}"),
        }
    }
    let numbers: Vec<u64> = payloads.iter().map(|p| p.parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[1] > w[0]), "{numbers:?}");
    assert!(server.pings_sent() >= 3);
    assert!(server.wait_until(SOON, |s| s.pongs_received().len() >= 2));
}

#[tokio::test]
async fn text_and_binary_frames() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    server.inject(Fault::Text(r#"{"type":"tts","state":"stop"}"#.into()));
    server.inject(Fault::Binary(vec![9; 60]));
    assert_eq!(next_json(&mut ws).await["state"], "stop");
    assert_eq!(next(&mut ws).await.unwrap().unwrap(), Message::Binary(vec![9; 60]));
}

#[tokio::test]
async fn inject_for_hits_only_that_device() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut kitchen, _) = ready(&server, "kitchen").await;
    let (mut attic, _) = ready(&server, "attic").await;
    let hit = server.inject_where(Some("kitchen"), Fault::Close(1011, String::new()));
    assert_eq!(hit.connections, 1);
    assert_eq!(expect_close(&mut kitchen).await.map(|c| c.0), Some(1011));
    assert!(next_within(&mut attic, Duration::from_millis(200)).await.is_none());
    assert!(server.wait_for_open(1, SOON));
    assert_eq!(server.open_devices(), vec!["attic".to_owned()]);
    let none = server.inject_where(Some("nobody"), Fault::Drop);
    assert_eq!(none.connections, 0);
    server.inject_for("attic", Fault::Close(1000, String::new()));
    assert_eq!(expect_close(&mut attic).await.map(|c| c.0), Some(1000));
}

#[tokio::test]
async fn faults_appear_in_the_timeline() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (_ws, _) = ready(&server, "dev").await;
    let at = server.inject(Fault::Text("x".into()));
    let fault = server
        .events()
        .into_iter()
        .find(|e| matches!(e.kind, EventKind::Fault { .. }))
        .unwrap();
    assert_eq!(
        fault.kind,
        EventKind::Fault {
            fault: Fault::Text("x".into())
        }
    );
    assert_eq!(fault.device_id.as_deref(), Some("dev"));
    assert!(fault.at <= at);
}

//! The behaviours measured on the real xiaozhi-esp32-server (issue 11) as
//! the loopback reproduces them: what counts as activity for the idle close,
//! app-level pings, the server's own Pings and their timeout, refused
//! tokens and nameless devices, the hello and the MCP `initialize` after it,
//! the message size limit.

mod common;

use std::time::{Duration, Instant};

use common::raw::{RawClient, CLOSE, PING};
use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use wsvisor_loopback::{
    EventKind, McpOptions, Server, ServerOptions, TextAnswer, AUTH_FAILED_TEXT, MCP_VISION_TOKEN, NO_DEVICE_ID_TEXT,
};

const PLAIN_HELLO: &str = r#"{"type":"hello","version":1,"transport":"websocket","audio_params":{"format":"opus","sample_rate":16000,"channels":1,"frame_duration":60}}"#;

fn idle_server(idle_ms: u64, app_ping: bool) -> Server {
    Server::start(ServerOptions {
        idle_close: Some(Duration::from_millis(idle_ms)),
        enable_websocket_ping: app_ping,
        ..Default::default()
    })
    .unwrap()
}

/// Sends `message` every 50 ms until the server closes (at most 3 s);
/// returns how long that took and the texts that arrived before the Close.
async fn keep_sending_until_closed(ws: &mut Client, message: Message) -> (Duration, Vec<String>) {
    let start = Instant::now();
    let mut texts = Vec::new();
    while start.elapsed() < Duration::from_secs(3) {
        ws.send(message.clone()).await.unwrap();
        let tick = Instant::now() + Duration::from_millis(50);
        while let Some(msg) = next_within(ws, tick.saturating_duration_since(Instant::now())).await {
            match msg {
                Some(Ok(Message::Close(frame))) => {
                    let frame = frame.expect("a Close with a code");
                    assert_eq!((u16::from(frame.code), frame.reason.as_ref()), (1000, ""));
                    return (start.elapsed(), texts);
                }
                Some(Ok(Message::Text(text))) => texts.push(text),
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    panic!("still open after 3 s of {message:?}");
}

#[tokio::test]
async fn other_texts_and_websocket_pings_are_no_activity() {
    let server = idle_server(300, true);
    for message in [
        Message::Text(r#"{"type":"listen","state":"start","mode":"auto"}"#.into()),
        Message::Text(r#"{"type":"listen","state":"detect"}"#.into()),
        Message::Text(r#"{"type":"nonsense"}"#.into()),
        Message::Ping(b"hi".to_vec()),
    ] {
        let (mut ws, _) = ready(&server, "dev").await;
        let (took, texts) = keep_sending_until_closed(&mut ws, message.clone()).await;
        assert!(took >= Duration::from_millis(250), "{message:?}: closed after {took:?}");
        assert!(took < Duration::from_secs(3), "{message:?}: closed after {took:?}");
        assert!(texts.is_empty(), "no text frame before the idle Close: {texts:?}");
    }
    let idle_closes = server
        .events()
        .iter()
        .filter(|e| e.kind == EventKind::IdleClosed)
        .count();
    assert_eq!(idle_closes, 4);
}

#[tokio::test]
async fn app_ping_counts_and_is_answered_only_when_enabled() {
    let server = idle_server(300, false);
    let app_ping = Message::Text(r#"{"type":"ping"}"#.into());
    let (mut ws, _) = ready(&server, "ignored").await;
    let (took, texts) = keep_sending_until_closed(&mut ws, app_ping.clone()).await;
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(texts.is_empty(), "answered though disabled: {texts:?}");
    assert!(server.received_text_count() >= 5, "the pings are still recorded");

    server.update_options(|o| o.enable_websocket_ping = true);
    let (mut ws, _) = ready(&server, "answered").await;
    let start = Instant::now();
    let mut pongs = 0;
    while start.elapsed() < Duration::from_millis(900) {
        ws.send(app_ping.clone()).await.unwrap();
        let pong = next_json(&mut ws).await;
        assert_eq!(pong["type"], "pong", "{pong}");
        let stamp = pong["timestamp"].as_str().expect("a timestamp");
        assert_eq!(stamp.len(), 19, "YYYY-MM-DD HH:MM:SS, got {stamp}");
        assert_eq!((&stamp[4..5], &stamp[10..11], &stamp[13..14]), ("-", " ", ":"));
        pongs += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pongs >= 8, "{pongs}");
    assert!(
        next_within(&mut ws, Duration::from_millis(100)).await.is_none(),
        "app pings kept it open"
    );
}

#[tokio::test]
async fn voice_and_typed_text_are_activity() {
    let server = idle_server(300, false);
    let (mut ws, _) = ready(&server, "talker").await;
    for i in 0..10 {
        if i % 2 == 0 {
            ws.send(Message::Binary(vec![0; 60])).await.unwrap();
        } else {
            let detect = format!(r#"{{"type":"listen","state":"detect","text":"t{i}"}}"#);
            ws.send(Message::Text(detect)).await.unwrap();
            assert_eq!(next_json(&mut ws).await["type"], "stt");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.open_connections(), 1, "1 s of voice and text kept it open");
    let start = Instant::now();
    assert_eq!(expect_close(&mut ws).await, Some((1000, String::new())));
    assert!(start.elapsed() >= Duration::from_millis(150), "{:?}", start.elapsed());
}

#[tokio::test]
async fn server_pings_keep_coming_and_an_unanswered_one_closes_with_1011() {
    let server = Server::start(ServerOptions {
        ping_interval: Some(Duration::from_millis(50)),
        ping_timeout: Some(Duration::from_millis(150)),
        ..Default::default()
    })
    .unwrap();
    // tungstenite answers every Ping while it reads.
    let (mut ws, _) = ready(&server, "answers").await;
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(600) {
        match next_within(&mut ws, Duration::from_millis(100)).await {
            Some(Some(Ok(Message::Ping(_)))) => pings += 1,
            Some(other) => panic!("unexpected {other:?}"),
            None => {}
        }
    }
    assert!(pings >= 6, "{pings} pings in 600 ms");
    assert!(server.wait_until(SOON, |s| s.pongs_received().len() >= 6));
    assert_eq!(server.open_connections(), 1);

    // A client that reads but never answers: Close 1011 after ~50 + 150 ms.
    let mut raw = RawClient::connect(&server, "deaf").await;
    let start = Instant::now();
    let close = loop {
        let (header, payload) = raw.read_frame().await;
        match header.opcode {
            PING => continue,
            CLOSE => break payload,
            other => panic!("unexpected opcode {other}"),
        }
    };
    let took = start.elapsed();
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1011);
    assert_eq!(&close[2..], b"keepalive ping timeout");
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(server.events().iter().any(|e| e.kind == EventKind::PingTimeout));
}

async fn expect_refusal(ws: &mut Client, text: &str) {
    match next(ws).await {
        Some(Ok(Message::Text(t))) => assert_eq!(t, text),
        other => panic!("expected {text}, got {other:?}"),
    }
    assert_eq!(expect_close(ws).await, Some((1000, String::new())));
}

#[tokio::test]
async fn tokens_are_checked_like_the_real_server() {
    let server = Server::start(ServerOptions {
        expected_token: Some("right".into()),
        allowed_devices: vec!["whitelisted".into()],
        ..Default::default()
    })
    .unwrap();
    // Upgraded (101), then told, then Close 1000.
    for token in [Some("wrong"), None] {
        let mut ws = try_connect(&server.url(), "dev", token)
            .await
            .expect("the upgrade succeeds");
        expect_refusal(&mut ws, AUTH_FAILED_TEXT).await;
    }
    // Only `Bearer <token>`: a bare token is refused.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(server.url()).unwrap();
    req.headers_mut().insert("Authorization", "right".parse().unwrap());
    req.headers_mut().insert("Device-Id", "dev".parse().unwrap());
    let (mut bare, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    expect_refusal(&mut bare, AUTH_FAILED_TEXT).await;
    // A whitelisted device needs none.
    let mut vip = try_connect(&server.url(), "whitelisted", None).await.unwrap();
    hello(&mut vip).await;
    assert_eq!(server.hellos(), 1);

    // Accepting a missing token still refuses a wrong one.
    server.update_options(|o| o.accept_missing_token = true);
    let mut none = try_connect(&server.url(), "dev", None).await.unwrap();
    hello(&mut none).await;
    assert_eq!(server.last_headers().unwrap().authorization, None);
    let mut empty = try_connect(&server.url(), "dev", Some("")).await.unwrap();
    hello(&mut empty).await;
    let mut wrong = try_connect(&server.url(), "dev", Some("wrong")).await.unwrap();
    expect_refusal(&mut wrong, AUTH_FAILED_TEXT).await;
    assert_eq!(server.hellos(), 3);

    // Auth disabled (the real default): anything goes.
    server.set_expected_token(None);
    let mut anything = try_connect(&server.url(), "dev", Some("whatever")).await.unwrap();
    hello(&mut anything).await;
    assert_eq!(server.hellos(), 4);
    let refusals = server
        .events()
        .iter()
        .filter(|e| e.kind == EventKind::AuthFailed)
        .count();
    assert_eq!(refusals, 4);
}

#[tokio::test]
async fn a_nameless_connection_is_told_and_closed_when_required() {
    let server = Server::start(ServerOptions {
        require_device_id: true,
        ..Default::default()
    })
    .unwrap();
    let (mut nameless, _) = tokio_tungstenite::connect_async(server.url()).await.unwrap();
    expect_refusal(&mut nameless, NO_DEVICE_ID_TEXT).await;
    assert!(server.events().iter().any(|e| e.kind == EventKind::NoDeviceId));
    // The query parameter names it as well as the header.
    let url = format!("{}?device-id=aa%3Abb", server.url());
    let (mut named, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    hello(&mut named).await;
    assert_eq!(server.hellos(), 1);
}

#[tokio::test]
async fn hello_then_mcp_initialize_as_the_real_server_sends_them() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let mut ws = connect(&server, "dev").await;
    send_hello(&mut ws).await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["version"], 1);
    assert_eq!(hello["transport"], "websocket");
    assert_eq!(
        hello["audio_params"],
        serde_json::json!({"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}),
        "the client's audio_params are echoed"
    );
    let init = next_json(&mut ws).await;
    assert_eq!(init["type"], "mcp");
    assert!(init.get("session_id").is_none(), "the real server sends none: {init}");
    let payload = &init["payload"];
    assert_eq!(payload["jsonrpc"], "2.0");
    assert_eq!(payload["id"], 1);
    assert_eq!(payload["method"], "initialize");
    assert_eq!(payload["params"]["protocolVersion"], "2024-11-05");
    assert_eq!(payload["params"]["capabilities"]["roots"]["listChanged"], true);
    assert_eq!(payload["params"]["capabilities"]["vision"]["token"], MCP_VISION_TOKEN);
    assert!(payload["params"]["capabilities"]["vision"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/mcp/vision/explain"));
    assert_eq!(
        payload["params"]["clientInfo"],
        serde_json::json!({"name": "XiaozhiClient", "version": "1.0.0"})
    );
    let order: Vec<String> = server.sent_texts().into_iter().map(|t| t.text).collect();
    assert_eq!(order.len(), 2);
    assert!(order[0].contains(r#""type":"hello""#) && order[1].contains("initialize"));

    // No MCP announced: no initialize; hello without audio_params: the defaults.
    let mut plain = connect(&server, "plain").await;
    plain.send(Message::Text(PLAIN_HELLO.into())).await.unwrap();
    assert_eq!(next_json(&mut plain).await["type"], "hello");
    assert!(next_within(&mut plain, Duration::from_millis(300)).await.is_none());
    let mut bare = connect(&server, "bare").await;
    bare.send(Message::Text(r#"{"type":"hello","features":{"mcp":true}}"#.into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut bare).await["audio_params"]["sample_rate"], 24000);
    assert_eq!(next_json(&mut bare).await["payload"]["method"], "initialize");

    // Turned off: none even when announced.
    server.update_options(|o| {
        o.mcp = McpOptions {
            initialize: false,
            ..McpOptions::default()
        }
    });
    let mut off = connect(&server, "off").await;
    send_hello(&mut off).await;
    assert_eq!(next_json(&mut off).await["type"], "hello");
    assert!(next_within(&mut off, Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn a_fixed_session_id_is_used_everywhere() {
    let server = Server::start(ServerOptions {
        session_id: Some("fixed-id".into()),
        ..Default::default()
    })
    .unwrap();
    let (mut ws, id) = ready(&server, "a").await;
    assert_eq!(id, "fixed-id");
    ws.send(Message::Text(r#"{"type":"listen","state":"detect","text":"x"}"#.into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["session_id"], "fixed-id");
    let (_b, id_b) = ready(&server, "b").await;
    assert_eq!(id_b, "fixed-id");
}

#[tokio::test]
async fn a_message_over_the_limit_is_closed_with_1009() {
    let server = Server::start(ServerOptions {
        max_message_size: Some(1024),
        ..Default::default()
    })
    .unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    ws.send(Message::Text(format!(r#"{{"type":"x","pad":"{}"}}"#, "a".repeat(900))))
        .await
        .unwrap();
    ws.send(Message::Text(format!(r#"{{"type":"x","pad":"{}"}}"#, "a".repeat(2000))))
        .await
        .unwrap();
    assert_eq!(expect_close(&mut ws).await.map(|c| c.0), Some(1009));
    assert_eq!(server.received_text_count(), 1, "the message under the limit was read");
    assert!(server.events().iter().any(|e| e.kind == EventKind::MessageTooBig));
}

#[test]
fn the_real_server_preset() {
    let real = ServerOptions::xiaozhi_server();
    assert_eq!(real.idle_close, Some(Duration::from_secs(180)));
    assert_eq!(real.ping_interval, Some(Duration::from_secs(20)));
    assert_eq!(real.ping_timeout, Some(Duration::from_secs(20)));
    assert!(!real.enable_websocket_ping);
    assert_eq!(real.expected_token, None);
    assert_eq!(real.max_message_size, Some(1 << 20));
    assert!(matches!(real.text_answer, TextAnswer::Script(_)));
    assert!(real.mcp.initialize);
    assert_eq!(real.mcp.list_tools_after, Some(Duration::from_secs(1)));
    let ours = ServerOptions::default();
    assert!(ours.enable_websocket_ping && ours.idle_close.is_none() && ours.ping_interval.is_none());
    assert_eq!(ours.text_answer, TextAnswer::SttEcho);
}

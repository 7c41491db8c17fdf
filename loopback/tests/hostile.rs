//! The hostile server of issue 10 as its client sees it on the wire: floods
//! that never read, a frame that never ends, a message that never ends,
//! huge parsed sizes from a small text, and strings made to break logs and
//! terminals.

mod common;

use std::time::{Duration, Instant};

use common::raw::{masked, RawClient, BINARY, CLOSE, PING, TEXT};
use common::*;
use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use wsvisor_loopback::{EventKind, Fault, Mode, Server, ServerOptions, HOSTILE_TEXT};

/// A raw client past its hello (and the `initialize` after it).
async fn raw_ready(server: &Server, device: &str) -> RawClient {
    let mut raw = RawClient::connect(server, device).await;
    raw.send_hello().await;
    for expected in ["hello", "mcp"] {
        let (header, payload) = raw.read_frame().await;
        assert_eq!(header.opcode, TEXT);
        let message: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(message["type"], expected);
    }
    raw
}

fn finished_floods(server: &Server) -> Vec<Instant> {
    server
        .events()
        .into_iter()
        .filter(|e| e.kind == EventKind::FloodFinished)
        .map(|e| e.at)
        .collect()
}

#[tokio::test]
async fn ping_flood_writes_pings_and_reads_nothing_meanwhile() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let mut raw = raw_ready(&server, "dev").await;
    let injected = server.inject(Fault::PingFlood {
        duration: Duration::from_millis(400),
    });
    raw.send_frame(TEXT, br#"{"type":"marker"}"#).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(server.received_text_count(), 0, "read during the flood");

    let mut pings = 0u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some((header, payload)) = raw.read_frame_within(Duration::from_millis(300)).await {
        assert_eq!((header.opcode, payload.len()), (PING, 125));
        pings += 1;
        assert!(Instant::now() < deadline, "the flood did not end");
    }
    assert!(pings >= 1000, "only {pings} pings");
    assert!(server.wait_for_texts(1, SOON), "reading resumes after the flood");
    let ended = finished_floods(&server);
    assert_eq!(ended.len(), 1);
    assert!(ended[0] >= injected + Duration::from_millis(350), "ended too early");
}

#[tokio::test]
async fn stop_reading_lets_the_client_fill_its_buffers_while_pings_go_on() {
    let server = Server::start(ServerOptions {
        ping_interval: Some(Duration::from_millis(100)),
        ..Default::default()
    })
    .unwrap();
    let mut raw = raw_ready(&server, "dev").await;
    server.inject(Fault::StopReading);
    let frame = vec![0u8; 16 * 1024];
    let mut written = 0usize;
    while raw.try_send_frame(BINARY, &frame, Duration::from_millis(300)).await {
        written += frame.len();
        assert!(written < 256 << 20, "the server still reads");
    }
    assert!(written >= 16 * 1024, "blocked at once: {written}");
    assert_eq!(server.received_binary_frames(), 0);
    assert_eq!(server.open_connections(), 1);
    let (header, _) = raw.read_frame_within(SOON).await.expect("server pings go on");
    assert_eq!(header.opcode, PING);
    // Later faults do not resume reading.
    server.inject(Fault::Text("still here".into()));
    let mut saw_text = false;
    for _ in 0..20 {
        let (header, payload) = raw.read_frame().await;
        if header.opcode == TEXT {
            assert_eq!(payload, b"still here");
            saw_text = true;
            break;
        }
    }
    assert!(saw_text);
    assert_eq!(server.received_binary_frames(), 0);
}

#[tokio::test]
async fn huge_frame_announces_8_gib_then_trickles() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let mut raw = raw_ready(&server, "dev").await;
    server.inject(Fault::HugeFrame {
        announced: 8 << 30,
        chunk: 1000,
        every: Duration::from_millis(20),
    });
    let header = raw.read_header().await;
    assert_eq!((header.fin, header.opcode, header.len), (true, BINARY, 8 << 30));
    let start = Instant::now();
    let mut bytes = 0;
    while start.elapsed() < Duration::from_millis(500) {
        bytes += raw.read_available(1 << 20, Duration::from_millis(50)).await.len();
    }
    assert!(bytes >= 5_000, "{bytes} bytes in 500 ms");
    assert!(bytes <= 100_000, "{bytes} bytes in 500 ms is no trickle");
    // The client's Close is still read.
    let mut close = 1009u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"too big");
    raw.send_frame(CLOSE, &close).await;
    assert!(server.wait_until(SOON, |s| s.closes_received() == vec![Some(1009)]));
}

#[tokio::test]
async fn a_message_whose_continuation_never_ends() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let mut raw = raw_ready(&server, "dev").await;
    server.inject(Fault::EndlessContinuation {
        chunk: 100,
        every: Duration::ZERO,
    });
    let (first, payload) = raw.read_frame().await;
    assert_eq!((first.fin, first.opcode, first.len), (false, TEXT, 100));
    assert!(payload.iter().all(|b| *b == b'a'));
    for _ in 0..500 {
        let (header, _) = raw.read_frame().await;
        assert_eq!((header.fin, header.opcode, header.len), (false, 0, 100));
    }
    server.inject(Fault::Drop);
    assert!(server.wait_for_open(0, SOON));
}

#[tokio::test]
async fn text_flood_sends_exactly_count_frames_and_the_next_fault_ends_a_flood() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    let unknown = r#"{"type":"nonsense"}"#;
    server.inject(Fault::TextFlood {
        text: unknown.into(),
        count: 20_000,
    });
    for i in 0..20_000 {
        match next(&mut ws).await {
            Some(Ok(Message::Text(text))) => assert_eq!(text, unknown, "frame {i}"),
            other => panic!("frame {i}: {other:?}"),
        }
    }
    assert!(next_within(&mut ws, Duration::from_millis(200)).await.is_none());
    assert!(server.wait_until(SOON, |s| finished_floods(s).len() == 1));

    server.inject(Fault::TextFlood {
        text: "x".into(),
        count: u64::MAX,
    });
    for _ in 0..1000 {
        assert_eq!(next(&mut ws).await.unwrap().unwrap(), Message::Text("x".into()));
    }
    server.inject(Fault::Text("after".into()));
    let mut flooded = 0u64;
    loop {
        match next(&mut ws).await {
            Some(Ok(Message::Text(text))) if text == "x" => flooded += 1,
            Some(Ok(Message::Text(text))) => {
                assert_eq!(text, "after");
                break;
            }
            other => panic!("{other:?}"),
        }
        assert!(flooded < 50_000_000, "the flood did not stop");
    }
    assert!(
        next_within(&mut ws, Duration::from_millis(200)).await.is_none(),
        "nothing after the fault"
    );
    ws.send(Message::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "pong", "the connection is sound");
}

#[tokio::test]
async fn text_frames_before_the_hello() {
    let server = Server::start(ServerOptions {
        mode: Mode::TextBeforeHello {
            text: "early".into(),
            count: 500,
        },
        ..Default::default()
    })
    .unwrap();
    let mut ws = connect(&server, "dev").await;
    send_hello(&mut ws).await;
    for i in 0..500 {
        assert_eq!(
            next(&mut ws).await.unwrap().unwrap(),
            Message::Text("early".into()),
            "frame {i}"
        );
    }
    assert_eq!(next_json(&mut ws).await["type"], "hello");
    assert_eq!(next_json(&mut ws).await["type"], "mcp");
}

#[tokio::test]
async fn a_megabyte_of_tiny_numbers() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut ws, id) = ready(&server, "dev").await;
    server.inject(Fault::NumberArray { bytes: 1 << 20 });
    let Some(Ok(Message::Text(text))) = next(&mut ws).await else {
        panic!("expected the text")
    };
    assert!(text.len().abs_diff(1 << 20) < 16, "{} bytes", text.len());
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (value["type"].as_str(), value["session_id"].as_str()),
        (Some("llm"), Some(id.as_str()))
    );
    assert!(value["data"].as_array().unwrap().len() > 500_000);
}

#[tokio::test]
async fn strings_that_forge_log_lines_and_rewrite_terminals() {
    assert!(HOSTILE_TEXT.contains('\n') && HOSTILE_TEXT.contains('\x1b') && HOSTILE_TEXT.contains('\u{9b}'));
    assert!(HOSTILE_TEXT.len() <= 123, "must fit a Close reason");
    let server = Server::start(ServerOptions {
        session_id: Some(HOSTILE_TEXT.into()),
        ..Default::default()
    })
    .unwrap();
    let (mut ws, id) = ready(&server, "dev").await;
    assert_eq!(id, HOSTILE_TEXT);
    server.inject(Fault::ControlChars);
    let a = next_json(&mut ws).await;
    assert_eq!(
        (a["type"].as_str(), a["session_id"].as_str()),
        (Some(HOSTILE_TEXT), Some(HOSTILE_TEXT))
    );
    let b = next_json(&mut ws).await;
    assert_eq!(
        (b["type"].as_str(), b["text"].as_str()),
        (Some("stt"), Some(HOSTILE_TEXT))
    );
    let c = next_json(&mut ws).await;
    assert_eq!(
        (c["type"].as_str(), c["state"].as_str()),
        (Some("tts"), Some(HOSTILE_TEXT))
    );
    server.inject(Fault::Close(1000, HOSTILE_TEXT.into()));
    assert_eq!(expect_close(&mut ws).await, Some((1000, HOSTILE_TEXT.to_owned())));
}

#[test]
fn masked_frames_are_well_formed() {
    // The raw client's own frames, checked once so the tests above can
    // trust them.
    let frame = masked(TEXT, b"abc");
    assert_eq!(frame[..2], [0x81, 0x83]);
    assert_eq!(frame.len(), 2 + 4 + 3);
}

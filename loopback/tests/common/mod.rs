//! Client-side helpers shared by the integration tests: a tokio-tungstenite
//! xiaozhi client against 127.0.0.1, with every wait bounded.

#![allow(dead_code)] // each test file uses a different subset

pub mod raw;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsvisor_loopback::Server;

/// Client side of one connection.
pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bound for anything that should happen promptly.
pub const SOON: Duration = Duration::from_secs(5);

/// Upgrades with the xiaozhi headers; the error is returned, not unwrapped.
pub async fn try_connect(url: &str, device: &str, token: Option<&str>) -> Result<Client, Error> {
    let mut req = url.into_client_request()?;
    let headers = req.headers_mut();
    if let Some(token) = token {
        let value = format!("Bearer {token}");
        headers.insert("Authorization", HeaderValue::from_str(&value).unwrap());
    }
    headers.insert("Protocol-Version", HeaderValue::from_static("1"));
    headers.insert("Device-Id", HeaderValue::from_str(device).unwrap());
    headers.insert(
        "Client-Id",
        HeaderValue::from_static("6f1c0b8e-0000-4000-8000-000000000001"),
    );
    let (ws, _) = tokio::time::timeout(SOON, tokio_tungstenite::connect_async(req))
        .await
        .expect("upgrade timed out")?;
    Ok(ws)
}

/// Upgrades, or panics.
pub async fn connect(server: &Server, device: &str) -> Client {
    try_connect(&server.url(), device, Some("token"))
        .await
        .expect("upgrade failed")
}

/// Sends the client hello.
pub async fn send_hello(ws: &mut Client) {
    let hello = r#"{"type":"hello","version":1,"features":{"mcp":true},"transport":"websocket","audio_params":{"format":"opus","sample_rate":16000,"channels":1,"frame_duration":60}}"#;
    ws.send(Message::Text(hello.to_owned())).await.unwrap();
}

/// Sends the hello (announcing MCP) and returns the server hello's session
/// id, after reading the MCP `initialize` that follows it.
pub async fn hello(ws: &mut Client) -> String {
    send_hello(ws).await;
    let reply = next_json(ws).await;
    assert_eq!(reply["type"], "hello", "{reply}");
    assert_eq!(reply["transport"], "websocket");
    let initialize = next_json(ws).await;
    assert_eq!(initialize["type"], "mcp", "{initialize}");
    assert_eq!(initialize["payload"]["method"], "initialize", "{initialize}");
    reply["session_id"].as_str().expect("session_id").to_owned()
}

/// Connects and completes the hello.
pub async fn ready(server: &Server, device: &str) -> (Client, String) {
    let mut ws = connect(server, device).await;
    let id = hello(&mut ws).await;
    (ws, id)
}

/// The next message (Pings and Pongs included), or panics after [`SOON`].
pub async fn next(ws: &mut Client) -> Option<Result<Message, Error>> {
    tokio::time::timeout(SOON, ws.next())
        .await
        .expect("nothing received in time")
}

/// The next message within `within`, if any.
pub async fn next_within(ws: &mut Client, within: Duration) -> Option<Option<Result<Message, Error>>> {
    tokio::time::timeout(within, ws.next()).await.ok()
}

/// The next text message, parsed as JSON (skipping Pings and Pongs).
pub async fn next_json(ws: &mut Client) -> serde_json::Value {
    loop {
        match next(ws).await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("json"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Reads until the server's Close frame and returns it (`None`: no code).
pub async fn expect_close(ws: &mut Client) -> Option<(u16, String)> {
    loop {
        match next(ws).await {
            Some(Ok(Message::Close(frame))) => {
                return frame.map(|f| (u16::from(f.code), f.reason.into_owned()));
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a Close frame, got {other:?}"),
        }
    }
}

/// Reads until the end of the stream; returns how it ended.
pub async fn read_to_end(ws: &mut Client) -> Option<Error> {
    loop {
        match next(ws).await {
            None => return None,
            Some(Err(e)) => return Some(e),
            Some(Ok(Message::Close(frame))) => panic!("unexpected Close frame {frame:?}"),
            Some(Ok(_)) => continue,
        }
    }
}

//! A hand-rolled WebSocket client for the hostile-server tests: it parses
//! frame headers itself, so a huge announced length or a message that never
//! ends is seen exactly as it is on the wire, and it reads (or stops
//! reading) only when the test says so. Every wait is bounded.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsvisor_loopback::Server;

use super::SOON;

/// One frame header as the server wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    pub len: u64,
}

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;

pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    /// Upgrades with the xiaozhi headers.
    pub async fn connect(server: &Server, device: &str) -> RawClient {
        let mut stream = tokio::time::timeout(SOON, TcpStream::connect(server.addr()))
            .await
            .expect("connect timed out")
            .expect("connect");
        let request = format!(
            "GET /xiaozhi/v1/ HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Device-Id: {device}\r\nClient-Id: c\r\nProtocol-Version: 1\r\nAuthorization: Bearer token\r\n\r\n",
            server.addr()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
        };
        let head_end = loop {
            if let Some(at) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(client.buf.len() < 16 * 1024, "no end of the upgrade answer");
            assert!(client.read_more(SOON).await, "no upgrade answer in time");
        };
        let head = String::from_utf8_lossy(&client.buf[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        client.buf.drain(..head_end);
        client
    }

    /// Sends the client hello announcing MCP.
    pub async fn send_hello(&mut self) {
        let hello = r#"{"type":"hello","version":1,"features":{"mcp":true},"transport":"websocket","audio_params":{"format":"opus","sample_rate":16000,"channels":1,"frame_duration":60}}"#;
        self.send_frame(TEXT, hello.as_bytes()).await;
    }

    /// One masked client frame with FIN.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let frame = masked(opcode, payload);
        tokio::time::timeout(SOON, self.stream.write_all(&frame))
            .await
            .expect("write timed out")
            .unwrap();
    }

    /// Like `send_frame`, but reports a write that blocks for `within`
    /// (the server stopped reading and the buffers are full).
    pub async fn try_send_frame(&mut self, opcode: u8, payload: &[u8], within: Duration) -> bool {
        let frame = masked(opcode, payload);
        matches!(
            tokio::time::timeout(within, self.stream.write_all(&frame)).await,
            Ok(Ok(()))
        )
    }

    /// The next frame header.
    pub async fn read_header(&mut self) -> Header {
        self.fill(2).await;
        let (fin, opcode) = (self.buf[0] & 0x80 != 0, self.buf[0] & 0x0f);
        assert_eq!(self.buf[1] & 0x80, 0, "a server frame must not be masked");
        let (len, size) = match self.buf[1] & 0x7f {
            126 => {
                self.fill(4).await;
                (u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]])), 4)
            }
            127 => {
                self.fill(10).await;
                (u64::from_be_bytes(self.buf[2..10].try_into().unwrap()), 10)
            }
            n => (u64::from(n), 2),
        };
        self.buf.drain(..size);
        Header { fin, opcode, len }
    }

    /// Exactly `n` payload bytes.
    pub async fn read_bytes(&mut self, n: usize) -> Vec<u8> {
        self.fill(n).await;
        self.buf.drain(..n).collect()
    }

    /// Whatever payload bytes arrive within `within` (at most `max`).
    pub async fn read_available(&mut self, max: usize, within: Duration) -> Vec<u8> {
        if self.buf.is_empty() {
            self.read_more(within).await;
        }
        let n = self.buf.len().min(max);
        self.buf.drain(..n).collect()
    }

    /// A whole frame (its payload must be reasonably small).
    pub async fn read_frame(&mut self) -> (Header, Vec<u8>) {
        let header = self.read_header().await;
        assert!(header.len < 64 << 20, "frame too large for read_frame: {header:?}");
        let payload = self.read_bytes(header.len as usize).await;
        (header, payload)
    }

    /// A whole frame, if one starts within `within`.
    pub async fn read_frame_within(&mut self, within: Duration) -> Option<(Header, Vec<u8>)> {
        if self.buf.is_empty() && !self.read_more(within).await {
            return None;
        }
        Some(self.read_frame().await)
    }

    async fn fill(&mut self, n: usize) {
        while self.buf.len() < n {
            assert!(self.read_more(SOON).await, "nothing to read in time");
        }
    }

    /// Reads what arrives within `within`; false when nothing did.
    async fn read_more(&mut self, within: Duration) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match tokio::time::timeout(within, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) => panic!("the server closed the connection"),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(Err(e)) => panic!("read failed: {e}"),
            Err(_) => false,
        }
    }
}

/// A client frame: FIN, masked with a fixed key.
pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

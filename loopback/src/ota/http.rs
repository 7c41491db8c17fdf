//! Just enough HTTP/1.1 for the OTA endpoint: one request per connection
//! (the answer says `Connection: close`), headers parsed with `httparse`,
//! a `Content-Length` body, every read bounded in bytes and time.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::logic::Reply;

/// Largest header block read.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest body read (device descriptions are a few hundred bytes).
const MAX_BODY_BYTES: usize = 1 << 20;
const MAX_HEADERS: usize = 64;
/// A client that stalls mid-request is dropped after this.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A request as read from the socket.
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    /// Lower-cased names, in order.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read; answered with this status.
pub(crate) struct Unreadable(pub(crate) u16, pub(crate) &'static str);

/// Reads one request (without a time bound: the caller adds it).
pub(crate) async fn read_request(stream: &mut TcpStream) -> Result<Request, Unreadable> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let (head_len, mut request) = loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| Unreadable(400, "read failed"))?;
        if n == 0 {
            return Err(Unreadable(400, "connection closed mid-request"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let request = Request {
                    method: parsed.method.unwrap_or_default().to_owned(),
                    target: parsed.path.unwrap_or_default().to_owned(),
                    headers: parsed
                        .headers
                        .iter()
                        .map(|h| {
                            let value = String::from_utf8_lossy(h.value).into_owned();
                            (h.name.to_ascii_lowercase(), value)
                        })
                        .collect(),
                    body: Vec::new(),
                };
                break (len, request);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => {}
            Ok(httparse::Status::Partial) => return Err(Unreadable(431, "headers too large")),
            Err(_) => return Err(Unreadable(400, "malformed request")),
        }
    };
    if request
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        return Err(Unreadable(411, "send a Content-Length body"));
    }
    let length: usize = match request.header("content-length") {
        None => 0,
        Some(value) => value
            .trim()
            .parse()
            .map_err(|_| Unreadable(400, "bad Content-Length"))?,
    };
    if length > MAX_BODY_BYTES {
        return Err(Unreadable(413, "body too large"));
    }
    let mut body = buf.split_off(head_len);
    body.truncate(length);
    while body.len() < length {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| Unreadable(400, "read failed"))?;
        if n == 0 {
            return Err(Unreadable(400, "connection closed mid-body"));
        }
        let take = n.min(length - body.len());
        body.extend_from_slice(&chunk[..take]);
    }
    request.body = body;
    Ok(request)
}

/// Writes `reply` and closes the write side.
pub(crate) async fn write_reply(stream: &mut TcpStream, reply: &Reply) {
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len()
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(reply.body.as_bytes());
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

//! The HTTP upgrade: reading the xiaozhi headers, refusing with a status when
//! the mode says so, and registering the connection before the `101` goes
//! out, so a client that sees its upgrade succeed can be faulted at once.

use std::sync::Arc;
use std::time::Duration;

use log::debug;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use crate::options::{Mode, ServerOptions};
use crate::record::{EventKind, Headers};
use crate::registry::Control;
use crate::state::Shared;

/// A client that connects but never finishes its upgrade is dropped after
/// this, so it cannot hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type Ws = WebSocketStream<TcpStream>;

pub(crate) struct Upgraded {
    pub(crate) ws: Ws,
    pub(crate) headers: Headers,
    pub(crate) controls: mpsc::UnboundedReceiver<Control>,
}

/// Performs the upgrade; `None` when it was refused or failed (recorded).
pub(crate) async fn upgrade(
    shared: &Arc<Shared>,
    stream: TcpStream,
    conn: u64,
    settings: &ServerOptions,
) -> Option<Upgraded> {
    let mode = &settings.mode;
    let mut accepted: Option<(Headers, mpsc::UnboundedReceiver<Control>)> = None;
    let mut refused: Option<u16> = None;
    // The error type is tungstenite's `Callback` contract, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let headers = read_headers(req);
        shared.record.update(|s| s.last_headers = Some(headers.clone()));
        if let Mode::RefuseUpgrade(status) = mode {
            refused = Some(*status);
            return Err(refusal(*status));
        }
        let device_id = headers.device_id.clone().unwrap_or_default();
        shared.record.update(|s| s.upgrades += 1);
        let controls = shared.register(conn, &device_id);
        shared.event(conn, Some(&device_id), EventKind::Upgraded);
        accepted = Some((headers, controls));
        Ok(resp)
    };
    let mut config = WebSocketConfig::default();
    if let Some(limit) = settings.max_message_size {
        config.max_message_size = Some(limit);
        config.max_frame_size = Some(limit);
    }
    let accept = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await;
    let device = accepted.as_ref().and_then(|(h, _)| h.device_id.clone());
    let failure = match result {
        Ok(Ok(ws)) => match accepted {
            Some((headers, controls)) => return Some(Upgraded { ws, headers, controls }),
            None => "upgrade completed without the callback".to_owned(),
        },
        Ok(Err(_)) if refused.is_some() => {
            let status = refused.unwrap_or_default();
            shared.event(conn, None, EventKind::UpgradeRefused { status });
            return None;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "handshake timeout".to_owned(),
    };
    debug!("loopback: conn {conn} upgrade failed: {failure}");
    // The callback may have registered it before writing the 101 failed.
    shared.unregister(conn);
    shared.event(conn, device.as_deref(), EventKind::UpgradeFailed { error: failure });
    None
}

fn refusal(status: u16) -> ErrorResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = ErrorResponse::new(Some(format!("refused by wsvisor-loopback: {status}")));
    *resp.status_mut() = status;
    resp
}

/// Headers first; like xiaozhi-esp32-server, fall back to query parameters
/// (`device-id`, `client-id`, `authorization`) for clients that cannot set
/// headers.
fn read_headers(req: &Request) -> Headers {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let query = |name: &str| {
        req.uri().query().and_then(|q| {
            q.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == name).then(|| percent_decode(v))
            })
        })
    };
    let either = |name: &str| header(name).or_else(|| query(name));
    Headers {
        path: req.uri().path().to_owned(),
        authorization: either("authorization"),
        protocol_version: either("protocol-version"),
        device_id: either("device-id"),
        client_id: either("client-id"),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("aa%3Abb%3acc"), "aa:bb:cc");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("bad%4"), "bad%4");
        assert_eq!(percent_decode("%"), "%");
    }
}

//! The HTTP upgrade of one connection attempt: the xiaozhi headers, the
//! bearer token (re-read from its file every time), and the mapping of
//! every way it can fail onto a contract cause.

use std::sync::Arc;
use std::time::Duration;

use actix_codec::Framed;
use awc::error::{ConnectError, SendRequestError, WsClientError};
use awc::ws::Codec;
use awc::BoxedSocket;

use super::endpoint::Endpoint;
use crate::loss::{Cause, LossReport};
use crate::settings::SessionSettings;

/// Largest frame and message accepted from a server. Opus frames are a few
/// hundred bytes and JSON messages a few KiB; 1 MiB leaves room for MCP.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// An upgraded WebSocket.
pub type WsFramed = Framed<BoxedSocket, Codec>;

/// Upgrade to `endpoint` and give back the framed socket or the cause of failure.
pub async fn upgrade(
    client: awc::Client,
    settings: Arc<SessionSettings>,
    endpoint: &Endpoint,
) -> Result<WsFramed, LossReport> {
    let request = client
        .ws(endpoint.url.as_str())
        .max_frame_size(MAX_MESSAGE_BYTES)
        .bearer_auth(&endpoint.token)
        .set_header("Protocol-Version", settings.protocol_version.to_string())
        .set_header("Device-Id", settings.device_id.as_str())
        .set_header("Client-Id", settings.client_id.as_str());
    match actix_rt::time::timeout(settings.connect_timeout, request.connect()).await {
        Ok(Ok((_response, framed))) => Ok(framed),
        Ok(Err(err)) => Err(classify(err)),
        Err(_) => Err(timed_out(settings.connect_timeout)),
    }
}

fn timed_out(limit: Duration) -> LossReport {
    LossReport::new(
        Cause::ConnectTimeout,
        format!("no upgrade within {}ms", limit.as_millis()),
    )
}

/// Map an awc error onto a contract cause.
fn classify(err: WsClientError) -> LossReport {
    match err {
        WsClientError::InvalidResponseStatus(status) => {
            let code = status.as_u16();
            let cause = if matches!(code, 401 | 403) {
                Cause::AuthFailed
            } else {
                Cause::HttpStatus
            };
            LossReport::new(cause, format!("upgrade refused with HTTP {status}")).with_status(code)
        }
        WsClientError::SendRequest(SendRequestError::Timeout)
        | WsClientError::SendRequest(SendRequestError::Connect(ConnectError::Timeout)) => {
            LossReport::new(Cause::ConnectTimeout, "timed out")
        }
        WsClientError::SendRequest(SendRequestError::Connect(err)) => {
            LossReport::new(Cause::ConnectFailed, err.to_string())
        }
        // The peer vanished while we sent the request: it never accepted us.
        WsClientError::SendRequest(SendRequestError::Send(err)) => {
            LossReport::new(Cause::ConnectFailed, err.to_string())
        }
        other => LossReport::new(Cause::ProtocolError, format!("upgrade failed: {other}")),
    }
}

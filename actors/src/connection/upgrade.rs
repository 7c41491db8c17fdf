//! The HTTP upgrade of one connection attempt: the xiaozhi headers, the
//! bearer token (re-read from its file every time; no header at all when
//! there is none, as the firmware does), and the mapping of every way it
//! can fail onto a contract cause.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use actix_codec::Framed;
use actix_http::error::ParseError;
use awc::error::{ConnectError, SendRequestError, WsClientError};
use awc::ws::Codec;
use awc::BoxedSocket;

use super::endpoint::Endpoint;
use crate::logsafe;
use crate::loss::{Cause, LossReport, CODE_ABNORMAL};
use crate::settings::SessionSettings;

/// An upgraded WebSocket.
pub type WsFramed = Framed<BoxedSocket, Codec>;

/// Upgrade to `endpoint` and give back the framed socket or the cause of failure.
pub async fn upgrade(
    client: awc::Client,
    settings: Arc<SessionSettings>,
    endpoint: &Endpoint,
) -> Result<WsFramed, LossReport> {
    let mut request = client
        .ws(endpoint.url.as_str())
        .max_frame_size(settings.limits.max_message)
        .set_header("Protocol-Version", settings.protocol_version.to_string())
        .set_header("Device-Id", settings.device_id.as_str())
        .set_header("Client-Id", settings.client_id.as_str());
    if let Some(token) = &endpoint.token {
        request = request.bearer_auth(token);
    }
    log::debug!(
        "session={} upgrading url={} device_id={} client_id={} bearer={}",
        settings.name,
        logsafe::value(&logsafe::redact_url(&endpoint.url)),
        logsafe::value(&settings.device_id),
        logsafe::value(&settings.client_id),
        if endpoint.token.is_some() { "yes" } else { "none" }
    );
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
            LossReport::new(cause, format!("upgrade refused with HTTP {code}")).with_status(code)
        }
        WsClientError::SendRequest(SendRequestError::Timeout)
        | WsClientError::SendRequest(SendRequestError::Connect(ConnectError::Timeout)) => {
            LossReport::new(Cause::ConnectTimeout, "timed out")
        }
        WsClientError::SendRequest(SendRequestError::Connect(err)) => {
            LossReport::new(Cause::ConnectFailed, err.to_string())
        }
        WsClientError::SendRequest(SendRequestError::Send(err))
        | WsClientError::SendRequest(SendRequestError::Response(ParseError::Io(err))) => socket_failed(&err),
        WsClientError::SendRequest(SendRequestError::Response(ParseError::Incomplete)) => {
            LossReport::new(Cause::Abnormal, "the server closed the connection during the upgrade")
                .with_code(CODE_ABNORMAL)
        }
        other => LossReport::new(Cause::ProtocolError, format!("upgrade failed: {other}")),
    }
}

/// The socket failed while the upgrade was under way: a reset is a reset,
/// whenever it comes; anything else means the server never accepted us.
fn socket_failed(err: &io::Error) -> LossReport {
    match err.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
            LossReport::new(Cause::Reset, format!("reset during the upgrade: {err}"))
        }
        io::ErrorKind::UnexpectedEof => {
            LossReport::new(Cause::Abnormal, "the server closed the connection during the upgrade")
                .with_code(CODE_ABNORMAL)
        }
        _ => LossReport::new(Cause::ConnectFailed, err.to_string()),
    }
}

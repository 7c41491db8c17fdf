//! One connected peer of the control socket, on the daemon's side: access
//! check, then requests and responses line by line, events once
//! subscribed, and tool calls once it offers tools (which it answers with
//! `tool_result`; its tools are withdrawn when this task ends). Every wait
//! is bounded, so a peer that never sends, or never reads, is cut off
//! instead of held forever; each peer is its own task, so none can delay
//! another or a session.

use std::rc::Rc;
use std::time::Duration;

use std::sync::Arc;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;

use wsvisor_actors::events::SharedEvent;
use wsvisor_actors::mcp::ToolCall;
use wsvisor_actors::subscription::Subscription as EventStream;

use super::access::{self, Access};
use super::dispatch::{self, DaemonHandle, Reply};
use super::tools::{self, ProviderLink};
use super::ControlOptions;
use crate::heap;
use crate::protocol::lines::{Line, LineReader};
use crate::protocol::{self, Command, ControlError, ErrorCode, Subscribed, MAX_LINE_BYTES};

struct Subscription {
    events: EventStream,
    audio: bool,
}

/// Serve one peer until it closes or times out.
pub async fn serve(stream: UnixStream, daemon: Rc<DaemonHandle>, access: Rc<Access>, options: ControlOptions) {
    let peer = match access::peer_ids(&stream) {
        Ok(peer) => peer,
        Err(err) => return log::warn!("control: cannot read peer credentials, closing: {err}"),
    };
    if !access.admits(&peer) {
        return refuse(stream, &peer, options).await;
    }
    log::debug!("control: client connected uid={} gid={}", peer.uid, peer.gid);
    let (read_half, mut writer) = stream.into_split();
    let mut reader = LineReader::new(read_half, MAX_LINE_BYTES);
    let mut subscription: Option<Subscription> = None;
    // Dropped with this task, however it ends: that withdraws the tools.
    let mut provider: Option<ProviderLink> = None;
    let mut served_any = false;
    loop {
        // A subscriber, or a program offering tools, may stay silent for
        // ever; others must speak up.
        let patience = match (subscription.is_some() || provider.is_some(), served_any) {
            (true, _) => None,
            (false, false) => Some(options.first_request_timeout),
            (false, true) => Some(options.idle_timeout),
        };
        let mut answers_request = false;
        let outgoing = tokio::select! {
            line = read_within(&mut reader, patience) => match line {
                Some(Line::Complete(bytes)) => {
                    served_any = true;
                    answers_request = true;
                    respond(&daemon, &bytes, &mut subscription, &mut provider).await
                }
                Some(Line::TooLong) => {
                    let error = ControlError::new(ErrorCode::BadRequest, format!("request line longer than {MAX_LINE_BYTES} bytes"));
                    protocol::error_response(&Value::Null, &error)
                }
                Some(Line::End) | None => break,
            },
            event = next_event(&mut subscription) => match event {
                Some((event, audio)) => event.line(audio, protocol::event_line).to_owned(),
                None => break,
            },
            call = next_call(&mut provider) => match call {
                Some(call) => tools::call_line(call),
                None => break,
            },
        };
        if !write_line(&mut writer, &outgoing, options.write_timeout).await {
            log::debug!("control: a client stopped reading; disconnected it");
            break;
        }
        if answers_request && heap::large_reply(outgoing.len()) {
            drop(outgoing);
            heap::trim();
        }
    }
}

async fn read_within(
    reader: &mut LineReader<tokio::net::unix::OwnedReadHalf>,
    patience: Option<Duration>,
) -> Option<Line> {
    let read = reader.next();
    let line = match patience {
        Some(limit) => tokio::time::timeout(limit, read).await.ok()?,
        None => read.await,
    };
    line.ok()
}

async fn next_event(subscription: &mut Option<Subscription>) -> Option<(Arc<SharedEvent>, bool)> {
    match subscription {
        Some(sub) => sub.events.recv().await.map(|event| (event, sub.audio)),
        None => std::future::pending().await,
    }
}

async fn next_call(provider: &mut Option<ProviderLink>) -> Option<ToolCall> {
    match provider {
        Some(link) => link.next_call().await,
        None => std::future::pending().await,
    }
}

async fn respond(
    daemon: &DaemonHandle,
    line: &[u8],
    subscription: &mut Option<Subscription>,
    provider: &mut Option<ProviderLink>,
) -> String {
    let request = match protocol::parse_request(line) {
        Ok(request) => request,
        Err((id, error)) => {
            log::debug!("control: request refused code={}", error.code);
            return protocol::error_response(&id, &error);
        }
    };
    // The command's name only: arguments may hold messages and audio.
    log::debug!("control: request cmd={}", request.command.name());
    // What only this connection's own tools can answer.
    match (request.command, provider.as_ref()) {
        (Command::ToolResult { call_id, result, error }, Some(link)) => {
            match tools::answer(link, call_id, result, error).await {
                Ok(answered) => protocol::ok_response(&request.id, answered),
                Err(error) => protocol::error_response(&request.id, &error),
            }
        }
        (Command::OfferTools { .. }, Some(_)) => protocol::error_response(&request.id, &tools::offering_already()),
        (command, _) => match dispatch::execute(daemon, command).await {
            Ok(Reply::Value(result)) => protocol::ok_response(&request.id, result),
            Ok(Reply::Subscribed { events, audio }) => {
                *subscription = Some(Subscription { events, audio });
                protocol::ok_response(&request.id, Subscribed { subscribed: true })
            }
            Ok(Reply::Offered { link, result }) => {
                *provider = Some(link);
                protocol::ok_response(&request.id, result)
            }
            Err(error) => protocol::error_response(&request.id, &error),
        },
    }
}

/// Most bytes read from a refused peer before its connection is closed,
/// and the longest wait for them.
const REFUSED_DRAIN_BYTES: usize = 64 << 10;
const REFUSED_DRAIN_TIME: Duration = Duration::from_millis(500);

/// One `forbidden` line, then the end of our side. The peer's request may
/// still be unread: closing over unread input makes the kernel send a
/// reset, which can destroy the line before the peer reads it. So our
/// side is shut down first and the peer's input drained (bounded in
/// bytes and time); nothing it sends is ever answered.
async fn refuse(stream: UnixStream, peer: &access::PeerIds, options: ControlOptions) {
    log::warn!(
        "control: refused a client with uid={} gid={} (not root, not ours, not in allowed_uids or allowed_groups)",
        peer.uid,
        peer.gid
    );
    let (mut read_half, mut writer) = stream.into_split();
    let error = ControlError::new(
        ErrorCode::Forbidden,
        format!("uid {} may not use this socket", peer.uid),
    );
    let line = protocol::error_response(&Value::Null, &error);
    if write_line(&mut writer, &line, options.write_timeout).await {
        let _ = writer.shutdown().await;
    }
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left = REFUSED_DRAIN_BYTES;
        while left > 0 {
            match tokio::io::AsyncReadExt::read(&mut read_half, &mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(REFUSED_DRAIN_TIME, drain).await;
}

/// False when the client did not take the line within `limit`.
async fn write_line(writer: &mut OwnedWriteHalf, line: &str, limit: Duration) -> bool {
    let write = async {
        writer.write_all(line.as_bytes()).await?;
        writer.write_all(b"\n").await
    };
    matches!(tokio::time::timeout(limit, write).await, Ok(Ok(())))
}

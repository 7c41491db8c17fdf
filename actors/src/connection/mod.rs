//! Connection: owns one WebSocket of one session, from the upgrade through
//! the xiaozhi hello to its end. Any loss becomes one `LossReport` and the
//! actor stops; it never reconnects, sleeps or polls. Its `Drop` sends the
//! single `ConnectionEnded`, so the socket and every timer are gone before
//! the Supervisor hears of it, and a panic is reported like any loss.

mod endpoint;
mod frames;
mod sink;
mod upgrade;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::{SinkWrite, WriteHandler};
use actix::prelude::*;
use awc::error::WsProtocolError;
use awc::ws::{CloseReason, Frame, Message};
use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, WriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

pub use self::endpoint::ConnectPlan;
pub use self::frames::{
    close_code_for, close_reason, is_sendable_close_code, reply_to, FrameAssembler, FrameError, Inbound, Reply, Step,
};
use self::sink::FlushThenClose;
pub use self::upgrade::{upgrade, WsFramed, MAX_MESSAGE_BYTES};
use crate::census::{self, Census};
use crate::heartbeat::{Heartbeat, HeartbeatPeer};
use crate::loss::{Cause, LossReport, CODE_ABNORMAL};
use crate::messages::{
    CloseConnection, ConnectionEnded, ConnectionPhase, FrameArrived, HeartbeatEnded, PeerDead, Phase, Probe,
    PublishAudio, PublishMessage, RecordRtt, SendPing, StopHeartbeat, WriteBinary, WriteText,
};
use crate::settings::SessionSettings;
use crate::traffic::TrafficCounters;
use crate::wire::{self, ServerText};

/// How long a Close frame may take to flush before the socket is dropped
/// anyway; on a dead peer the flush would otherwise wait for TCP to give up.
const CLOSE_FLUSH_GRACE: Duration = Duration::from_millis(500);

type WsSink = FlushThenClose<FramedWrite<WriteHalf<awc::BoxedSocket>, awc::ws::Codec>>;

/// First read buffer of a connection; it grows only for larger frames. The
/// upgraded `Framed` keeps two 8 KiB buffers for ever, 16 of the ~20 KiB an
/// idle session cost, so the socket is re-framed with small ones.
const READ_BUFFER_START: usize = 256;

/// Where the Connection reports to.
#[derive(Clone)]
pub struct ConnectionLinks {
    /// Receives handshake progress.
    pub phase: Recipient<ConnectionPhase>,
    /// Receives the one `ConnectionEnded`.
    pub ended: Recipient<ConnectionEnded>,
    /// Receives server messages and audio.
    pub messages: Recipient<PublishMessage>,
    /// Receives audio frames.
    pub audio: Recipient<PublishAudio>,
    /// Receives Ping round trips.
    pub rtt: Recipient<RecordRtt>,
}

#[derive(Debug, PartialEq)]
enum Stage {
    Connecting,
    Handshaking,
    Ready,
    /// A Close frame is flushing; nothing more is read or written.
    Closing,
}

/// One WebSocket of one session.
pub struct Connection {
    settings: Arc<SessionSettings>,
    generation: u64,
    client: Result<awc::Client, String>,
    plan: ConnectPlan,
    links: ConnectionLinks,
    traffic: Arc<TrafficCounters>,
    started_at: Instant,
    stage: Stage,
    sink: Option<SinkWrite<Message, WsSink>>,
    heartbeat: Option<Addr<Heartbeat>>,
    assembler: FrameAssembler,
    report: Option<LossReport>,
    ready_since: Option<Instant>,
    url: String,
    session_id: Option<String>,
    hello_timer: Option<SpawnHandle>,
    ping_sequence: u64,
    ping_in_flight: Option<(u64, Instant)>,
    _census: Census,
}

impl Connection {
    /// A connection attempt, started when the actor starts. `client` is the
    /// error that kept it from being built (a bad CA file), if any.
    pub fn new(
        settings: Arc<SessionSettings>,
        generation: u64,
        client: Result<awc::Client, String>,
        plan: ConnectPlan,
        links: ConnectionLinks,
        traffic: Arc<TrafficCounters>,
    ) -> Self {
        Connection {
            settings,
            generation,
            client,
            plan,
            links,
            traffic,
            started_at: Instant::now(),
            stage: Stage::Connecting,
            sink: None,
            heartbeat: None,
            assembler: FrameAssembler::new(MAX_MESSAGE_BYTES),
            report: None,
            ready_since: None,
            url: String::new(),
            session_id: None,
            hello_timer: None,
            ping_sequence: 0,
            ping_in_flight: None,
            _census: Census::enter(&census::CONNECTIONS),
        }
    }

    fn name(&self) -> &str {
        &self.settings.name
    }

    fn report_phase(&self, phase: Phase) {
        self.links.phase.do_send(ConnectionPhase {
            session: self.settings.name.clone(),
            generation: self.generation,
            phase,
        });
    }

    /// The first loss wins; the actor stops and `Drop` reports it.
    fn end(&mut self, report: LossReport, ctx: &mut Context<Self>) {
        if self.report.is_none() {
            self.report = Some(report);
        }
        ctx.stop();
    }

    /// End with a Close frame of our own, flushed before the socket drops.
    fn close_and_end(&mut self, report: LossReport, close: CloseReason, ctx: &mut Context<Self>) {
        if self.report.is_none() {
            self.report = Some(report);
        }
        let Some(sink) = self.sink.as_mut().filter(|_| self.stage != Stage::Closing) else {
            return ctx.stop();
        };
        self.stage = Stage::Closing;
        let _ = sink.write(Message::Close(Some(close)));
        sink.close();
        // WriteHandler::finished stops us once the Close is flushed.
        ctx.run_later(CLOSE_FLUSH_GRACE, |_, ctx| ctx.stop());
    }

    fn on_upgraded(&mut self, framed: WsFramed, ctx: &mut Context<Self>) {
        let parts = framed.into_parts();
        let (read_half, write_half) = tokio::io::split(parts.io);
        // Bytes awc read past the 101 (the server hello may be among them)
        // come first; copied, since a slice would keep awc's 8 KiB alive.
        let leftover = std::io::Cursor::new(parts.read_buf.to_vec());
        let stream = FramedRead::with_capacity(leftover.chain(read_half), parts.codec.clone(), READ_BUFFER_START);
        let mut sink = FramedWrite::new(write_half, parts.codec);
        *sink.write_buffer_mut() = bytes::BytesMut::new();
        self.sink = Some(SinkWrite::new(FlushThenClose(sink), ctx));
        ctx.add_stream(stream);
        let me = ctx.address();
        let peer = HeartbeatPeer {
            ping: me.clone().recipient(),
            dead: me.clone().recipient(),
            ended: me.recipient(),
        };
        let liveness = self.settings.liveness;
        self.heartbeat = Some(Heartbeat::new(peer, liveness.ping_interval, liveness.ping_timeout).start());
        self.stage = Stage::Handshaking;
        self.write_text(wire::client_hello(&self.settings.audio_params));
        let hello_timeout = self.settings.hello_timeout;
        self.hello_timer = Some(ctx.run_later(hello_timeout, move |act, ctx| {
            let report = LossReport::new(
                Cause::HelloTimeout,
                format!("no server hello within {}ms", hello_timeout.as_millis()),
            );
            act.close_and_end(report, close_reason(1000, "hello timeout"), ctx);
        }));
        self.report_phase(Phase::Handshaking);
    }

    fn write_text(&mut self, text: String) {
        if let Some(sink) = &mut self.sink {
            self.traffic.frame_out(text.len());
            let _ = sink.write(Message::Text(text.into()));
        }
    }

    /// A whole message or control frame, with the reply `frames` decided on.
    fn on_inbound(&mut self, inbound: Inbound, reply: Option<Reply>, ctx: &mut Context<Self>) {
        match (inbound, reply) {
            (Inbound::Close(code, reason), Some(Reply::Close(echo))) => {
                self.close_and_end(LossReport::server_close(code, reason), echo, ctx);
            }
            (inbound, reply) => {
                if let (Some(Reply::Pong(payload)), Some(sink)) = (reply, &mut self.sink) {
                    let _ = sink.write(Message::Pong(payload));
                }
                match inbound {
                    Inbound::Text(text) => self.on_text(text, ctx),
                    Inbound::Binary(data) => self.on_binary(data),
                    Inbound::Pong(payload) => self.on_pong(&payload, ctx),
                    Inbound::Ping(_) | Inbound::Close(..) => {}
                }
            }
        }
    }

    fn on_text(&mut self, text: String, ctx: &mut Context<Self>) {
        match wire::classify_server_text(&text) {
            ServerText::AuthFailed => {
                let report = LossReport::new(Cause::AuthFailed, text);
                self.close_and_end(report, close_reason(1000, ""), ctx);
            }
            ServerText::Hello(hello) if self.stage == Stage::Handshaking => match hello.transport.as_deref() {
                Some("websocket") => self.on_server_hello(hello.session_id, ctx),
                other => {
                    let reason = format!("server hello names transport {other:?}, expected \"websocket\"");
                    self.close_and_end(
                        LossReport::new(Cause::ProtocolError, reason).with_code(1002),
                        close_reason(1002, ""),
                        ctx,
                    );
                }
            },
            ServerText::Hello(_) => log::info!("session={} ignored a second server hello", self.name()),
            ServerText::Message(message) if self.stage == Stage::Ready => {
                if !wire::is_known_type(&message) {
                    log::info!(
                        "session={} received a message of unknown type {}",
                        self.name(),
                        wire::type_of(&message)
                    );
                }
                self.links.messages.do_send(PublishMessage {
                    session: self.settings.name.clone(),
                    message,
                });
            }
            ServerText::Message(message) => {
                log::info!(
                    "session={} ignored a message before the server hello: {message}",
                    self.name()
                )
            }
            ServerText::Malformed(error) => {
                log::warn!(
                    "session={} ignored a malformed message error={error:?} len={}",
                    self.name(),
                    text.len()
                )
            }
        }
    }

    fn on_server_hello(&mut self, session_id: Option<String>, ctx: &mut Context<Self>) {
        if let Some(timer) = self.hello_timer.take() {
            ctx.cancel_future(timer);
        }
        self.stage = Stage::Ready;
        self.ready_since = Some(Instant::now());
        self.session_id = session_id.clone();
        if let Some(every) = self.settings.liveness.app_ping_interval {
            ctx.run_interval(every, |act, _| act.write_message(wire::app_ping()));
        }
        let url = self.url.clone();
        self.report_phase(Phase::Ready {
            url,
            session_id,
            took: self.started_at.elapsed(),
        });
    }

    fn on_binary(&mut self, data: Bytes) {
        if self.stage == Stage::Ready {
            self.links.audio.do_send(PublishAudio {
                session: self.settings.name.clone(),
                data,
            });
        } else {
            log::info!(
                "session={} ignored a binary frame before the server hello bytes={}",
                self.name(),
                data.len()
            );
        }
    }

    fn on_pong(&mut self, payload: &[u8], _ctx: &mut Context<Self>) {
        let Some((sequence, sent_at)) = self.ping_in_flight else {
            return;
        };
        if payload == sequence.to_be_bytes() {
            self.ping_in_flight = None;
            self.traffic.pong();
            self.links.rtt.do_send(RecordRtt {
                session: self.settings.name.clone(),
                rtt: sent_at.elapsed(),
            });
        }
    }

    /// Write a JSON object, filling in the current `session_id` when absent.
    fn write_message(&mut self, mut message: Map<String, Value>) {
        if let Some(id) = &self.session_id {
            message.entry("session_id").or_insert_with(|| Value::String(id.clone()));
        }
        self.write_text(Value::Object(message).to_string());
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(why) => return self.end(LossReport::new(Cause::ConnectFailed, why.clone()), ctx),
        };
        let settings = self.settings.clone();
        let plan = std::mem::take(&mut self.plan);
        let attempt = async move {
            let (endpoint, discovered) = match endpoint::resolve(&client, &settings, plan).await {
                Ok(resolved) => resolved,
                Err(report) => return (None, Err(report)),
            };
            let upgraded = upgrade(client, settings, &endpoint)
                .await
                .map(|framed| (framed, endpoint.url));
            (discovered, upgraded)
        };
        ctx.spawn(attempt.into_actor(self).map(|(discovered, upgraded), act, ctx| {
            // Worth keeping even when the upgrade then failed.
            if let Some(found) = discovered {
                act.report_phase(Phase::Discovered(found));
            }
            match upgraded {
                Ok((framed, url)) => {
                    act.url = url;
                    act.on_upgraded(framed, ctx);
                }
                Err(report) => act.end(report, ctx),
            }
        }));
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.do_send(StopHeartbeat);
        }
        let report = self
            .report
            .take()
            .unwrap_or_else(|| LossReport::new(Cause::Internal, "connection actor ended without a report (panic)"));
        self.links.ended.do_send(ConnectionEnded {
            session: self.settings.name.clone(),
            generation: self.generation,
            report,
            ready_for: self.ready_since.map(|since| since.elapsed()),
        });
    }
}

impl StreamHandler<Result<Frame, WsProtocolError>> for Connection {
    fn handle(&mut self, item: Result<Frame, WsProtocolError>, ctx: &mut Context<Self>) {
        if self.stage == Stage::Closing {
            return;
        }
        if let Some(heartbeat) = &self.heartbeat {
            heartbeat.do_send(FrameArrived);
        }
        if let Ok(frame) = &item {
            self.traffic.frame_in(frame_len(frame));
        }
        // The same decision the Autobahn conformance client runs on.
        match self.assembler.step(item) {
            Step::Pending => {}
            Step::Inbound(inbound, reply) => self.on_inbound(inbound, reply, ctx),
            Step::Violation { code, why } => {
                let report = LossReport::new(Cause::ProtocolError, why).with_code(code);
                self.close_and_end(report, close_reason(code, ""), ctx);
            }
            Step::Io(err) => self.end(io_loss(&err), ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        let report = LossReport::new(Cause::Abnormal, "TCP closed without a Close frame").with_code(CODE_ABNORMAL);
        self.end(report, ctx);
    }
}

impl WriteHandler<WsProtocolError> for Connection {
    // SinkWrite holds its RefCell while calling these: never touch `self.sink` here.
    fn error(&mut self, err: WsProtocolError, ctx: &mut Context<Self>) -> Running {
        let report = match &err {
            WsProtocolError::Io(io_err) => io_loss(io_err),
            other => LossReport::new(Cause::ProtocolError, other.to_string()),
        };
        if self.report.is_none() {
            self.report = Some(report);
        }
        ctx.stop();
        Running::Stop
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        let report = LossReport::new(Cause::Abnormal, "write side closed").with_code(CODE_ABNORMAL);
        self.end(report, ctx);
    }
}

impl Handler<SendPing> for Connection {
    type Result = ();

    fn handle(&mut self, _: SendPing, _: &mut Context<Self>) {
        let Some(sink) = self.sink.as_mut().filter(|_| self.stage != Stage::Closing) else {
            return;
        };
        self.ping_sequence += 1;
        self.ping_in_flight = Some((self.ping_sequence, Instant::now()));
        let _ = sink.write(Message::Ping(Bytes::copy_from_slice(&self.ping_sequence.to_be_bytes())));
        self.traffic.ping_sent();
    }
}

impl Handler<PeerDead> for Connection {
    type Result = ();

    fn handle(&mut self, msg: PeerDead, ctx: &mut Context<Self>) {
        let timeout = self.settings.liveness.ping_timeout;
        let reason = format!(
            "no frame for {}ms, {}ms after a Ping",
            msg.silent_for.as_millis(),
            timeout.as_millis()
        );
        // The peer cannot hear a Close; drop the socket at once.
        self.end(LossReport::new(Cause::PingTimeout, reason), ctx);
    }
}

impl Handler<HeartbeatEnded> for Connection {
    type Result = ();

    fn handle(&mut self, _: HeartbeatEnded, ctx: &mut Context<Self>) {
        self.heartbeat = None;
        self.end(LossReport::new(Cause::Internal, "heartbeat stopped unexpectedly"), ctx);
    }
}

impl Handler<CloseConnection> for Connection {
    type Result = ();

    fn handle(&mut self, msg: CloseConnection, ctx: &mut Context<Self>) {
        let report = LossReport::new(Cause::LocalStop, msg.reason.clone()).with_code(1000);
        self.close_and_end(report, close_reason(1000, &msg.reason), ctx);
    }
}

impl Handler<WriteText> for Connection {
    type Result = Result<(), Map<String, Value>>;

    /// Written, or handed back when the connection is not ready any more.
    fn handle(&mut self, msg: WriteText, _: &mut Context<Self>) -> Self::Result {
        if self.stage != Stage::Ready {
            return Err(msg.0);
        }
        self.write_message(msg.0);
        Ok(())
    }
}

impl Handler<WriteBinary> for Connection {
    type Result = bool;

    fn handle(&mut self, msg: WriteBinary, _: &mut Context<Self>) -> bool {
        let Some(sink) = self.sink.as_mut().filter(|_| self.stage == Stage::Ready) else {
            return false;
        };
        self.traffic.frame_out(msg.0.len());
        sink.write(Message::Binary(msg.0)).is_ok()
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<crate::messages::InjectPanic> for Connection {
    type Result = ();

    fn handle(&mut self, _: crate::messages::InjectPanic, _: &mut Context<Self>) {
        panic!("session={} injected panic (fault-injection)", self.name());
    }
}

impl Handler<Probe> for Connection {
    type Result = ResponseFuture<()>;

    /// Answers once its heartbeat answered too.
    fn handle(&mut self, _: Probe, _: &mut Context<Self>) -> Self::Result {
        let heartbeat = self.heartbeat.clone();
        Box::pin(async move {
            if let Some(heartbeat) = heartbeat {
                let _ = heartbeat.send(Probe).await;
            }
        })
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<crate::messages::InjectWedge> for Connection {
    type Result = ();

    fn handle(&mut self, _: crate::messages::InjectWedge, ctx: &mut Context<Self>) {
        log::warn!("session={} wedged on purpose (fault-injection)", self.name());
        ctx.wait(actix::fut::wrap_future(std::future::pending::<()>()));
    }
}

fn io_loss(err: &io::Error) -> LossReport {
    match err.kind() {
        io::ErrorKind::UnexpectedEof => {
            LossReport::new(Cause::Abnormal, "TCP closed without a Close frame").with_code(CODE_ABNORMAL)
        }
        _ => LossReport::new(Cause::Reset, err.to_string()),
    }
}

fn frame_len(frame: &Frame) -> usize {
    use actix_http::ws::Item;
    match frame {
        Frame::Text(b) | Frame::Binary(b) | Frame::Ping(b) | Frame::Pong(b) => b.len(),
        Frame::Continuation(Item::FirstText(b) | Item::FirstBinary(b) | Item::Continue(b) | Item::Last(b)) => b.len(),
        Frame::Close(_) => 0,
    }
}

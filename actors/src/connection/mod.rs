//! Connection: owns one WebSocket of one session, from the upgrade through
//! the xiaozhi hello to its end. Any loss becomes one `LossReport` and the
//! actor stops; it never reconnects, sleeps or polls. Its `Drop` sends the
//! single `ConnectionEnded`, so the socket and every timer are gone before
//! the Supervisor hears of it, and a panic is reported like any loss.
//!
//! Every buffer the server can fill is bounded in bytes: frames are checked
//! from their header (`codec`), messages while they are reassembled
//! (`frames`), and what we write against the outbound budget (`outbox`).

mod codec;
mod endpoint;
mod frames;
mod noise;
mod outbox;
mod upgrade;

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use awc::error::WsProtocolError;
use awc::ws::{CloseReason, Frame, Message};
use bytes::Bytes;
use log::Level;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

pub use self::codec::{announced_length, GuardedCodec};
pub use self::endpoint::ConnectPlan;
pub use self::frames::{
    close_code_for, close_reason, is_sendable_close_code, reply_to, FrameAssembler, FrameError, Inbound, Reply, Step,
};
pub use self::noise::{Noise, NoiseLimits};
pub use self::outbox::{Outbox, WriteRefused};
pub use self::upgrade::{upgrade, WsFramed};
use crate::census::{self, Census};
use crate::client::CaFileError;
use crate::heartbeat::{Heartbeat, HeartbeatPeer, LineLife};
use crate::logsafe;
use crate::loss::{Cause, LossReport, CODE_ABNORMAL};
use crate::messages::{
    CloseConnection, ConnectionEnded, ConnectionPhase, HeartbeatEnded, LineAnswered, McpArrived, PeerDead, Phase,
    Probe, PublishAudio, PublishMessage, RecordRtt, SendPing, StopHeartbeat, WriteBinary, WriteText,
};
use crate::monitor::Monitor;
use crate::settings::SessionSettings;
pub use crate::settings::DEFAULT_MAX_MESSAGE as MAX_MESSAGE_BYTES;
use crate::supervisor::Supervisor;
use crate::traffic::TrafficCounters;
use crate::wire::{self, OutboundText, ServerText};

/// How long a Close frame may take to flush before the socket is dropped
/// anyway; on a dead peer the flush would otherwise wait for TCP to give up.
const CLOSE_FLUSH_GRACE: Duration = Duration::from_millis(500);

/// First read buffer of a connection; it grows only for larger frames and
/// shrinks back after them. The upgraded `Framed` keeps two 8 KiB buffers
/// for ever, 16 of the ~20 KiB an idle session cost, so the socket is
/// re-framed with small ones.
const READ_BUFFER_START: usize = 256;

/// A server's session id longer than this is a protocol error: it is
/// echoed in every message we send and shown to operators.
const MAX_SESSION_ID: usize = 256;

/// Upgrades in flight at once, process-wide. Each holds awc's handshake
/// buffers (16 KiB) until it is re-framed; against a server that answers
/// upgrades slower than they come (python `websockets`, one event loop),
/// 1,000 sessions had all 1,000 in flight, and the allocator kept the
/// 16 MB peak for ever (26.8 MB idle RSS instead of 18). It also spares a
/// server a thousand simultaneous upgrades after a mass loss.
pub const UPGRADES_IN_FLIGHT: usize = 64;

/// Where the Connection reports to, and what it shares with the others.
///
/// Addresses, not a `Recipient` per message: each recipient is an
/// allocation of its own, and five of them cost 0.4 MB a thousand sessions.
#[derive(Clone)]
pub struct ConnectionLinks {
    /// Permits for upgrades in flight ([`UPGRADES_IN_FLIGHT`]).
    pub upgrades: Arc<Semaphore>,
    /// Receives handshake progress and the one `ConnectionEnded`.
    pub supervisor: Addr<Supervisor>,
    /// Receives server messages, audio frames and Ping round trips.
    pub monitor: Addr<Monitor>,
    /// Receives the server's `mcp` messages too (besides `messages`), when
    /// the session answers MCP itself.
    pub mcp: Option<Recipient<McpArrived>>,
}

/// What a session lends each of its connections for their whole life.
#[derive(Clone, Default)]
pub struct SessionShared {
    /// Frames, bytes, pings.
    pub traffic: Arc<TrafficCounters>,
    /// Rate limits of the lines a server can trigger per frame.
    pub noise: Arc<NoiseLimits>,
}

/// Where the connection is, and what only that stage has.
enum Stage {
    /// Resolving the endpoint and upgrading.
    Connecting,
    /// Upgraded, our hello sent; the server's is due before the timer fires.
    Handshaking { hello_timer: SpawnHandle },
    /// The server hello arrived; messages flow.
    Ready { since: Instant, session_id: Option<String> },
    /// A Close frame is being written; nothing more is read or written.
    Closing { ready_since: Option<Instant> },
}

impl Stage {
    fn ready_since(&self) -> Option<Instant> {
        match self {
            Stage::Ready { since, .. } => Some(*since),
            Stage::Closing { ready_since } => *ready_since,
            Stage::Connecting | Stage::Handshaking { .. } => None,
        }
    }
}

/// The socket once upgraded: our writing end, the life of the line, and
/// the heartbeat timing it.
struct Link {
    outbox: Outbox,
    life: Rc<LineLife>,
    heartbeat: Addr<Heartbeat>,
}

/// Our Ping in flight, to measure its round trip.
#[derive(Default)]
struct PingClock {
    sequence: u64,
    in_flight: Option<(u64, Instant)>,
    /// The heartbeat waits to hear of the first frame after the Ping.
    awaiting_answer: bool,
}

/// One WebSocket of one session.
pub struct Connection {
    settings: Arc<SessionSettings>,
    generation: u64,
    client: Result<awc::Client, CaFileError>,
    plan: ConnectPlan,
    links: ConnectionLinks,
    shared: SessionShared,
    started_at: Instant,
    stage: Stage,
    link: Option<Link>,
    assembler: FrameAssembler,
    report: Option<LossReport>,
    url: Option<String>,
    ping: PingClock,
    _census: Census,
}

impl Connection {
    /// A connection attempt, started when the actor starts. `client` is the
    /// error that kept it from being built (a bad CA file), if any.
    pub fn new(
        settings: Arc<SessionSettings>,
        generation: u64,
        client: Result<awc::Client, CaFileError>,
        plan: ConnectPlan,
        links: ConnectionLinks,
        shared: SessionShared,
    ) -> Self {
        Connection {
            assembler: FrameAssembler::new(settings.limits.max_message),
            settings,
            generation,
            client,
            plan,
            links,
            shared,
            started_at: Instant::now(),
            stage: Stage::Connecting,
            link: None,
            report: None,
            url: None,
            ping: PingClock::default(),
            _census: Census::enter(&census::CONNECTIONS),
        }
    }

    fn name(&self) -> &str {
        &self.settings.name
    }

    fn report_phase(&self, phase: Phase) {
        self.links.supervisor.do_send(ConnectionPhase {
            session: self.settings.name.clone(),
            generation: self.generation,
            phase,
        });
    }

    fn noise(&self, kind: Noise, level: Level, line: std::fmt::Arguments<'_>) {
        self.shared.noise.log(self.name(), kind, level, line);
    }

    /// The first loss wins; the actor stops and `Drop` reports it.
    fn end(&mut self, report: LossReport, ctx: &mut Context<Self>) {
        if self.report.is_none() {
            self.report = Some(report);
        }
        ctx.stop();
    }

    /// End with a Close frame of our own, written before the socket drops.
    fn close_and_end(&mut self, report: LossReport, close: CloseReason, ctx: &mut Context<Self>) {
        if self.report.is_none() {
            self.report = Some(report);
        }
        if matches!(self.stage, Stage::Closing { .. }) {
            return;
        }
        let ready_since = self.stage.ready_since();
        self.enter(Stage::Closing { ready_since }, ctx);
        let Some(link) = &mut self.link else {
            return ctx.stop();
        };
        // A Close that does not fit the budget is not worth waiting for.
        if link.outbox.write(Message::Close(Some(close))).is_err() {
            return ctx.stop();
        }
        link.outbox.close();
        // The writer ending stops us once the Close is out.
        ctx.run_later(CLOSE_FLUSH_GRACE, |_, ctx| ctx.stop());
    }

    /// Move to `next`, dropping what only the stage left behind had.
    fn enter(&mut self, next: Stage, ctx: &mut Context<Self>) {
        if let Stage::Handshaking { hello_timer } = std::mem::replace(&mut self.stage, next) {
            ctx.cancel_future(hello_timer);
        }
    }

    /// Queue a frame the protocol obliges us to send (Pong, Ping, our
    /// hello): one that does not fit means the server stopped reading.
    fn write_or_stall(&mut self, message: Message, ctx: &mut Context<Self>) {
        let Some(link) = &mut self.link else { return };
        let len = frame_payload_len(&message);
        match link.outbox.write(message) {
            Ok(()) => self.shared.traffic.frame_out(len),
            Err(WriteRefused::Closed) => {}
            Err(full @ WriteRefused::Full { .. }) => {
                self.end(LossReport::new(Cause::WriteStalled, full.to_string()), ctx);
            }
        }
    }

    fn on_upgraded(&mut self, framed: WsFramed, ctx: &mut Context<Self>) {
        let parts = framed.into_parts();
        let (read_half, write_half) = tokio::io::split(parts.io);
        // Bytes awc read past the 101 (the server hello may be among them)
        // come first; copied, since a slice would keep awc's 8 KiB alive.
        let leftover = std::io::Cursor::new(parts.read_buf.to_vec());
        let limits = self.settings.limits;
        let decoder = GuardedCodec::new(parts.codec.clone(), limits.max_message, READ_BUFFER_START);
        ctx.add_stream(FramedRead::with_capacity(
            leftover.chain(read_half),
            decoder,
            READ_BUFFER_START,
        ));
        let (outbox, writer) = Outbox::new(parts.codec, limits.outbound, write_half);
        ctx.spawn(writer.into_actor(self).map(|written, act, ctx| match written {
            // Only a close ends the writer well; the report is set by then.
            Ok(()) => ctx.stop(),
            Err(err) => act.end(io_loss(&err), ctx),
        }));
        let peer = HeartbeatPeer::of(ctx.address());
        let liveness = self.settings.liveness;
        let life = LineLife::new();
        let heartbeat = Heartbeat::new(peer, life.clone(), liveness.ping_interval, liveness.ping_timeout).start();
        self.link = Some(Link {
            outbox,
            life,
            heartbeat,
        });
        let hello_timeout = self.settings.hello_timeout;
        let hello_timer = ctx.run_later(hello_timeout, move |act, ctx| {
            let report = LossReport::new(
                Cause::HelloTimeout,
                format!("no server hello within {}ms", hello_timeout.as_millis()),
            );
            act.close_and_end(report, close_reason(1000, "hello timeout"), ctx);
        });
        self.enter(Stage::Handshaking { hello_timer }, ctx);
        let hello = wire::client_hello(&self.settings.audio_params, self.settings.mcp.announced());
        self.write_or_stall(Message::Text(hello.into()), ctx);
        self.report_phase(Phase::Handshaking);
    }

    /// A whole message or control frame, with the reply `frames` decided on.
    fn on_inbound(&mut self, inbound: Inbound, reply: Option<Reply>, ctx: &mut Context<Self>) {
        match (inbound, reply) {
            (Inbound::Close(code, reason), Some(Reply::Close(echo))) => {
                self.close_and_end(LossReport::server_close(code, reason), echo, ctx);
            }
            (inbound, reply) => {
                if let Some(Reply::Pong(payload)) = reply {
                    self.write_or_stall(Message::Pong(payload), ctx);
                }
                match inbound {
                    Inbound::Text(text) => self.on_text(text, ctx),
                    Inbound::Binary(data) => self.on_binary(data),
                    Inbound::Pong(payload) => self.on_pong(&payload),
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
            ServerText::Hello(hello) if matches!(self.stage, Stage::Handshaking { .. }) => {
                self.on_server_hello(hello, ctx)
            }
            ServerText::Hello(_) => self.noise(
                Noise::SecondHello,
                Level::Info,
                format_args!("ignored a second server hello"),
            ),
            ServerText::Message(message) if matches!(self.stage, Stage::Ready { .. }) => {
                if !message.is_known_type() {
                    self.noise(
                        Noise::UnknownType,
                        Level::Info,
                        format_args!(
                            "received a message of unknown type {}",
                            logsafe::value(message.kind_or_none())
                        ),
                    );
                }
                if let (Some(mcp), Some("mcp")) = (&self.links.mcp, message.kind.as_deref()) {
                    mcp.do_send(McpArrived {
                        message: message.json.clone(),
                        reply: ctx.address().recipient(),
                    });
                }
                self.links.monitor.do_send(PublishMessage {
                    session: self.settings.name.clone(),
                    message: message.json,
                });
            }
            ServerText::Message(message) => self.noise(
                Noise::BeforeHello,
                Level::Info,
                format_args!(
                    "ignored a message before the server hello type={} len={}",
                    logsafe::value(message.kind_or_none()),
                    text.len()
                ),
            ),
            ServerText::Malformed(error) => self.noise(
                Noise::Malformed,
                Level::Warn,
                format_args!(
                    "ignored a malformed message error={} len={}",
                    logsafe::quoted(&error),
                    text.len()
                ),
            ),
        }
    }

    fn on_server_hello(&mut self, hello: wire::ServerHello, ctx: &mut Context<Self>) {
        let refusal = match (hello.transport.as_deref(), &hello.session_id) {
            (Some("websocket"), Some(id)) if id.len() > MAX_SESSION_ID => {
                Some(format!("server hello has a session_id of {} bytes", id.len()))
            }
            (Some("websocket"), _) => None,
            (other, _) => Some(format!(
                "server hello names transport {}, expected \"websocket\"",
                logsafe::quoted(other.unwrap_or("(none)")).capped(logsafe::ID_CAP)
            )),
        };
        if let Some(reason) = refusal {
            let report = LossReport::new(Cause::ProtocolError, reason).with_code(1002);
            return self.close_and_end(report, close_reason(1002, ""), ctx);
        }
        let session_id = hello.session_id;
        self.enter(
            Stage::Ready {
                since: Instant::now(),
                session_id: session_id.clone(),
            },
            ctx,
        );
        log::debug!(
            "session={} server hello session_id={}",
            self.name(),
            logsafe::value(session_id.as_deref().unwrap_or("-"))
        );
        if let Some(every) = self.settings.liveness.app_ping_interval {
            let ping = OutboundText::from_object(&wire::app_ping());
            let session_id = self.stage_session_id().map(str::to_owned);
            ctx.run_interval(every, move |act, ctx| {
                let text = ping.stamped(session_id.as_deref());
                act.write_or_stall(Message::Text(text.into()), ctx);
            });
        }
        self.report_phase(Phase::Ready {
            url: self.url.clone().unwrap_or_default(),
            session_id,
            took: self.started_at.elapsed(),
        });
    }

    fn on_binary(&mut self, data: Bytes) {
        if matches!(self.stage, Stage::Ready { .. }) {
            self.links.monitor.do_send(PublishAudio {
                session: self.settings.name.clone(),
                data,
            });
        } else {
            self.noise(
                Noise::BinaryBeforeHello,
                Level::Info,
                format_args!("ignored a binary frame before the server hello bytes={}", data.len()),
            );
        }
    }

    fn on_pong(&mut self, payload: &[u8]) {
        let Some((sequence, sent_at)) = self.ping.in_flight else {
            return;
        };
        if payload == sequence.to_be_bytes() {
            self.ping.in_flight = None;
            self.shared.traffic.pong();
            self.links.monitor.do_send(RecordRtt {
                session: self.settings.name.clone(),
                rtt: sent_at.elapsed(),
            });
        }
    }

    fn stage_session_id(&self) -> Option<&str> {
        match &self.stage {
            Stage::Ready { session_id, .. } => session_id.as_deref(),
            _ => None,
        }
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(why) => return self.end(LossReport::new(Cause::ConnectFailed, why.to_string()), ctx),
        };
        let settings = self.settings.clone();
        let plan = std::mem::take(&mut self.plan);
        // What an OTA answer offered is worth showing whatever follows.
        let (supervisor, session, generation) = (
            self.links.supervisor.clone(),
            self.settings.name.clone(),
            self.generation,
        );
        let offered = move |offered| {
            supervisor.do_send(ConnectionPhase {
                session: session.clone(),
                generation,
                phase: Phase::Offered(offered),
            })
        };
        let upgrades = self.links.upgrades.clone();
        let attempt = async move {
            // Taken before any timeout starts: waiting for a turn is not the
            // server's fault. Held until the socket is re-framed below.
            let permit = upgrades.acquire_owned().await.ok();
            let (endpoint, discovered) = match endpoint::resolve(&client, &settings, plan, &offered).await {
                Ok(resolved) => resolved,
                Err(report) => return (None, None, Err(report), permit),
            };
            let url = endpoint.url.clone();
            let upgraded = upgrade(client, settings, &endpoint).await;
            (discovered, Some(url), upgraded, permit)
        };
        ctx.spawn(
            attempt
                .into_actor(self)
                .map(|(discovered, url, upgraded, _permit), act, ctx| {
                    // Worth keeping even when the upgrade then failed.
                    if let Some(found) = discovered {
                        act.report_phase(Phase::Discovered(found));
                    }
                    act.url = url;
                    match upgraded {
                        Ok(framed) => act.on_upgraded(framed, ctx),
                        Err(report) => act.end(report, ctx),
                    }
                }),
        );
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            link.heartbeat.do_send(StopHeartbeat);
        }
        let report = self
            .report
            .take()
            .unwrap_or_else(|| LossReport::new(Cause::Internal, "connection actor ended without a report (panic)"));
        self.links.supervisor.do_send(ConnectionEnded {
            session: self.settings.name.clone(),
            generation: self.generation,
            report,
            ready_for: self.stage.ready_since().map(|since| since.elapsed()),
            url: self.url.take(),
        });
    }
}

impl StreamHandler<Result<Frame, WsProtocolError>> for Connection {
    fn handle(&mut self, item: Result<Frame, WsProtocolError>, ctx: &mut Context<Self>) {
        if matches!(self.stage, Stage::Closing { .. }) {
            return;
        }
        if let Some(link) = &self.link {
            link.life.frame(matches!(item, Ok(Frame::Ping(_))));
            if std::mem::take(&mut self.ping.awaiting_answer) {
                link.heartbeat.do_send(LineAnswered);
            }
        }
        if let Ok(frame) = &item {
            self.shared.traffic.frame_in(frame_len(frame));
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

impl Handler<SendPing> for Connection {
    type Result = ();

    fn handle(&mut self, _: SendPing, ctx: &mut Context<Self>) {
        if matches!(self.stage, Stage::Closing { .. }) {
            return;
        }
        self.ping.sequence += 1;
        self.ping.in_flight = Some((self.ping.sequence, Instant::now()));
        self.ping.awaiting_answer = true;
        let payload = Bytes::copy_from_slice(&self.ping.sequence.to_be_bytes());
        self.write_or_stall(Message::Ping(payload), ctx);
        self.shared.traffic.ping_sent();
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
    type Result = Result<(), WriteTextRefused>;

    /// Written, or handed back when the connection is not ready (any more),
    /// or refused when the server has stopped reading.
    fn handle(&mut self, msg: WriteText, _: &mut Context<Self>) -> Self::Result {
        let Stage::Ready { session_id, .. } = &self.stage else {
            return Err(WriteTextRefused::NotReady(msg.0));
        };
        let text = msg.0.stamped(session_id.as_deref());
        let len = text.len();
        let Some(link) = &mut self.link else {
            unreachable!("a ready connection has a link");
        };
        match link.outbox.write(Message::Text(text.into())) {
            Ok(()) => {
                self.shared.traffic.frame_out(len);
                Ok(())
            }
            Err(refused) => Err(WriteTextRefused::Stalled(refused.to_string())),
        }
    }
}

/// Why a text message was not written.
#[derive(Debug)]
pub enum WriteTextRefused {
    /// Not ready (any more): the message comes back to be held.
    NotReady(OutboundText),
    /// The outbound budget is full: the server is not reading.
    Stalled(String),
}

impl Handler<WriteBinary> for Connection {
    type Result = Result<(), WriteBinaryRefused>;

    fn handle(&mut self, msg: WriteBinary, _: &mut Context<Self>) -> Self::Result {
        let (Stage::Ready { .. }, Some(link)) = (&self.stage, &mut self.link) else {
            return Err(WriteBinaryRefused::NotReady);
        };
        let len = msg.0.len();
        match link.outbox.write(Message::Binary(msg.0)) {
            Ok(()) => {
                self.shared.traffic.frame_out(len);
                Ok(())
            }
            Err(refused) => Err(WriteBinaryRefused::Stalled(refused.to_string())),
        }
    }
}

/// Why a binary frame was not written (audio is never held).
#[derive(Debug, PartialEq, Eq)]
pub enum WriteBinaryRefused {
    /// Not ready.
    NotReady,
    /// The outbound budget is full: the server is not reading.
    Stalled(String),
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
        let heartbeat = self.link.as_ref().map(|link| link.heartbeat.clone());
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

fn frame_payload_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(data) | Message::Ping(data) | Message::Pong(data) => data.len(),
        Message::Close(_) | Message::Continuation(_) | Message::Nop => 0,
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

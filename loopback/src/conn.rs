//! The task that serves one connection: after the upgrade and the admission
//! checks, one loop that waits for the next thing to do (a control from the
//! `Server` handle, a client message, a raw hostile write, or the earliest
//! timer) and dispatches it. What the client says is handled in
//! `conversation.rs`, faults in `apply.rs`, writing and closing in
//! `wire.rs`. One task per connection and no timer armed unless
//! configured, so ten thousand idle connections cost little.

use std::future::{pending, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::{Sink, StreamExt};
use log::debug;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant as TokioInstant};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::auth::{self, AUTH_FAILED_TEXT, NO_DEVICE_ID_TEXT};
use crate::conversation::AnswerRun;
use crate::handshake::{self, Ws};
use crate::hostile::{self, Hostile};
use crate::mcp::McpConn;
use crate::options::{Mode, ServerOptions};
use crate::record::EventKind;
use crate::registry::{Ack, Control};
use crate::state::Shared;

/// What the loop does after handling one step.
pub(crate) enum Flow {
    Continue,
    End,
    /// End, and acknowledge only once the socket has been dropped (reset).
    EndThenAck(Ack),
}

/// What woke the loop.
enum Step {
    Control(Control),
    ControlsClosed,
    Read(Option<Result<Message, WsError>>),
    /// A hostile plan wrote some bytes.
    Wrote,
    /// A hostile plan is over.
    FloodDone,
    WriteFailed(String),
    Timer,
    /// Nothing can ever happen again (silent, and the handle is gone).
    Stuck,
}

/// Deadlines of the connection's timers; the loop sleeps until the earliest.
#[derive(Default)]
pub(crate) struct Timers {
    pub(crate) idle: Option<TokioInstant>,
    pub(crate) hello: Option<TokioInstant>,
    pub(crate) ping: Option<TokioInstant>,
    pub(crate) pong: Option<TokioInstant>,
    pub(crate) answer: Option<TokioInstant>,
    pub(crate) mcp_list: Option<TokioInstant>,
    /// The end of a [`crate::Fault::Stall`]: the one timer that runs while silent.
    pub(crate) unstall: Option<TokioInstant>,
}

impl Timers {
    fn earliest(&self) -> Option<TokioInstant> {
        [self.idle, self.hello, self.ping, self.pong, self.answer, self.mcp_list]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Whether a deadline has passed; clears it if so.
fn due(deadline: &mut Option<TokioInstant>, now: TokioInstant) -> bool {
    if deadline.is_some_and(|d| d <= now) {
        *deadline = None;
        true
    } else {
        false
    }
}

/// One upgraded connection.
pub(crate) struct Session {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: u64,
    pub(crate) device_id: String,
    pub(crate) ws: Ws,
    /// The session id given in the hello (`None` before it).
    pub(crate) session_id: Option<String>,
    /// The id the hello will carry. The real server makes it when the
    /// connection opens and puts it in every message, hello or not.
    pub(crate) own_session_id: String,
    /// [`crate::Fault::Silence`]: no reads, no writes, no timers.
    pub(crate) silent: bool,
    /// Cleared for good by [`crate::Fault::StopReading`].
    pub(crate) reading: bool,
    /// Boxed: rare, and every connection would pay for it inline.
    pub(crate) hostile: Option<Box<Hostile>>,
    /// [`Mode::TextBeforeHello`]: the hello waits for the flood.
    pub(crate) hello_held: bool,
    pub(crate) hello_wanted: bool,
    pub(crate) client_hello: Option<Value>,
    /// Number of the oldest server Ping not yet answered.
    pub(crate) unanswered_ping: Option<u64>,
    pub(crate) answer: Option<Box<AnswerRun>>,
    pub(crate) mcp: McpConn,
    pub(crate) timers: Timers,
    pub(crate) settings: Arc<ServerOptions>,
    controls: mpsc::UnboundedReceiver<Control>,
    controls_open: bool,
}

pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, conn: u64) {
    // Settings are read once, at accept time, so changing them never
    // disturbs live connections.
    let settings = shared.settings();
    let _ = stream.set_nodelay(true);
    let Some(up) = handshake::upgrade(&shared, stream, conn, &settings).await else {
        return;
    };
    debug!("loopback: conn {conn} from {peer} upgraded");
    let nameless = settings.require_device_id && up.headers.device_id.is_none();
    let rejected = settings.mode == Mode::AuthFail || !auth::accepts(&settings, &up.headers);
    let own_session_id = settings.session_id.clone().unwrap_or_else(crate::ids::new_uuid);
    let mut session = Session {
        shared: shared.clone(),
        conn,
        device_id: up.headers.device_id.clone().unwrap_or_default(),
        ws: up.ws,
        session_id: None,
        own_session_id,
        silent: false,
        reading: true,
        hostile: None,
        hello_held: false,
        hello_wanted: false,
        client_hello: None,
        unanswered_ping: None,
        answer: None,
        mcp: McpConn::default(),
        timers: Timers::default(),
        settings,
        controls: up.controls,
        controls_open: true,
    };
    // The real server checks the device first, then the token; both after
    // the upgrade, both answered with a text and Close 1000.
    let pending_ack = if nameless {
        session.refuse(EventKind::NoDeviceId, NO_DEVICE_ID_TEXT).await;
        None
    } else if rejected {
        session.refuse(EventKind::AuthFailed, AUTH_FAILED_TEXT).await;
        None
    } else {
        session.run().await
    };
    session.retire();
    drop(session);
    if let Some(ack) = pending_ack {
        ack.applied();
    }
}

impl Session {
    async fn refuse(&mut self, why: EventKind, text: &str) {
        self.retire();
        self.event(why);
        if self.send(Message::Text(text.to_owned())).await {
            self.close_with(Some(close_frame(1000, "")), None).await;
        }
    }

    /// The main loop; returns an acknowledgement still owed once the socket
    /// is gone.
    async fn run(&mut self) -> Option<Ack> {
        let now = TokioInstant::now();
        self.timers.idle = self.settings.idle_close.map(|after| now + after);
        self.timers.ping = self.settings.ping_interval.map(|every| now + every);
        if let Mode::TextBeforeHello { text, count } = &self.settings.mode {
            self.hostile = Some(Box::new(Hostile::text_flood(text, *count)));
            self.hello_held = true;
        }
        loop {
            let flow = match self.next_step().await {
                Step::Control(control) => self.on_control(control).await,
                Step::ControlsClosed => {
                    self.controls_open = false;
                    Flow::Continue
                }
                Step::Read(msg) => self.on_read(msg).await,
                Step::Wrote => Flow::Continue,
                Step::FloodDone => self.on_flood_done().await,
                Step::WriteFailed(error) => {
                    self.lost(error);
                    Flow::End
                }
                Step::Timer => self.on_timers().await,
                Step::Stuck => Flow::End,
            };
            match flow {
                Flow::Continue => {}
                Flow::End => return None,
                Flow::EndThenAck(ack) => return Some(ack),
            }
        }
    }

    async fn next_step(&mut self) -> Step {
        let live = !self.silent;
        let deadline = if live {
            self.timers.earliest()
        } else {
            self.timers.unstall
        };
        let read_ok = live && self.reading && self.hostile.as_ref().map_or(true, |h| h.reading_allowed());
        let write_ok = live && self.hostile.is_some();
        // Disjoint borrows: the select's futures live side by side.
        let Session {
            controls,
            controls_open,
            ws,
            hostile,
            ..
        } = self;
        tokio::select! {
            // Controls first, so a fault lands promptly even when the
            // client floods the connection.
            biased;
            control = controls.recv(), if *controls_open => {
                control.map_or(Step::ControlsClosed, Step::Control)
            }
            // Timers before I/O: a flood that always has bytes to write must
            // not starve them.
            () = sleep_until_some(deadline), if deadline.is_some() => Step::Timer,
            step = poll_fn(|cx| poll_io(ws, hostile, read_ok, write_ok, cx)), if read_ok || write_ok => step,
            else => Step::Stuck,
        }
    }

    async fn on_control(&mut self, control: Control) -> Flow {
        let was_silent = self.silent;
        let flow = self.apply(control.action, control.ack).await;
        if was_silent && !self.silent {
            // Silence paused the idle clock rather than letting it fire the
            // moment the connection wakes up.
            self.note_activity();
        }
        flow
    }

    async fn on_flood_done(&mut self) -> Flow {
        self.hostile = None;
        self.event(EventKind::FloodFinished);
        if std::mem::take(&mut self.hello_held) && std::mem::take(&mut self.hello_wanted) {
            return self.send_hello().await;
        }
        Flow::Continue
    }

    async fn on_timers(&mut self) -> Flow {
        let now = TokioInstant::now();
        if due(&mut self.timers.unstall, now) {
            // The other timers were paused with the connection; they run
            // from the next turn of the loop.
            self.silent = false;
            self.note_activity();
            return Flow::Continue;
        }
        if due(&mut self.timers.pong, now) {
            return self.ping_timed_out().await;
        }
        if due(&mut self.timers.idle, now) {
            self.event(EventKind::IdleClosed);
            return self.close_with(Some(close_frame(1000, "")), None).await;
        }
        if due(&mut self.timers.hello, now) {
            if let Flow::End = self.send_hello().await {
                return Flow::End;
            }
        }
        if due(&mut self.timers.ping, now) {
            if let Flow::End = self.send_server_ping(now).await {
                return Flow::End;
            }
        }
        if due(&mut self.timers.mcp_list, now) {
            if let Flow::End = self.list_tools_automatically().await {
                return Flow::End;
            }
        }
        if due(&mut self.timers.answer, now) {
            return self.play_answer_step().await;
        }
        Flow::Continue
    }

    async fn send_server_ping(&mut self, now: TokioInstant) -> Flow {
        if let Some(every) = self.settings.ping_interval {
            self.timers.ping = Some(now + every);
        }
        let number = self.shared.next_ping_number();
        if let (Some(timeout), None) = (self.settings.ping_timeout, self.unanswered_ping) {
            self.unanswered_ping = Some(number);
            self.timers.pong = Some(now + timeout);
        }
        self.shared.record.update(|s| s.pings_sent += 1);
        self.send_flow(Message::Ping(number.to_string().into_bytes())).await
    }

    /// A Pong for the oldest unanswered Ping, or a later one, answers it.
    pub(crate) fn on_pong(&mut self, payload: &[u8]) {
        let number = std::str::from_utf8(payload).ok().and_then(|p| p.parse::<u64>().ok());
        if let (Some(waiting), Some(number)) = (self.unanswered_ping, number) {
            if number >= waiting {
                self.unanswered_ping = None;
                self.timers.pong = None;
            }
        }
    }

    /// python `websockets`: Close 1011 "keepalive ping timeout", and no
    /// wait for the echo.
    async fn ping_timed_out(&mut self) -> Flow {
        self.event(EventKind::PingTimeout);
        self.retire();
        let _ = tokio::time::timeout(
            crate::wire::WRITE_TIMEOUT,
            futures_util::SinkExt::send(
                &mut self.ws,
                Message::Close(Some(close_frame(1011, "keepalive ping timeout"))),
            ),
        )
        .await;
        self.close_tcp().await;
        Flow::End
    }

    /// Activity as the real server counts it: the idle deadline moves.
    pub(crate) fn note_activity(&mut self) {
        if let Some(after) = self.settings.idle_close {
            self.timers.idle = Some(TokioInstant::now() + after);
        }
    }

    /// The session id messages carry: the hello's, or the one it will have.
    pub(crate) fn current_session_id(&self) -> String {
        self.session_id.clone().unwrap_or_else(|| self.own_session_id.clone())
    }

    /// Takes the connection out of the table and fails the controls still
    /// queued for it, so no control call waits on a connection that is
    /// only finishing its close.
    pub(crate) fn retire(&mut self) {
        self.shared.unregister(self.conn);
        self.controls.close();
        while self.controls.try_recv().is_ok() {}
    }

    pub(crate) fn event(&self, kind: EventKind) {
        self.shared.event(self.conn, Some(&self.device_id), kind);
    }
}

/// Polls the raw hostile writer (when allowed) and the client (when
/// allowed). tungstenite's buffered bytes are flushed before any raw write
/// that starts a frame, so frames never interleave.
fn poll_io(
    ws: &mut Ws,
    hostile: &mut Option<Box<Hostile>>,
    read_ok: bool,
    write_ok: bool,
    cx: &mut Context<'_>,
) -> Poll<Step> {
    if let (true, Some(plan)) = (write_ok, hostile.as_mut()) {
        let clean = plan.mid_frame()
            || match Pin::new(&mut *ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => true,
                Poll::Ready(Err(e)) => return Poll::Ready(Step::WriteFailed(e.to_string())),
                Poll::Pending => false,
            };
        if clean {
            match plan.poll_step(Pin::new(ws.get_mut()), cx) {
                Poll::Ready(Ok(hostile::Step::Progress)) => return Poll::Ready(Step::Wrote),
                Poll::Ready(Ok(hostile::Step::Done)) => return Poll::Ready(Step::FloodDone),
                Poll::Ready(Err(e)) => return Poll::Ready(Step::WriteFailed(e.to_string())),
                Poll::Pending => {}
            }
        }
    }
    if read_ok {
        if let Poll::Ready(msg) = ws.poll_next_unpin(cx) {
            return Poll::Ready(Step::Read(msg));
        }
    }
    Poll::Pending
}

async fn sleep_until_some(deadline: Option<TokioInstant>) {
    match deadline {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}

pub(crate) fn close_frame(code: u16, reason: &str) -> CloseFrame<'static> {
    CloseFrame {
        code: code.into(),
        reason: reason.to_owned().into(),
    }
}

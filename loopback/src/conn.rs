//! The task that serves one connection: upgrade, authentication, the xiaozhi
//! conversation (hello, app-level ping, listen/detect), the idle-close
//! deadline, server pings, and the controls (faults) sent by the `Server`
//! handle. One task per connection and no timers unless configured, so ten
//! thousand idle connections cost little.

use std::future::pending;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use log::debug;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{interval_at, sleep, Instant as TokioInstant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::handshake::{self, bearer_token, Ws};
use crate::options::{Mode, ServerOptions};
use crate::protocol::{self, Incoming, AUTH_FAILED_TEXT};
use crate::record::{push_bounded, EventKind, ReceivedText};
use crate::registry::{Ack, Control};
use crate::state::Shared;

/// A client that stops reading must not stall a task (and the control call
/// waiting on it) forever.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a closing connection waits for the peer's part of the closing
/// handshake before the socket is dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Stands in for "no deadline" on timers whose branch is disabled anyway.
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// What the loop does after handling one step.
pub(crate) enum Flow {
    Continue,
    End,
    /// End, and acknowledge only once the socket has been dropped (reset).
    EndThenAck(Ack),
}

enum Step {
    Control(Control),
    ControlsClosed,
    Read(Option<Result<Message, WsError>>),
    Idle,
    Hello,
    Ping,
}

/// What reading one client message asks of the loop's timers.
enum Reaction {
    /// Nothing that counts as client activity.
    Quiet,
    /// A text or binary message: the idle deadline moves.
    Active,
    /// Activity, and the (late) hello is due after this delay.
    HelloIn(Duration),
    End,
}

/// One upgraded connection.
pub(crate) struct Session {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: u64,
    pub(crate) device_id: String,
    pub(crate) ws: Ws,
    pub(crate) session_id: Option<String>,
    pub(crate) silent: bool,
    controls: mpsc::UnboundedReceiver<Control>,
    settings: ServerOptions,
}

pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, conn: u64) {
    // Settings are read once, at accept time, so changing them never
    // disturbs live connections.
    let settings = shared.settings();
    let _ = stream.set_nodelay(true);
    let Some(up) = handshake::upgrade(&shared, stream, conn, &settings.mode).await else {
        return;
    };
    debug!("loopback: conn {conn} from {peer} upgraded");
    let rejected = settings.mode == Mode::AuthFail
        || settings
            .expected_token
            .as_deref()
            .is_some_and(|expected| bearer_token(up.headers.authorization.as_deref()) != Some(expected));
    let mut session = Session {
        shared: shared.clone(),
        conn,
        device_id: up.headers.device_id.clone().unwrap_or_default(),
        ws: up.ws,
        session_id: None,
        silent: false,
        controls: up.controls,
        settings,
    };
    let pending_ack = if rejected {
        session.reject_auth().await;
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
    async fn reject_auth(&mut self) {
        self.retire();
        self.event(EventKind::AuthFailed);
        if self.send(Message::Text(AUTH_FAILED_TEXT.to_owned())).await {
            let frame = CloseFrame {
                code: 1000.into(),
                reason: "".into(),
            };
            self.close_with(Some(frame), None).await;
        }
    }

    /// The main loop; returns an acknowledgement still owed once the socket
    /// is gone.
    async fn run(&mut self) -> Option<Ack> {
        let idle_close = self.settings.idle_close;
        let idle = sleep(idle_close.unwrap_or(NEVER));
        tokio::pin!(idle);
        let hello = sleep(NEVER);
        tokio::pin!(hello);
        let mut hello_pending = false;
        let mut pinger = self.settings.ping_interval.map(|every| {
            let mut interval = interval_at(TokioInstant::now() + every, every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        let mut controls_open = true;
        loop {
            let live = !self.silent;
            let step = tokio::select! {
                // Controls first, so a fault lands promptly even when the
                // client floods the connection.
                biased;
                control = self.controls.recv(), if controls_open => {
                    control.map_or(Step::ControlsClosed, Step::Control)
                }
                msg = self.ws.next(), if live => Step::Read(msg),
                () = &mut idle, if live && idle_close.is_some() => Step::Idle,
                () = &mut hello, if live && hello_pending => Step::Hello,
                () = tick(&mut pinger), if live && pinger.is_some() => Step::Ping,
                else => return None,
            };
            let flow = match step {
                Step::Control(control) => {
                    let was_silent = self.silent;
                    let flow = self.apply(control.fault, control.ack).await;
                    if was_silent && !self.silent {
                        // Silence paused the idle clock rather than letting it
                        // fire the moment the connection wakes up.
                        if let Some(after) = idle_close {
                            idle.as_mut().reset(TokioInstant::now() + after);
                        }
                    }
                    flow
                }
                Step::ControlsClosed => {
                    controls_open = false;
                    Flow::Continue
                }
                Step::Read(msg) => {
                    let reaction = self.on_read(msg).await;
                    if let (Reaction::Active | Reaction::HelloIn(_), Some(after)) = (&reaction, idle_close) {
                        idle.as_mut().reset(TokioInstant::now() + after);
                    }
                    match reaction {
                        Reaction::End => Flow::End,
                        Reaction::HelloIn(delay) if !hello_pending => {
                            hello_pending = true;
                            hello.as_mut().reset(TokioInstant::now() + delay);
                            Flow::Continue
                        }
                        _ => Flow::Continue,
                    }
                }
                Step::Idle => {
                    self.event(EventKind::IdleClosed);
                    let frame = CloseFrame {
                        code: 1000.into(),
                        reason: "".into(),
                    };
                    self.close_with(Some(frame), None).await
                }
                Step::Hello => {
                    hello_pending = false;
                    self.send_hello().await
                }
                Step::Ping => {
                    let payload = self.shared.next_ping_payload();
                    self.shared.record.update(|s| s.pings_sent += 1);
                    self.send_flow(Message::Ping(payload)).await
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::End => return None,
                Flow::EndThenAck(ack) => return Some(ack),
            }
        }
    }

    async fn on_read(&mut self, msg: Option<Result<Message, WsError>>) -> Reaction {
        let msg = match msg {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                self.lost(e.to_string());
                return Reaction::End;
            }
            None => {
                self.lost("stream ended".to_owned());
                return Reaction::End;
            }
        };
        match msg {
            Message::Text(text) => self.on_text(text).await,
            Message::Binary(data) => {
                let len = data.len() as u64;
                self.shared.record.update(|s| {
                    s.binary_frames += 1;
                    s.binary_bytes += len;
                });
                Reaction::Active
            }
            // tungstenite queued the Pong; the next read of this loop
            // flushes it before it reads again.
            Message::Ping(_) => {
                self.shared.record.update(|s| s.client_pings += 1);
                Reaction::Quiet
            }
            Message::Pong(payload) => {
                self.shared.record.update(|s| push_bounded(&mut s.pongs, payload));
                Reaction::Quiet
            }
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                self.shared.record.update(|s| push_bounded(&mut s.closes, code));
                self.event(EventKind::ClosedByClient { code });
                self.retire();
                // tungstenite queued the echo; send it, then close TCP first
                // as RFC 6455 asks of a server.
                let _ = tokio::time::timeout(WRITE_TIMEOUT, self.ws.flush()).await;
                self.close_tcp().await;
                Reaction::End
            }
            Message::Frame(_) => Reaction::Quiet,
        }
    }

    async fn on_text(&mut self, text: String) -> Reaction {
        let incoming = protocol::classify(&text);
        if let Incoming::Hello(hello) = incoming {
            self.shared.record.update(|s| push_bounded(&mut s.client_hellos, hello));
            self.event(EventKind::HelloReceived);
            return match self.settings.mode {
                Mode::NeverHello => Reaction::Active,
                Mode::LateHello(delay) => Reaction::HelloIn(delay),
                _ => match self.send_hello().await {
                    Flow::Continue => Reaction::Active,
                    _ => Reaction::End,
                },
            };
        }
        // Recorded before any reply, so a client that got the reply finds
        // its message in the record.
        let received = ReceivedText {
            device_id: self.device_id.clone(),
            session_id: self.session_id.clone(),
            text,
            at: std::time::Instant::now(),
        };
        self.shared.record.update(|s| {
            s.texts_total += 1;
            push_bounded(&mut s.texts, received);
        });
        let reply = match incoming {
            Incoming::AppPing => Some(protocol::app_pong()),
            Incoming::Detect(text) => Some(protocol::stt(&text, self.session_id.as_deref())),
            _ => None,
        };
        if let Some(reply) = reply {
            if !self.send(Message::Text(reply)).await {
                return Reaction::End;
            }
        }
        Reaction::Active
    }

    async fn send_hello(&mut self) -> Flow {
        // One id per connection, even if the client says hello again.
        let session_id = self.session_id.get_or_insert_with(protocol::new_session_id).clone();
        // Counted before the write so a client holding the hello never sees
        // a count that lags behind.
        self.shared.record.update(|s| s.hellos += 1);
        let hello = protocol::server_hello(&session_id);
        self.event(EventKind::HelloSent { session_id });
        self.send_flow(Message::Text(hello)).await
    }

    /// Sends and flushes one message; on failure records the loss.
    pub(crate) async fn send(&mut self, msg: Message) -> bool {
        match tokio::time::timeout(WRITE_TIMEOUT, self.ws.send(msg)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                self.lost(e.to_string());
                false
            }
            Err(_) => {
                self.lost("write timeout".to_owned());
                false
            }
        }
    }

    pub(crate) async fn send_flow(&mut self, msg: Message) -> Flow {
        if self.send(msg).await {
            Flow::Continue
        } else {
            Flow::End
        }
    }

    /// Starts a server-side close: Close frame, then the client's echo, then
    /// the TCP close. `ack` is reported as soon as the frame is on the wire.
    pub(crate) async fn close_with(&mut self, frame: Option<CloseFrame<'static>>, ack: Option<Ack>) -> Flow {
        self.retire();
        match tokio::time::timeout(WRITE_TIMEOUT, self.ws.close(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.lost(e.to_string());
                return Flow::End;
            }
            Err(_) => {
                self.lost("write timeout".to_owned());
                return Flow::End;
            }
        }
        if let Some(ack) = ack {
            ack.applied();
        }
        let echo = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(msg) = self.ws.next().await {
                match msg {
                    Ok(Message::Close(frame)) => {
                        let code = frame.as_ref().map(|f| u16::from(f.code));
                        return Some(code);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            None
        })
        .await;
        if let Ok(Some(code)) = echo {
            self.event(EventKind::CloseEchoed { code });
        }
        self.close_tcp().await;
        Flow::End
    }

    /// Sends FIN now.
    pub(crate) async fn shutdown_write(&mut self) {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, self.ws.get_mut().shutdown()).await;
    }

    /// Sends FIN, then reads until the peer closes too, so the final drop
    /// never finds unread data (which would turn the FIN into a reset).
    pub(crate) async fn close_tcp(&mut self) {
        self.shutdown_write().await;
        self.drain().await;
    }

    /// Reads and discards until the peer's FIN (bounded).
    pub(crate) async fn drain(&mut self) {
        let stream = self.ws.get_mut();
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }

    pub(crate) fn lost(&mut self, error: String) {
        debug!("loopback: conn {} lost: {error}", self.conn);
        self.retire();
        self.event(EventKind::ConnectionLost { error });
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

async fn tick(pinger: &mut Option<Interval>) {
    match pinger {
        Some(interval) => {
            interval.tick().await;
        }
        None => pending().await,
    }
}

//! What the server does with what the client says: the hello (and the MCP
//! `initialize` after it), app-level pings, typed text and its answer,
//! `abort`, MCP replies and the tool listing they lead to, and the
//! WebSocket control frames. Everything the client sends is recorded before
//! any reply goes out, so a client holding the reply finds its message in
//! the record.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use futures_util::SinkExt;
use serde_json::Value;
use tokio::time::Instant as TokioInstant;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::answer::{self, AnswerKind, Out, TextAnswer};
use crate::conn::{close_frame, Flow, Session};
use crate::mcp::{self, FollowUp, McpReply, McpTools, Outgoing, MCP_TOOLS_LIST_ID};
use crate::options::Mode;
use crate::protocol::{self, Incoming};
use crate::record::{push_bounded, EventKind, ReceivedText};
use crate::wire::WRITE_TIMEOUT;

/// The token the `initialize` request offers for the vision endpoint; the
/// real server signs one with its `auth_key`. A client must never log it.
pub const MCP_VISION_TOKEN: &str = "loopback-vision-token";

/// An answer being played.
pub(crate) struct AnswerRun {
    kind: AnswerKind,
    steps: VecDeque<Out>,
    step_delay: Duration,
    cut: bool,
}

impl Session {
    pub(crate) async fn on_read(&mut self, msg: Option<Result<Message, WsError>>) -> Flow {
        let msg = match msg {
            Some(Ok(msg)) => msg,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders))) => {
                // python `websockets` fails the connection with 1009.
                self.event(EventKind::MessageTooBig);
                return self.close_with(Some(close_frame(1009, "over size limit")), None).await;
            }
            Some(Err(e)) => {
                self.lost(e.to_string());
                return Flow::End;
            }
            None => {
                self.lost("stream ended".to_owned());
                return Flow::End;
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
                // Stands for voice: the real server counts audio its VAD
                // hears as speech; the loopback has no VAD.
                self.note_activity();
                if self.settings.echo_binary {
                    return self.send_flow(Message::Binary(data)).await;
                }
                Flow::Continue
            }
            // tungstenite queued the Pong; the next read of this loop
            // flushes it before it reads again.
            Message::Ping(_) => {
                self.shared.record.update(|s| s.client_pings += 1);
                Flow::Continue
            }
            Message::Pong(payload) => {
                self.on_pong(&payload);
                self.shared.record.update(|s| push_bounded(&mut s.pongs, payload));
                Flow::Continue
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
                Flow::End
            }
            Message::Frame(_) => Flow::Continue,
        }
    }

    async fn on_text(&mut self, text: String) -> Flow {
        let incoming = protocol::classify(&text);
        if let Incoming::Hello(hello) = incoming {
            return self.on_hello(hello).await;
        }
        let received = ReceivedText {
            device_id: self.device_id.clone(),
            session_id: self.session_id.clone(),
            text,
            at: Instant::now(),
        };
        self.shared.record.update(|s| {
            s.texts_total += 1;
            push_bounded(&mut s.texts, received);
        });
        match incoming {
            Incoming::AppPing if self.settings.enable_websocket_ping => {
                self.note_activity();
                self.send_flow(Message::Text(protocol::app_pong(SystemTime::now())))
                    .await
            }
            Incoming::Detect(text) => {
                self.note_activity();
                self.answer_text(&text).await
            }
            Incoming::Abort => self.on_abort().await,
            Incoming::Mcp(payload) => self.on_mcp(payload).await,
            _ => Flow::Continue,
        }
    }

    async fn on_hello(&mut self, hello: Value) -> Flow {
        self.shared
            .record
            .update(|s| push_bounded(&mut s.client_hellos, hello.clone()));
        self.event(EventKind::HelloReceived);
        self.mcp.announced = mcp::announced(&hello);
        self.client_hello = Some(hello);
        if self.hello_held {
            self.hello_wanted = true;
            return Flow::Continue;
        }
        match self.settings.mode {
            Mode::NeverHello => Flow::Continue,
            Mode::LateHello(delay) => {
                if self.timers.hello.is_none() {
                    self.timers.hello = Some(TokioInstant::now() + delay);
                }
                Flow::Continue
            }
            _ => self.send_hello().await,
        }
    }

    pub(crate) async fn send_hello(&mut self) -> Flow {
        // One id per connection, even if the client says hello again.
        let session_id = self
            .session_id
            .get_or_insert_with(|| self.own_session_id.clone())
            .clone();
        // Counted before the write so a client holding the hello never sees
        // a count that lags behind.
        self.shared.record.update(|s| s.hellos += 1);
        let client_hello = self.client_hello.clone().unwrap_or(Value::Null);
        let hello = protocol::server_hello(&session_id, &client_hello);
        self.event(EventKind::HelloSent { session_id });
        if let Flow::End = self.send_flow(Message::Text(hello)).await {
            return Flow::End;
        }
        if self.mcp.announced && self.settings.mcp.initialize {
            let vision_url = match self.ws.get_ref().local_addr() {
                Ok(addr) => format!("http://{addr}/mcp/vision/explain"),
                Err(_) => "http://127.0.0.1/mcp/vision/explain".to_owned(),
            };
            return self.send_mcp(mcp::initialize(&vision_url, MCP_VISION_TOKEN)).await;
        }
        Flow::Continue
    }

    // ----- typed text ------------------------------------------------------

    async fn answer_text(&mut self, text: &str) -> Flow {
        let emoji = self
            .client_hello
            .as_ref()
            .and_then(|h| h.pointer("/features/emoji"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let session_id = self.current_session_id();
        let Some(planned) = answer::plan(&self.settings.text_answer, text, &session_id, emoji) else {
            return Flow::Continue;
        };
        if let Flow::End = self.interrupt_answer().await {
            return Flow::End;
        }
        self.event(EventKind::AnswerStarted {
            kind: planned.kind,
            text: text.to_owned(),
        });
        self.answer = Some(Box::new(AnswerRun {
            kind: planned.kind,
            steps: planned.steps,
            step_delay: planned.step_delay,
            cut: planned.cut,
        }));
        self.play_answer_step().await
    }

    /// A newer text or an `abort` ends the answer being played; the real
    /// server tells the client with `tts stop` (`abortHandle.py`).
    async fn interrupt_answer(&mut self) -> Flow {
        let Some(run) = self.answer.take() else {
            return Flow::Continue;
        };
        self.timers.answer = None;
        self.event(EventKind::AnswerFinished {
            kind: run.kind,
            cut: true,
        });
        if run.kind == AnswerKind::Echo {
            return Flow::Continue;
        }
        let stop = answer::tts(&self.current_session_id(), "stop", None);
        self.send_flow(Message::Text(stop)).await
    }

    async fn on_abort(&mut self) -> Flow {
        if !matches!(self.settings.text_answer, TextAnswer::Script(_)) {
            return Flow::Continue;
        }
        if self.answer.is_some() {
            return self.interrupt_answer().await;
        }
        let stop = answer::tts(&self.current_session_id(), "stop", None);
        self.send_flow(Message::Text(stop)).await
    }

    /// Sends the next message of the answer being played and schedules the
    /// one after it.
    pub(crate) async fn play_answer_step(&mut self) -> Flow {
        let Some(run) = self.answer.as_mut() else {
            return Flow::Continue;
        };
        let step = run.steps.pop_front();
        let (kind, cut, finished, delay) = (run.kind, run.cut, run.steps.is_empty(), run.step_delay);
        if finished {
            self.answer = None;
            self.timers.answer = None;
            self.event(EventKind::AnswerFinished { kind, cut });
        } else {
            self.timers.answer = Some(TokioInstant::now() + delay);
        }
        match step {
            None => Flow::Continue,
            Some(Out::Text(text)) => self.send_flow(Message::Text(text)).await,
            Some(Out::Audio(audio)) => {
                // Server audio counts as activity in the real server.
                self.note_activity();
                self.send_flow(Message::Binary(audio)).await
            }
            Some(Out::Close(code, reason)) => self.close_with(Some(close_frame(code, &reason)), None).await,
            Some(Out::Drop) => {
                self.retire();
                self.close_tcp().await;
                Flow::End
            }
        }
    }

    // ----- MCP -------------------------------------------------------------

    /// Sends one MCP message, wrapped as the real server wraps it.
    pub(crate) async fn send_mcp(&mut self, out: Outgoing) -> Flow {
        self.mcp.sending(&out);
        let session_id = self.settings.mcp.include_session_id.then(|| self.current_session_id());
        let text = mcp::wrap(&out.payload, session_id.as_deref());
        self.event(EventKind::McpSent {
            id: out.payload.get("id").and_then(Value::as_u64),
            method: out.payload.get("method").and_then(Value::as_str).map(str::to_owned),
        });
        self.send_flow(Message::Text(text)).await
    }

    pub(crate) async fn list_tools_automatically(&mut self) -> Flow {
        self.send_mcp(mcp::tools_list(MCP_TOOLS_LIST_ID, None)).await
    }

    async fn on_mcp(&mut self, payload: Value) -> Flow {
        let (answers, follow) = self.mcp.on_payload(&payload, &self.settings.mcp);
        let reply = McpReply {
            conn: self.conn,
            device_id: self.device_id.clone(),
            session_id: self.session_id.clone(),
            id: payload.get("id").cloned(),
            answers,
            result: payload.get("result").cloned(),
            error: payload.get("error").cloned(),
            payload,
            at: Instant::now(),
        };
        let id = reply.id_u64();
        self.shared.record.update(|s| push_bounded(&mut s.mcp_replies, reply));
        self.event(EventKind::McpReceived { id });
        match follow {
            FollowUp::Nothing => Flow::Continue,
            FollowUp::ListAfter(delay) => {
                self.timers.mcp_list = Some(TokioInstant::now() + delay);
                Flow::Continue
            }
            FollowUp::ToolsPage {
                first,
                tools,
                cursor,
                next,
            } => {
                let (conn, device, session_id) = (self.conn, self.device_id.clone(), self.session_id.clone());
                self.shared.record.update(|s| {
                    let entry = s.mcp_tools.entry(device).or_insert_with(|| McpTools {
                        conn,
                        session_id: session_id.clone(),
                        tools: Vec::new(),
                        pages: 0,
                        cursors: Vec::new(),
                        complete: false,
                    });
                    if first || entry.conn != conn {
                        *entry = McpTools {
                            conn,
                            session_id,
                            tools: Vec::new(),
                            pages: 0,
                            cursors: Vec::new(),
                            complete: false,
                        };
                    }
                    entry.tools.extend(tools);
                    entry.pages += 1;
                    entry.complete = cursor.is_none();
                    entry.cursors.extend(cursor);
                });
                match next {
                    Some(payload) => self.send_mcp(mcp::raw(payload)).await,
                    None => Flow::Continue,
                }
            }
        }
    }
}

//! Writing to one connection and closing it: every write bounded in time,
//! every server-side close done the RFC 6455 way (Close frame, the client's
//! echo, then the server closes TCP first), and what was sent recorded
//! before it is written, so a client holding a message never finds the
//! record behind.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use log::debug;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{Flow, Session};
use crate::record::{push_bounded, EventKind, SentText};
use crate::registry::Ack;

/// A client that stops reading must not stall a task (and the control call
/// waiting on it) forever.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a closing connection waits for the peer's part of the closing
/// handshake before the socket is dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

impl Session {
    /// Sends and flushes one message; on failure records the loss.
    pub(crate) async fn send(&mut self, msg: Message) -> bool {
        match &msg {
            Message::Text(text) => {
                let sent = SentText {
                    conn: self.conn,
                    device_id: self.device_id.clone(),
                    text: text.clone(),
                    at: Instant::now(),
                };
                self.shared.record.update(|s| push_bounded(&mut s.sent_texts, sent));
            }
            Message::Binary(_) => self.shared.record.update(|s| s.sent_binary_frames += 1),
            _ => {}
        }
        // A raw frame half written by a flood is finished first, so this
        // frame does not land inside it.
        if !self.finish_raw_frame().await {
            return false;
        }
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

    /// Writes the unwritten rest of a hostile plan's current frame(s);
    /// the plan itself goes on.
    pub(crate) async fn finish_raw_frame(&mut self) -> bool {
        let rest = match self.hostile.as_mut() {
            Some(plan) if plan.mid_frame() => plan.take_pending(),
            _ => return true,
        };
        self.write_raw(&rest).await
    }

    /// Raw bytes straight to the socket, bounded in time.
    pub(crate) async fn write_raw(&mut self, bytes: &[u8]) -> bool {
        let stream = self.ws.get_mut();
        match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
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

    /// Starts a server-side close: Close frame, then the client's echo, then
    /// the TCP close. `ack` is reported as soon as the frame is on the wire.
    pub(crate) async fn close_with(&mut self, frame: Option<CloseFrame<'static>>, ack: Option<Ack>) -> Flow {
        self.retire();
        if !self.finish_raw_frame().await {
            return Flow::End;
        }
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
}

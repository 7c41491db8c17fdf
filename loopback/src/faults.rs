//! How each `Fault` is carried out on one connection, and when it counts as
//! applied (the instant tests measure client detection latency against).

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{Flow, Session};
use crate::options::Fault;
use crate::protocol;
use crate::record::EventKind;
use crate::registry::Ack;

impl Session {
    /// Applies `fault`; `ack` is reported once it is on the wire (or dropped
    /// unreported if the connection died first).
    pub(crate) async fn apply(&mut self, fault: Fault, ack: Ack) -> Flow {
        self.event(EventKind::Fault { fault: fault.clone() });
        if fault != Fault::Silence {
            self.silent = false;
        }
        match fault {
            Fault::Close(code, reason) => {
                let frame = CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                };
                self.close_with(Some(frame), Some(ack)).await
            }
            Fault::CloseNoCode => self.close_with(None, Some(ack)).await,
            Fault::Drop => {
                self.retire();
                self.close_tcp_acked(ack).await;
                Flow::End
            }
            Fault::Reset => {
                self.retire();
                // SO_LINGER 0 makes the coming drop send RST. The deprecation
                // warns that a non-zero linger blocks the thread on drop;
                // zero never blocks.
                #[allow(deprecated)]
                let _ = self.ws.get_ref().set_linger(Some(Duration::ZERO));
                Flow::EndThenAck(ack)
            }
            Fault::Silence => {
                self.silent = true;
                ack.applied();
                Flow::Continue
            }
            Fault::Garbage => {
                let session_id = self.session_id.clone();
                let frames = [
                    Message::Text(r#"{"type": "tts", "#.to_owned()),
                    Message::Text(r#"{"type":"whatever"}"#.to_owned()),
                    Message::Binary(vec![0xde, 0xad, 0x00]),
                    Message::Text("[1,2]".to_owned()),
                    Message::Text(protocol::tts_start(session_id.as_deref())),
                ];
                for frame in frames {
                    if !self.send(frame).await {
                        return Flow::End;
                    }
                }
                ack.applied();
                Flow::Continue
            }
            Fault::Ping(payload) => self.send_acked(Message::Ping(payload), ack).await,
            Fault::Text(text) => self.send_acked(Message::Text(text), ack).await,
            Fault::Binary(data) => self.send_acked(Message::Binary(data), ack).await,
        }
    }

    async fn send_acked(&mut self, msg: Message, ack: Ack) -> Flow {
        if self.send(msg).await {
            ack.applied();
            Flow::Continue
        } else {
            Flow::End
        }
    }

    /// FIN without a Close frame; applied once the FIN is sent, before the
    /// wait for the peer's own FIN.
    async fn close_tcp_acked(&mut self, ack: Ack) {
        self.shutdown_write().await;
        ack.applied();
        self.drain().await;
    }
}

//! How each control is carried out on one connection: the faults, and the
//! MCP requests a test sends; and when a fault counts as applied (the
//! instant tests measure client detection latency against).

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::answer;
use crate::conn::{close_frame, Flow, Session};
use crate::fault::{Fault, HOSTILE_TEXT};
use crate::hostile::Hostile;
use crate::record::EventKind;
use crate::registry::{Ack, Action};
use crate::wire::WRITE_TIMEOUT;

impl Session {
    /// Applies `action`; `ack` is reported once it is on the wire (or
    /// dropped unreported if the connection died first, or the action does
    /// not apply to this connection).
    pub(crate) async fn apply(&mut self, action: Action, ack: Ack) -> Flow {
        match action {
            Action::Fault(fault) => self.apply_fault(fault, ack).await,
            Action::Mcp(out) => {
                // The real server sends MCP only to clients that announced it.
                if !self.mcp.announced {
                    return Flow::Continue;
                }
                let flow = self.send_mcp(out).await;
                if let Flow::Continue = flow {
                    ack.applied();
                }
                flow
            }
        }
    }

    async fn apply_fault(&mut self, fault: Fault, ack: Ack) -> Flow {
        self.event(EventKind::Fault { fault: fault.clone() });
        if !matches!(fault, Fault::Silence | Fault::Stall(_)) {
            self.silent = false;
        }
        // A silence (or a new stall) replaces a stall's own end.
        self.timers.unstall = None;
        // A running flood or trickle ends here: at once for a drop or a
        // reset, after the frame it is writing otherwise.
        if let Some(mut plan) = self.hostile.take() {
            let ending = matches!(fault, Fault::Drop | Fault::Reset);
            if !ending && plan.mid_frame() {
                let rest = plan.take_pending();
                if !self.write_raw(&rest).await {
                    return Flow::End;
                }
            }
            // A hello held back for a `TextBeforeHello` flood is due now.
            let held = std::mem::take(&mut self.hello_held);
            if held && std::mem::take(&mut self.hello_wanted) && !ending {
                if let Flow::End = self.send_hello().await {
                    return Flow::End;
                }
            }
        }
        match fault {
            Fault::Close(code, reason) => self.close_with(Some(close_frame(code, &reason)), Some(ack)).await,
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
            Fault::Stall(lasting) => {
                self.silent = true;
                self.timers.unstall = Some(tokio::time::Instant::now() + lasting);
                ack.applied();
                Flow::Continue
            }
            Fault::StopReading => {
                self.reading = false;
                ack.applied();
                Flow::Continue
            }
            Fault::Garbage => {
                let tts = answer::tts(&self.current_session_id(), "start", None);
                let frames = [
                    Message::Text(r#"{"type": "tts", "#.to_owned()),
                    Message::Text(r#"{"type":"whatever"}"#.to_owned()),
                    Message::Binary(vec![0xde, 0xad, 0x00]),
                    Message::Text("[1,2]".to_owned()),
                    Message::Text(tts),
                ];
                self.send_all_acked(frames, ack).await
            }
            Fault::ControlChars => {
                let frames = [
                    json!({"type": HOSTILE_TEXT, "session_id": HOSTILE_TEXT}),
                    json!({"type": "stt", "text": HOSTILE_TEXT, "session_id": HOSTILE_TEXT}),
                    json!({"type": "tts", "state": HOSTILE_TEXT, "session_id": self.current_session_id()}),
                ]
                .map(|m| Message::Text(m.to_string()));
                self.send_all_acked(frames, ack).await
            }
            Fault::NumberArray { bytes } => {
                let text = number_array(&self.current_session_id(), bytes);
                self.send_acked(Message::Text(text), ack).await
            }
            Fault::Ping(payload) => self.send_acked(Message::Ping(payload), ack).await,
            Fault::Text(text) => self.send_acked(Message::Text(text), ack).await,
            Fault::Binary(data) => self.send_acked(Message::Binary(data), ack).await,
            Fault::PingFlood { .. }
            | Fault::TextFlood { .. }
            | Fault::HugeFrame { .. }
            | Fault::EndlessContinuation { .. } => {
                // tungstenite's buffer must be empty before raw frames start.
                let flushed = tokio::time::timeout(WRITE_TIMEOUT, futures_util::SinkExt::flush(&mut self.ws)).await;
                if !matches!(flushed, Ok(Ok(()))) {
                    self.lost("flush before a flood failed".to_owned());
                    return Flow::End;
                }
                self.hostile = Hostile::for_fault(&fault).map(Box::new);
                ack.applied();
                Flow::Continue
            }
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

    async fn send_all_acked<const N: usize>(&mut self, frames: [Message; N], ack: Ack) -> Flow {
        for frame in frames {
            if !self.send(frame).await {
                return Flow::End;
            }
        }
        ack.applied();
        Flow::Continue
    }

    /// FIN without a Close frame; applied once the FIN is sent, before the
    /// wait for the peer's own FIN.
    async fn close_tcp_acked(&mut self, ack: Ack) {
        self.shutdown_write().await;
        ack.applied();
        self.drain().await;
    }
}

/// A valid `llm` message of about `bytes` bytes whose `data` is `[0,0,...]`.
fn number_array(session_id: &str, bytes: usize) -> String {
    let head = json!({"type": "llm", "text": "🙂", "emotion": "happy", "session_id": session_id}).to_string();
    // `{...,"data":[0,0,...,0]}`: the head without its closing brace.
    let prefix = format!("{},\"data\":[", &head[..head.len() - 1]);
    let zeros = bytes.saturating_sub(prefix.len() + 3).div_ceil(2).max(1);
    let mut text = String::with_capacity(prefix.len() + zeros * 2 + 2);
    text.push_str(&prefix);
    for i in 0..zeros {
        text.push_str(if i == 0 { "0" } else { ",0" });
    }
    text.push_str("]}");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_arrays_have_the_asked_size_and_parse() {
        let text = number_array("s", 1 << 20);
        assert!(text.len().abs_diff(1 << 20) < 8, "{}", text.len());
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["type"], "llm");
        assert!(value["data"].as_array().unwrap().len() > 500_000);
        assert!(serde_json::from_str::<serde_json::Value>(&number_array("s", 0)).is_ok());
    }
}

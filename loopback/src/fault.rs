//! The faults a test injects into live connections: the ordinary ones (a
//! close, a reset, silence) and the hostile ones of a server that attacks
//! its client (floods, a frame that never ends, strings that forge log
//! lines). What each does on the wire is documented here; how it is carried
//! out lives in `apply.rs` and `hostile.rs`.

use std::time::Duration;

/// A string made to break naive logging and terminals: a newline followed by
/// a forged journald priority and log line, a carriage return, an ANSI
/// clear-screen and an OSC window-title sequence ended by BEL, and the C1
/// controls CSI (U+009B) and NEL (U+0085). Short enough for a Close reason
/// (at most 123 bytes).
pub const HOSTILE_TEXT: &str = "x\n<0>session=kitchen gave up\r\x1b[2J\x1b]0;pwned\x07\u{9b}31m\u{85}end";

/// A fault injected into live connections.
///
/// Faults are applied in the order they are injected. A flood or trickle
/// (the hostile variants that keep writing) runs until its own end, or until
/// the next fault, which ends it: first the frame it is in the middle of is
/// completed where that is possible (not for [`Fault::HugeFrame`], whose
/// payload never ends: a later fault's frame lands inside that payload), then
/// the new fault is applied. [`Fault::Drop`] and [`Fault::Reset`] end it at
/// once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A Close frame with this code and reason, then the closing handshake.
    Close(u16, String),
    /// A Close frame with an empty payload (the client reports 1005).
    CloseNoCode,
    /// End the TCP connection (FIN) without a Close frame (client sees 1006).
    Drop,
    /// Reset the TCP connection (RST via `SO_LINGER` 0).
    Reset,
    /// Stop reading and writing entirely (no Pongs, no idle close, nothing
    /// sent) while keeping the socket open until the server is dropped. Any
    /// later fault is applied normally and ends the silence.
    Silence,
    /// [`Fault::Silence`] for this long, then carry on by itself: what the
    /// client sent meanwhile is read then, so a Ping it sent during the
    /// stall gets its Pong late by up to this long (a server paused by
    /// load, a garbage collector or a slow link). Nothing else is sent
    /// when it ends. A later fault ends it early, like a silence.
    Stall(Duration),
    /// Malformed JSON, an unknown type, a 3-byte binary frame, a non-object
    /// JSON text, then a valid `tts` start. The connection stays up.
    Garbage,
    /// A WebSocket Ping with this payload (at most 125 bytes).
    Ping(Vec<u8>),
    /// One text frame.
    Text(String),
    /// One binary frame.
    Binary(Vec<u8>),

    // ----- hostile servers (issue 10) ---------------------------------------
    /// Write WebSocket Pings (125-byte payloads) as fast as the socket takes
    /// them for this long, without reading anything meanwhile: every Ping
    /// asks the client for a Pong that cannot be delivered, so the client's
    /// outbound buffer is what grows. Reading resumes afterwards.
    PingFlood {
        /// How long the flood lasts.
        duration: Duration,
    },
    /// Never read from the socket again, while it stays open and everything
    /// else goes on (server Pings of `ping_interval`, timers, later faults):
    /// a client that keeps writing fills its own buffers. Lasts for the rest
    /// of the connection; unlike [`Fault::Silence`] it is not ended by later
    /// faults.
    StopReading,
    /// A binary frame header announcing `announced` payload bytes (e.g.
    /// 8 GiB), then `chunk` zero bytes every `every` (as fast as possible
    /// when zero) until the announced length was written. Client frames are
    /// still read, so its Close (e.g. 1009) is recorded; anything the server
    /// writes meanwhile ends up inside the payload.
    HugeFrame {
        /// Payload length written in the 64-bit length field.
        announced: u64,
        /// Bytes per write.
        chunk: usize,
        /// Pause between writes.
        every: Duration,
    },
    /// A text frame without FIN, then continuation frames without FIN of
    /// `chunk` bytes (`a`) every `every` (as fast as possible when zero),
    /// forever: a message whose reassembly never ends.
    EndlessContinuation {
        /// Payload bytes per frame.
        chunk: usize,
        /// Pause between frames.
        every: Duration,
    },
    /// One text frame of about `bytes` bytes: a valid `llm` message whose
    /// `data` field is an array of zeros (`[0,0,0,...]`). Tiny on the wire,
    /// huge once parsed into a generic JSON tree.
    NumberArray {
        /// Size of the text frame.
        bytes: usize,
    },
    /// Three text messages carrying [`HOSTILE_TEXT`]: as the `type` (and
    /// `session_id`) of an object, as the text and session id of an `stt`,
    /// and as a `tts` state. For a hostile session id in the hello use
    /// [`crate::ServerOptions::session_id`]; for a close reason,
    /// `Fault::Close(1000, HOSTILE_TEXT.into())`.
    ControlChars,
    /// This text frame `count` times, as fast as the socket takes them
    /// (e.g. `{"type":"nonsense"}` for a flood of unknown types). Frames are
    /// written whole; the client is read between them.
    TextFlood {
        /// The text of every frame.
        text: String,
        /// How many frames.
        count: u64,
    },
}

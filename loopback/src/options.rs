//! The knobs a test turns: server options, the per-connection `Mode` chosen
//! at accept time, and the `Fault`s that can be injected into live
//! connections.

use std::time::Duration;

/// How a newly accepted connection behaves. Read once, when the TCP
/// connection is accepted, so changing it never disturbs live connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Upgrade, then answer the client hello at once.
    #[default]
    Normal,
    /// Answer the HTTP upgrade with this status (401, 403, 503...) and close.
    RefuseUpgrade(u16),
    /// Upgrade but never answer the hello; pings are still answered.
    NeverHello,
    /// Answer the hello only after this delay.
    LateHello(Duration),
    /// After the upgrade send the text `认证失败` and close with 1000, as
    /// xiaozhi-esp32-server does for a rejected token.
    AuthFail,
}

/// Options for [`crate::Server::start`].
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Close with 1000 after this long without a text or binary message from
    /// the client. WebSocket Pings do not count as activity. `None`: never.
    pub idle_close: Option<Duration>,
    /// When set, a client whose `Authorization: Bearer` token differs is
    /// treated like [`Mode::AuthFail`].
    pub expected_token: Option<String>,
    /// Behaviour of new connections.
    pub mode: Mode,
    /// When set, the server sends its own WebSocket Ping this often, with an
    /// incrementing decimal payload.
    pub ping_interval: Option<Duration>,
}

/// A fault injected into live connections.
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
    /// Malformed JSON, an unknown type, a 3-byte binary frame, a non-object
    /// JSON text, then a valid `tts` start. The connection stays up.
    Garbage,
    /// A WebSocket Ping with this payload (at most 125 bytes).
    Ping(Vec<u8>),
    /// One text frame.
    Text(String),
    /// One binary frame.
    Binary(Vec<u8>),
}

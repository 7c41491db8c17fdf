//! The knobs a test turns: server options and the per-connection `Mode`
//! chosen at accept time. The defaults keep the loopback's historical
//! behaviour; [`ServerOptions::xiaozhi_server`] gives the real
//! xiaozhi-esp32-server's (v0.9.6) defaults instead.

use std::time::Duration;

use crate::answer::{AnswerScript, TextAnswer};
use crate::mcp::McpOptions;

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
    /// Right after the upgrade, send this text frame `count` times (as
    /// [`crate::Fault::TextFlood`] does), and answer the client's hello only
    /// once all of them were written: text frames before the hello.
    TextBeforeHello {
        /// The text of every frame.
        text: String,
        /// How many frames.
        count: u64,
    },
}

/// Options for [`crate::Server::start`]. Every field can also be changed on a
/// running server with [`crate::Server::update_options`]; changes apply to
/// connections accepted afterwards.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Close with 1000 and an empty reason (no text frame first) after this
    /// long without client activity. Activity is what the real server
    /// counts (`last_activity_time` in its `core/connection.py`): binary
    /// frames (voice), a `listen` `detect` carrying `text`, an app-level
    /// `{"type":"ping"}` while [`ServerOptions::enable_websocket_ping`] is
    /// on, and audio the server itself sends. WebSocket Pings and every
    /// other text message never count. `None`: never. The real server's
    /// delay is `close_connection_no_voice_time` (120 s) + 60 s, checked
    /// every 10 s.
    pub idle_close: Option<Duration>,
    /// `None`: every client is accepted, with any `Authorization` or none
    /// (the real server with `server.auth.enabled: false`, its default).
    /// `Some(token)`: the request must carry `Authorization: Bearer <token>`
    /// (the `Bearer ` prefix exactly, as the real server checks it; from the
    /// header or the `authorization` query parameter); any other client gets
    /// the text `认证失败` and Close 1000 after a successful upgrade.
    pub expected_token: Option<String>,
    /// With `expected_token` set, still accept a client that sends no
    /// `Authorization` at all or an empty bearer token (what the firmware
    /// does when OTA handed out `token: ""`). Default `false`: such a client
    /// is refused like a wrong token.
    pub accept_missing_token: bool,
    /// Device ids that need no token (the real server's
    /// `server.auth.allowed_devices` whitelist).
    pub allowed_devices: Vec<String>,
    /// Like the real server, answer a connection that names no device (no
    /// `Device-Id` header and no `device-id` query parameter) with the text
    /// [`crate::NO_DEVICE_ID_TEXT`] and Close 1000. Default `false`: accepted.
    pub require_device_id: bool,
    /// Behaviour of new connections.
    pub mode: Mode,
    /// When set, the server sends its own WebSocket Ping this often, with an
    /// incrementing decimal payload. The real server (python `websockets`
    /// defaults) pings every 20 s.
    pub ping_interval: Option<Duration>,
    /// When set (with `ping_interval`), a server Ping not answered by a Pong
    /// within this long closes the connection with 1011 `keepalive ping
    /// timeout`, without waiting for the client's echo, as python
    /// `websockets` does (its default: 20 s).
    pub ping_timeout: Option<Duration>,
    /// The real server's `enable_websocket_ping`: when on, an app-level
    /// `{"type":"ping"}` is answered with `{"type":"pong","timestamp":
    /// "YYYY-MM-DD HH:MM:SS"}` and counts as activity for `idle_close`; when
    /// off it is recorded and otherwise ignored (no answer, no activity).
    /// Default `true` here (the loopback always answered); the real server's
    /// default is `false`.
    pub enable_websocket_ping: bool,
    /// The session id of every hello, instead of a fresh UUID per
    /// connection (e.g. [`crate::HOSTILE_TEXT`], or a fixed id for a test).
    pub session_id: Option<String>,
    /// Largest client message accepted; a larger one is answered with Close
    /// 1009. `None`: tungstenite's default (64 MiB). The real server
    /// (python `websockets`) allows 1 MiB.
    pub max_message_size: Option<usize>,
    /// How a `listen` `detect` carrying `text` is answered.
    pub text_answer: TextAnswer,
    /// The server's side of MCP (the `initialize` after the hello, tool
    /// listing).
    pub mcp: McpOptions,
    /// Send every binary frame back as it came, once counted: the server
    /// leg of a forwarding-latency benchmark (the real server never echoes
    /// audio). Default `false`.
    pub echo_binary: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            idle_close: None,
            expected_token: None,
            accept_missing_token: false,
            allowed_devices: Vec::new(),
            require_device_id: false,
            mode: Mode::Normal,
            ping_interval: None,
            ping_timeout: None,
            enable_websocket_ping: true,
            session_id: None,
            max_message_size: None,
            text_answer: TextAnswer::default(),
            mcp: McpOptions::default(),
            echo_binary: false,
        }
    }
}

impl ServerOptions {
    /// The real xiaozhi-esp32-server's defaults (`config.yaml` of v0.9.6 and
    /// python `websockets` 14): idle close after 180 s, a WebSocket Ping
    /// every 20 s with a 20 s Pong timeout, app-level pings ignored, 1 MiB
    /// messages, the full spoken answer to text, MCP `initialize` for
    /// clients that announce it. Auth stays disabled, as there.
    pub fn xiaozhi_server() -> Self {
        ServerOptions {
            idle_close: Some(Duration::from_secs(120 + 60)),
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Some(Duration::from_secs(20)),
            enable_websocket_ping: false,
            max_message_size: Some(1 << 20),
            text_answer: TextAnswer::Script(AnswerScript::default()),
            ..ServerOptions::default()
        }
    }
}

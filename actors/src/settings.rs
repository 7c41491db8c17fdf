//! What one session needs to know to run, already validated.
//!
//! The daemon's config module turns TOML into these; the actors never see
//! file paths of the daemon, CLI flags or TOML. Every duration is a
//! parameter here so tests can run the whole tree in milliseconds.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::mcp::McpSettings;
use crate::wire::AudioParams;

/// Everything that defines one supervised session.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSettings {
    /// `[a-z0-9_-]{1,32}`, unique within the daemon.
    pub name: String,
    /// `ws://` or `wss://` URL of the xiaozhi WebSocket endpoint; `None`:
    /// learnt from the OTA endpoint (an explicit one wins over it).
    pub url: Option<String>,
    /// Where the bearer token comes from; `None`: learnt from the OTA endpoint.
    pub credential: Option<Credential>,
    /// The server's OTA endpoint, when the session learns its URL and token there.
    pub ota: Option<OtaSettings>,
    /// Certificate checks for `wss://`.
    pub tls: TlsSettings,
    /// Sent as the `Device-Id` header (the board's MAC address on ESP32).
    pub device_id: String,
    /// Sent as the `Client-Id` header (a UUID per installation).
    pub client_id: String,
    /// Sent as the `Protocol-Version` header.
    pub protocol_version: u32,
    /// Start this session when the daemon starts.
    pub autostart: bool,
    /// Announced in the client hello.
    pub audio_params: AudioParams,
    /// Heartbeat timings.
    pub liveness: LivenessSettings,
    /// TCP + TLS + HTTP upgrade must finish within this.
    pub connect_timeout: Duration,
    /// The server hello must arrive this long after our hello.
    pub hello_timeout: Duration,
    /// What a clean close means for this session.
    pub keep: Keep,
    /// Holding of text messages while the session is not ready.
    pub queue: QueueSettings,
    /// Byte budgets of the connection's buffers.
    pub limits: BufferLimits,
    /// Backoff and give-up rules.
    pub reconnect: ReconnectSettings,
    /// Who answers the server's MCP requests, with which config tools.
    pub mcp: McpSettings,
}

/// Discovery through the OTA endpoint (`POST http://host:8003/xiaozhi/ota/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtaSettings {
    /// The endpoint's URL, `http://` or `https://`.
    pub url: String,
}

/// Certificate checks for `wss://` (and an `https://` OTA endpoint).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    /// A PEM file of extra CA certificates (a self-hosted server's CA).
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Only on purpose; logged loudly.
    pub insecure: bool,
}

/// Source of the bearer token. Never printed: `Debug` shows no secret.
#[derive(Clone, PartialEq)]
pub enum Credential {
    /// The token itself, from the config file.
    Token(String),
    /// A file holding the token, read again at every connection attempt.
    TokenFile(PathBuf),
}

/// Largest token file read; tokens are a few hundred bytes.
pub const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// Why a token file gave no token. Nothing was refused by a server: a
/// session retries on its backoff (`credentials_unavailable`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    /// It could not be read (missing, no permission, …).
    #[error("token_file {path}: {why}")]
    Unreadable {
        /// The file.
        path: String,
        /// What the OS said.
        why: String,
    },
    /// Not a regular file (a FIFO would block, a device would never end).
    #[error("token_file {0} is not a regular file")]
    NotRegularFile(String),
    /// Larger than `MAX_TOKEN_FILE_BYTES`.
    #[error("token_file {0} is larger than {MAX_TOKEN_FILE_BYTES} bytes")]
    TooLarge(String),
    /// Empty or only whitespace (e.g. caught while being rewritten).
    #[error("token_file {0} is empty")]
    Empty(String),
    /// More than one non-empty line: not a token.
    #[error("token_file {path} holds more than one line (line {line} is the second)")]
    MultiLine {
        /// The file.
        path: String,
        /// 1-based line of the second non-empty line.
        line: usize,
    },
}

impl Credential {
    /// The token. A token file is read again every time, so a rotated token
    /// needs no restart; only a regular file of at most
    /// `MAX_TOKEN_FILE_BYTES` is read, so a FIFO cannot block the daemon
    /// and `/dev/zero` cannot exhaust its memory.
    pub fn read(&self) -> Result<String, CredentialError> {
        match self {
            Credential::Token(token) => Ok(token.clone()),
            Credential::TokenFile(path) => read_token_file(path),
        }
    }
}

/// The token in a token file: a regular file of sane size holding one
/// non-empty line (surrounding whitespace and blank lines are ignored).
pub fn read_token_file(path: &std::path::Path) -> Result<String, CredentialError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let unreadable = |e: std::io::Error| CredentialError::Unreadable {
        path: shown.clone(),
        why: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(CredentialError::NotRegularFile(shown));
    }
    if meta.len() > MAX_TOKEN_FILE_BYTES {
        return Err(CredentialError::TooLarge(shown));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_TOKEN_FILE_BYTES).read_to_string(&mut text))
        .map_err(unreadable)?;
    let mut lines = text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty());
    let Some((_, token)) = lines.next() else {
        return Err(CredentialError::Empty(shown));
    };
    if let Some((index, _)) = lines.next() {
        return Err(CredentialError::MultiLine {
            path: shown,
            line: index + 1,
        });
    }
    Ok(token.trim().to_owned())
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Token(<redacted>)"),
            Credential::TokenFile(path) => write!(f, "TokenFile({})", path.display()),
        }
    }
}

/// Heartbeat timings of one session.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LivenessSettings {
    /// Send a WebSocket Ping after this long without receiving anything.
    pub ping_interval: Duration,
    /// The connection is dead when nothing arrives this long after a Ping.
    pub ping_timeout: Duration,
    /// When set, send `{"type":"ping"}` this often (server-side activity).
    pub app_ping_interval: Option<Duration>,
}

/// Whether a session comes back by itself after a clean close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Reconnect after any loss.
    Always,
    /// After a clean close (1000/1001) stay down until a client sends.
    OnDemand,
}

/// Bounds of the per-session queue of text messages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueSettings {
    /// Messages held at most.
    pub limit: usize,
    /// Bytes of held messages at most (their JSON text).
    pub bytes: usize,
    /// Held messages older than this are dropped and reported.
    pub ttl: Duration,
}

/// Byte budgets of one connection's buffers, each enforced before memory
/// is committed: a server cannot make the daemon hold more than these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferLimits {
    /// Largest frame, and largest reassembled message, taken from the
    /// server (checked from the frame header, before its payload is read).
    pub max_message: usize,
    /// Bytes written but not yet taken by the server; past it the
    /// connection is lost as `write_stalled`, and local sends are refused.
    pub outbound: usize,
}

/// Largest message taken from a server by default: Opus frames are a few
/// hundred bytes and JSON messages a few KiB; 1 MiB is also the real
/// server's own limit (its `websockets` library's `max_size`).
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;

impl Default for BufferLimits {
    fn default() -> Self {
        BufferLimits {
            max_message: DEFAULT_MAX_MESSAGE,
            outbound: 1 << 20,
        }
    }
}

/// Reconnect policy of one session.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReconnectSettings {
    /// First delay after a loss.
    pub initial_delay: Duration,
    /// Delays never grow past this (before jitter).
    pub max_delay: Duration,
    /// Growth factor between consecutive delays, at least 1.
    pub multiplier: f64,
    /// Randomization factor in `[0, 1)`: a delay `d` becomes one in `[(1-j)d, (1+j)d]`.
    pub jitter: f64,
    /// Consecutive failed attempts before the session is parked as `failed`.
    pub max_attempts: u32,
    /// A session ready this long resets its attempt count.
    pub stable_after: Duration,
    /// A failed session probes with one attempt this often (jittered by
    /// half of `jitter`); `None` = never.
    pub revive_after: Option<Duration>,
}

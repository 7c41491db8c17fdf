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
    /// Activation v2 (the official cloud's HMAC challenge): the device's
    /// serial number and key, and the pace of its confirmations.
    pub activation: ActivationSettings,
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

/// What activation v2 needs besides the ids: the serial number and HMAC
/// key of the device (`None`: a v1 device, which only asks the OTA endpoint
/// again until it is bound), and how often `/activate` is asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivationSettings {
    /// The serial number and key; sent as `Activation-Version: 2`.
    pub key: Option<ActivationKey>,
    /// Waits between confirmations.
    pub pace: ActivationPace,
}

/// A v2 device's serial number and HMAC key. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationKey {
    /// Sent as the `Serial-Number` header and in `/activate`.
    pub serial_number: String,
    /// Signs the server's challenge; registered with the server as
    /// `application.elf_sha256` of the OTA request (py-xiaozhi's convention).
    pub hmac_key: HmacKey,
}

impl fmt::Debug for ActivationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivationKey")
            .field("serial_number", &self.serial_number)
            .field("hmac_key", &self.hmac_key)
            .finish()
    }
}

/// An HMAC key as text (64 lowercase hex characters when wsvisor made it).
/// Its bytes key the MAC as they are, not hex-decoded, as py-xiaozhi does.
/// `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct HmacKey(String);

impl HmacKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        HmacKey(key.into())
    }

    /// The key itself: for the OTA request's `application.elf_sha256` and
    /// for signing only, never for a log line.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

/// How often a v2 device asks `/activate` while the user has not entered
/// its code, as the firmware does (`application.cc`): 3 s after a 202,
/// 10 s after anything else, the OTA endpoint asked again after 10 tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivationPace {
    /// Wait after a 202 (not entered yet).
    pub after_pending: Duration,
    /// Wait after an error (unreachable, 5xx, nonsense).
    pub after_error: Duration,
    /// Confirmations per code before the OTA endpoint is asked again
    /// (sooner when the code's `timeout_ms` runs out).
    pub polls_per_round: u32,
}

impl Default for ActivationPace {
    fn default() -> Self {
        ActivationPace {
            after_pending: Duration::from_secs(3),
            after_error: Duration::from_secs(10),
            polls_per_round: 10,
        }
    }
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

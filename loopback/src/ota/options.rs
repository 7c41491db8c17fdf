//! What an [`crate::OtaServer`] answers: the sections of its OTA answer and
//! the rules of its activation.

use std::time::Duration;

use serde_json::Value;

/// Options for [`crate::OtaServer::start`]; all of them can be changed on a
/// running endpoint with [`crate::OtaServer::update_options`].
#[derive(Clone, Debug, PartialEq)]
pub struct OtaOptions {
    /// Path of the OTA endpoint. Activation is served at `<path>/activate`,
    /// however the client joins the two (with or without a doubled `/`).
    pub path: String,
    /// The `websocket` section; `None`: none in the answer.
    pub websocket: Option<OtaWebsocket>,
    /// An `mqtt` section, sent as is (`endpoint`, `client_id`, `username`,
    /// `password`, `publish_topic`, `subscribe_topic` in the real server).
    pub mqtt: Option<Value>,
    /// Activation of unbound devices; `None`: every device is bound.
    pub activation: Option<ActivationOptions>,
    /// `server_time.timezone_offset`, minutes (the real server's `+8` is 480).
    pub timezone_offset_minutes: i32,
    /// Answer OTA requests with this HTTP status and a JSON error instead
    /// (e.g. 500 or 503), recorded as usual.
    pub fail_status: Option<u16>,
    /// Answer OTA requests with exactly this JSON instead of building one
    /// (activation state is then left alone).
    pub answer_override: Option<Value>,
}

impl Default for OtaOptions {
    /// The real server's simple OTA endpoint with auth disabled: a
    /// `websocket` section whose token is `""`, no `mqtt`, no activation.
    /// The URL is a placeholder; see [`OtaOptions::for_url`].
    fn default() -> Self {
        OtaOptions {
            path: "/xiaozhi/ota/".to_owned(),
            websocket: Some(OtaWebsocket {
                url: "ws://127.0.0.1:8000/xiaozhi/v1/".to_owned(),
                token: String::new(),
            }),
            mqtt: None,
            activation: None,
            timezone_offset_minutes: 480,
            fail_status: None,
            answer_override: None,
        }
    }
}

impl OtaOptions {
    /// The defaults, handing out `websocket_url` with `token` (`""` as the
    /// real server with auth disabled).
    pub fn for_url(websocket_url: &str, token: &str) -> Self {
        OtaOptions {
            websocket: Some(OtaWebsocket {
                url: websocket_url.to_owned(),
                token: token.to_owned(),
            }),
            ..OtaOptions::default()
        }
    }
}

/// The `websocket` section of the OTA answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtaWebsocket {
    /// `websocket.url`.
    pub url: String,
    /// `websocket.token`; `""` is what the real server sends with auth off.
    pub token: String,
}

/// How unbound devices are activated (v2: the HMAC challenge of the
/// official cloud, as the firmware's `Ota::Activate` and py-xiaozhi's
/// `activation/client.py` speak it).
///
/// An OTA request from an unbound device gets an `activation` section
/// `{code, message, challenge, timeout_ms}`, the same code and challenge
/// until they expire, then fresh ones. The HMAC key is what the device
/// registered in `application.elf_sha256` of its OTA body (py-xiaozhi's
/// convention). `POST <path>/activate` with `{algorithm: "hmac-sha256",
/// serial_number, challenge, hmac}` (plain, or wrapped as `{"Payload":
/// {...}}` as py-xiaozhi sends it) is answered:
/// - 400 when the body or the `Device-Id` is missing, the algorithm is not
///   `hmac-sha256`, no code was issued, or the challenge is not the current
///   one;
/// - 401 when the device registered no key or `hmac` is not
///   hex(HMAC-SHA256(key, challenge));
/// - 410 when the code and challenge expired (ask OTA again);
/// - 202 (empty body) `pending_polls` times per code: the user has not typed
///   the code yet;
/// - then 200 `success`: the device is bound and its next OTA answer has no
///   `activation`.
///
/// Errors carry a JSON body `{"error": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivationOptions {
    /// 202 answers to a correct `/activate` before the 200.
    pub pending_polls: u32,
    /// How long a code and its challenge are valid.
    pub code_ttl: Duration,
    /// Hand out this code instead of fresh six-digit ones (any string, e.g.
    /// [`crate::HOSTILE_TEXT`]).
    pub code: Option<String>,
    /// The `message` before the code (`<prefix>\n<code>`, as the real
    /// console's `frontedUrl + "\n" + code`).
    pub message_prefix: String,
    /// Keep the `websocket` and `mqtt` sections in the answer while
    /// activation is pending, as current cloud and console answers do.
    pub sections_while_pending: bool,
    /// Keep the first HMAC key a device registered and ignore later ones,
    /// as a server that remembers its devices does: a device that lost its
    /// key and made a new one is then refused (401).
    pub first_key_wins: bool,
}

impl Default for ActivationOptions {
    fn default() -> Self {
        ActivationOptions {
            pending_polls: 3,
            code_ttl: Duration::from_secs(300),
            code: None,
            message_prefix: "http://127.0.0.1:8001".to_owned(),
            sections_while_pending: true,
            first_key_wins: false,
        }
    }
}

//! Discovery through the xiaozhi OTA endpoint: the device describes itself
//! the way the firmware and py-xiaozhi do, and learns its WebSocket URL and
//! token, or that it must be activated first (a code the user enters in
//! the server's console, and for a v2 device a challenge to sign).
//!
//! The request (field.md A1): headers `Activation-Version` (`2` with a
//! serial number, `1` without), `Device-Id`, `Client-Id`, `Serial-Number`
//! (v2 only), `User-Agent: BOARD/VERSION`, `Accept-Language`,
//! `Content-Type: application/json`; a JSON body with `application.version`,
//! `mac_address`, `uuid`, `board`, and for a v2 device its HMAC key as
//! `application.elf_sha256`, which is how py-xiaozhi registers the key so
//! that the server can verify the signed challenge. The same headers go
//! with `/activate` (`crate::activation`).
//!
//! Everything read from an answer is the server's choice: callers escape
//! and cap it (`logsafe`) before it reaches a log line.

use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};

use crate::settings::{OtaSettings, SessionSettings};

/// Largest OTA answer read; real ones are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The board name of `User-Agent: BOARD/VERSION` and of the body's `board`.
pub const BOARD: &str = "wsvisor";

/// `Accept-Language`: the firmware sends its build locale, py-xiaozhi
/// hard-codes `zh-CN`, the language of the official cloud's console.
pub const ACCEPT_LANGUAGE: &str = "zh-CN";

/// Longest `mqtt.endpoint` kept for display.
const MAX_ENDPOINT_CHARS: usize = 128;

/// Longest activation code kept (real ones have 6 digits): it is shown in
/// every summary, table row and status line while the session waits.
const MAX_CODE_CHARS: usize = 64;

/// Longest activation message kept (the console's `<url>\n<code>`).
const MAX_MESSAGE_CHARS: usize = 1024;

/// What the OTA endpoint told us.
#[derive(Clone, PartialEq, Eq)]
pub struct Discovered {
    /// `websocket.url`.
    pub url: Option<String>,
    /// `websocket.token`.
    pub token: Option<String>,
}

impl fmt::Debug for Discovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = self.token.as_ref().map(|_| "<redacted>");
        f.debug_struct("Discovered")
            .field("url", &self.url)
            .field("token", &token)
            .finish()
    }
}

/// Which sections an OTA answer carried: what `ctl session` shows as
/// `ota`. Never a credential: of `mqtt` only its endpoint's host is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offered {
    /// A `websocket` object was present.
    pub websocket: bool,
    /// An `mqtt` object was present (the firmware would then speak MQTT).
    pub mqtt: bool,
    /// `mqtt.endpoint`, without any `user:password@`, capped.
    pub mqtt_endpoint: Option<String>,
    /// An `activation` object was present: the device is not bound yet.
    pub activation: bool,
}

impl Offered {
    /// Only MQTT, which wsvisor does not speak.
    pub fn only_mqtt(&self) -> bool {
        self.mqtt && !self.websocket
    }
}

/// The `activation` section: what the user must do, and what a v2 device signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivationAsk {
    /// The code to enter in the server's console.
    pub code: String,
    /// The server's words (the console's `<url>\n<code>`).
    pub message: String,
    /// What a v2 device signs with its key; `None`: nothing to confirm
    /// (the device waits for the binding by asking OTA again).
    pub challenge: Option<String>,
    /// `timeout_ms`: how long the code stays valid, when the server says.
    pub valid_for: Option<Duration>,
}

/// Why discovery gave no URL and token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OtaError {
    /// The device must be activated first.
    #[error("activation required: code {}", .0.code)]
    Activation(ActivationAsk),
    /// The endpoint offers only MQTT, which wsvisor does not speak.
    #[error(
        "the OTA endpoint offers only MQTT{}; wsvisor speaks WebSocket: ask the server's operator for a `websocket` section in the OTA answer (xiaozhi-esp32-server: leave server.mqtt_gateway empty) or set `url`",
        .0.as_deref().map(|e| format!(" (endpoint {e})")).unwrap_or_default()
    )]
    MqttOnly(Option<String>),
    /// The endpoint could not be reached or answered nonsense.
    #[error("{0}")]
    Failed(String),
}

/// 2 with a serial number (the official cloud's HMAC challenge), else 1.
pub fn activation_version(settings: &SessionSettings) -> &'static str {
    if settings.activation.key.is_some() {
        "2"
    } else {
        "1"
    }
}

/// The device description POSTed to the endpoint.
pub fn request_body(settings: &SessionSettings) -> Value {
    let mut application = json!({"name": BOARD, "version": env!("CARGO_PKG_VERSION")});
    if let Some(key) = &settings.activation.key {
        application["elf_sha256"] = json!(key.hmac_key.expose());
    }
    json!({
        "version": 2,
        "language": ACCEPT_LANGUAGE,
        "uuid": settings.client_id,
        "mac_address": settings.device_id,
        "application": application,
        "board": {"type": BOARD, "name": BOARD, "mac": settings.device_id},
    })
}

/// A POST to `url` with the headers of every OTA and `/activate` request.
pub fn post(client: &awc::Client, url: &str, settings: &SessionSettings) -> awc::ClientRequest {
    let mut request = client
        .post(url)
        .insert_header(("Activation-Version", activation_version(settings)))
        .insert_header(("Device-Id", settings.device_id.as_str()))
        .insert_header(("Client-Id", settings.client_id.as_str()))
        .insert_header(("User-Agent", concat!("wsvisor/", env!("CARGO_PKG_VERSION"))))
        .insert_header(("Accept-Language", ACCEPT_LANGUAGE))
        .insert_header(("Content-Type", "application/json"));
    if let Some(key) = &settings.activation.key {
        request = request.insert_header(("Serial-Number", key.serial_number.as_str()));
    }
    request
}

/// Ask the endpoint, within `limit`: which sections it offered (when it
/// answered JSON), and what follows for the connection.
pub async fn discover(
    client: &awc::Client,
    settings: &SessionSettings,
    ota: &OtaSettings,
    limit: Duration,
) -> (Option<Offered>, Result<Discovered, OtaError>) {
    let body = request_body(settings).to_string();
    let request = post(client, &ota.url, settings).send_body(body);
    let exchange = async {
        let mut response = request
            .await
            .map_err(|e| OtaError::Failed(format!("OTA request failed: {e}")))?;
        if !response.status().is_success() {
            return Err(OtaError::Failed(format!(
                "OTA endpoint answered HTTP {}",
                response.status()
            )));
        }
        let body = response
            .body()
            .limit(MAX_ANSWER_BYTES)
            .await
            .map_err(|e| OtaError::Failed(format!("OTA answer unreadable: {e}")))?;
        serde_json::from_slice::<Value>(&body).map_err(|e| OtaError::Failed(format!("OTA answer is not JSON: {e}")))
    };
    match actix_rt::time::timeout(limit, exchange).await {
        Ok(Ok(answer)) => {
            let (offered, outcome) = interpret(&answer);
            (Some(offered), outcome)
        }
        Ok(Err(why)) => (None, Err(why)),
        Err(_) => (
            None,
            Err(OtaError::Failed(format!(
                "OTA endpoint silent for {}ms",
                limit.as_millis()
            ))),
        ),
    }
}

/// Read an OTA answer: the sections it offered, and the URL and token or
/// why there are none. An `activation` section wins over the others:
/// current cloud answers carry `websocket` and `mqtt` while activation is
/// pending, and the firmware binds first, as wsvisor does.
pub fn interpret(answer: &Value) -> (Offered, Result<Discovered, OtaError>) {
    let section = |name: &str| answer.get(name).filter(|s| s.is_object());
    let mqtt = section("mqtt");
    let offered = Offered {
        websocket: section("websocket").is_some(),
        mqtt: mqtt.is_some(),
        mqtt_endpoint: mqtt
            .and_then(|m| m.get("endpoint"))
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .map(endpoint_host),
        activation: section("activation").is_some(),
    };
    if let Some(activation) = section("activation") {
        let field = |name: &str| activation.get(name).filter(|v| !v.is_null()).map(text);
        let capped = |text: Option<String>, cap: usize| text.unwrap_or_default().chars().take(cap).collect();
        let ask = ActivationAsk {
            code: capped(field("code"), MAX_CODE_CHARS),
            message: capped(field("message"), MAX_MESSAGE_CHARS),
            // Echoed back as it came (bounded by the answer's size), or the
            // signature would not match.
            challenge: field("challenge").filter(|c| !c.is_empty()),
            valid_for: activation
                .get("timeout_ms")
                .and_then(Value::as_u64)
                .map(Duration::from_millis),
        };
        return (offered, Err(OtaError::Activation(ask)));
    }
    let Some(websocket) = section("websocket") else {
        let why = if offered.mqtt {
            OtaError::MqttOnly(offered.mqtt_endpoint.clone())
        } else {
            OtaError::Failed("OTA answer has no `websocket` section".into())
        };
        return (offered, Err(why));
    };
    let field = |name: &str| {
        websocket
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let found = Discovered {
        url: field("url"),
        token: field("token"),
    };
    (offered, Ok(found))
}

/// `host:port` of an MQTT endpoint, without any `user:password@`, capped.
fn endpoint_host(endpoint: &str) -> String {
    let without_scheme = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    let host = without_scheme.rsplit_once('@').map_or(without_scheme, |(_, host)| host);
    host.chars().take(MAX_ENDPOINT_CHARS).collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_websocket_and_activation_answers() {
        let ok = json!({"server_time": {}, "websocket": {"url": "ws://h:8000/xiaozhi/v1/", "token": "t1"}});
        let (offered, found) = interpret(&ok);
        assert_eq!(
            found,
            Ok(Discovered {
                url: Some("ws://h:8000/xiaozhi/v1/".into()),
                token: Some("t1".into())
            })
        );
        assert!(offered.websocket && !offered.mqtt && !offered.activation);
        let activate = json!({"activation": {"code": 123456, "message": "enter the code", "challenge": "c-1", "timeout_ms": 30000}, "websocket": {}});
        let (offered, found) = interpret(&activate);
        assert_eq!(
            found,
            Err(OtaError::Activation(ActivationAsk {
                code: "123456".into(),
                message: "enter the code".into(),
                challenge: Some("c-1".into()),
                valid_for: Some(Duration::from_secs(30)),
            }))
        );
        assert!(offered.activation && offered.websocket);
        let v1 = json!({"activation": {"code": "1", "challenge": ""}});
        assert!(matches!(
            interpret(&v1).1,
            Err(OtaError::Activation(ActivationAsk {
                challenge: None,
                valid_for: None,
                ..
            }))
        ));
        assert!(matches!(
            interpret(&json!({"firmware": {}})).1,
            Err(OtaError::Failed(_))
        ));
        let empty_token = json!({"websocket": {"url": "ws://h/", "token": ""}});
        assert_eq!(interpret(&empty_token).1.unwrap().token, None);
        let long = json!({"activation": {"code": "9".repeat(5000), "message": "m".repeat(5000), "challenge": "c".repeat(5000)}});
        let Err(OtaError::Activation(ask)) = interpret(&long).1 else {
            panic!("an activation")
        };
        assert_eq!((ask.code.len(), ask.message.len()), (MAX_CODE_CHARS, MAX_MESSAGE_CHARS));
        assert_eq!(ask.challenge.unwrap().len(), 5000, "the challenge is signed as it came");
    }

    #[test]
    fn mqtt_is_seen_without_its_credentials_and_alone_is_an_error_that_says_what_to_ask_for() {
        let mqtt = json!({"endpoint": "mqtt://user:pw@mqtt.example.com:8883", "client_id": "GID@@@x", "username": "u", "password": "p"});
        let (offered, found) = interpret(&json!({"mqtt": mqtt}));
        assert_eq!(offered.mqtt_endpoint.as_deref(), Some("mqtt.example.com:8883"));
        assert!(offered.only_mqtt());
        let why = found.unwrap_err().to_string();
        assert!(why.contains("only MQTT (endpoint mqtt.example.com:8883)"), "{why}");
        assert!(why.contains("`websocket` section"), "{why}");
        assert!(!why.contains("pw") && !format!("{offered:?}").contains("pw"));
        let both = json!({"mqtt": mqtt, "websocket": {"url": "ws://h/"}});
        let (offered, found) = interpret(&both);
        assert!(offered.mqtt && offered.websocket && !offered.only_mqtt());
        assert!(found.is_ok(), "WebSocket is taken when both are offered");
    }

    #[test]
    fn tokens_stay_out_of_debug() {
        let found = Discovered {
            url: None,
            token: Some("s3cr3t".into()),
        };
        assert!(!format!("{found:?}").contains("s3cr3t"));
    }
}

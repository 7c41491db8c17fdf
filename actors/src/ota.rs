//! Discovery through the xiaozhi OTA endpoint: the device describes itself
//! the way the firmware and py-xiaozhi do, and learns its WebSocket URL and
//! token, or that it must be activated first (a code the user enters in
//! the server's console).

use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};

use crate::settings::{OtaSettings, SessionSettings};

/// Largest OTA answer read; real ones are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

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

/// Why discovery gave no URL and token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OtaError {
    /// The device must be activated first.
    #[error("activation required: code {code}")]
    Activation {
        /// The code to enter in the server's console.
        code: String,
        /// The server's words.
        message: String,
    },
    /// The endpoint could not be reached or answered nonsense.
    #[error("{0}")]
    Failed(String),
}

/// The device description POSTed to the endpoint.
pub fn request_body(settings: &SessionSettings) -> Value {
    json!({
        "version": 2,
        "uuid": settings.client_id,
        "mac_address": settings.device_id,
        "application": {"name": "wsvisor", "version": env!("CARGO_PKG_VERSION")},
        "board": {"type": "wsvisor", "name": "wsvisor", "mac": settings.device_id},
    })
}

/// Ask the endpoint, within `limit`.
pub async fn discover(
    client: &awc::Client,
    settings: &SessionSettings,
    ota: &OtaSettings,
    limit: Duration,
) -> Result<Discovered, OtaError> {
    let request = client
        .post(ota.url.as_str())
        .insert_header(("Device-Id", settings.device_id.as_str()))
        .insert_header(("Client-Id", settings.client_id.as_str()))
        .insert_header(("User-Agent", concat!("wsvisor/", env!("CARGO_PKG_VERSION"))))
        .send_json(&request_body(settings));
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
    let answer = actix_rt::time::timeout(limit, exchange)
        .await
        .map_err(|_| OtaError::Failed(format!("OTA endpoint silent for {}ms", limit.as_millis())))??;
    interpret(&answer)
}

/// Read an OTA answer.
pub fn interpret(answer: &Value) -> Result<Discovered, OtaError> {
    if let Some(activation) = answer.get("activation").filter(|a| a.is_object()) {
        let code = activation.get("code").map(text).unwrap_or_default();
        let message = activation.get("message").map(text).unwrap_or_default();
        return Err(OtaError::Activation { code, message });
    }
    let Some(websocket) = answer.get("websocket").filter(|w| w.is_object()) else {
        return Err(OtaError::Failed("OTA answer has no `websocket` section".into()));
    };
    let field = |name: &str| {
        websocket
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(Discovered {
        url: field("url"),
        token: field("token"),
    })
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
        assert_eq!(
            interpret(&ok),
            Ok(Discovered {
                url: Some("ws://h:8000/xiaozhi/v1/".into()),
                token: Some("t1".into())
            })
        );
        let activate = json!({"activation": {"code": 123456, "message": "enter the code"}, "websocket": {}});
        assert_eq!(
            interpret(&activate),
            Err(OtaError::Activation {
                code: "123456".into(),
                message: "enter the code".into()
            })
        );
        assert!(matches!(interpret(&json!({"firmware": {}})), Err(OtaError::Failed(_))));
        let empty_token = json!({"websocket": {"url": "ws://h/", "token": ""}});
        assert_eq!(interpret(&empty_token).unwrap().token, None);
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

//! Activation v2: confirming to the OTA endpoint's `/activate` that this
//! device holds the key it registered, until the user has entered the
//! code in the server's console (field.md A4).
//!
//! One *round* belongs to one code: `POST <ota_url>/activate` with the OTA
//! headers and `{"algorithm": "hmac-sha256", "serial_number", "challenge",
//! "hmac"}` (the firmware's plain form; py-xiaozhi wraps the same object
//! as `{"Payload": {...}}`, and servers take both), where `hmac` is
//! hex(HMAC-SHA256(key, challenge)) keyed with the key string's bytes as
//! py-xiaozhi does. Only the status is read, so any answer body does:
//! 200 bound, 202 not entered yet (again after `after_pending`), 410 the
//! code expired, 401/403 the signature refused; anything else is retried
//! after `after_error`. A round ends at the first of those verdicts, after
//! `polls_per_round` confirmations, or when the code's `timeout_ms` ran
//! out; the Supervisor then decides what follows (`RoundEnd`).
//!
//! This module only talks HTTP and sleeps between its own requests; it
//! never changes a session's state. Its future belongs to the Supervisor's
//! `activating` state, which drops it (and any request in flight) when the
//! state is left.

use std::time::Duration;

use ring::hmac;
use serde_json::json;
use tokio::time::Instant;

use crate::logsafe;
use crate::ota;
use crate::settings::{ActivationKey, SessionSettings};

/// Largest error answer read, to quote it in a log line.
const MAX_ERROR_BODY: usize = 4 * 1024;

/// `<ota_url>/activate`, joined as the firmware does whether or not the
/// URL ends in `/` (a query string stays at the end).
pub fn activate_url(ota_url: &str) -> String {
    let (path, query) = match ota_url.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (ota_url, None),
    };
    let mut url = format!("{}/activate", path.trim_end_matches('/'));
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// hex(HMAC-SHA256(key, challenge)), lowercase, keyed with the key
/// string's UTF-8 bytes (not hex-decoded), as py-xiaozhi signs.
pub fn sign(key: &ActivationKey, challenge: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.hmac_key.expose().as_bytes());
    let tag = hmac::sign(&key, challenge.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The `/activate` body, in the firmware's plain form.
pub fn request_body(key: &ActivationKey, challenge: &str) -> String {
    json!({
        "algorithm": "hmac-sha256",
        "serial_number": key.serial_number,
        "challenge": challenge,
        "hmac": sign(key, challenge),
    })
    .to_string()
}

/// The endpoint's verdict on one confirmation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 200: the user entered the code; the device is bound.
    Bound,
    /// 202: not entered yet.
    Pending,
    /// 410: the code and challenge expired.
    Expired,
    /// 401/403: the server does not accept the signature.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's words, capped (not escaped: log it through `logsafe`).
        why: String,
    },
    /// Unreachable, silent, or an answer that means none of the above.
    Failed(String),
}

/// One confirmation, within `limit`.
pub async fn confirm(
    client: &awc::Client,
    settings: &SessionSettings,
    url: &str,
    key: &ActivationKey,
    challenge: &str,
    limit: Duration,
) -> Verdict {
    let request = ota::post(client, url, settings).send_body(request_body(key, challenge));
    let exchange = async {
        let mut response = match request.await {
            Ok(response) => response,
            Err(e) => return Verdict::Failed(format!("activation request failed: {e}")),
        };
        let status = response.status().as_u16();
        match status {
            200 => return Verdict::Bound,
            202 => return Verdict::Pending,
            410 => return Verdict::Expired,
            _ => {}
        }
        let body = response.body().limit(MAX_ERROR_BODY).await.unwrap_or_default();
        let why: String = String::from_utf8_lossy(&body).chars().take(logsafe::TEXT_CAP).collect();
        match status {
            401 | 403 => Verdict::Refused { status, why },
            _ => Verdict::Failed(format!("activation endpoint answered HTTP {status}: {why}")),
        }
    };
    actix_rt::time::timeout(limit, exchange)
        .await
        .unwrap_or_else(|_| Verdict::Failed(format!("activation endpoint silent for {}ms", limit.as_millis())))
}

/// How a round ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoundEnd {
    /// The device is bound: ask OTA again and connect.
    Bound,
    /// The code expired (410): ask OTA for a fresh one.
    Expired,
    /// The signature was refused.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's words, capped (not escaped: log it through `logsafe`).
        why: String,
    },
    /// No verdict within the round: ask OTA again (the same code, or a new one).
    Over,
}

/// The code a round confirms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    /// `<ota_url>/activate`.
    pub url: String,
    /// The challenge of the current code.
    pub challenge: String,
    /// The code's `timeout_ms`, when the server said.
    pub valid_for: Option<Duration>,
}

/// Confirm until a verdict, at the firmware's pace; at least one
/// confirmation, and never a round shorter than `after_error` because of
/// the code's `timeout_ms` (a server announcing 0 ms would make a storm).
pub async fn round(client: &awc::Client, settings: &SessionSettings, round: Round) -> RoundEnd {
    let Some(key) = &settings.activation.key else {
        return RoundEnd::Over;
    };
    let pace = settings.activation.pace;
    let started = Instant::now();
    let deadline = round.valid_for.map(|valid| started + valid.max(pace.after_error));
    let mut warned = false;
    for poll in 1..=pace.polls_per_round.max(1) {
        let verdict = confirm(
            client,
            settings,
            &round.url,
            key,
            &round.challenge,
            settings.connect_timeout,
        )
        .await;
        let wait = match verdict {
            Verdict::Bound => return RoundEnd::Bound,
            Verdict::Expired => return RoundEnd::Expired,
            Verdict::Refused { status, why } => return RoundEnd::Refused { status, why },
            Verdict::Pending => {
                log::debug!(
                    "session={} activation pending poll={poll}: the code is not entered yet",
                    settings.name
                );
                pace.after_pending
            }
            Verdict::Failed(why) => {
                // One warning per round; the rest of the round repeats it.
                let level = if warned { log::Level::Debug } else { log::Level::Warn };
                warned = true;
                log::log!(
                    level,
                    "session={} activation confirm failed poll={poll} reason={}; again in {}ms",
                    settings.name,
                    logsafe::quoted(&why),
                    pace.after_error.as_millis()
                );
                pace.after_error
            }
        };
        if poll == pace.polls_per_round.max(1) {
            break;
        }
        if deadline.is_some_and(|at| Instant::now() + wait >= at) {
            break;
        }
        actix_rt::time::sleep(wait).await;
    }
    RoundEnd::Over
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::HmacKey;

    #[test]
    fn the_activate_url_is_joined_with_or_without_a_slash() {
        assert_eq!(
            activate_url("https://api.tenclass.net/xiaozhi/ota/"),
            "https://api.tenclass.net/xiaozhi/ota/activate"
        );
        assert_eq!(
            activate_url("http://h:8002/xiaozhi/ota"),
            "http://h:8002/xiaozhi/ota/activate"
        );
        assert_eq!(activate_url("http://h/ota/?x=1"), "http://h/ota/activate?x=1");
    }

    #[test]
    fn signs_as_py_xiaozhi_does() {
        // RFC 4231 test case 2: the key's bytes as they are.
        let key = ActivationKey {
            serial_number: "SN-1".into(),
            hmac_key: HmacKey::new("Jefe"),
        };
        assert_eq!(
            sign(&key, "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let body: serde_json::Value = serde_json::from_str(&request_body(&key, "c")).unwrap();
        assert_eq!(body["algorithm"], "hmac-sha256");
        assert_eq!(body["serial_number"], "SN-1");
        assert_eq!(body["challenge"], "c");
        assert_eq!(body["hmac"], sign(&key, "c"));
        assert!(!body.to_string().contains("Jefe"), "the key itself never leaves");
    }
}

//! The OTA endpoint's decisions, free of sockets and clocks (both are
//! parameters): the answer to a version check, the answer to an
//! activation, and what the endpoint remembers of each device.
//!
//! The answer's shape follows the real server's simple OTA endpoint
//! (xiaozhi-esp32-server v0.9.6, `core/api/ota_handler.py`): `server_time
//! {timestamp, timezone_offset}`, `firmware {version, url}` with the
//! device's own version and no URL, and `websocket {url, token}` (token `""`
//! with auth disabled); a request without `Device-Id` or `Client-Id` gets
//! `{"success": false, "message": "request error."}` with status 200. The
//! `activation` section and `/activate` follow the console
//! (`manager-api`'s `DeviceServiceImpl.buildActivation`: a six-digit code,
//! `message` = `<url>\n<code>`) and the official cloud's v2 challenge as the
//! firmware (`main/ota.cc`) and py-xiaozhi (`src/activation/`) use it.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use ring::hmac;
use serde_json::{json, Value};

use super::options::OtaOptions;
use super::record::{OtaActivation, OtaDevice};
use crate::{clock, ids};

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
}

impl Reply {
    fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    fn error(status: u16, why: &str) -> Reply {
        Reply::json(status, &json!({ "error": why }))
    }

    pub(crate) fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_owned(),
        }
    }
}

struct Issued {
    code: String,
    challenge: String,
    at: Instant,
    polls: u32,
    /// Forced by [`Endpoint::expire_codes`].
    expired: bool,
}

#[derive(Default)]
struct Device {
    key: Option<String>,
    bound: bool,
    issued: Option<Issued>,
    codes_issued: u32,
}

/// The endpoint's settings and memory.
pub(crate) struct Endpoint {
    pub(crate) options: OtaOptions,
    devices: HashMap<String, Device>,
}

/// A request as the logic needs it.
pub(crate) struct Asked<'a> {
    pub(crate) device_id: Option<&'a str>,
    pub(crate) client_id: Option<&'a str>,
    /// The JSON body with any `Payload` wrapper removed.
    pub(crate) payload: Option<&'a Value>,
}

impl Endpoint {
    pub(crate) fn new(options: OtaOptions) -> Self {
        Endpoint {
            options,
            devices: HashMap::new(),
        }
    }

    /// `POST <path>`.
    pub(crate) fn ota(&mut self, asked: &Asked<'_>, now: Instant, wall: SystemTime) -> Reply {
        if let Some(status) = self.options.fail_status {
            return Reply::error(status, "failing on purpose");
        }
        let (Some(device_id), Some(_)) = (nonempty(asked.device_id), nonempty(asked.client_id)) else {
            return Reply::json(200, &json!({"success": false, "message": "request error."}));
        };
        if let Some(answer) = &self.options.answer_override {
            return Reply::json(200, answer);
        }
        let version = asked
            .payload
            .and_then(|p| p.pointer("/application/version"))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .unwrap_or("0.0.0");
        let mut answer = json!({
            "server_time": {
                "timestamp": clock::unix_millis(wall),
                "timezone_offset": self.options.timezone_offset_minutes,
            },
            "firmware": {"version": version, "url": ""},
        });
        let device = self.devices.entry(device_id.to_owned()).or_default();
        let first_key_wins = self.options.activation.as_ref().is_some_and(|a| a.first_key_wins);
        if let Some(key) = asked
            .payload
            .and_then(|p| p.pointer("/application/elf_sha256"))
            .and_then(Value::as_str)
        {
            if !(first_key_wins && device.key.is_some()) {
                device.key = Some(key.to_owned());
            }
        }
        let mut sections = true;
        if let (Some(activation), false) = (&self.options.activation, device.bound) {
            let stale = device
                .issued
                .as_ref()
                .map_or(true, |i| i.expired || now >= i.at + activation.code_ttl);
            if stale {
                device.codes_issued += 1;
                device.issued = Some(Issued {
                    code: activation.code.clone().unwrap_or_else(ids::six_digits),
                    challenge: ids::new_uuid(),
                    at: now,
                    polls: 0,
                    expired: false,
                });
            }
            if let Some(issued) = &device.issued {
                let left = (issued.at + activation.code_ttl).saturating_duration_since(now);
                answer["activation"] = json!({
                    "code": issued.code,
                    "message": format!("{}\n{}", activation.message_prefix, issued.code),
                    "challenge": issued.challenge,
                    "timeout_ms": left.as_millis() as u64,
                });
            }
            sections = activation.sections_while_pending;
        }
        if sections {
            if let Some(ws) = &self.options.websocket {
                answer["websocket"] = json!({"url": ws.url, "token": ws.token});
            }
            if let Some(mqtt) = &self.options.mqtt {
                answer["mqtt"] = mqtt.clone();
            }
        }
        Reply::json(200, &answer)
    }

    /// `POST <path>/activate`.
    pub(crate) fn activate(&mut self, asked: &Asked<'_>, now: Instant) -> Reply {
        let Some(device_id) = nonempty(asked.device_id) else {
            return Reply::error(400, "Device-Id is required");
        };
        let Some(payload) = asked.payload.filter(|p| p.is_object()) else {
            return Reply::error(400, "the body must be a JSON object");
        };
        let field = |name: &str| payload.get(name).and_then(Value::as_str);
        let ttl = self.options.activation.as_ref().map(|a| a.code_ttl);
        let pending_polls = self.options.activation.as_ref().map_or(0, |a| a.pending_polls);
        let device = self.devices.entry(device_id.to_owned()).or_default();
        if device.bound {
            return Reply::text(200, "success");
        }
        let (Some(issued), Some(ttl)) = (device.issued.as_mut(), ttl) else {
            return Reply::error(400, "no activation code was issued to this device");
        };
        if issued.expired || now >= issued.at + ttl {
            return Reply::error(410, "the activation code expired; ask OTA for a new one");
        }
        if field("challenge") != Some(issued.challenge.as_str()) {
            return Reply::error(400, "unknown challenge");
        }
        if field("algorithm") != Some("hmac-sha256") {
            return Reply::error(400, "algorithm must be hmac-sha256");
        }
        let Some(key) = device.key.as_deref() else {
            return Reply::error(401, "no HMAC key registered for this device");
        };
        let expected = hmac_sha256_hex(key, &issued.challenge);
        if !field("hmac").is_some_and(|h| h.eq_ignore_ascii_case(&expected)) {
            return Reply::error(401, "hmac mismatch");
        }
        if issued.polls < pending_polls {
            issued.polls += 1;
            return Reply {
                status: 202,
                content_type: "application/json",
                body: String::new(),
            };
        }
        device.bound = true;
        device.issued = None;
        Reply::text(200, "success")
    }

    /// Marks a device bound (a v1 device's user typed the code).
    pub(crate) fn bind(&mut self, device_id: &str) {
        let device = self.devices.entry(device_id.to_owned()).or_default();
        device.bound = true;
        device.issued = None;
    }

    /// Forgets a binding: the next OTA hands out a code again.
    pub(crate) fn unbind(&mut self, device_id: &str) {
        if let Some(device) = self.devices.get_mut(device_id) {
            device.bound = false;
        }
    }

    /// Every code handed out so far is expired from now on.
    pub(crate) fn expire_codes(&mut self) {
        for issued in self.devices.values_mut().filter_map(|d| d.issued.as_mut()) {
            issued.expired = true;
        }
    }

    pub(crate) fn device(&self, device_id: &str, now: Instant) -> Option<OtaDevice> {
        let ttl = self.options.activation.as_ref().map(|a| a.code_ttl);
        self.devices.get(device_id).map(|d| OtaDevice {
            key: d.key.clone(),
            bound: d.bound,
            activation: d.issued.as_ref().map(|i| OtaActivation {
                code: i.code.clone(),
                challenge: i.challenge.clone(),
                polls: i.polls,
                expired: i.expired || ttl.map_or(true, |ttl| now >= i.at + ttl),
            }),
            codes_issued: d.codes_issued,
        })
    }
}

/// hex(HMAC-SHA256(key, challenge)): py-xiaozhi keys the MAC with the key
/// string's UTF-8 bytes (not hex-decoded) and sends lowercase hex.
pub fn hmac_sha256_hex(key: &str, challenge: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let tag = hmac::sign(&key, challenge.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `{"Payload": {...}}` (py-xiaozhi) unwrapped; anything else as is.
pub(crate) fn unwrap_payload(body: &Value) -> &Value {
    match body.get("Payload") {
        Some(inner) if inner.is_object() => inner,
        _ => body,
    }
}

fn nonempty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ota::options::ActivationOptions;

    const KEY: &str = "0123456789abcdef";

    fn asked<'a>(payload: Option<&'a Value>) -> Asked<'a> {
        Asked {
            device_id: Some("aa:bb:cc:dd:ee:ff"),
            client_id: Some("c"),
            payload,
        }
    }

    fn body(v: &Reply) -> Value {
        serde_json::from_str(&v.body).unwrap()
    }

    #[test]
    fn hmac_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn plain_answer_like_the_real_server() {
        let mut endpoint = Endpoint::new(OtaOptions::for_url("ws://h/xiaozhi/v1/", ""));
        let device = json!({"application": {"version": "1.2.3"}});
        let reply = endpoint.ota(&asked(Some(&device)), Instant::now(), SystemTime::UNIX_EPOCH);
        assert_eq!(reply.status, 200);
        let answer = body(&reply);
        assert_eq!(answer["websocket"], json!({"url": "ws://h/xiaozhi/v1/", "token": ""}));
        assert_eq!(answer["firmware"], json!({"version": "1.2.3", "url": ""}));
        assert_eq!(answer["server_time"]["timezone_offset"], 480);
        assert!(answer.get("activation").is_none());
        let nameless = Asked {
            device_id: None,
            client_id: Some("c"),
            payload: None,
        };
        let refused = endpoint.ota(&nameless, Instant::now(), SystemTime::UNIX_EPOCH);
        assert_eq!(body(&refused), json!({"success": false, "message": "request error."}));
    }

    #[test]
    fn activation_v2_end_to_end() {
        let options = OtaOptions {
            activation: Some(ActivationOptions {
                pending_polls: 2,
                ..ActivationOptions::default()
            }),
            ..OtaOptions::default()
        };
        let mut endpoint = Endpoint::new(options);
        let t0 = Instant::now();
        let device = json!({"application": {"version": "1", "elf_sha256": KEY}});
        let first = body(&endpoint.ota(&asked(Some(&device)), t0, SystemTime::now()));
        let challenge = first["activation"]["challenge"].as_str().unwrap().to_owned();
        let code = first["activation"]["code"].as_str().unwrap().to_owned();
        assert_eq!(code.len(), 6);
        assert_eq!(first["activation"]["message"], format!("http://127.0.0.1:8001\n{code}"));
        assert_eq!(first["activation"]["timeout_ms"], 300_000);
        assert!(first.get("websocket").is_some(), "sections stay while pending");
        // Asked again: the same code.
        let again = body(&endpoint.ota(&asked(Some(&device)), t0, SystemTime::now()));
        assert_eq!(again["activation"]["code"], code.as_str());

        let signed = json!({"Payload": {"algorithm": "hmac-sha256", "serial_number": "SN", "challenge": challenge, "hmac": hmac_sha256_hex(KEY, &challenge)}});
        let payload = unwrap_payload(&signed);
        assert_eq!(endpoint.activate(&asked(Some(payload)), t0).status, 202);
        assert_eq!(endpoint.activate(&asked(Some(payload)), t0).status, 202);
        let bound = endpoint.activate(&asked(Some(payload)), t0);
        assert_eq!((bound.status, bound.body.as_str()), (200, "success"));
        let after = body(&endpoint.ota(&asked(Some(&device)), t0, SystemTime::now()));
        assert!(after.get("activation").is_none());
        assert!(endpoint.device("aa:bb:cc:dd:ee:ff", t0).unwrap().bound);
    }

    #[test]
    fn wrong_hmac_unknown_challenge_expiry_and_missing_key() {
        let options = OtaOptions {
            activation: Some(ActivationOptions {
                code_ttl: Duration::from_secs(60),
                ..ActivationOptions::default()
            }),
            ..OtaOptions::default()
        };
        let mut endpoint = Endpoint::new(options);
        let t0 = Instant::now();
        let keyless = json!({"application": {"version": "1"}});
        let first = body(&endpoint.ota(&asked(Some(&keyless)), t0, SystemTime::now()));
        let challenge = first["activation"]["challenge"].as_str().unwrap().to_owned();
        let signed =
            |challenge: &str, mac: &str| json!({"algorithm": "hmac-sha256", "challenge": challenge, "hmac": mac});
        let good = signed(&challenge, &hmac_sha256_hex(KEY, &challenge));
        assert_eq!(endpoint.activate(&asked(Some(&good)), t0).status, 401, "no key yet");
        let device = json!({"application": {"elf_sha256": KEY}});
        endpoint.ota(&asked(Some(&device)), t0, SystemTime::now());
        let bad = signed(&challenge, &hmac_sha256_hex("other", &challenge));
        assert_eq!(endpoint.activate(&asked(Some(&bad)), t0).status, 401);
        let stranger = signed("nope", "00");
        assert_eq!(endpoint.activate(&asked(Some(&stranger)), t0).status, 400);
        assert_eq!(endpoint.activate(&asked(None), t0).status, 400);

        // A server that keeps the first key refuses a device that made a new one.
        endpoint.options.activation.as_mut().unwrap().first_key_wins = true;
        let newer = json!({"application": {"elf_sha256": "a-new-key"}});
        endpoint.ota(&asked(Some(&newer)), t0, SystemTime::now());
        assert_eq!(
            endpoint.device("aa:bb:cc:dd:ee:ff", t0).unwrap().key.as_deref(),
            Some(KEY)
        );
        let resigned = signed(&challenge, &hmac_sha256_hex("a-new-key", &challenge));
        assert_eq!(endpoint.activate(&asked(Some(&resigned)), t0).status, 401);
        endpoint.options.activation.as_mut().unwrap().first_key_wins = false;

        let later = t0 + Duration::from_secs(61);
        assert_eq!(endpoint.activate(&asked(Some(&good)), later).status, 410);
        let fresh = body(&endpoint.ota(&asked(Some(&device)), later, SystemTime::now()));
        assert_ne!(fresh["activation"]["challenge"], challenge.as_str());
        assert_eq!(endpoint.device("aa:bb:cc:dd:ee:ff", later).unwrap().codes_issued, 2);

        endpoint.expire_codes();
        let view = endpoint.device("aa:bb:cc:dd:ee:ff", later).unwrap();
        assert!(view.activation.unwrap().expired);
    }

    #[test]
    fn fail_status_and_override() {
        let mut endpoint = Endpoint::new(OtaOptions {
            fail_status: Some(503),
            ..OtaOptions::default()
        });
        assert_eq!(
            endpoint.ota(&asked(None), Instant::now(), SystemTime::now()).status,
            503
        );
        endpoint.options.fail_status = None;
        endpoint.options.answer_override = Some(json!({"x": 1}));
        assert_eq!(
            body(&endpoint.ota(&asked(None), Instant::now(), SystemTime::now())),
            json!({"x": 1})
        );
    }
}

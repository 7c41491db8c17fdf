//! `wsvisor ctl identity NAME` for people: the ids a session sends, where
//! they are kept, and where its activation stands. The daemon never sends
//! the HMAC key, so it cannot be printed here either.

use serde::Deserialize;
use serde_json::Value;

use super::table;
use super::units::{self, NONE};
use crate::protocol::{ActivationStatus, IdentityInfo};

/// The `identity` result as `key: value` lines; a result of another shape as its JSON.
pub fn render(result: &Value) -> String {
    match IdentityInfo::deserialize(result) {
        Ok(info) => lines(&info),
        Err(_) => units::raw(result),
    }
}

fn lines(info: &IdentityInfo) -> String {
    let activation = match (info.activation, &info.activation_code) {
        (ActivationStatus::Activating, Some(code)) => {
            format!("activating: enter code {} in the server's console", units::clean(code))
        }
        (ActivationStatus::Bound, _) => "bound (the OTA endpoint asks for no activation)".to_owned(),
        (ActivationStatus::Unknown, _) => "unknown (the OTA endpoint has not answered yet)".to_owned(),
        (ActivationStatus::NoOtaUrl, _) => "not used (no ota_url)".to_owned(),
        (status, _) => status.to_string(),
    };
    let configured = if info.configured.is_empty() {
        NONE.to_owned()
    } else {
        units::clean(&info.configured.join(", "))
    };
    let mut pairs = vec![
        ("session".to_owned(), units::clean(&info.session)),
        ("device_id".to_owned(), units::clean(&info.device_id)),
        ("client_id".to_owned(), units::clean(&info.client_id)),
        (
            "serial_number".to_owned(),
            units::optional(info.serial_number.as_deref()),
        ),
        ("activation_version".to_owned(), info.activation_version.to_string()),
        ("file".to_owned(), units::optional(info.file.as_deref())),
        ("from config".to_owned(), configured),
        ("activation".to_owned(), activation),
    ];
    pairs.extend(
        info.extra
            .iter()
            .map(|(key, value)| (units::clean(key), units::text(value))),
    );
    table::pairs("", &pairs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn identity_lines() {
        let result = json!({"session": "kitchen", "device_id": "02:1a:2b:3c:4d:5e",
            "client_id": "6f1c0b8e-0000-4000-8000-000000000001", "serial_number": "SN-1A2B3C4D-021a2b3c4d5e",
            "activation_version": 2, "file": "/var/lib/wsvisor/identity/kitchen.json", "configured": [],
            "activation": "activating", "activation_code": "123456"});
        let expected = "\
session:             kitchen
device_id:           02:1a:2b:3c:4d:5e
client_id:           6f1c0b8e-0000-4000-8000-000000000001
serial_number:       SN-1A2B3C4D-021a2b3c4d5e
activation_version:  2
file:                /var/lib/wsvisor/identity/kitchen.json
from config:         -
activation:          activating: enter code 123456 in the server's console
";
        assert_eq!(render(&result), expected);
        let v1 = json!({"session": "porch", "device_id": "d\u{1b}[2J", "client_id": "c", "serial_number": null,
            "activation_version": 1, "file": null, "configured": ["device_id", "client_id"],
            "activation": "no_ota_url"});
        let shown = render(&v1);
        assert!(shown.contains("serial_number:       -\n"), "{shown}");
        assert!(shown.contains("from config:         device_id, client_id\n"), "{shown}");
        assert!(shown.contains("not used (no ota_url)"), "{shown}");
        assert!(!shown.contains('\u{1b}'), "{shown}");
        assert_eq!(render(&json!({"x": 1})), units::raw(&json!({"x": 1})));
    }
}

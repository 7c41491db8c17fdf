//! Session summaries for people: the `sessions` table and the `session`
//! detail. Any field may be missing or of another type; it then shows as
//! `-` or as its JSON, never as a panic.

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::table;
use super::units::{self, NONE};

/// Summary fields shown by [`detail`] in their own lines; others are listed after them.
const SUMMARY_FIELDS: &[&str] = &[
    "name",
    "state",
    "session_id",
    "url",
    "attempt",
    "max_attempts",
    "since",
    "next_retry_in_ms",
    "last_close",
    "rtt_ms",
    "queued",
    "counters",
];

/// Counters in the order [`detail`] lists them; others follow.
const COUNTERS: &[&str] = &[
    "connects",
    "losses",
    "reconnect_attempts",
    "give_ups",
    "pings_sent",
    "pongs",
    "frames_in",
    "bytes_in",
    "frames_out",
    "bytes_out",
    "dropped",
];

/// The `sessions` result as a table, one row per session.
pub fn table(result: &Value, now: SystemTime) -> String {
    let Some(sessions) = result.get("sessions").and_then(Value::as_array) else {
        return super::human::raw(result);
    };
    if sessions.is_empty() {
        return "no sessions\n".to_owned();
    }
    let header = [
        "NAME",
        "STATE",
        "ATTEMPT",
        "SINCE",
        "LAST-CAUSE",
        "CODE",
        "RTT",
        "QUEUED",
    ];
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect()];
    for s in sessions {
        let close = &s["last_close"];
        rows.push(vec![
            units::text(&s["name"]),
            state(s),
            attempt(s, true),
            s["since"]
                .as_str()
                .and_then(|since| units::age(since, now))
                .unwrap_or_else(|| NONE.into()),
            units::text(&close["cause"]),
            close_code(close).unwrap_or_else(|| NONE.into()),
            rtt(s),
            units::text(&s["queued"]),
        ]);
    }
    table::columns(&rows)
}

/// The `session` result: `key: value` lines, then the counters.
pub fn detail(s: &Value, now: SystemTime) -> String {
    let Some(fields) = s.as_object() else {
        return super::human::raw(s);
    };
    let since = match s["since"].as_str() {
        Some(since) => with_age(since, now),
        None => units::text(&s["since"]),
    };
    let next_retry = match s["next_retry_in_ms"].as_u64() {
        Some(ms) => format!("in {}", units::millis(ms)),
        None => units::text(&s["next_retry_in_ms"]),
    };
    let mut pairs = vec![
        ("name".to_owned(), units::text(&s["name"])),
        ("state".to_owned(), units::text(&s["state"])),
        ("session_id".to_owned(), units::text(&s["session_id"])),
        ("url".to_owned(), units::text(&s["url"])),
        ("attempt".to_owned(), attempt(s, false)),
        ("since".to_owned(), since),
        ("next retry".to_owned(), next_retry),
        ("last close".to_owned(), last_close(&s["last_close"], now)),
        ("rtt".to_owned(), rtt(s)),
        ("queued".to_owned(), units::text(&s["queued"])),
    ];
    // Fields this client does not know yet (say an activation code) are
    // still worth seeing.
    pairs.extend(extras(fields, SUMMARY_FIELDS));
    let mut out = table::pairs("", &pairs);
    match &s["counters"] {
        Value::Object(counters) => {
            out.push_str("counters:\n");
            out.push_str(&table::pairs("  ", &counter_pairs(counters)));
        }
        Value::Null => {}
        other => out.push_str(&format!("counters: {other}\n")),
    }
    out
}

fn extras(fields: &Map<String, Value>, known: &[&str]) -> Vec<(String, String)> {
    fields
        .iter()
        .filter(|(key, _)| !known.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), units::text(value)))
        .collect()
}

fn counter_pairs(counters: &Map<String, Value>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = COUNTERS
        .iter()
        .filter_map(|&key| {
            let value = counters.get(key)?;
            let shown = if key == "losses" {
                losses(value)
            } else {
                units::text(value)
            };
            Some((key.to_owned(), shown))
        })
        .collect();
    pairs.extend(extras(counters, COUNTERS));
    pairs
}

/// `3 (abnormal 2, server_close 1)`: the total, then each cause that happened, most frequent first.
fn losses(value: &Value) -> String {
    let Some(by_cause) = value.as_object() else {
        return units::text(value);
    };
    let mut nonzero: Vec<(&str, u64)> = by_cause
        .iter()
        .filter_map(|(cause, n)| Some((cause.as_str(), n.as_u64()?)))
        .filter(|(_, n)| *n > 0)
        .collect();
    if nonzero.is_empty() {
        return "0".to_owned();
    }
    nonzero.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let total: u64 = nonzero.iter().map(|(_, n)| n).sum();
    let list: Vec<String> = nonzero.iter().map(|(cause, n)| format!("{cause} {n}")).collect();
    format!("{total} ({})", list.join(", "))
}

/// The state, with the retry delay when one is pending: `backoff (930ms)`.
fn state(s: &Value) -> String {
    let state = units::text(&s["state"]);
    match s["next_retry_in_ms"].as_u64() {
        Some(ms) => format!("{state} ({})", units::millis(ms)),
        None => state,
    }
}

/// `2/10`. In the table an idle count on a session that is up or stopped
/// on purpose is noise, so it shows as `-`.
fn attempt(s: &Value, quiet_when_idle: bool) -> String {
    let attempt = s["attempt"].as_u64();
    let settled = matches!(s["state"].as_str(), Some("ready" | "stopped"));
    if quiet_when_idle && attempt == Some(0) && settled {
        return NONE.to_owned();
    }
    match (attempt, s["max_attempts"].as_u64()) {
        (Some(attempt), Some(max)) => format!("{attempt}/{max}"),
        _ => units::text(&s["attempt"]),
    }
}

fn rtt(s: &Value) -> String {
    match s["rtt_ms"].as_f64() {
        Some(ms) => units::rtt(ms),
        None => units::text(&s["rtt_ms"]),
    }
}

/// `http 503` for a refused upgrade, else the close code.
fn close_code(close: &Value) -> Option<String> {
    if let Some(status) = close["status"].as_u64() {
        return Some(format!("http {status}"));
    }
    close["code"].as_u64().map(|code| code.to_string())
}

/// `abnormal, code 1006, at 2026-11-21T10:00:00.000Z (12s ago)`.
fn last_close(close: &Value, now: SystemTime) -> String {
    if !close.is_object() {
        return units::text(close);
    }
    let mut parts = vec![units::text(&close["cause"])];
    if let Some(status) = close["status"].as_u64() {
        parts.push(format!("http {status}"));
    }
    if let Some(code) = close["code"].as_u64() {
        parts.push(format!("code {code}"));
    }
    match &close["reason"] {
        Value::String(reason) if reason.is_empty() => {}
        Value::Null => {}
        reason => parts.push(format!("reason {reason}")),
    }
    if let Some(at) = close["at"].as_str() {
        parts.push(format!("at {}", with_age(at, now)));
    }
    parts.join(", ")
}

/// `2026-11-21T10:00:00.000Z (12s ago)`.
fn with_age(at: &str, now: SystemTime) -> String {
    match units::age(at, now) {
        Some(age) => format!("{at} ({age} ago)"),
        None => at.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-11-21T10:00:12Z").unwrap()
    }

    fn sample() -> Value {
        json!({"sessions": [
            {"name": "kitchen", "state": "ready", "session_id": "abc", "url": "ws://127.0.0.1:8000/xiaozhi/v1/",
             "attempt": 0, "max_attempts": 10, "since": "2026-11-21T09:55:00.000Z", "next_retry_in_ms": null,
             "last_close": {"code": 1000, "reason": "", "at": "2026-11-21T09:54:59.000Z", "cause": "server_close"},
             "rtt_ms": 0.4, "queued": 0},
            {"name": "living-room", "state": "backoff", "session_id": null, "url": "ws://10.0.0.2:8000/xiaozhi/v1/",
             "attempt": 2, "max_attempts": 10, "since": "2026-11-21T10:00:00.000Z", "next_retry_in_ms": 930,
             "last_close": {"code": 1006, "reason": "", "at": "2026-11-21T10:00:00.000Z", "cause": "abnormal"},
             "rtt_ms": null, "queued": 3},
            {"name": "attic", "state": "failed", "session_id": null, "url": "wss://example.org/xiaozhi/v1/",
             "attempt": 10, "max_attempts": 10, "since": "2026-11-21T07:00:00.000Z", "next_retry_in_ms": null,
             "last_close": {"code": null, "reason": "", "at": "2026-11-21T07:00:00.000Z", "cause": "http_status",
                            "status": 503},
             "rtt_ms": null, "queued": 0},
            {"name": "garage", "state": "stopped", "session_id": null, "url": "ws://10.0.0.3:8000/",
             "attempt": 0, "max_attempts": 10, "since": "2026-11-19T08:00:00.000Z", "next_retry_in_ms": null,
             "last_close": null, "rtt_ms": null, "queued": 0}
        ]})
    }

    #[test]
    fn sessions_table() {
        let expected = "\
NAME         STATE            ATTEMPT  SINCE  LAST-CAUSE    CODE      RTT    QUEUED
kitchen      ready            -        5m     server_close  1000      0.4ms  0
living-room  backoff (930ms)  2/10     12s    abnormal      1006      -      3
attic        failed           10/10    3h     http_status   http 503  -      0
garage       stopped          -        2d     -             -         -      0
";
        assert_eq!(table(&sample(), now()), expected);
    }

    #[test]
    fn empty_and_odd_tables() {
        assert_eq!(table(&json!({"sessions": []}), now()), "no sessions\n");
        let odd = json!({"sessions": [{"name": 5, "state": null}, "junk"]});
        let expected = "\
NAME  STATE  ATTEMPT  SINCE  LAST-CAUSE  CODE  RTT  QUEUED
5     -      -        -      -           -     -    -
-     -      -        -      -           -     -    -
";
        assert_eq!(table(&odd, now()), expected);
        assert_eq!(table(&json!({"what": 1}), now()), "{\n  \"what\": 1\n}\n");
    }

    #[test]
    fn session_detail_with_counters() {
        let mut s = sample()["sessions"][1].clone();
        s["counters"] = json!({
            "connects": 3, "losses": {"server_close": 1, "abnormal": 2, "reset": 0}, "reconnect_attempts": 5,
            "give_ups": 0, "pings_sent": 40, "pongs": 39, "frames_in": 120, "bytes_in": 50211, "frames_out": 30,
            "bytes_out": 2048, "dropped": 1
        });
        s["activation_code"] = json!("123456");
        let expected = r#"name:             living-room
state:            backoff
session_id:       -
url:              ws://10.0.0.2:8000/xiaozhi/v1/
attempt:          2/10
since:            2026-11-21T10:00:00.000Z (12s ago)
next retry:       in 930ms
last close:       abnormal, code 1006, at 2026-11-21T10:00:00.000Z (12s ago)
rtt:              -
queued:           3
activation_code:  123456
counters:
  connects:            3
  losses:              3 (abnormal 2, server_close 1)
  reconnect_attempts:  5
  give_ups:            0
  pings_sent:          40
  pongs:               39
  frames_in:           120
  bytes_in:            50211
  frames_out:          30
  bytes_out:           2048
  dropped:             1
"#;
        assert_eq!(detail(&s, now()), expected);
    }

    #[test]
    fn last_close_shows_status_and_reason() {
        let close = json!({"code": null, "reason": "going away", "at": "x", "cause": "http_status", "status": 503});
        assert_eq!(
            last_close(&close, now()),
            r#"http_status, http 503, reason "going away", at x"#
        );
        assert_eq!(last_close(&json!(null), now()), "-");
    }

    #[test]
    fn detail_of_something_else_is_its_json() {
        assert_eq!(detail(&json!([1]), now()), "[\n  1\n]\n");
        assert!(detail(&json!({}), now()).starts_with("name:"));
    }
}

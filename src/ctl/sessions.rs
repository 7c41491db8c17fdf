//! Session summaries for people: the `sessions` table and the `session`
//! detail. Every string the daemon chose is made safe for a terminal;
//! fields this client does not know are listed after the known ones.

use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;

use super::table;
use super::units::{self, NONE};
use crate::protocol::{Counters, Extra, LastClose, OtaOffer, SessionList, SessionSummary, Timestamp};
use wsvisor_actors::state::SessionState;

/// The `sessions` result as a table, one row per session; a result of
/// another shape as its JSON.
pub fn table(result: &Value, now: SystemTime) -> String {
    match SessionList::deserialize(result) {
        Ok(list) => rows(&list.sessions, now),
        Err(_) => units::raw(result),
    }
}

/// The `session` result: `key: value` lines, then the counters; a result
/// of another shape as its JSON.
pub fn detail(result: &Value, now: SystemTime) -> String {
    match SessionSummary::deserialize(result) {
        Ok(summary) => lines(&summary, now),
        Err(_) => units::raw(result),
    }
}

/// Sessions as a table.
fn rows(sessions: &[SessionSummary], now: SystemTime) -> String {
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
        let close = s.last_close.as_ref();
        rows.push(vec![
            units::clean(&s.name),
            state(s),
            attempt(s, true),
            units::age(s.since.0, now),
            close.map_or_else(|| NONE.to_owned(), |c| c.cause.to_string()),
            close.and_then(close_code).unwrap_or_else(|| NONE.into()),
            rtt(s),
            s.queued.to_string(),
        ]);
    }
    table::columns(&rows)
}

/// One session: `key: value` lines, then the counters.
fn lines(s: &SessionSummary, now: SystemTime) -> String {
    let next_retry = match s.next_retry_in_ms {
        Some(ms) => format!("in {}", units::millis(ms)),
        None => NONE.to_owned(),
    };
    let mut pairs = vec![
        ("name".to_owned(), units::clean(&s.name)),
        ("state".to_owned(), s.state.to_string()),
        ("session_id".to_owned(), units::optional(s.session_id.as_deref())),
        ("url".to_owned(), units::optional(s.url.as_deref())),
        ("attempt".to_owned(), attempt(s, false)),
        ("since".to_owned(), with_age(s.since, now)),
        ("next retry".to_owned(), next_retry),
        (
            "last close".to_owned(),
            s.last_close
                .as_ref()
                .map_or_else(|| NONE.to_owned(), |c| last_close(c, now)),
        ),
        ("rtt".to_owned(), rtt(s)),
        ("queued".to_owned(), s.queued.to_string()),
    ];
    if let Some(code) = &s.activation_code {
        pairs.push(("activation_code".to_owned(), units::clean(code)));
    }
    if let Some(offer) = &s.ota {
        pairs.push(("ota".to_owned(), ota(offer)));
    }
    // Fields this client does not know yet are still worth seeing.
    pairs.extend(extras(&s.extra));
    let mut out = table::pairs("", &pairs);
    if let Some(counters) = &s.counters {
        out.push_str("counters:\n");
        out.push_str(&table::pairs("  ", &counter_pairs(counters)));
    }
    out
}

fn extras(extra: &Extra) -> Vec<(String, String)> {
    extra
        .iter()
        .map(|(key, value)| (units::clean(key), units::text(value)))
        .collect()
}

fn counter_pairs(c: &Counters) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = [
        ("connects", c.connects.to_string()),
        ("losses", losses(c)),
        ("reconnect_attempts", c.reconnect_attempts.to_string()),
        ("give_ups", c.give_ups.to_string()),
        ("pings_sent", c.pings_sent.to_string()),
        ("pongs", c.pongs.to_string()),
        ("frames_in", c.frames_in.to_string()),
        ("bytes_in", c.bytes_in.to_string()),
        ("frames_out", c.frames_out.to_string()),
        ("bytes_out", c.bytes_out.to_string()),
        ("dropped", c.dropped.to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    pairs.extend(extras(&c.extra));
    pairs
}

/// `3 (abnormal 2, server_close 1)`: the total, then each cause that happened, most frequent first.
fn losses(c: &Counters) -> String {
    let mut nonzero: Vec<(&str, u64)> = c
        .losses
        .iter()
        .map(|(cause, n)| (cause.as_str(), *n))
        .filter(|(_, n)| *n > 0)
        .collect();
    if nonzero.is_empty() {
        return "0".to_owned();
    }
    nonzero.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let total: u64 = nonzero.iter().map(|(_, n)| n).sum();
    let list: Vec<String> = nonzero
        .iter()
        .map(|(cause, n)| format!("{} {n}", units::clean(cause)))
        .collect();
    format!("{total} ({})", list.join(", "))
}

/// The state, with the retry delay when one is pending: `backoff (930ms)`,
/// or the code to enter: `activating (code 123456)`.
fn state(s: &SessionSummary) -> String {
    match (&s.activation_code, s.next_retry_in_ms) {
        (Some(code), _) if s.state == SessionState::Activating => {
            format!("{} (code {})", s.state, units::clean(code))
        }
        (_, Some(ms)) => format!("{} ({})", s.state, units::millis(ms)),
        _ => s.state.to_string(),
    }
}

/// `websocket, mqtt (mqtt.example.com:8883), activation pending`: the
/// sections of the OTA endpoint's latest answer.
fn ota(offer: &OtaOffer) -> String {
    let mut parts = Vec::new();
    if offer.websocket {
        parts.push("websocket".to_owned());
    }
    if offer.mqtt {
        parts.push(match &offer.mqtt_endpoint {
            Some(endpoint) => format!("mqtt ({})", units::clean(endpoint)),
            None => "mqtt".to_owned(),
        });
        if !offer.websocket {
            parts.push("no websocket: wsvisor cannot use this answer".to_owned());
        }
    }
    if offer.activation {
        parts.push("activation pending".to_owned());
    }
    if parts.is_empty() {
        parts.push("nothing usable".to_owned());
    }
    parts.extend(
        extras(&offer.extra)
            .into_iter()
            .map(|(key, value)| format!("{key} {value}")),
    );
    parts.join(", ")
}

/// `2/10`. In the table an idle count on a session that is up or stopped
/// on purpose is noise, so it shows as `-`.
fn attempt(s: &SessionSummary, quiet_when_idle: bool) -> String {
    let settled = matches!(s.state, SessionState::Ready | SessionState::Stopped);
    if quiet_when_idle && s.attempt == 0 && settled {
        return NONE.to_owned();
    }
    format!("{}/{}", s.attempt, s.max_attempts)
}

fn rtt(s: &SessionSummary) -> String {
    s.rtt_ms.map_or_else(|| NONE.to_owned(), units::rtt)
}

/// `http 503` for a refused upgrade, else the close code.
fn close_code(close: &LastClose) -> Option<String> {
    if let Some(status) = close.status {
        return Some(format!("http {status}"));
    }
    close.code.map(|code| code.to_string())
}

/// `abnormal, code 1006, at 2026-11-21T10:00:00.000Z (12s ago)`.
fn last_close(close: &LastClose, now: SystemTime) -> String {
    let mut parts = vec![close.cause.to_string()];
    if let Some(status) = close.status {
        parts.push(format!("http {status}"));
    }
    if let Some(code) = close.code {
        parts.push(format!("code {code}"));
    }
    if !close.reason.is_empty() {
        parts.push(format!(
            "reason {}",
            units::clean(&Value::from(close.reason.as_str()).to_string())
        ));
    }
    parts.push(format!("at {}", with_age(close.at, now)));
    parts.extend(
        extras(&close.extra)
            .into_iter()
            .map(|(key, value)| format!("{key} {value}")),
    );
    parts.join(", ")
}

/// `2026-11-21T10:00:00.000Z (12s ago)`.
fn with_age(at: Timestamp, now: SystemTime) -> String {
    format!("{at} ({} ago)", units::age(at.0, now))
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
        // Rows a daemon of this version never writes: the result as its JSON.
        let odd = json!({"sessions": [{"name": 5, "state": null}, "junk"]});
        assert_eq!(table(&odd, now()), units::raw(&odd));
        assert!(table(&odd, now()).contains("\"junk\""));
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
        let close = json!({"code": null, "reason": "going away", "at": "2026-11-21T10:00:00.000Z",
                           "cause": "http_status", "status": 503});
        let close: LastClose = serde_json::from_value(close).unwrap();
        assert_eq!(
            last_close(&close, now()),
            r#"http_status, http 503, reason "going away", at 2026-11-21T10:00:00.000Z (12s ago)"#
        );
        let mut s = sample()["sessions"][3].clone();
        assert!(detail(&s, now()).contains("last close:  -\n"), "{}", detail(&s, now()));
        s["last_close"] = json!(null);
        assert!(detail(&s, now()).contains("last close:  -\n"));
    }

    #[test]
    fn detail_of_something_else_is_its_json() {
        assert_eq!(detail(&json!([1]), now()), "[\n  1\n]\n");
        assert_eq!(detail(&json!({}), now()), "{}\n");
    }

    #[test]
    fn strings_from_the_daemon_never_reach_the_terminal_raw() {
        let mut s = sample()["sessions"][1].clone();
        s["session_id"] = json!("id\u{1b}]0;owned\u{7}\nforged: yes");
        s["url"] = json!("ws://x/\u{9b}2J");
        s["last_close"]["reason"] = json!("bye\u{1b}[2J\r\n");
        s["battery\u{1b}"] = json!("low\u{85}");
        let shown = detail(&s, now()) + &table(&json!({"sessions": [s]}), now());
        assert!(!shown.chars().any(|c| c.is_control() && c != '\n'), "{shown:?}");
        assert!(shown.contains(r"id\u{1b}]0;owned\u{7}\nforged: yes"), "{shown}");
        assert!(shown.contains(r"ws://x/\u{9b}2J"), "{shown}");
        assert!(shown.contains(r#"reason "bye\u001b[2J\r\n""#), "{shown}");
        assert!(shown.contains(r"battery\u{1b}:"), "{shown}");
        assert!(!shown.lines().any(|l| l.starts_with("forged")), "{shown}");
    }
}

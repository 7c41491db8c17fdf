//! `subscribe` events for people: one line each, starting with the time of
//! day so that a scrolling terminal reads as a log. State events carry
//! their own time; other events are stamped when they arrive.

use std::time::SystemTime;

use serde_json::Value;

use super::units;

/// One event line as text; a line that is not a JSON object is shown as received.
pub fn render(line: &str, now: SystemTime) -> String {
    match serde_json::from_str::<Value>(line) {
        Ok(event @ Value::Object(_)) => format!("{} {}", time(&event, now), describe(&event).unwrap_or(line.into())),
        _ => line.to_owned(),
    }
}

fn time(event: &Value, now: SystemTime) -> String {
    match event["at"].as_str() {
        Some(at) => units::time_of_day(at),
        None => units::clock(now),
    }
}

/// The event without its time; `None` for kinds this client does not know.
fn describe(event: &Value) -> Option<String> {
    let session = units::text(&event["session"]);
    let text = match event["event"].as_str()? {
        "state" => {
            let mut text = format!("{session} state {}", units::text(&event["state"]));
            if let Some(attempt) = event["attempt"].as_u64().filter(|a| *a > 0) {
                text.push_str(&format!(" attempt={attempt}"));
            }
            if let Some(ms) = event["retry_in_ms"].as_u64() {
                text.push_str(&format!(" retry_in={}", units::millis(ms)));
            }
            for key in ["cause", "code", "status", "session_id"] {
                if !event[key].is_null() {
                    text.push_str(&format!(" {key}={}", units::text(&event[key])));
                }
            }
            text
        }
        "message" => format!("{session} message {}", event["message"]),
        "audio" => format!("{session} audio {} bytes", units::text(&event["bytes"])),
        "dropped" => format!(
            "{session} dropped {} ({})",
            units::text(&event["count"]),
            units::text(&event["why"])
        ),
        "lagged" => format!("lagged: {} events skipped", units::text(&event["skipped"])),
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-11-21T10:00:01.500Z").unwrap()
    }

    #[test]
    fn state_events_use_their_own_time() {
        let line = r#"{"event":"state","session":"kitchen","state":"backoff","attempt":2,"retry_in_ms":930,"cause":"abnormal","code":1006,"at":"2026-11-21T10:00:00.123Z"}"#;
        assert_eq!(
            render(line, now()),
            "10:00:00.123 kitchen state backoff attempt=2 retry_in=930ms cause=abnormal code=1006"
        );
        let ready = r#"{"event":"state","session":"kitchen","state":"ready","attempt":0,"retry_in_ms":null,"cause":null,"code":null,"at":"2026-11-21T10:00:00.500Z","session_id":"s-1"}"#;
        assert_eq!(render(ready, now()), "10:00:00.500 kitchen state ready session_id=s-1");
        let refused = r#"{"event":"state","session":"k","state":"backoff","attempt":1,"retry_in_ms":1500,"cause":"http_status","code":null,"status":503,"at":"2026-11-21T10:00:00Z"}"#;
        assert_eq!(
            render(refused, now()),
            "10:00:00.000 k state backoff attempt=1 retry_in=1.5s cause=http_status status=503"
        );
    }

    #[test]
    fn other_events_are_stamped_on_arrival() {
        let message = r#"{"event":"message","session":"kitchen","message":{"type":"stt","text":"你好"}}"#;
        assert_eq!(
            render(message, now()),
            r#"10:00:01.500 kitchen message {"text":"你好","type":"stt"}"#
        );
        let audio = r#"{"event":"audio","session":"kitchen","bytes":183,"data":"AAAA"}"#;
        assert_eq!(render(audio, now()), "10:00:01.500 kitchen audio 183 bytes");
        let dropped = r#"{"event":"dropped","session":"kitchen","count":3,"why":"queue_ttl"}"#;
        assert_eq!(render(dropped, now()), "10:00:01.500 kitchen dropped 3 (queue_ttl)");
        assert_eq!(
            render(r#"{"event":"lagged","skipped":120}"#, now()),
            "10:00:01.500 lagged: 120 events skipped"
        );
    }

    #[test]
    fn odd_lines_are_shown_as_they_came() {
        assert_eq!(render("not json", now()), "not json");
        assert_eq!(
            render(r#"{"event":"future","x":1}"#, now()),
            r#"10:00:01.500 {"event":"future","x":1}"#
        );
        assert_eq!(render(r#"{"event":"state"}"#, now()), "10:00:01.500 - state -");
    }
}

//! `subscribe` events for people: one line each, starting with the time of
//! day so that a scrolling terminal reads as a log. State events carry
//! their own time; other events are stamped when they arrive. Every string
//! the daemon chose is made safe for a terminal.

use std::time::SystemTime;

use super::units;
use crate::protocol::EventLine;

/// One event line as text; a line that is not an event this client knows
/// is shown as received (made safe), after the time it arrived.
pub fn render(line: &str, now: SystemTime) -> String {
    match serde_json::from_str::<EventLine>(line) {
        Ok(event) => describe(&event, now),
        Err(_) => match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(_)) => format!("{} {}", units::clock(now), units::clean(line)),
            _ => units::clean(line),
        },
    }
}

fn describe(event: &EventLine, now: SystemTime) -> String {
    let session = || units::optional(event.session());
    let text = match event {
        EventLine::State(state) => {
            let mut text = format!("{} state {}", session(), state.state);
            if state.attempt > 0 {
                text.push_str(&format!(" attempt={}", state.attempt));
            }
            if let Some(ms) = state.retry_in_ms {
                text.push_str(&format!(" retry_in={}", units::millis(ms)));
            }
            if let Some(cause) = state.cause {
                text.push_str(&format!(" cause={cause}"));
            }
            if let Some(code) = state.code {
                text.push_str(&format!(" code={code}"));
            }
            if let Some(status) = state.status {
                text.push_str(&format!(" status={status}"));
            }
            if let Some(id) = &state.session_id {
                text.push_str(&format!(" session_id={}", units::clean(id)));
            }
            return format!("{} {text}", units::clock(state.at.0));
        }
        EventLine::Message { message, .. } => format!("{} message {}", session(), units::clean(&message.to_string())),
        EventLine::Audio { bytes, .. } => format!("{} audio {bytes} bytes", session()),
        EventLine::Dropped { count, why, .. } => format!("{} dropped {count} ({why})", session()),
        EventLine::Lagged { skipped } => format!("lagged: {skipped} events skipped"),
        EventLine::ToolCall(call) => format!(
            "{} tool_call {} call_id={} arguments={}",
            session(),
            units::clean(&call.tool),
            units::clean(&call.call_id),
            units::clean(&call.arguments.to_string())
        ),
    };
    format!("{} {text}", units::clock(now))
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
        assert_eq!(
            render(r#"{"event":"state"}"#, now()),
            r#"10:00:01.500 {"event":"state"}"#
        );
    }

    #[test]
    fn strings_from_the_daemon_never_reach_the_terminal_raw() {
        let ready = "{\"event\":\"state\",\"session\":\"k\",\"state\":\"ready\",\"attempt\":0,\"retry_in_ms\":null,\
                     \"cause\":null,\"code\":null,\"at\":\"2026-11-21T10:00:00.500Z\",\
                     \"session_id\":\"s\\u001b[2J\\nforged\\u009b\"}";
        let message = "{\"event\":\"message\",\"session\":\"k\",\"message\":{\"text\":\"a\u{9b}b\u{7f}\"}}";
        let odd = "not json \u{1b}[2J";
        for line in [ready, message, odd] {
            let shown = render(line, now());
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
        }
        assert!(render(ready, now()).ends_with(r"session_id=s\u{1b}[2J\nforged\u{9b}"));
        assert_eq!(render(odd, now()), r"not json \u{1b}[2J");
    }
}

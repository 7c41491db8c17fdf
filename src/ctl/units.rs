//! Small values as a person reads them: ages, durations, round-trip
//! times, times of day, text from the daemon made safe for a terminal,
//! and any JSON value as a table cell.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// What a missing or null value shows as.
pub const NONE: &str = "-";

/// Text chosen by a peer (a session id, a close reason, a URL), safe for
/// a terminal: every control character (C0, DEL, C1, so ESC and newline
/// too) is shown escaped, as `\u{1b}` or `\n`, and never sent raw.
pub fn clean(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// An optional peer string as a cell: the text made safe, or `-`.
pub fn optional(text: Option<&str>) -> String {
    text.map_or_else(|| NONE.to_owned(), clean)
}

/// A JSON value as text: strings without quotes, null as `-`, the rest as
/// compact JSON; made safe for a terminal either way.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => NONE.to_owned(),
        Value::String(s) => clean(s),
        other => clean(&other.to_string()),
    }
}

/// Pretty JSON with a final newline, for results this client cannot
/// describe; made safe for a terminal.
pub fn raw(value: &Value) -> String {
    let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let lines: Vec<String> = pretty.lines().map(clean).collect();
    format!("{}\n", lines.join("\n"))
}

/// How long ago `at` was, in its largest whole unit (`12s`, `5m`, `3h`,
/// `2d`). A time in the future (clocks disagree) counts as now.
pub fn age(at: SystemTime, now: SystemTime) -> String {
    short(now.duration_since(at).unwrap_or_default())
}

/// A duration in its largest whole unit: `12s`, `5m`, `3h`, `2d`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Milliseconds to wait, e.g. a retry delay: `930ms`, `1.5s`, `2m5s`.
pub fn millis(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{}s", trim(&format!("{:.1}", ms as f64 / 1000.0))),
        _ => {
            let s = ms / 1000;
            match s % 60 {
                0 => format!("{}m", s / 60),
                rest => format!("{}m{rest}s", s / 60),
            }
        }
    }
}

/// A long span such as an uptime, every unit down to seconds: `2d 3h 0m 5s`, `42s`.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

/// A round-trip time in milliseconds, with as many decimals as matter: `0.4ms`, `12.3ms`, `250ms`.
pub fn rtt(ms: f64) -> String {
    let digits = if ms < 10.0 {
        2
    } else if ms < 100.0 {
        1
    } else {
        0
    };
    format!("{}ms", trim(&format!("{ms:.digits$}")))
}

/// `12.50` → `12.5`, `3.00` → `3`.
fn trim(number: &str) -> String {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        number.to_owned()
    }
}

/// `HH:MM:SS.mmm` (UTC) of `at`.
pub fn clock(at: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_millis(at).to_string();
    stamp.get(11..23).unwrap_or(&stamp).to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(stamp: &str) -> SystemTime {
        humantime::parse_rfc3339(stamp).unwrap()
    }

    #[test]
    fn ages_use_the_largest_whole_unit() {
        let now = at("2026-11-21T10:00:00Z");
        assert_eq!(age(at("2026-11-21T09:59:48.000Z"), now), "12s");
        assert_eq!(age(at("2026-11-21T09:54:30Z"), now), "5m");
        assert_eq!(age(at("2026-11-21T06:10:00Z"), now), "3h");
        assert_eq!(age(at("2026-11-19T09:00:00Z"), now), "2d");
        assert_eq!(age(at("2026-11-21T10:00:05Z"), now), "0s");
    }

    #[test]
    fn delays_and_spans() {
        assert_eq!(millis(930), "930ms");
        assert_eq!(millis(1500), "1.5s");
        assert_eq!(millis(12_000), "12s");
        assert_eq!(millis(60_000), "1m");
        assert_eq!(millis(125_400), "2m5s");
        assert_eq!(uptime(42), "42s");
        assert_eq!(uptime(3 * 3600 + 7), "3h 0m 7s");
        assert_eq!(uptime(2 * 86400 + 3600 + 120 + 5), "2d 1h 2m 5s");
    }

    #[test]
    fn round_trip_times() {
        assert_eq!(rtt(0.4), "0.4ms");
        assert_eq!(rtt(0.045), "0.04ms");
        assert_eq!(rtt(12.34), "12.3ms");
        assert_eq!(rtt(250.2), "250ms");
        assert_eq!(rtt(3.0), "3ms");
    }

    #[test]
    fn times_of_day_in_utc() {
        assert_eq!(clock(at("2026-11-21T10:00:00.123Z")), "10:00:00.123");
        assert_eq!(clock(at("2026-11-21T10:00:00Z")), "10:00:00.000");
    }

    #[test]
    fn values_as_cells() {
        assert_eq!(text(&json!(null)), "-");
        assert_eq!(text(&json!("abc")), "abc");
        assert_eq!(text(&json!(3)), "3");
        assert_eq!(text(&json!({"a": 1})), r#"{"a":1}"#);
    }

    #[test]
    fn control_characters_from_a_peer_are_shown_escaped() {
        assert_eq!(clean("plain 你好"), "plain 你好");
        assert_eq!(clean("a\u{1b}[2Jb"), r"a\u{1b}[2Jb");
        assert_eq!(clean("line\nforged"), r"line\nforged");
        assert_eq!(clean("c1\u{9b}31m del\u{7f}"), r"c1\u{9b}31m del\u{7f}");
        assert_eq!(text(&json!("x\u{1b}")), r"x\u{1b}");
        let raw = raw(&json!({"id": "x\u{9b}y"}));
        assert!(!raw.chars().any(|c| c.is_control() && c != '\n'), "{raw:?}");
        assert!(raw.contains(r"x\u{9b}y"), "{raw}");
    }
}

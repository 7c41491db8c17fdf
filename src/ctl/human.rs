//! What a person sees for each command's result. Results of an unexpected
//! shape are printed as JSON rather than hidden.

use std::time::SystemTime;

use serde_json::Value;

use super::table;
use super::units;
use super::{sessions, CtlCommand};

/// Session states in the order `status` lists their counts.
const STATES: &[&str] = &[
    "stopped",
    "connecting",
    "handshaking",
    "ready",
    "backoff",
    "failed",
    "activating",
];

/// The text to print for a successful `command` whose result is `result`,
/// ending with a newline (or empty).
pub fn render(command: &CtlCommand, result: &Value, now: SystemTime) -> String {
    match command {
        CtlCommand::Ping => ping(result),
        CtlCommand::Status => status(result),
        CtlCommand::Sessions => sessions::table(result, now),
        CtlCommand::Session { .. } => sessions::detail(result, now),
        CtlCommand::Connect { name } => requested(result, name, "connect"),
        CtlCommand::Disconnect { name } => requested(result, name, "disconnect"),
        CtlCommand::Reconnect { name } => requested(result, name, "reconnect"),
        CtlCommand::Send { .. } | CtlCommand::Listen { .. } | CtlCommand::Abort { .. } | CtlCommand::Audio { .. } => {
            delivery(result)
        }
        // The events follow; the subscription itself is said on stderr.
        CtlCommand::Subscribe { .. } => String::new(),
        CtlCommand::Reload => reload(result),
        CtlCommand::Metrics => metrics(result),
    }
}

/// Pretty JSON with a final newline, for results this client cannot describe.
pub fn raw(value: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    )
}

fn ping(result: &Value) -> String {
    match (&result["version"], &result["pid"]) {
        (Value::Null, Value::Null) => raw(result),
        (version, pid) => format!("wsvisor {} (pid {}) is alive\n", units::text(version), units::text(pid)),
    }
}

fn status(result: &Value) -> String {
    if !result.is_object() {
        return raw(result);
    }
    let uptime = match result["uptime_s"].as_u64() {
        Some(secs) => units::uptime(secs),
        None => units::text(&result["uptime_s"]),
    };
    let pairs = [
        ("version", units::text(&result["version"])),
        ("pid", units::text(&result["pid"])),
        ("uptime", uptime),
        ("config", units::text(&result["config"])),
        ("sessions", session_counts(&result["sessions"])),
    ];
    table::pairs("", &pairs.map(|(key, value)| (key.to_owned(), value)))
}

/// `3 total, 2 ready, 1 backoff`: the states with sessions in them.
fn session_counts(counts: &Value) -> String {
    let Some(counts) = counts.as_object() else {
        return units::text(counts);
    };
    let mut parts = vec![format!(
        "{} total",
        units::text(counts.get("total").unwrap_or(&Value::Null))
    )];
    let known = STATES.iter().filter_map(|&state| Some((state, counts.get(state)?)));
    let unknown = counts
        .iter()
        .filter(|(key, _)| *key != "total" && !STATES.contains(&key.as_str()));
    for (state, n) in known.chain(unknown.map(|(key, n)| (key.as_str(), n))) {
        if n.as_u64() != Some(0) {
            parts.push(format!("{} {state}", units::text(n)));
        }
    }
    parts.join(", ")
}

fn requested(result: &Value, name: &str, cmd: &str) -> String {
    let session = result["session"].as_str().unwrap_or(name);
    let what = result["requested"].as_str().unwrap_or(cmd);
    format!("{session}: {what} requested\n")
}

/// `sent`, or `queued at position N` while the session is not ready.
fn delivery(result: &Value) -> String {
    if result["sent"] == Value::Bool(true) {
        "sent\n".to_owned()
    } else if result["queued"] == Value::Bool(true) {
        match &result["position"] {
            Value::Null => "queued\n".to_owned(),
            position => format!("queued at position {}\n", units::text(position)),
        }
    } else {
        raw(result)
    }
}

/// `reloaded: added a, b; removed c; changed d; 2 unchanged`.
fn reload(result: &Value) -> String {
    if !result.is_object() {
        return raw(result);
    }
    let mut parts = Vec::new();
    for key in ["added", "removed", "changed"] {
        match &result[key] {
            Value::Array(names) if names.is_empty() => {}
            Value::Array(names) => parts.push(format!(
                "{key} {}",
                names.iter().map(units::text).collect::<Vec<_>>().join(", ")
            )),
            Value::Null => {}
            other => parts.push(format!("{key} {other}")),
        }
    }
    match &result["unchanged"] {
        Value::Null => {}
        n if n.as_u64() == Some(0) => {}
        n => parts.push(format!("{} unchanged", units::text(n))),
    }
    if parts.is_empty() {
        parts.push("no sessions".to_owned());
    }
    format!("reloaded: {}\n", parts.join("; "))
}

fn metrics(result: &Value) -> String {
    match result["text"].as_str() {
        Some(text) if text.is_empty() || text.ends_with('\n') => text.to_owned(),
        Some(text) => format!("{text}\n"),
        None => raw(result),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn show(command: CtlCommand, result: Value) -> String {
        render(&command, &result, SystemTime::UNIX_EPOCH)
    }

    fn name(name: &str) -> String {
        name.to_owned()
    }

    #[test]
    fn ping_line() {
        assert_eq!(
            show(CtlCommand::Ping, json!({"version": "0.1.0", "pid": 123})),
            "wsvisor 0.1.0 (pid 123) is alive\n"
        );
        assert_eq!(show(CtlCommand::Ping, json!({})), "{}\n");
    }

    #[test]
    fn status_lists_only_populated_states() {
        let result = json!({"version": "0.1.0", "pid": 123, "uptime_s": 3725, "config": "/etc/wsvisor/config.toml",
            "sessions": {"total": 3, "stopped": 0, "connecting": 0, "handshaking": 0, "ready": 2, "backoff": 1,
                         "failed": 0, "activating": 0}});
        let expected = "\
version:   0.1.0
pid:       123
uptime:    1h 2m 5s
config:    /etc/wsvisor/config.toml
sessions:  3 total, 2 ready, 1 backoff
";
        assert_eq!(show(CtlCommand::Status, result), expected);
        let odd = show(CtlCommand::Status, json!({"sessions": {"total": 0, "sleeping": 2}}));
        assert!(odd.contains("sessions:  0 total, 2 sleeping\n"), "{odd}");
        assert!(odd.contains("uptime:    -\n"), "{odd}");
    }

    #[test]
    fn actions_and_deliveries() {
        let result = json!({"session": "kitchen", "requested": "disconnect"});
        assert_eq!(
            show(CtlCommand::Disconnect { name: name("kitchen") }, result),
            "kitchen: disconnect requested\n"
        );
        assert_eq!(
            show(CtlCommand::Connect { name: name("attic") }, json!({})),
            "attic: connect requested\n"
        );
        let abort = CtlCommand::Abort {
            name: name("k"),
            reason: None,
        };
        assert_eq!(show(abort, json!({"sent": true})), "sent\n");
        let send = CtlCommand::Send {
            name: name("k"),
            message: "{}".into(),
        };
        assert_eq!(
            show(send, json!({"queued": true, "position": 4})),
            "queued at position 4\n"
        );
    }

    #[test]
    fn reload_omits_empty_parts() {
        let result = json!({"added": ["a", "b"], "removed": ["c"], "changed": [], "unchanged": 2});
        assert_eq!(
            show(CtlCommand::Reload, result),
            "reloaded: added a, b; removed c; 2 unchanged\n"
        );
        let result = json!({"added": [], "removed": [], "changed": ["d"], "unchanged": 0});
        assert_eq!(show(CtlCommand::Reload, result), "reloaded: changed d\n");
        let result = json!({"added": [], "removed": [], "changed": [], "unchanged": 0});
        assert_eq!(show(CtlCommand::Reload, result), "reloaded: no sessions\n");
    }

    #[test]
    fn metrics_as_is() {
        let text = "# TYPE wsvisor_up gauge\nwsvisor_up 1\n";
        assert_eq!(show(CtlCommand::Metrics, json!({ "text": text })), text);
        assert_eq!(show(CtlCommand::Metrics, json!({"text": "x 1"})), "x 1\n");
    }
}

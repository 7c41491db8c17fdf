//! What a person sees for each command's result. A result of a shape
//! this client does not know is printed as JSON rather than hidden; every
//! string the daemon chose is made safe for a terminal.

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde_json::Value;
use strum::VariantArray;
use wsvisor_actors::state::SessionState;

use super::table;
use super::units;
use super::{identity, sessions, CtlCommand};
use crate::protocol::{Delivery, MetricsText, Pong, ReloadSummary, Requested, SessionToolList, StateCounts, Status};

/// The text to print for a successful `command` whose result is `result`,
/// ending with a newline (or empty).
pub fn render(command: &CtlCommand, result: &Value, now: SystemTime) -> String {
    match command {
        CtlCommand::Ping => typed(result, ping),
        CtlCommand::Status => typed(result, status),
        CtlCommand::Sessions => sessions::table(result, now),
        CtlCommand::Session { .. } => sessions::detail(result, now),
        CtlCommand::Connect { .. } | CtlCommand::Disconnect { .. } | CtlCommand::Reconnect { .. } => {
            typed(result, requested)
        }
        CtlCommand::Send { .. } | CtlCommand::Listen { .. } | CtlCommand::Abort { .. } | CtlCommand::Audio { .. } => {
            typed(result, delivery)
        }
        // The events follow; the subscription itself is said on stderr.
        CtlCommand::Subscribe { .. } => String::new(),
        CtlCommand::Identity { .. } => identity::render(result),
        CtlCommand::Reload => typed(result, reload),
        CtlCommand::Metrics => typed(result, metrics),
        CtlCommand::Tools { .. } => typed(result, tools),
        // `ask` prints the answer itself.
        CtlCommand::Ask { .. } => String::new(),
    }
}

/// `kitchen: mcp builtin, 2 tools`, then one row per tool.
fn tools(list: SessionToolList) -> String {
    let count = match list.tools.len() {
        1 => "1 tool".to_owned(),
        n => format!("{n} tools"),
    };
    let mut text = format!(
        "{}: mcp {}, {count}\n",
        units::clean(&list.session),
        units::clean(&list.mcp)
    );
    if list.tools.is_empty() {
        return text;
    }
    let mut rows = vec![["NAME", "SOURCE", "TIMEOUT", "DESCRIPTION"].map(str::to_owned).to_vec()];
    for tool in &list.tools {
        // The first line of the description: a table row stays one line.
        let description = tool.description.lines().next().unwrap_or_default();
        rows.push(vec![
            units::clean(&tool.name),
            units::clean(&tool.source),
            units::millis(tool.timeout_ms),
            units::clean(description),
        ]);
    }
    text.push_str(&table::columns(&rows));
    text
}

/// `show` of the result read as `T`, or the result's JSON when it is not a `T`.
fn typed<T: DeserializeOwned>(result: &Value, show: impl FnOnce(T) -> String) -> String {
    match T::deserialize(result) {
        Ok(typed) => show(typed),
        Err(_) => units::raw(result),
    }
}

fn ping(pong: Pong) -> String {
    format!("wsvisor {} (pid {}) is alive\n", units::clean(&pong.version), pong.pid)
}

fn status(status: Status) -> String {
    let pairs = [
        ("version", units::clean(&status.version)),
        ("pid", status.pid.to_string()),
        ("uptime", units::uptime(status.uptime_s)),
        ("config", units::clean(&status.config)),
        ("sessions", session_counts(&status.sessions)),
    ];
    table::pairs("", &pairs.map(|(key, value)| (key.to_owned(), value)))
}

/// `3 total, 2 ready, 1 backoff`: the states with sessions in them, in the
/// order of the states' life, then states this client does not know.
fn session_counts(counts: &StateCounts) -> String {
    let mut parts = vec![format!("{} total", counts.total)];
    let names: Vec<&str> = SessionState::VARIANTS.iter().map(|state| state.into()).collect();
    let known = names
        .iter()
        .filter_map(|&name| Some((name, *counts.by_state.get(name)?)));
    let unknown = counts
        .by_state
        .iter()
        .filter(|(name, _)| !names.contains(&name.as_str()))
        .map(|(name, n)| (name.as_str(), *n));
    for (state, n) in known.chain(unknown) {
        if n != 0 {
            parts.push(format!("{n} {}", units::clean(state)));
        }
    }
    parts.join(", ")
}

fn requested(requested: Requested) -> String {
    format!(
        "{}: {} requested\n",
        units::clean(&requested.session),
        units::clean(&requested.requested)
    )
}

/// `sent`, or `queued at position N` while the session is not ready.
fn delivery(delivery: Delivery) -> String {
    match delivery {
        Delivery::Sent { .. } => "sent\n".to_owned(),
        Delivery::Queued { position, .. } => format!("queued at position {position}\n"),
    }
}

/// `reloaded: added a, b; removed c; changed d; 2 unchanged`.
fn reload(summary: ReloadSummary) -> String {
    let mut parts = Vec::new();
    for (key, names) in [
        ("added", &summary.added),
        ("removed", &summary.removed),
        ("changed", &summary.changed),
    ] {
        if !names.is_empty() {
            let names: Vec<String> = names.iter().map(|name| units::clean(name)).collect();
            parts.push(format!("{key} {}", names.join(", ")));
        }
    }
    if summary.unchanged > 0 {
        parts.push(format!("{} unchanged", summary.unchanged));
    }
    for (name, why) in &summary.failed {
        parts.push(format!("FAILED {}: {}", units::clean(name), units::clean(why)));
    }
    if parts.is_empty() {
        parts.push("no sessions".to_owned());
    }
    format!("reloaded: {}\n", parts.join("; "))
}

fn metrics(metrics: MetricsText) -> String {
    // Many lines by design; each made safe on its own.
    let mut text: String = metrics.text.lines().map(|line| units::clean(line) + "\n").collect();
    if text.is_empty() {
        text.push('\n');
    }
    text
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
        // A state this client does not know yet is still counted.
        let newer = json!({"version": "0.2.0", "pid": 1, "uptime_s": 0, "config": "c",
            "sessions": {"total": 2, "ready": 0, "sleeping": 2}});
        let newer = show(CtlCommand::Status, newer);
        assert!(newer.contains("sessions:  2 total, 2 sleeping\n"), "{newer}");
        // A result of another shape altogether is shown as its JSON.
        let odd = json!({"sessions": {"total": 0, "sleeping": 2}});
        assert_eq!(show(CtlCommand::Status, odd.clone()), units::raw(&odd));
    }

    #[test]
    fn actions_and_deliveries() {
        let result = json!({"session": "kitchen", "requested": "disconnect"});
        assert_eq!(
            show(CtlCommand::Disconnect { name: name("kitchen") }, result),
            "kitchen: disconnect requested\n"
        );
        assert_eq!(
            show(
                CtlCommand::Connect { name: name("attic") },
                json!({"session": "attic", "requested": "connect"})
            ),
            "attic: connect requested\n"
        );
        assert_eq!(show(CtlCommand::Connect { name: name("attic") }, json!({})), "{}\n");
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
    fn tools_as_a_table() {
        let result = json!({"session": "kitchen", "mcp": "builtin", "tools": [
            {"name": "cpu_temp", "description": "CPU temperature\nin °C", "source": "config", "timeout_ms": 10000, "input_schema": {"type": "object"}},
            {"name": "lamp", "description": "A lamp\u{1b}[2J", "source": "program", "timeout_ms": 1500, "input_schema": {"type": "object"}},
        ]});
        let expected = "\
kitchen: mcp builtin, 2 tools
NAME      SOURCE   TIMEOUT  DESCRIPTION
cpu_temp  config   10s      CPU temperature
lamp      program  1.5s     A lamp\\u{1b}[2J
";
        assert_eq!(show(CtlCommand::Tools { name: name("kitchen") }, result), expected);
        let off = json!({"session": "attic", "mcp": "off", "tools": []});
        assert_eq!(
            show(CtlCommand::Tools { name: name("attic") }, off),
            "attic: mcp off, 0 tools\n"
        );
    }

    #[test]
    fn metrics_as_is() {
        let text = "# TYPE wsvisor_up gauge\nwsvisor_up 1\n";
        assert_eq!(show(CtlCommand::Metrics, json!({ "text": text })), text);
        assert_eq!(show(CtlCommand::Metrics, json!({"text": "x 1"})), "x 1\n");
    }
}

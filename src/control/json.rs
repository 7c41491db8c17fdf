//! How sessions and events look on the wire (CONTRACT §3).

use std::time::{Duration, SystemTime};
use strum::VariantArray;

use base64::Engine;
use serde_json::{json, Map, Value};
use wsvisor_actors::events::Event;
use wsvisor_actors::loss::Cause;
use wsvisor_actors::state::{SessionCounters, SessionSummary};

/// RFC 3339 in UTC with milliseconds.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// The summary of `sessions` and `session`.
pub fn summary(s: &SessionSummary) -> Value {
    let last_close = s.last_close.as_ref().map(|c| {
        let mut close = json!({
            "code": c.code,
            "reason": c.reason,
            "at": timestamp(c.at),
            "cause": c.cause.as_str(),
        });
        if let Some(status) = c.status {
            close["status"] = json!(status);
        }
        close
    });
    let mut value = json!({
        "name": s.name,
        "state": s.state.as_str(),
        "session_id": s.session_id,
        "url": s.url,
        "attempt": s.attempt,
        "max_attempts": s.max_attempts,
        "since": timestamp(s.since),
        "next_retry_in_ms": s.next_retry_in.map(millis),
        "last_close": last_close,
        "rtt_ms": s.rtt.map(|rtt| (rtt.as_secs_f64() * 1e6).round() / 1e3),
        "queued": s.queued,
    });
    if let Some(code) = &s.activation_code {
        value["activation_code"] = json!(code);
    }
    value
}

/// The summary plus counters, for `session`.
pub fn summary_with_counters(s: &SessionSummary) -> Value {
    let mut value = summary(s);
    value["counters"] = counters(&s.counters);
    value
}

fn counters(c: &SessionCounters) -> Value {
    let losses: Map<String, Value> = Cause::VARIANTS
        .iter()
        .map(|cause| (cause.as_str().to_owned(), json!(c.losses_of(*cause))))
        .collect();
    json!({
        "connects": c.connects,
        "losses": losses,
        "reconnect_attempts": c.reconnect_attempts,
        "give_ups": c.give_ups,
        "pings_sent": c.traffic.pings_sent,
        "pongs": c.traffic.pongs,
        "frames_in": c.traffic.frames_in,
        "bytes_in": c.traffic.bytes_in,
        "frames_out": c.traffic.frames_out,
        "bytes_out": c.traffic.bytes_out,
        "dropped": c.dropped,
    })
}

/// One subscriber event as a line (without its newline); audio payloads
/// only when asked for. A server message is embedded as the compact JSON
/// text it already is, never parsed into a tree.
pub fn event_line(shared: &Event, with_audio: bool) -> String {
    match shared {
        Event::Message { session, message } => {
            format!(
                r#"{{"event":"message","session":{},"message":{message}}}"#,
                json!(session)
            )
        }
        other => event(other, with_audio).to_string(),
    }
}

fn event(event: &Event, with_audio: bool) -> Value {
    match event {
        Event::State(u) => {
            let mut value = json!({
                "event": "state",
                "session": u.session,
                "state": u.state.as_str(),
                "attempt": u.attempt,
                "retry_in_ms": u.retry_in.map(millis),
                "cause": u.loss.as_ref().map(|l| l.cause.as_str()),
                "code": u.loss.as_ref().and_then(|l| l.code),
                "at": timestamp(u.at),
            });
            if let Some(status) = u.loss.as_ref().and_then(|l| l.status) {
                value["status"] = json!(status);
            }
            if let Some(id) = &u.session_id {
                value["session_id"] = json!(id);
            }
            if let Some(code) = &u.activation_code {
                value["activation_code"] = json!(code);
            }
            value
        }
        Event::Message { session, message } => {
            json!({"event": "message", "session": session, "message": serde_json::from_str::<Value>(message).ok()})
        }
        Event::Audio { session, data } => {
            let mut value = json!({"event": "audio", "session": session, "bytes": data.len()});
            if with_audio {
                value["data"] = json!(base64::engine::general_purpose::STANDARD.encode(data));
            }
            value
        }
        Event::Dropped { session, count, why } => {
            json!({"event": "dropped", "session": session, "count": count, "why": why.as_str()})
        }
        Event::Lagged { skipped } => json!({"event": "lagged", "skipped": skipped}),
    }
}

//! The `metrics` command: Prometheus text exposition (format 0.0.4) of
//! every session's counters, plus daemon uptime and build info.

use std::fmt::Write;
use std::time::Duration;
use strum::VariantArray;

use wsvisor_actors::loss::Cause;
use wsvisor_actors::state::{SessionState, SessionSummary};

/// One metric family: name, type and help line.
struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
}

impl Family<'_> {
    fn header(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
    }
}

/// A family with one sample per session.
struct PerSession {
    family: Family<'static>,
    value: fn(&SessionSummary) -> f64,
}

const PER_SESSION: &[PerSession] = &[
    PerSession {
        family: counter("wsvisor_session_connects_total", "Connections that reached ready."),
        value: |s| s.counters.connects as f64,
    },
    PerSession {
        family: counter(
            "wsvisor_session_reconnect_attempts_total",
            "Reconnect attempts scheduled.",
        ),
        value: |s| s.counters.reconnect_attempts as f64,
    },
    PerSession {
        family: counter(
            "wsvisor_session_give_ups_total",
            "Times the session was parked as failed.",
        ),
        value: |s| s.counters.give_ups as f64,
    },
    PerSession {
        family: counter(
            "wsvisor_session_pings_sent_total",
            "WebSocket Pings sent by the heartbeat.",
        ),
        value: |s| s.counters.traffic.pings_sent as f64,
    },
    PerSession {
        family: counter("wsvisor_session_pongs_total", "Pongs answering our Pings."),
        value: |s| s.counters.traffic.pongs as f64,
    },
    PerSession {
        family: gauge(
            "wsvisor_session_rtt_seconds",
            "Last Ping round trip; NaN when none is known.",
        ),
        value: |s| s.rtt.map_or(f64::NAN, |rtt| rtt.as_secs_f64()),
    },
    PerSession {
        family: counter("wsvisor_session_frames_in_total", "Frames received."),
        value: |s| s.counters.traffic.frames_in as f64,
    },
    PerSession {
        family: counter("wsvisor_session_bytes_in_total", "Payload bytes received."),
        value: |s| s.counters.traffic.bytes_in as f64,
    },
    PerSession {
        family: counter("wsvisor_session_frames_out_total", "Frames sent."),
        value: |s| s.counters.traffic.frames_out as f64,
    },
    PerSession {
        family: counter("wsvisor_session_bytes_out_total", "Payload bytes sent."),
        value: |s| s.counters.traffic.bytes_out as f64,
    },
    PerSession {
        family: gauge("wsvisor_session_queued", "Text messages held until ready."),
        value: |s| s.queued as f64,
    },
    PerSession {
        family: counter(
            "wsvisor_session_dropped_total",
            "Held text messages dropped (ttl or overflow).",
        ),
        value: |s| s.counters.dropped as f64,
    },
    PerSession {
        family: gauge("wsvisor_session_attempt", "Current attempt of the reconnect burst."),
        value: |s| s.attempt as f64,
    },
];

/// Render all metrics. Session names are `[a-z0-9_-]`, safe as label values.
pub fn render(sessions: &[SessionSummary], uptime: Duration) -> String {
    let mut out = String::new();
    for metric in PER_SESSION {
        metric.family.header(&mut out);
        for s in sessions {
            let _ = writeln!(
                out,
                "{}{{session=\"{}\"}} {}",
                metric.family.name,
                s.name,
                number((metric.value)(s))
            );
        }
    }
    let losses = counter("wsvisor_session_losses_total", "Connections lost, by cause.");
    losses.header(&mut out);
    for s in sessions {
        for &cause in Cause::VARIANTS {
            let n = s.counters.losses_of(cause);
            let _ = writeln!(out, "{}{{session=\"{}\",cause=\"{cause}\"}} {n}", losses.name, s.name);
        }
    }
    let state = gauge("wsvisor_session_state", "1 for the state the session is in.");
    state.header(&mut out);
    for s in sessions {
        for &candidate in SessionState::VARIANTS {
            let on = u8::from(s.state == candidate);
            let _ = writeln!(
                out,
                "{}{{session=\"{}\",state=\"{candidate}\"}} {on}",
                state.name, s.name
            );
        }
    }
    let up = gauge("wsvisor_uptime_seconds", "Seconds since the daemon started.");
    up.header(&mut out);
    let _ = writeln!(out, "{} {}", up.name, number(uptime.as_secs_f64()));
    let build = gauge("wsvisor_build_info", "Build information.");
    build.header(&mut out);
    let _ = writeln!(out, "{}{{version=\"{}\"}} 1", build.name, env!("CARGO_PKG_VERSION"));
    out
}

const fn counter<'a>(name: &'a str, help: &'a str) -> Family<'a> {
    Family {
        name,
        kind: "counter",
        help,
    }
}

const fn gauge<'a>(name: &'a str, help: &'a str) -> Family<'a> {
    Family {
        name,
        kind: "gauge",
        help,
    }
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use wsvisor_actors::state::SessionCounters;

    use super::*;

    #[test]
    fn every_line_is_a_comment_or_a_sample_of_a_declared_family() {
        let mut losses = [0; Cause::VARIANTS.len()];
        losses[1] = 2;
        let counters = SessionCounters {
            connects: 3,
            losses,
            ..SessionCounters::default()
        };
        let summary = SessionSummary {
            name: "kitchen".into(),
            state: SessionState::Ready,
            session_id: None,
            url: Some("ws://x/".into()),
            attempt: 0,
            max_attempts: 10,
            since: SystemTime::now(),
            next_retry_in: None,
            last_close: None,
            rtt: Some(Duration::from_micros(400)),
            queued: 0,
            activation_code: None,
            ota: None,
            counters,
        };
        let text = render(&[summary], Duration::from_secs(5));
        assert!(text.contains("wsvisor_session_connects_total{session=\"kitchen\"} 3\n"));
        assert!(text.contains("wsvisor_session_losses_total{session=\"kitchen\",cause=\"abnormal\"} 2\n"));
        assert!(text.contains("wsvisor_session_state{session=\"kitchen\",state=\"ready\"} 1\n"));
        assert!(text.contains("wsvisor_session_rtt_seconds{session=\"kitchen\"} 0.0004\n"));
        assert!(text.contains("wsvisor_uptime_seconds 5\n"));
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(
                    Some(&name.to_owned()),
                    declared.last(),
                    "sample outside its family: {line}"
                );
                let value = line.rsplit(' ').next().unwrap();
                assert!(value == "NaN" || value.parse::<f64>().is_ok(), "bad value: {line}");
            }
        }
    }
}

//! The MCP part of `metrics`: tool calls by tool and outcome, and a latency
//! histogram per tool (from the server's request to the reply handed to
//! the connection), in Prometheus text format 0.0.4. Appended to the
//! session metrics of `metrics::render`.

use std::fmt::Write;

use wsvisor_actors::mcp::stats::{StatsSnapshot, LATENCY_BUCKETS};

const CALLS: &str = "wsvisor_tool_calls_total";
const LATENCY: &str = "wsvisor_tool_call_duration_seconds";

/// The families, with a header even when no call was made yet (a
/// dashboard then finds the name).
pub fn render(stats: &StatsSnapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP {CALLS} MCP tool calls from the servers, by tool and outcome."
    );
    let _ = writeln!(out, "# TYPE {CALLS} counter");
    for ((tool, outcome), n) in &stats.calls {
        let _ = writeln!(
            out,
            "{CALLS}{{tool=\"{}\",outcome=\"{}\"}} {n}",
            label(tool),
            outcome.as_str()
        );
    }
    let _ = writeln!(
        out,
        "# HELP {LATENCY} Time from a server's tools/call to its reply, by tool."
    );
    let _ = writeln!(out, "# TYPE {LATENCY} histogram");
    for (tool, histogram) in &stats.latency {
        let tool = label(tool);
        for (bound, n) in LATENCY_BUCKETS.iter().zip(histogram.cumulative()) {
            let _ = writeln!(out, "{LATENCY}_bucket{{tool=\"{tool}\",le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{LATENCY}_bucket{{tool=\"{tool}\",le=\"+Inf\"}} {}",
            histogram.count
        );
        let _ = writeln!(out, "{LATENCY}_sum{{tool=\"{tool}\"}} {}", histogram.sum);
        let _ = writeln!(out, "{LATENCY}_count{{tool=\"{tool}\"}} {}", histogram.count);
    }
    out
}

/// A label value as the text format wants it. Tool names are
/// `[A-Za-z0-9_.-]` already; this keeps the format right whatever comes.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wsvisor_actors::mcp::{CallOutcome, CallStats};

    use super::*;

    #[test]
    fn calls_by_outcome_and_a_cumulative_histogram() {
        let stats = CallStats::default();
        stats.record("lamp", CallOutcome::Ok, Duration::from_millis(20));
        stats.record("lamp", CallOutcome::Timeout, Duration::from_secs(11));
        let text = render(&stats.snapshot());
        assert!(
            text.contains("wsvisor_tool_calls_total{tool=\"lamp\",outcome=\"ok\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("wsvisor_tool_calls_total{tool=\"lamp\",outcome=\"timeout\"} 1\n"));
        assert!(text.contains("wsvisor_tool_call_duration_seconds_bucket{tool=\"lamp\",le=\"0.025\"} 1\n"));
        assert!(text.contains("wsvisor_tool_call_duration_seconds_bucket{tool=\"lamp\",le=\"10\"} 1\n"));
        assert!(text.contains("wsvisor_tool_call_duration_seconds_bucket{tool=\"lamp\",le=\"30\"} 2\n"));
        assert!(text.contains("wsvisor_tool_call_duration_seconds_bucket{tool=\"lamp\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("wsvisor_tool_call_duration_seconds_count{tool=\"lamp\"} 2\n"));
        let empty = render(&StatsSnapshot::default());
        assert_eq!(empty.lines().count(), 4, "headers only: {empty}");
    }
}

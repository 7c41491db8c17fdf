//! Tool-call metrics shared by every session's responder: calls by tool
//! and outcome, and a latency histogram per tool. Written once per call,
//! read by the `metrics` command. The number of tools counted is bounded
//! (tools come and go with the programs that offer them), so a program
//! inventing names cannot grow the table without end.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds, in seconds, of the latency buckets: from a shell script
/// (milliseconds) to the real server's 30 s patience.
pub const LATENCY_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0];

/// Tools counted by name; calls of others are counted under [`OTHER_TOOLS`].
pub const MAX_TOOLS_COUNTED: usize = 256;

/// The label of tools past [`MAX_TOOLS_COUNTED`].
pub const OTHER_TOOLS: &str = "_other";

/// The label of calls of a tool that does not exist (the name the server
/// asked for is not a label: it could be anything).
pub const UNKNOWN_TOOL: &str = "_unknown";

/// How a call ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum CallOutcome {
    /// The tool answered.
    Ok,
    /// The tool ran and failed (non-zero exit, the program's error).
    Error,
    /// It did not answer within its timeout.
    Timeout,
    /// Its output passed `max_output`.
    OutputTooLarge,
    /// The command could not be started.
    NotStarted,
    /// Too many calls of it (or of this session) were running.
    Busy,
    /// The program offering it went away before answering.
    Withdrawn,
    /// No such tool.
    UnknownTool,
    /// The arguments failed the schema: nothing ran.
    InvalidArguments,
    /// Answered, but the connection that asked was gone.
    Abandoned,
}

impl CallOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A latency histogram: counts per bucket (cumulative when read), their
/// sum and count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Observations at most `LATENCY_BUCKETS[i]` seconds, not cumulative.
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    /// All observations.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

impl Histogram {
    fn observe(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// Observations at most `LATENCY_BUCKETS[i]`, as Prometheus wants them.
    pub fn cumulative(&self) -> [u64; LATENCY_BUCKETS.len()] {
        let mut total = 0;
        self.buckets.map(|n| {
            total += n;
            total
        })
    }
}

/// Counts, by tool label.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Calls by (tool, outcome).
    pub calls: BTreeMap<(String, CallOutcome), u64>,
    /// Latency by tool, from the request's arrival to the reply's hand-off.
    pub latency: BTreeMap<String, Histogram>,
}

/// The shared counters.
#[derive(Debug, Default)]
pub struct CallStats {
    inner: Mutex<StatsSnapshot>,
}

impl CallStats {
    /// Count one call of `tool` (a declared tool's name, or
    /// [`UNKNOWN_TOOL`]) that ended with `outcome` after `took`.
    pub fn record(&self, tool: &str, outcome: CallOutcome, took: Duration) {
        let Ok(mut stats) = self.inner.lock() else { return };
        let known = stats.latency.contains_key(tool) || stats.latency.len() < MAX_TOOLS_COUNTED;
        let label = if known { tool } else { OTHER_TOOLS };
        *stats.calls.entry((label.to_owned(), outcome)).or_default() += 1;
        stats.latency.entry(label.to_owned()).or_default().observe(took);
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.inner.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_tool_and_outcome_with_a_bounded_number_of_tools() {
        let stats = CallStats::default();
        stats.record("lamp", CallOutcome::Ok, Duration::from_millis(3));
        stats.record("lamp", CallOutcome::Ok, Duration::from_millis(300));
        stats.record("lamp", CallOutcome::Timeout, Duration::from_secs(40));
        let snap = stats.snapshot();
        assert_eq!(snap.calls[&("lamp".to_owned(), CallOutcome::Ok)], 2);
        let lamp = &snap.latency["lamp"];
        assert_eq!(lamp.count, 3);
        let cumulative = lamp.cumulative();
        assert_eq!(cumulative[0], 1, "3 ms <= 5 ms");
        assert_eq!(cumulative[LATENCY_BUCKETS.len() - 1], 2, "40 s is only in +Inf");
        for i in 0..MAX_TOOLS_COUNTED + 10 {
            stats.record(&format!("t{i}"), CallOutcome::Error, Duration::ZERO);
        }
        let snap = stats.snapshot();
        assert_eq!(snap.latency.len(), MAX_TOOLS_COUNTED + 1);
        assert_eq!(snap.latency[OTHER_TOOLS].count, 11);
        assert_eq!(CallOutcome::OutputTooLarge.as_str(), "output_too_large");
    }
}

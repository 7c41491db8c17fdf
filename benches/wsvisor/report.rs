//! Numbers into words: percentiles of samples, the machine the run came
//! from, and the results table (Markdown, ready for the README).

use std::fmt::Write as _;
use std::time::Duration;

/// Sorted samples, for percentiles.
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Takes and sorts `samples`.
    pub fn new(mut samples: Vec<Duration>) -> Samples {
        samples.sort();
        Samples(samples)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank percentile, `p` in 0..=100.
    pub fn pct(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    /// The median.
    pub fn median(&self) -> Duration {
        self.pct(50.0)
    }

    /// The largest.
    pub fn max(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }

    /// `median / p99 / max` in milliseconds.
    pub fn summary_ms(&self) -> String {
        format!("{} / {} / {} ms", ms(self.median()), ms(self.pct(99.0)), ms(self.max()))
    }
}

/// Milliseconds with the precision that matters: `0.213`, `12.4`, `1530`.
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v < 10.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Microseconds: `87`, `1240`.
pub fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

/// One line of the results table.
pub struct Row {
    /// What was measured.
    pub bench: String,
    /// The figure(s), with units.
    pub result: String,
    /// The target, or `-`.
    pub target: String,
    /// `met`, `missed by ...`, or `-`.
    pub verdict: String,
}

impl Row {
    /// A row without a target.
    pub fn info(bench: impl Into<String>, result: impl Into<String>) -> Row {
        Row {
            bench: bench.into(),
            result: result.into(),
            target: "-".into(),
            verdict: "-".into(),
        }
    }

    /// A row with a target and whether it was met; `missed` says by how much.
    pub fn check(
        bench: impl Into<String>,
        result: impl Into<String>,
        target: impl Into<String>,
        met: bool,
        missed: impl Into<String>,
    ) -> Row {
        Row {
            bench: bench.into(),
            result: result.into(),
            target: target.into(),
            verdict: if met {
                "met".into()
            } else {
                format!("missed by {}", missed.into())
            },
        }
    }
}

/// A Markdown table of `rows`.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from("| benchmark | result | target | verdict |\n|---|---|---|---|\n");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.bench, row.result, row.target, row.verdict
        );
    }
    out
}

/// The machine, as the README's table names it.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| format!(", {:.0} GiB RAM", kib as f64 / 1048576.0));
    let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({model}){memory}, Linux {kernel}, {rustc}")
}

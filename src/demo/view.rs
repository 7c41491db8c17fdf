//! What the demo shows. On a terminal, a table of the sessions redrawn in
//! place (ANSI cursor movement, nothing that needs a terminal library) with
//! the latest events under it; anywhere else (a pipe, a CI log), one plain
//! line per event, so the output reads as a log. Then the summary.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use wsvisor_actors::state::SessionState;

use super::tracker::{out_of_service, Note, Tracker};
use crate::protocol::StateEvent;

/// Latest event lines kept under the table.
const RECENT: usize = 8;

/// Width assumed when the terminal does not say.
const DEFAULT_WIDTH: usize = 80;

/// Where the demo writes.
pub struct View {
    tty: bool,
    started: Instant,
    /// Lines of the last frame, to move back over them.
    drawn: usize,
    recent: VecDeque<String>,
}

impl View {
    /// Output for a terminal (`tty`) or a log.
    pub fn new(tty: bool, started: Instant) -> View {
        View {
            tty,
            started,
            drawn: 0,
            recent: VecDeque::new(),
        }
    }

    /// Whether the output is a live table.
    pub fn is_live(&self) -> bool {
        self.tty
    }

    /// The demo's clock starts now (all sessions ready).
    pub fn restart_clock(&mut self, at: Instant) {
        self.started = at;
    }

    /// One line of the story: printed at once in a log, kept for the next
    /// frame on a terminal.
    pub fn line(&mut self, now: Instant, text: &str) {
        let t = now.saturating_duration_since(self.started);
        let line = format!("{:>7.3}s  {text}", t.as_secs_f64());
        if self.tty {
            self.recent.push_back(line);
            while self.recent.len() > RECENT {
                self.recent.pop_front();
            }
        } else {
            println!("{line}");
        }
    }

    /// Plain text written as is (headers, the summary).
    pub fn say(&mut self, text: &str) {
        self.clear();
        println!("{text}");
    }

    /// Redraws the table (terminal only).
    pub fn draw(&mut self, tracker: &Tracker, now: Instant, status: &str) {
        if !self.tty {
            return;
        }
        let width = terminal_width().saturating_sub(1).max(40);
        let mut lines = vec![status.to_owned(), String::new()];
        lines.extend(session_table(tracker, now));
        lines.push(String::new());
        let (recovered, hits) = tracker.recovery_counts();
        lines.push(format!(
            "faults {}  recovered {recovered}/{hits}  messages sent {}  received {}",
            tracker.faults().len(),
            tracker.messages_sent,
            tracker.messages_received
        ));
        lines.push(String::new());
        lines.extend(self.recent.iter().cloned());
        let mut frame = String::new();
        if self.drawn > 0 {
            // Back to the first line of the previous frame, and clear below.
            frame.push_str(&format!("\x1b[{}F\x1b[J", self.drawn));
        }
        for line in &lines {
            // A wrapped line would throw the next redraw off by one.
            frame.extend(line.chars().take(width));
            frame.push('\n');
        }
        self.drawn = lines.len();
        let mut out = io::stdout().lock();
        let _ = out.write_all(frame.as_bytes());
        let _ = out.flush();
    }

    /// Leaves the last frame on screen; what follows prints below it.
    fn clear(&mut self) {
        self.drawn = 0;
    }
}

/// The sessions as table rows, header first; fixed widths so the table does
/// not jump between frames.
fn session_table(tracker: &Tracker, now: Instant) -> Vec<String> {
    let mut rows = vec![format!(
        "{:<12} {:<17} {:>6}  {:<20} {:>9}  {:>8}",
        "SESSION", "STATE", "FOR", "LAST LOSS", "RECOVERED", "SLOWEST"
    )];
    for (name, view) in tracker.sessions() {
        let state = match (view.state, view.retry_at) {
            (Some(SessionState::Backoff), Some(at)) => {
                format!("backoff ({})", millis(at.saturating_duration_since(now)))
            }
            (Some(state), _) => state.to_string(),
            (None, _) => "unknown".to_owned(),
        };
        rows.push(format!(
            "{:<12} {:<17} {:>6}  {:<20} {:>9}  {:>8}",
            name,
            state,
            seconds(now.saturating_duration_since(view.since)),
            view.last_loss.as_deref().unwrap_or("-"),
            view.recoveries,
            view.slowest.map_or("-".to_owned(), millis)
        ));
    }
    rows
}

/// One state event as a log line: `kitchen backoff cause=reset retry_in=312ms`,
/// with the recovery it completed, if any.
pub fn describe_state(event: &StateEvent, note: Option<&Note>) -> String {
    let mut text = format!("{} {}", event.session, event.state);
    if out_of_service(event.state) {
        if let Some(cause) = event.cause {
            text.push_str(&format!(" cause={cause}"));
        }
        if let Some(code) = event.code {
            text.push_str(&format!(" code={code}"));
        }
    }
    if let Some(ms) = event.retry_in_ms {
        text.push_str(&format!(" retry_in={ms}ms"));
    }
    if let Some(Note::Recovered { fault, after }) = note {
        text.push_str(&format!("  (back {} after the {fault})", millis(*after)));
    }
    text
}

/// `412ms`, `2.31s`.
pub fn millis(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// `3s`, `1m05s`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Columns of the terminal on stdout.
fn terminal_width() -> usize {
    match terminal_size::terminal_size_of(std::io::stdout()) {
        Some((terminal_size::Width(columns), _)) if columns > 0 => usize::from(columns),
        _ => DEFAULT_WIDTH,
    }
}

/// How the run ended, for the summary.
pub struct Ending {
    /// Time from all-ready to the end.
    pub ran_for: Duration,
    /// Ctrl-C (or SIGTERM) ended it early.
    pub interrupted: bool,
    /// How the daemon stopped, in words.
    pub daemon: String,
}

/// The closing summary. Its `faults injected:` and `recovered:` lines are
/// read by the test.
pub fn summary(tracker: &Tracker, sessions: usize, ending: &Ending) -> String {
    let (recovered, hits) = tracker.recovery_counts();
    let mut out = format!(
        "\nwsvisor demo summary: {:.1}s, {sessions} sessions{}\n",
        ending.ran_for.as_secs_f64(),
        if ending.interrupted { " (interrupted)" } else { "" }
    );
    out.push_str(&format!("  faults injected:  {}\n", tracker.faults().len()));
    out.push_str(&format!("  recovered:        {recovered} of {hits} session losses\n"));
    let stats = tracker.stats();
    if !stats.is_empty() {
        out.push_str("  slowest recovery per fault (from the fault to `ready` again, backoff included):\n");
        out.push_str(&format!(
            "    {:<11} {:<24} {:>6} {:>10} {:>9}\n",
            "FAULT", "CAUSE REPORTED", "TIMES", "RECOVERED", "SLOWEST"
        ));
        for s in &stats {
            let causes = if s.causes.is_empty() {
                "-".to_owned()
            } else {
                s.causes.join(", ")
            };
            out.push_str(&format!(
                "    {:<11} {:<24} {:>6} {:>10} {:>9}\n",
                s.kind.label(),
                causes,
                s.injected,
                format!("{}/{}", s.recovered, s.hits),
                s.slowest.map_or("-".to_owned(), millis)
            ));
        }
    }
    out.push_str(&format!(
        "  messages:         {} sent (listen detect), {} received (stt echoes)\n",
        tracker.messages_sent, tracker.messages_received
    ));
    if tracker.events_skipped > 0 {
        out.push_str(&format!("  events skipped:   {}\n", tracker.events_skipped));
    }
    out.push_str(&format!("  daemon:           {}\n", ending.daemon));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::faults::FaultKind;
    use super::*;
    use crate::protocol::EventLine;

    /// A `state` event with the fields the test does not care about filled in.
    fn state(mut fields: Value) -> StateEvent {
        for (key, value) in [("attempt", json!(1)), ("at", json!("2026-11-21T10:00:00Z"))] {
            fields.as_object_mut().unwrap().entry(key).or_insert(value);
        }
        for key in ["retry_in_ms", "cause", "code"] {
            fields.as_object_mut().unwrap().entry(key).or_insert(json!(null));
        }
        serde_json::from_value(fields).unwrap()
    }

    #[test]
    fn state_lines_name_the_loss_and_the_recovery() {
        let backoff = state(json!({"session": "kitchen", "state": "backoff", "retry_in_ms": 312,
                             "cause": "server_close", "code": 1000}));
        assert_eq!(
            describe_state(&backoff, None),
            "kitchen backoff cause=server_close code=1000 retry_in=312ms"
        );
        let ready = state(json!({"session": "kitchen", "state": "ready", "retry_in_ms": null,
                           "cause": null, "code": null}));
        let note = Note::Recovered {
            fault: "idle close",
            after: Duration::from_millis(330),
        };
        assert_eq!(
            describe_state(&ready, Some(&note)),
            "kitchen ready  (back 330ms after the idle close)"
        );
    }

    #[test]
    fn the_summary_counts_faults_and_recoveries() {
        let t0 = Instant::now();
        let names = vec!["kitchen".to_owned()];
        let mut tracker = Tracker::new(&names, t0);
        tracker.fault_started(FaultKind::IdleClose, &names, t0);
        tracker.on_event(
            &EventLine::State(state(
                json!({"session": "kitchen", "state": "backoff", "cause": "server_close", "code": 1000}),
            )),
            t0,
        );
        tracker.on_event(
            &EventLine::State(state(json!({"session": "kitchen", "state": "ready"}))),
            t0 + Duration::from_millis(321),
        );
        let text = summary(
            &tracker,
            1,
            &Ending {
                ran_for: Duration::from_secs(6),
                interrupted: false,
                daemon: "stopped by SIGTERM, exit 0".into(),
            },
        );
        assert!(text.contains("faults injected:  1\n"), "{text}");
        assert!(text.contains("recovered:        1 of 1 session losses"), "{text}");
        assert!(text.contains("idle close  server_close 1000"), "{text}");
        assert!(text.contains("321ms"), "{text}");
    }
}

//! What the demo has seen: each session's state as the daemon's events tell
//! it, the faults injected and the sessions each one hit, and how long each
//! hit session took to be `ready` again. Pure bookkeeping: instants come in
//! as arguments, so it is tested without a daemon.
//!
//! A recovery is measured from the moment the demo started the fault to the
//! moment it read the session's `ready` event: what a program watching the
//! control socket would see, backoff included.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use wsvisor_actors::state::SessionState;

use super::faults::FaultKind;
use crate::protocol::{EventLine, StateEvent};

/// One session as the demo last saw it.
#[derive(Clone, Debug)]
pub struct SessionView {
    /// `ready`, `backoff`...; `None` until the daemon has told.
    pub state: Option<SessionState>,
    /// When it entered `state`.
    pub since: Instant,
    /// For `backoff`: when the next attempt is due.
    pub retry_at: Option<Instant>,
    /// Cause (and code) of its last loss, e.g. `server_close 1000`.
    pub last_loss: Option<String>,
    /// Losses it came back from.
    pub recoveries: u32,
    /// Its slowest recovery.
    pub slowest: Option<Duration>,
}

/// One session hit by one fault.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The session.
    pub session: String,
    /// The loss the daemon reported for it (cause and code).
    pub loss: Option<String>,
    /// From the fault to `ready` again.
    pub recovered_after: Option<Duration>,
}

/// One injected fault.
#[derive(Clone, Debug)]
pub struct FaultRecord {
    /// What it was.
    pub kind: FaultKind,
    /// When the demo started it.
    pub at: Instant,
    /// The sessions it hit.
    pub hits: Vec<Hit>,
}

impl FaultRecord {
    /// Every hit session is ready again.
    pub fn repaired(&self) -> bool {
        self.hits.iter().all(|h| h.recovered_after.is_some())
    }
}

/// Something worth a line of its own when an event arrives.
#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    /// The session is ready again after `fault`, `after` it started.
    Recovered {
        /// The fault's label.
        fault: &'static str,
        /// How long it took.
        after: Duration,
    },
}

/// Per fault kind, for the summary.
#[derive(Clone, Debug, PartialEq)]
pub struct KindStats {
    /// The fault.
    pub kind: FaultKind,
    /// Faults of this kind injected.
    pub injected: usize,
    /// Causes the daemon reported for its hits, distinct, in order seen.
    pub causes: Vec<String>,
    /// Session losses it caused.
    pub hits: usize,
    /// Of those, recovered.
    pub recovered: usize,
    /// The slowest recovery.
    pub slowest: Option<Duration>,
}

/// A state a session is in after a loss (rather than on its way back).
pub fn out_of_service(state: SessionState) -> bool {
    matches!(
        state,
        SessionState::Backoff | SessionState::Failed | SessionState::Stopped
    )
}

/// Everything the demo keeps track of.
pub struct Tracker {
    sessions: BTreeMap<String, SessionView>,
    faults: Vec<FaultRecord>,
    /// Messages the daemon accepted for sending.
    pub messages_sent: u64,
    /// Messages the daemon delivered from the server (`message` events).
    pub messages_received: u64,
    /// Events the daemon had to skip for us (`lagged`).
    pub events_skipped: u64,
}

impl Tracker {
    /// Sessions with these names, state unknown until the first summary.
    pub fn new(names: &[String], now: Instant) -> Tracker {
        let sessions = names
            .iter()
            .map(|name| {
                let view = SessionView {
                    state: None,
                    since: now,
                    retry_at: None,
                    last_loss: None,
                    recoveries: 0,
                    slowest: None,
                };
                (name.clone(), view)
            })
            .collect();
        Tracker {
            sessions,
            faults: Vec::new(),
            messages_sent: 0,
            messages_received: 0,
            events_skipped: 0,
        }
    }

    /// The sessions, by name.
    pub fn sessions(&self) -> &BTreeMap<String, SessionView> {
        &self.sessions
    }

    /// The faults so far.
    pub fn faults(&self) -> &[FaultRecord] {
        &self.faults
    }

    /// Takes the state of each session named (from a `sessions` result,
    /// used before any event).
    pub fn load_states<'a>(&mut self, states: impl IntoIterator<Item = (&'a str, SessionState)>, now: Instant) {
        for (name, state) in states {
            if let Some(view) = self.sessions.get_mut(name) {
                if view.state != Some(state) {
                    view.state = Some(state);
                    view.since = now;
                }
            }
        }
    }

    /// Whether every session is `ready`.
    pub fn all_ready(&self) -> bool {
        self.sessions.values().all(|s| s.state == Some(SessionState::Ready))
    }

    /// Names of the ready sessions that no unrepaired fault is acting on:
    /// those a message can go to and come back from.
    pub fn quiet_ready(&self) -> Vec<String> {
        self.sessions
            .iter()
            .filter(|(name, view)| view.state == Some(SessionState::Ready) && !self.is_hit(name))
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn is_hit(&self, name: &str) -> bool {
        self.faults
            .iter()
            .flat_map(|f| &f.hits)
            .any(|h| h.session == name && h.recovered_after.is_none())
    }

    /// A fault starts now, hitting `sessions`.
    pub fn fault_started(&mut self, kind: FaultKind, sessions: &[String], at: Instant) {
        let hits = sessions
            .iter()
            .map(|session| Hit {
                session: session.clone(),
                loss: None,
                recovered_after: None,
            })
            .collect();
        self.faults.push(FaultRecord { kind, at, hits });
    }

    /// The last fault reached no connection at all: forget it rather than
    /// count it as unrepaired.
    pub fn fault_missed(&mut self) {
        self.faults.pop();
    }

    /// Whether every fault so far has been repaired.
    pub fn all_repaired(&self) -> bool {
        self.faults.iter().all(FaultRecord::repaired)
    }

    /// Takes one event of the subscription.
    pub fn on_event(&mut self, event: &EventLine, now: Instant) -> Option<Note> {
        match event {
            EventLine::State(state) => self.on_state(state, now),
            EventLine::Message { .. } => {
                self.messages_received += 1;
                None
            }
            EventLine::Lagged { skipped } => {
                self.events_skipped += skipped;
                None
            }
            _ => None,
        }
    }

    fn on_state(&mut self, event: &StateEvent, now: Instant) -> Option<Note> {
        let name = event.session.as_str();
        let state = event.state;
        let view = self.sessions.get_mut(name)?;
        view.state = Some(state);
        view.since = now;
        view.retry_at = event.retry_in_ms.map(|ms| now + Duration::from_millis(ms));
        // `connecting` repeats the cause of the loss before it; only a move
        // out of service reports a new loss.
        let loss = match (out_of_service(state), event.cause) {
            (true, Some(cause)) => Some(match event.code {
                Some(code) => format!("{cause} {code}"),
                None => cause.to_string(),
            }),
            _ => None,
        };
        if let Some(loss) = &loss {
            view.last_loss = Some(loss.clone());
        }
        // The oldest unrepaired fault acting on this session owns the event.
        let fault = self
            .faults
            .iter_mut()
            .find(|f| f.hits.iter().any(|h| h.session == name && h.recovered_after.is_none()))?;
        let fault_at = fault.at;
        let kind = fault.kind;
        let hit = fault
            .hits
            .iter_mut()
            .find(|h| h.session == name && h.recovered_after.is_none())?;
        if hit.loss.is_none() {
            hit.loss = loss;
            return None;
        }
        if state != SessionState::Ready {
            return None;
        }
        let after = now.saturating_duration_since(fault_at);
        hit.recovered_after = Some(after);
        view.recoveries += 1;
        view.slowest = Some(view.slowest.map_or(after, |s| s.max(after)));
        Some(Note::Recovered {
            fault: kind.label(),
            after,
        })
    }

    /// The faults some session has not come back from, in the order they
    /// came: each one's label and the sessions still down.
    pub fn unrepaired(&self) -> Vec<(&'static str, Vec<String>)> {
        self.faults
            .iter()
            .filter(|fault| !fault.repaired())
            .map(|fault| {
                let down = fault.hits.iter().filter(|h| h.recovered_after.is_none());
                (fault.kind.label(), down.map(|h| h.session.clone()).collect())
            })
            .collect()
    }

    /// Session losses caused by faults, and how many of them recovered.
    pub fn recovery_counts(&self) -> (usize, usize) {
        let hits = self.faults.iter().flat_map(|f| &f.hits);
        let total = hits.clone().count();
        let recovered = hits.filter(|h| h.recovered_after.is_some()).count();
        (recovered, total)
    }

    /// Per fault kind, in the order of the cycle.
    pub fn stats(&self) -> Vec<KindStats> {
        let mut by_kind: BTreeMap<FaultKind, KindStats> = BTreeMap::new();
        for fault in &self.faults {
            let stats = by_kind.entry(fault.kind).or_insert_with(|| KindStats {
                kind: fault.kind,
                injected: 0,
                causes: Vec::new(),
                hits: 0,
                recovered: 0,
                slowest: None,
            });
            stats.injected += 1;
            for hit in &fault.hits {
                stats.hits += 1;
                if let Some(loss) = &hit.loss {
                    if !stats.causes.contains(loss) {
                        stats.causes.push(loss.clone());
                    }
                }
                if let Some(after) = hit.recovered_after {
                    stats.recovered += 1;
                    stats.slowest = Some(stats.slowest.map_or(after, |s| s.max(after)));
                }
            }
        }
        by_kind.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn event(value: Value) -> EventLine {
        serde_json::from_value(value).unwrap()
    }

    fn state(session: &str, state: &str, cause: Option<&str>, code: Option<u64>) -> EventLine {
        event(
            json!({"event": "state", "session": session, "state": state, "attempt": 1,
               "retry_in_ms": if state == "backoff" { json!(300) } else { json!(null) },
               "cause": cause, "code": code, "at": "2026-11-21T10:00:00Z"}),
        )
    }

    fn names() -> Vec<String> {
        vec!["attic".to_owned(), "kitchen".to_owned()]
    }

    #[test]
    fn a_fault_is_repaired_when_its_session_is_ready_again() {
        let t0 = Instant::now();
        let mut tracker = Tracker::new(&names(), t0);
        tracker.load_states([("attic", SessionState::Ready), ("kitchen", SessionState::Ready)], t0);
        assert!(tracker.all_ready());
        tracker.fault_started(FaultKind::Reset, &["kitchen".to_owned()], t0);
        assert_eq!(tracker.quiet_ready(), vec!["attic"]);
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(
            tracker.on_event(&state("kitchen", "backoff", Some("reset"), None), ms(1)),
            None
        );
        // `connecting` repeats the cause; it is not a second loss.
        tracker.on_event(&state("kitchen", "connecting", Some("reset"), None), ms(300));
        assert!(!tracker.all_repaired());
        let note = tracker.on_event(&state("kitchen", "ready", None, None), ms(320));
        assert_eq!(
            note,
            Some(Note::Recovered {
                fault: "RST",
                after: Duration::from_millis(320)
            })
        );
        assert!(tracker.all_repaired());
        assert_eq!(tracker.recovery_counts(), (1, 1));
        let stats = tracker.stats();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].causes, vec!["reset"]);
        assert_eq!(stats[0].slowest, Some(Duration::from_millis(320)));
        assert_eq!(tracker.sessions()["kitchen"].recoveries, 1);
        assert_eq!(tracker.sessions()["kitchen"].last_loss.as_deref(), Some("reset"));
    }

    #[test]
    fn a_fault_on_everyone_waits_for_every_session() {
        let t0 = Instant::now();
        let mut tracker = Tracker::new(&names(), t0);
        tracker.fault_started(FaultKind::Restart, &names(), t0);
        for name in ["attic", "kitchen"] {
            tracker.on_event(&state(name, "backoff", Some("server_close"), Some(1012)), t0);
        }
        tracker.on_event(&state("attic", "ready", None, None), t0 + Duration::from_millis(400));
        assert!(!tracker.all_repaired());
        assert_eq!(tracker.recovery_counts(), (1, 2));
        assert_eq!(tracker.unrepaired(), vec![("restart", vec!["kitchen".to_owned()])]);
        tracker.on_event(&state("kitchen", "ready", None, None), t0 + Duration::from_millis(700));
        assert!(tracker.all_repaired() && tracker.unrepaired().is_empty());
        let stats = tracker.stats();
        assert_eq!(stats[0].causes, vec!["server_close 1012"]);
        assert_eq!((stats[0].hits, stats[0].recovered), (2, 2));
        assert_eq!(stats[0].slowest, Some(Duration::from_millis(700)));
    }

    #[test]
    fn messages_and_lag_are_counted() {
        let t0 = Instant::now();
        let mut tracker = Tracker::new(&names(), t0);
        tracker.on_event(
            &event(json!({"event": "message", "session": "attic", "message": {"type": "stt"}})),
            t0,
        );
        tracker.on_event(&event(json!({"event": "lagged", "skipped": 3})), t0);
        assert_eq!((tracker.messages_received, tracker.events_skipped), (1, 3));
    }

    #[test]
    fn a_missed_fault_is_forgotten() {
        let t0 = Instant::now();
        let mut tracker = Tracker::new(&names(), t0);
        tracker.fault_started(FaultKind::Silence, &["attic".to_owned()], t0);
        tracker.fault_missed();
        assert!(tracker.faults().is_empty() && tracker.all_repaired());
    }
}

//! Monitor: the single source of truth that `ctl` reads, and the only
//! writer of events to subscribers. It keeps one record per session, built
//! from the Supervisor's state changes and the connections' counters.
//!
//! Subscribers get a bounded buffer each; a full buffer never makes a
//! session wait: the events are counted and one `Lagged` follows once the
//! subscriber reads again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::events::Event;
use crate::messages::{
    GetSession, ListSessions, Probe, PublishAudio, PublishDropped, PublishMessage, PublishState, RecordQueued,
    RecordRtt, RegisterSession, Subscribe, UnregisterSession,
};
use crate::state::{cause_index, LastClose, SessionCounters, SessionState, SessionSummary};
use crate::traffic::TrafficCounters;

struct SessionRecord {
    summary: SessionSummary,
    retry_at: Option<Instant>,
    traffic: Arc<TrafficCounters>,
}

struct Subscriber {
    sessions: Option<HashSet<String>>,
    tx: mpsc::Sender<Event>,
    skipped: u64,
}

impl Subscriber {
    fn wants(&self, event: &Event) -> bool {
        match (&self.sessions, event.session()) {
            (Some(names), Some(session)) => names.contains(session),
            _ => true,
        }
    }

    /// False once the subscriber is gone.
    fn offer(&mut self, event: &Event) -> bool {
        if self.skipped > 0 {
            match self.tx.try_send(Event::Lagged { skipped: self.skipped }) {
                Ok(()) => self.skipped = 0,
                Err(TrySendError::Full(_)) => {
                    self.skipped += 1;
                    return true;
                }
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        match self.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.skipped += 1;
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// Registry of session states and fan-out of events.
#[derive(Default)]
pub struct Monitor {
    records: BTreeMap<String, SessionRecord>,
    subscribers: Vec<Subscriber>,
}

impl Monitor {
    fn publish(&mut self, event: Event) {
        self.subscribers
            .retain_mut(|sub| !sub.wants(&event) || sub.offer(&event));
    }

    fn summary(record: &SessionRecord) -> SessionSummary {
        let mut summary = record.summary.clone();
        summary.next_retry_in = record.retry_at.map(|at| at.saturating_duration_since(Instant::now()));
        summary.counters.traffic = record.traffic.snapshot();
        summary
    }
}

impl Actor for Monitor {
    type Context = Context<Self>;
}

impl Handler<RegisterSession> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: RegisterSession, _: &mut Context<Self>) {
        let record = self
            .records
            .entry(msg.session.clone())
            .or_insert_with(|| SessionRecord {
                summary: SessionSummary {
                    name: msg.session.clone(),
                    state: SessionState::Stopped,
                    session_id: None,
                    url: msg.url.clone(),
                    attempt: 0,
                    max_attempts: msg.max_attempts,
                    since: SystemTime::now(),
                    next_retry_in: None,
                    last_close: None,
                    rtt: None,
                    queued: 0,
                    activation_code: None,
                    counters: SessionCounters::default(),
                },
                retry_at: None,
                traffic: msg.traffic.clone(),
            });
        // Re-registering (a reload) keeps history but takes the new settings.
        record.summary.url = msg.url;
        record.summary.max_attempts = msg.max_attempts;
        record.traffic = msg.traffic;
    }
}

impl Handler<UnregisterSession> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: UnregisterSession, _: &mut Context<Self>) {
        self.records.remove(&msg.0);
    }
}

impl Handler<PublishState> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: PublishState, _: &mut Context<Self>) {
        let update = msg.0;
        if let Some(record) = self.records.get_mut(&update.session) {
            let summary = &mut record.summary;
            summary.state = update.state;
            summary.since = update.at;
            summary.attempt = update.attempt;
            summary.max_attempts = update.max_attempts;
            summary.session_id = update.session_id.clone();
            summary.activation_code = update.activation_code.clone();
            record.retry_at = update.retry_in.map(|after| Instant::now() + after);
            if update.state != SessionState::Ready {
                summary.rtt = None;
            }
            if let Some(loss) = &update.loss {
                summary.counters.losses[cause_index(loss.cause)] += 1;
                summary.last_close = Some(LastClose {
                    cause: loss.cause,
                    code: loss.code,
                    status: loss.status,
                    reason: loss.reason.clone(),
                    at: update.at,
                });
            }
            match update.state {
                SessionState::Ready => summary.counters.connects += 1,
                SessionState::Backoff => summary.counters.reconnect_attempts += 1,
                SessionState::Failed => summary.counters.give_ups += 1,
                _ => {}
            }
        }
        self.publish(Event::State(update));
    }
}

impl Handler<PublishMessage> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: PublishMessage, _: &mut Context<Self>) {
        self.publish(Event::Message {
            session: msg.session,
            message: msg.message,
        });
    }
}

impl Handler<PublishAudio> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: PublishAudio, _: &mut Context<Self>) {
        self.publish(Event::Audio {
            session: msg.session,
            data: msg.data,
        });
    }
}

impl Handler<PublishDropped> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: PublishDropped, _: &mut Context<Self>) {
        if let Some(record) = self.records.get_mut(&msg.session) {
            record.summary.counters.dropped += msg.count;
        }
        self.publish(Event::Dropped {
            session: msg.session,
            count: msg.count,
            why: msg.why,
        });
    }
}

impl Handler<RecordRtt> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: RecordRtt, _: &mut Context<Self>) {
        if let Some(record) = self.records.get_mut(&msg.session) {
            record.summary.rtt = Some(msg.rtt);
        }
    }
}

impl Handler<RecordQueued> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: RecordQueued, _: &mut Context<Self>) {
        if let Some(record) = self.records.get_mut(&msg.session) {
            record.summary.queued = msg.queued;
        }
    }
}

impl Handler<ListSessions> for Monitor {
    type Result = MessageResult<ListSessions>;

    fn handle(&mut self, _: ListSessions, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.records.values().map(Monitor::summary).collect())
    }
}

impl Handler<GetSession> for Monitor {
    type Result = MessageResult<GetSession>;

    fn handle(&mut self, msg: GetSession, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.records.get(&msg.0).map(Monitor::summary))
    }
}

impl Handler<Subscribe> for Monitor {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = mpsc::channel(msg.capacity.max(1));
        self.subscribers.push(Subscriber {
            sessions: msg.sessions,
            tx,
            skipped: 0,
        });
        MessageResult(rx)
    }
}

impl Handler<Probe> for Monitor {
    type Result = ();

    fn handle(&mut self, _: Probe, _: &mut Context<Self>) {}
}

//! Monitor: the single source of truth that `ctl` reads, and the only
//! writer of events to subscribers. It keeps one record per session, built
//! from the Supervisor's state changes and the connections' counters.
//!
//! Each event is made once and shared by every subscriber. Subscribers get
//! a buffer bounded in events and bytes each (`subscription`); a full
//! buffer never makes a session wait: the events are counted and one
//! `Lagged` follows as soon as the subscriber has read enough to take it,
//! whether or not more events come.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;
use tokio::time::Instant;

use crate::events::{Event, SharedEvent};
use crate::messages::{
    CountStates, GetSession, ListSessions, Probe, PublishAudio, PublishDropped, PublishMessage, PublishState,
    RecordOta, RecordQueued, RecordRtt, RegisterSession, StateCounts, Subscribe, UnregisterSession,
};
use crate::state::{LastClose, SessionCounters, SessionState, SessionSummary};
use crate::subscription::{self, Offer, Subscriber};
use crate::traffic::TrafficCounters;

struct SessionRecord {
    summary: SessionSummary,
    retry_at: Option<Instant>,
    traffic: Arc<TrafficCounters>,
}

struct Interest {
    id: u64,
    sessions: Option<HashSet<String>>,
    states_only: bool,
    subscriber: Subscriber,
}

impl Interest {
    fn wants(&self, event: &Event) -> bool {
        if self.states_only && !matches!(event, Event::State(_)) {
            return false;
        }
        match (&self.sessions, event.session()) {
            (Some(names), Some(session)) => names.contains(session),
            _ => true,
        }
    }
}

/// Registry of session states and fan-out of events.
#[derive(Default)]
pub struct Monitor {
    /// Boxed: a B-tree node holds eleven slots whether used or not, and a
    /// record is 480 bytes (0.3 MB a thousand sessions less this way).
    records: BTreeMap<String, Box<SessionRecord>>,
    subscribers: Vec<Interest>,
    next_subscriber: u64,
}

impl Monitor {
    fn publish(&mut self, event: Event, ctx: &mut Context<Self>) {
        if self.subscribers.is_empty() {
            return;
        }
        let event = SharedEvent::new(event);
        let now = Instant::now();
        let mut overflowed = Vec::new();
        self.subscribers.retain_mut(|sub| {
            if !sub.wants(&event.event) {
                return true;
            }
            match sub.subscriber.offer(&event, now) {
                Offer::Taken => true,
                Offer::Overflowed => {
                    overflowed.push(sub.id);
                    true
                }
                Offer::CutOff { missed } => {
                    log::info!(
                        "control: cut off a subscriber that stayed behind its buffer; it missed {missed} events"
                    );
                    false
                }
                Offer::Gone => false,
            }
        });
        for id in overflowed {
            self.notice_lag_when_room(id, ctx);
        }
    }

    /// Send the `Lagged` notice as soon as the subscriber has read enough to
    /// take it, even if no other event ever follows.
    fn notice_lag_when_room(&self, id: u64, ctx: &mut Context<Self>) {
        let Some(sub) = self.subscribers.iter().find(|s| s.id == id) else {
            return;
        };
        ctx.spawn(
            sub.subscriber
                .sender()
                .reserve_owned()
                .into_actor(self)
                .map(move |permit, act: &mut Monitor, _| {
                    let Ok(permit) = permit else { return };
                    let sub = act.subscribers.iter_mut().find(|s| s.id == id);
                    if let Some(notice) = sub.and_then(|s| s.subscriber.take_lag_notice()) {
                        permit.send(notice);
                    }
                }),
        );
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
        let record = self.records.entry(msg.session.clone()).or_insert_with(|| {
            Box::new(SessionRecord {
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
                    ota: None,
                    counters: SessionCounters::default(),
                },
                retry_at: None,
                traffic: msg.traffic.clone(),
            })
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

    fn handle(&mut self, msg: PublishState, ctx: &mut Context<Self>) {
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
                summary.counters.losses[loss.cause.index()] += 1;
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
        self.publish(Event::State(update), ctx);
    }
}

impl Handler<PublishMessage> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: PublishMessage, ctx: &mut Context<Self>) {
        self.publish(
            Event::Message {
                session: msg.session,
                message: msg.message,
            },
            ctx,
        );
    }
}

impl Handler<PublishAudio> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: PublishAudio, ctx: &mut Context<Self>) {
        self.publish(
            Event::Audio {
                session: msg.session,
                data: msg.data,
            },
            ctx,
        );
    }
}

impl Handler<PublishDropped> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: PublishDropped, ctx: &mut Context<Self>) {
        if let Some(record) = self.records.get_mut(&msg.session) {
            record.summary.counters.dropped += msg.count;
        }
        self.publish(
            Event::Dropped {
                session: msg.session,
                count: msg.count,
                why: msg.why,
            },
            ctx,
        );
    }
}

impl Handler<RecordOta> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: RecordOta, _: &mut Context<Self>) {
        if let Some(record) = self.records.get_mut(&msg.session) {
            record.summary.ota = Some(msg.offered);
        }
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
        MessageResult(self.records.values().map(|record| Monitor::summary(record)).collect())
    }
}

impl Handler<CountStates> for Monitor {
    type Result = StateCounts;

    fn handle(&mut self, _: CountStates, _: &mut Context<Self>) -> StateCounts {
        let mut counts = StateCounts::default();
        for record in self.records.values() {
            counts.add(record.summary.state);
        }
        counts
    }
}

impl Handler<GetSession> for Monitor {
    type Result = MessageResult<GetSession>;

    fn handle(&mut self, msg: GetSession, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.records.get(&msg.0).map(|record| Monitor::summary(record)))
    }
}

impl Handler<Subscribe> for Monitor {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        let (subscriber, subscription) = subscription::channel(msg.limits);
        self.next_subscriber += 1;
        self.subscribers.push(Interest {
            id: self.next_subscriber,
            sessions: msg.sessions,
            states_only: msg.states_only,
            subscriber,
        });
        MessageResult(subscription)
    }
}

impl Handler<Probe> for Monitor {
    type Result = ();

    fn handle(&mut self, _: Probe, _: &mut Context<Self>) {}
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::subscription::SubscriberLimits;

    #[actix_rt::test]
    async fn a_lag_notice_arrives_even_when_no_event_follows_the_burst() {
        let monitor = Monitor::default().start();
        let mut events = monitor
            .send(Subscribe {
                sessions: None,
                limits: SubscriberLimits {
                    events: 2,
                    ..SubscriberLimits::default()
                },
                states_only: false,
            })
            .await
            .unwrap();
        for _ in 0..5 {
            monitor.do_send(PublishAudio {
                session: "kitchen".into(),
                data: Bytes::from_static(b"x"),
            });
        }
        let mut audio = 0;
        let lagged = loop {
            let next = tokio::time::timeout(Duration::from_secs(2), events.recv()).await;
            match next.as_ref().map(|e| e.as_ref().map(|e| &e.event)) {
                Ok(Some(Event::Audio { .. })) => audio += 1,
                Ok(Some(Event::Lagged { skipped })) => break *skipped,
                other => panic!("expected audio, then one lag notice; got {other:?}"),
            }
        };
        assert_eq!((audio, lagged), (2, 3), "two delivered, three missed and said so");
        monitor.do_send(PublishAudio {
            session: "kitchen".into(),
            data: Bytes::from_static(b"y"),
        });
        let next = tokio::time::timeout(Duration::from_secs(2), events.recv())
            .await
            .unwrap();
        assert!(
            matches!(next.as_ref().map(|e| &e.event), Some(Event::Audio { .. })),
            "delivery resumes after the notice"
        );
    }
}

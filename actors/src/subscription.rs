//! One subscriber's buffer, bounded in events and in bytes, seen from both
//! ends: the Monitor offers events to a [`Subscriber`]; the subscriber's
//! reader takes them from its [`Subscription`].
//!
//! A subscriber that reads too slowly never slows a session: what does not
//! fit is counted and announced by one `Lagged` notice as soon as there is
//! room. One that stays behind (has not caught up to half its budget
//! within `lag_limit` of falling behind) is cut off however slowly it keeps
//! reading: its reader gets one last `Lagged` with everything it missed,
//! then the end of the stream.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::Instant;

use crate::events::{Event, SharedEvent};

/// How much a subscriber may have waiting, and for how long it may stay behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriberLimits {
    /// Events waiting at most.
    pub events: usize,
    /// Bytes of event lines waiting at most (see `Event::weight`).
    pub bytes: usize,
    /// A subscriber behind for this long is cut off.
    pub lag_limit: Duration,
}

impl Default for SubscriberLimits {
    fn default() -> Self {
        SubscriberLimits {
            events: 1024,
            bytes: 8 << 20,
            lag_limit: Duration::from_secs(10),
        }
    }
}

/// What both ends know of one subscriber.
#[derive(Debug, Default)]
struct Shared {
    /// Weight of the events waiting in the channel.
    pending_bytes: AtomicUsize,
    /// Set when the Monitor cut the subscriber off.
    cut_off: AtomicBool,
    /// Events missed up to the cut.
    missed_at_cut: AtomicU64,
}

/// The reading end of a subscription.
#[derive(Debug)]
pub struct Subscription {
    events: mpsc::Receiver<Arc<SharedEvent>>,
    shared: Arc<Shared>,
    finished: bool,
}

impl Subscription {
    /// The next event; `None` once the subscription ended. After a cut-off
    /// the events still waiting are dropped and counted into one last `Lagged`.
    pub async fn recv(&mut self) -> Option<Arc<SharedEvent>> {
        if self.finished {
            return None;
        }
        let next = self.events.recv().await;
        self.took(next)
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Arc<SharedEvent>> {
        if self.finished {
            return None;
        }
        let next = self.events.try_recv().ok();
        if next.is_none() && !self.shared.cut_off.load(Relaxed) {
            return None;
        }
        self.took(next)
    }

    fn took(&mut self, next: Option<Arc<SharedEvent>>) -> Option<Arc<SharedEvent>> {
        if let Some(event) = &next {
            self.shared.pending_bytes.fetch_sub(event.event.weight(), Relaxed);
        }
        if !self.shared.cut_off.load(Relaxed) {
            self.finished = next.is_none();
            return next;
        }
        let mut missed = self.shared.missed_at_cut.load(Relaxed) + u64::from(next.is_some());
        while self.events.try_recv().is_ok() {
            missed += 1;
        }
        self.finished = true;
        Some(SharedEvent::new(Event::Lagged { skipped: missed }))
    }
}

/// What became of an offered event.
pub enum Offer {
    /// Queued, or counted as missed while a `Lagged` notice waits.
    Taken,
    /// It did not fit: the subscriber starts lagging; a notice must follow.
    Overflowed,
    /// The subscriber stayed behind too long and is now cut off.
    CutOff {
        /// Events it missed.
        missed: u64,
    },
    /// The reader is gone.
    Gone,
}

/// The Monitor's end of one subscription.
pub struct Subscriber {
    tx: mpsc::Sender<Arc<SharedEvent>>,
    shared: Arc<Shared>,
    limits: SubscriberLimits,
    /// Events missed since the buffer overflowed; while above zero a
    /// `Lagged` notice waits for room and newer events are counted, not
    /// queued, so the notice comes first.
    skipped: u64,
    /// Since when it has been behind, until it catches up.
    behind_since: Option<Instant>,
}

/// A connected pair: the Monitor keeps the first, the reader the second.
pub fn channel(limits: SubscriberLimits) -> (Subscriber, Subscription) {
    let (tx, rx) = mpsc::channel(limits.events.max(1));
    let shared = Arc::new(Shared::default());
    let subscriber = Subscriber {
        tx,
        shared: shared.clone(),
        limits,
        skipped: 0,
        behind_since: None,
    };
    let subscription = Subscription {
        events: rx,
        shared,
        finished: false,
    };
    (subscriber, subscription)
}

impl Subscriber {
    /// Offer one event at `now`.
    pub fn offer(&mut self, event: &Arc<SharedEvent>, now: Instant) -> Offer {
        if let Some(since) = self.behind_since {
            if self.caught_up() {
                self.behind_since = None;
            } else if now.saturating_duration_since(since) >= self.limits.lag_limit {
                return self.cut_off();
            }
        }
        if self.skipped > 0 {
            self.skipped += 1;
            return Offer::Taken;
        }
        let weight = event.event.weight();
        if self.shared.pending_bytes.load(Relaxed) + weight > self.limits.bytes {
            return self.overflow(now);
        }
        match self.tx.try_send(event.clone()) {
            Ok(()) => {
                self.shared.pending_bytes.fetch_add(weight, Relaxed);
                Offer::Taken
            }
            Err(TrySendError::Full(_)) => self.overflow(now),
            Err(TrySendError::Closed(_)) => Offer::Gone,
        }
    }

    fn overflow(&mut self, now: Instant) -> Offer {
        self.skipped = 1;
        self.behind_since.get_or_insert(now);
        Offer::Overflowed
    }

    fn cut_off(&mut self) -> Offer {
        let missed = std::mem::take(&mut self.skipped);
        self.shared.missed_at_cut.store(missed, Relaxed);
        self.shared.cut_off.store(true, Relaxed);
        Offer::CutOff { missed }
    }

    /// Back under half its budget, notice delivered.
    fn caught_up(&self) -> bool {
        self.skipped == 0
            && self.shared.pending_bytes.load(Relaxed) <= self.limits.bytes / 2
            && self.tx.capacity() >= self.limits.events.max(1) / 2
    }

    /// A sender to deliver the `Lagged` notice through once there is room.
    pub fn sender(&self) -> mpsc::Sender<Arc<SharedEvent>> {
        self.tx.clone()
    }

    /// The notice to deliver now that there is room; `None` if nothing was
    /// missed meanwhile (a cut-off took the count).
    pub fn take_lag_notice(&mut self) -> Option<Arc<SharedEvent>> {
        let skipped = std::mem::take(&mut self.skipped);
        if skipped == 0 {
            return None;
        }
        let notice = SharedEvent::new(Event::Lagged { skipped });
        self.shared.pending_bytes.fetch_add(notice.event.weight(), Relaxed);
        Some(notice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: usize) -> Arc<SharedEvent> {
        SharedEvent::new(Event::Message {
            session: "s".into(),
            message: "x".repeat(bytes).into(),
        })
    }

    /// The reader's next event, waited for at most a second: what a test
    /// expects is already there or never comes.
    async fn next(reader: &mut Subscription) -> Option<Arc<SharedEvent>> {
        tokio::time::timeout(Duration::from_secs(1), reader.recv())
            .await
            .expect("the reader waited for an event that never came")
    }

    fn limits(events: usize, bytes: usize) -> SubscriberLimits {
        SubscriberLimits {
            events,
            bytes,
            lag_limit: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn the_byte_budget_holds_whatever_the_event_count() {
        let (mut sub, mut reader) = channel(limits(1000, 10_000));
        let now = Instant::now();
        let big = message(3_000);
        let fits = (0..10)
            .take_while(|_| matches!(sub.offer(&big, now), Offer::Taken))
            .count();
        assert_eq!(fits, 3, "three of 3,256 bytes fit in 10,000, a fourth does not");
        assert!(matches!(sub.offer(&big, now), Offer::Taken), "counted while lagging");
        assert_eq!(sub.skipped, 2);
        for _ in 0..3 {
            assert!(matches!(next(&mut reader).await.unwrap().event, Event::Message { .. }));
        }
        assert_eq!(
            reader.shared.pending_bytes.load(Relaxed),
            0,
            "reading releases the budget"
        );
        let notice = sub.take_lag_notice().unwrap();
        assert_eq!(notice.event, Event::Lagged { skipped: 2 });
    }

    #[tokio::test]
    async fn events_that_fill_the_byte_budget_exactly_fit() {
        let big = message(3_000);
        let weight = big.event.weight();
        let (mut sub, _reader) = channel(limits(1000, 3 * weight));
        let now = Instant::now();
        for n in 0..3 {
            assert!(matches!(sub.offer(&big, now), Offer::Taken), "event {n} fits");
        }
        assert!(matches!(sub.offer(&big, now), Offer::Overflowed));
    }

    /// A subscriber of `limits` that overflowed at `start`, read `read`
    /// events and then got its `Lagged` notice: the offer at `lag_limit`
    /// shows whether it counts as caught up.
    async fn after_the_notice(limits: SubscriberLimits, event: &Arc<SharedEvent>, read: usize) -> Offer {
        let (mut sub, mut reader) = channel(limits);
        let start = Instant::now();
        let taken = (0..=limits.events)
            .take_while(|_| matches!(sub.offer(event, start), Offer::Taken))
            .count();
        assert!(taken < limits.events + 1, "never overflowed");
        for _ in 0..read {
            next(&mut reader).await.unwrap();
        }
        let notice = sub.take_lag_notice().expect("one event was missed");
        sub.sender().try_send(notice).unwrap();
        let offer = sub.offer(event, start + limits.lag_limit);
        drop(reader);
        offer
    }

    #[tokio::test]
    async fn caught_up_means_back_under_half_of_both_budgets() {
        let big = message(3_000);
        let bytes = 4 * big.event.weight();
        // Three of four events' bytes still wait: behind, though the
        // notice went out and the event budget has room.
        let offer = after_the_notice(limits(100, bytes), &big, 1).await;
        assert!(matches!(offer, Offer::CutOff { .. }), "over half its bytes: cut off");
        // One of four waits, with the notice: caught up.
        let offer = after_the_notice(limits(100, bytes), &big, 3).await;
        assert!(matches!(offer, Offer::Taken), "under half its bytes: not cut off");
        // Small events filling the event budget: the bytes say nothing.
        let small = message(10);
        let offer = after_the_notice(limits(4, 1 << 20), &small, 1).await;
        assert!(matches!(offer, Offer::CutOff { .. }), "its event budget full: cut off");
    }

    #[tokio::test]
    async fn a_subscriber_that_stays_behind_is_cut_off_and_told_what_it_missed() {
        let (mut sub, mut reader) = channel(limits(4, 1 << 20));
        let start = Instant::now();
        let small = message(10);
        for _ in 0..4 {
            assert!(matches!(sub.offer(&small, start), Offer::Taken));
        }
        assert!(matches!(sub.offer(&small, start), Offer::Overflowed));
        // It reads one line now and then: never back to half its budget.
        next(&mut reader).await.unwrap();
        let nearly = start + Duration::from_millis(9_999);
        assert!(matches!(sub.offer(&small, nearly), Offer::Taken), "not yet");
        match sub.offer(&small, start + Duration::from_secs(10)) {
            Offer::CutOff { missed } => assert_eq!(missed, 2),
            _ => panic!("behind for lag_limit: cut off"),
        }
        drop(sub);
        let last = next(&mut reader).await.unwrap();
        assert_eq!(
            last.event,
            Event::Lagged { skipped: 2 + 3 },
            "missed, plus what still waited"
        );
        assert!(next(&mut reader).await.is_none());
    }

    #[tokio::test]
    async fn one_that_catches_up_is_not_cut_off() {
        let (mut sub, mut reader) = channel(limits(4, 1 << 20));
        let start = Instant::now();
        let small = message(10);
        for _ in 0..5 {
            sub.offer(&small, start);
        }
        while reader.try_recv().is_some() {}
        let notice = sub.take_lag_notice().unwrap();
        sub.sender().try_send(notice).unwrap();
        assert_eq!(next(&mut reader).await.unwrap().event, Event::Lagged { skipped: 1 });
        let later = start + Duration::from_secs(60);
        assert!(matches!(sub.offer(&small, later), Offer::Taken));
        assert!(sub.behind_since.is_none());
    }
}

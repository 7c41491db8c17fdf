//! Heartbeat: knows time and nothing else. It asks its Connection for a
//! Ping when the line was quiet for `ping_interval`, and declares the peer
//! dead when nothing at all arrived within `ping_timeout` after that Ping.
//!
//! Inbound frames only stamp `last_life`; the one pending timer is moved
//! lazily when it fires, so a busy audio stream costs no timer churn. Only
//! the first sign of life after a Ping re-arms it, so the next Ping comes
//! `ping_interval` after that life rather than `ping_timeout` after the Ping.
//! Time is tokio's, so tests drive it with paused time.

use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;

use crate::census::{self, Census};
use crate::messages::{FrameArrived, HeartbeatEnded, PeerDead, Probe, SendPing, StopHeartbeat};

/// Who the Heartbeat talks to (its Connection).
pub struct HeartbeatPeer {
    /// Receives `SendPing`.
    pub ping: Recipient<SendPing>,
    /// Receives `PeerDead`.
    pub dead: Recipient<PeerDead>,
    /// Receives `HeartbeatEnded` if the Heartbeat dies unasked.
    pub ended: Recipient<HeartbeatEnded>,
}

/// Liveness timer of one connection.
pub struct Heartbeat {
    peer: HeartbeatPeer,
    ping_interval: Duration,
    ping_timeout: Duration,
    last_life: Instant,
    ping_sent_at: Option<Instant>,
    timer: Option<SpawnHandle>,
    stopped_on_request: bool,
    _census: Census,
}

impl Heartbeat {
    /// A heartbeat that counts the line as alive from now on.
    pub fn new(peer: HeartbeatPeer, ping_interval: Duration, ping_timeout: Duration) -> Self {
        Heartbeat {
            peer,
            ping_interval,
            ping_timeout,
            last_life: Instant::now(),
            ping_sent_at: None,
            timer: None,
            stopped_on_request: false,
            _census: Census::enter(&census::HEARTBEATS),
        }
    }

    fn wake_at(&mut self, at: Instant, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        self.timer = Some(ctx.run_later(at.saturating_duration_since(Instant::now()), |act, ctx| act.check(ctx)));
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if let Some(sent) = self.ping_sent_at {
            let deadline = sent + self.ping_timeout;
            if now >= deadline {
                // do_send, not try_send: a connection busy with writes has a
                // full mailbox, and a verdict must never be lost to that.
                self.peer.dead.do_send(PeerDead {
                    silent_for: now.duration_since(self.last_life),
                });
                self.stopped_on_request = true;
                ctx.stop();
                return;
            }
            return self.wake_at(deadline, ctx);
        }
        let quiet_until = self.last_life + self.ping_interval;
        if now < quiet_until {
            return self.wake_at(quiet_until, ctx);
        }
        if !self.peer.ping.connected() {
            // The connection is gone; nothing left to time.
            self.stopped_on_request = true;
            return ctx.stop();
        }
        self.peer.ping.do_send(SendPing);
        self.ping_sent_at = Some(now);
        self.wake_at(now + self.ping_timeout, ctx);
    }
}

impl Actor for Heartbeat {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.wake_at(self.last_life + self.ping_interval, ctx);
    }
}

impl Handler<FrameArrived> for Heartbeat {
    type Result = ();

    fn handle(&mut self, _: FrameArrived, ctx: &mut Context<Self>) {
        self.last_life = Instant::now();
        if self.ping_sent_at.take().is_some() {
            self.wake_at(self.last_life + self.ping_interval, ctx);
        }
    }
}

impl Handler<StopHeartbeat> for Heartbeat {
    type Result = ();

    fn handle(&mut self, _: StopHeartbeat, ctx: &mut Context<Self>) {
        self.stopped_on_request = true;
        ctx.stop();
    }
}

impl Handler<Probe> for Heartbeat {
    type Result = ();

    fn handle(&mut self, _: Probe, _: &mut Context<Self>) {}
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        // Reached without a request only when a handler panicked: the
        // connection must not go on untimed.
        if !self.stopped_on_request {
            let _ = self.peer.ended.try_send(HeartbeatEnded);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The heartbeat at its real default timings (15 s + 10 s), under
    //! tokio's paused clock: minutes of silence take milliseconds.
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    const INTERVAL: Duration = Duration::from_secs(15);
    const TIMEOUT: Duration = Duration::from_secs(10);

    #[derive(Default)]
    struct Seen {
        pings: Vec<Duration>,
        dead: Vec<(Duration, Duration)>,
        ended: usize,
    }

    /// Stands in for the Connection: notes when it is asked for a Ping or told the peer is dead.
    struct FakeConnection {
        start: Instant,
        seen: Rc<RefCell<Seen>>,
    }

    impl Actor for FakeConnection {
        type Context = Context<Self>;
    }

    impl Handler<SendPing> for FakeConnection {
        type Result = ();
        fn handle(&mut self, _: SendPing, _: &mut Context<Self>) {
            self.seen.borrow_mut().pings.push(self.start.elapsed());
        }
    }

    impl Handler<PeerDead> for FakeConnection {
        type Result = ();
        fn handle(&mut self, msg: PeerDead, _: &mut Context<Self>) {
            self.seen.borrow_mut().dead.push((self.start.elapsed(), msg.silent_for));
        }
    }

    impl Handler<HeartbeatEnded> for FakeConnection {
        type Result = ();
        fn handle(&mut self, _: HeartbeatEnded, _: &mut Context<Self>) {
            self.seen.borrow_mut().ended += 1;
        }
    }

    fn start() -> (Addr<Heartbeat>, Rc<RefCell<Seen>>) {
        start_with(TIMEOUT)
    }

    fn start_with(ping_timeout: Duration) -> (Addr<Heartbeat>, Rc<RefCell<Seen>>) {
        tokio::time::pause();
        let seen = Rc::new(RefCell::new(Seen::default()));
        let conn = FakeConnection {
            start: Instant::now(),
            seen: seen.clone(),
        }
        .start();
        let peer = HeartbeatPeer {
            ping: conn.clone().recipient(),
            dead: conn.clone().recipient(),
            ended: conn.recipient(),
        };
        (Heartbeat::new(peer, INTERVAL, ping_timeout).start(), seen)
    }

    async fn sleep(d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn near(got: Duration, want: Duration) -> bool {
        got >= want && got <= want + Duration::from_millis(5)
    }

    #[actix_rt::test]
    async fn silence_pings_after_the_interval_and_is_dead_only_after_the_timeout() {
        let (_heartbeat, seen) = start();
        sleep(secs(14.9)).await;
        assert!(
            seen.borrow().pings.is_empty(),
            "no Ping before ping_interval of silence"
        );
        sleep(secs(9.95)).await;
        {
            let seen = seen.borrow();
            assert_eq!(seen.pings.len(), 1);
            assert!(near(seen.pings[0], INTERVAL), "Ping at {:?}", seen.pings[0]);
            assert!(seen.dead.is_empty(), "dead before ping_interval + ping_timeout");
        }
        sleep(secs(1.0)).await;
        let seen = seen.borrow();
        assert_eq!(seen.dead.len(), 1);
        let (at, silent_for) = seen.dead[0];
        assert!(near(at, INTERVAL + TIMEOUT), "dead at {at:?}");
        assert!(near(silent_for, INTERVAL + TIMEOUT), "silent for {silent_for:?}");
        assert_eq!(seen.ended, 0, "a verdict is a stop on purpose, not an unasked death");
    }

    #[actix_rt::test]
    async fn a_busy_line_is_never_pinged() {
        let (heartbeat, seen) = start();
        for _ in 0..24 {
            sleep(secs(5.0)).await;
            heartbeat.do_send(FrameArrived);
        }
        sleep(secs(14.0)).await;
        let seen = seen.borrow();
        assert!(seen.pings.is_empty(), "pinged a busy line at {:?}", seen.pings);
        assert!(seen.dead.is_empty());
    }

    #[actix_rt::test]
    async fn a_late_answer_within_the_timeout_keeps_the_line_alive() {
        let (heartbeat, seen) = start();
        sleep(secs(15.0 + 9.9)).await;
        assert_eq!(seen.borrow().pings.len(), 1);
        // The Pong comes 9.9 s after the Ping: slow, not dead.
        heartbeat.do_send(FrameArrived);
        sleep(secs(14.8)).await;
        assert_eq!(
            seen.borrow().pings.len(),
            1,
            "next Ping waits a full interval after the Pong"
        );
        sleep(secs(0.3)).await;
        let seen = seen.borrow();
        assert_eq!(seen.pings.len(), 2);
        assert!(
            near(seen.pings[1], secs(15.0 + 9.9 + 15.0)),
            "second Ping at {:?}",
            seen.pings[1]
        );
        assert!(seen.dead.is_empty(), "{:?}", seen.dead);
    }

    #[actix_rt::test]
    async fn stopping_on_request_is_quiet() {
        let (heartbeat, seen) = start();
        heartbeat.do_send(StopHeartbeat);
        sleep(secs(60.0)).await;
        let seen = seen.borrow();
        assert!(seen.pings.is_empty() && seen.dead.is_empty());
        assert_eq!(seen.ended, 0, "stopping on request is not an unasked death");
        assert!(!heartbeat.connected(), "stopped");
    }

    #[actix_rt::test]
    async fn a_heartbeat_that_dies_unasked_tells_its_connection() {
        // A timeout no clock can add to the time of a Ping: the heartbeat
        // panics when it sends its first Ping, as a bug in it would.
        let (heartbeat, seen) = start_with(Duration::MAX);
        sleep(INTERVAL + secs(1.0)).await;
        let seen = seen.borrow();
        assert_eq!(seen.pings.len(), 1);
        assert_eq!(seen.ended, 1, "the connection must not go on untimed");
        assert!(!heartbeat.connected(), "dead");
    }
}

//! Heartbeat: knows time and nothing else. It asks its Connection for a
//! Ping when the line was quiet for long enough, and declares the peer dead
//! when nothing at all arrived within `ping_timeout` after that Ping.
//!
//! Inbound frames only stamp a shared [`LineLife`] (no message per frame:
//! a busy audio stream costs a clock read, not a mailbox trip); the one
//! pending timer reads it when it fires and moves itself lazily. The first
//! frame after our Ping is the one message (`LineAnswered`): it re-arms the
//! timer, so the next Ping comes a quiet period after that life rather
//! than `ping_timeout` after the Ping.
//!
//! A server that pings on its own (xiaozhi-esp32-server: every 20 s) proves
//! the line alive at its cadence: once two of its Pings have shown the
//! period, the quiet period becomes `max(ping_interval, period +
//! ping_timeout / 4)` (for a period up to `ping_interval + ping_timeout`),
//! so a line the server keeps alive is not pinged as well. Silence is
//! still found: never before `ping_interval + ping_timeout`, at most
//! `period + ping_timeout / 4 + ping_timeout` after the last frame.
//! Time is tokio's, so tests drive it with paused time.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;

use crate::census::{self, Census};
use crate::messages::{HeartbeatEnded, LineAnswered, PeerDead, Probe, SendPing, StopHeartbeat};

/// What the Connection stamps on every inbound frame and its Heartbeat
/// reads when its timer fires: shared on the connection's thread.
#[derive(Debug)]
pub struct LineLife {
    last_life: Cell<Instant>,
    last_peer_ping: Cell<Option<Instant>>,
    peer_ping_period: Cell<Option<Duration>>,
}

impl LineLife {
    /// A line alive as of now.
    pub fn new() -> Rc<LineLife> {
        Rc::new(LineLife {
            last_life: Cell::new(Instant::now()),
            last_peer_ping: Cell::new(None),
            peer_ping_period: Cell::new(None),
        })
    }

    /// A frame arrived; `peer_ping` when it was the peer's own Ping.
    pub fn frame(&self, peer_ping: bool) {
        let now = Instant::now();
        self.last_life.set(now);
        if peer_ping {
            if let Some(previous) = self.last_peer_ping.get() {
                self.peer_ping_period.set(Some(now.duration_since(previous)));
            }
            self.last_peer_ping.set(Some(now));
        }
    }

    /// When something last arrived.
    pub fn last_life(&self) -> Instant {
        self.last_life.get()
    }
}

/// Who the Heartbeat talks to (its Connection): one address for the three
/// messages, where a `Recipient` each would be three allocations a session.
pub struct HeartbeatPeer(Box<dyn PeerAddress>);

impl HeartbeatPeer {
    /// The actor at `addr`, which takes `SendPing`, `PeerDead` and, if the
    /// Heartbeat dies unasked, `HeartbeatEnded`.
    pub fn of<A>(addr: Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>> + Handler<SendPing> + Handler<PeerDead> + Handler<HeartbeatEnded>,
    {
        HeartbeatPeer(Box::new(addr))
    }
}

trait PeerAddress {
    fn connected(&self) -> bool;
    fn ping(&self);
    fn dead(&self, verdict: PeerDead);
    fn ended(&self);
}

impl<A> PeerAddress for Addr<A>
where
    A: Actor<Context = Context<A>> + Handler<SendPing> + Handler<PeerDead> + Handler<HeartbeatEnded>,
{
    fn connected(&self) -> bool {
        Addr::connected(self)
    }
    fn ping(&self) {
        self.do_send(SendPing);
    }
    fn dead(&self, verdict: PeerDead) {
        self.do_send(verdict);
    }
    fn ended(&self) {
        let _ = self.try_send(HeartbeatEnded);
    }
}

/// Liveness timer of one connection.
pub struct Heartbeat {
    peer: HeartbeatPeer,
    life: Rc<LineLife>,
    ping_interval: Duration,
    ping_timeout: Duration,
    ping_sent_at: Option<Instant>,
    timer: Option<SpawnHandle>,
    stopped_on_request: bool,
    _census: Census,
}

impl Heartbeat {
    /// A heartbeat of the line whose life `life` records.
    pub fn new(peer: HeartbeatPeer, life: Rc<LineLife>, ping_interval: Duration, ping_timeout: Duration) -> Self {
        Heartbeat {
            peer,
            life,
            ping_interval,
            ping_timeout,
            ping_sent_at: None,
            timer: None,
            stopped_on_request: false,
            _census: Census::enter(&census::HEARTBEATS),
        }
    }

    /// How long the line may be quiet before we ping it.
    fn quiet_limit(&self) -> Duration {
        match self.life.peer_ping_period.get() {
            Some(period) if period <= self.ping_interval + self.ping_timeout => {
                self.ping_interval.max(period + self.ping_timeout / 4)
            }
            _ => self.ping_interval,
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
        let last_life = self.life.last_life();
        if let Some(sent) = self.ping_sent_at {
            // Life stamped at the very instant of the Ping is its answer: at
            // that instant the line was quiet, or no Ping would have gone.
            if last_life < sent {
                let deadline = sent + self.ping_timeout;
                if now >= deadline {
                    // do_send, not try_send: a connection busy with writes has a
                    // full mailbox, and a verdict must never be lost to that.
                    self.peer.0.dead(PeerDead {
                        silent_for: now.duration_since(last_life),
                    });
                    self.stopped_on_request = true;
                    ctx.stop();
                    return;
                }
                return self.wake_at(deadline, ctx);
            }
            // It answered (or spoke): quiet is counted from that life.
            self.ping_sent_at = None;
        }
        let quiet_until = last_life + self.quiet_limit();
        if now < quiet_until {
            return self.wake_at(quiet_until, ctx);
        }
        if !self.peer.0.connected() {
            // The connection is gone; nothing left to time.
            self.stopped_on_request = true;
            return ctx.stop();
        }
        self.peer.0.ping();
        self.ping_sent_at = Some(now);
        self.wake_at(now + self.ping_timeout, ctx);
    }
}

impl Actor for Heartbeat {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.wake_at(self.life.last_life() + self.ping_interval, ctx);
    }
}

impl Handler<LineAnswered> for Heartbeat {
    type Result = ();

    fn handle(&mut self, _: LineAnswered, ctx: &mut Context<Self>) {
        if self.ping_sent_at.take().is_some() {
            let at = self.life.last_life() + self.quiet_limit();
            self.wake_at(at, ctx);
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
            self.peer.0.ended();
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

    /// Stands in for the Connection: notes when it is asked for a Ping or
    /// told the peer is dead; with `answering`, the peer answers each Ping
    /// at once (its Pong stamps the line's life).
    struct FakeConnection {
        start: Instant,
        seen: Rc<RefCell<Seen>>,
        answering: Option<Line>,
    }

    /// The line as the Connection drives it: every frame stamps its life,
    /// and (for the first frame after a Ping) tells the heartbeat.
    #[derive(Clone)]
    struct Line {
        life: Rc<LineLife>,
        heartbeat: Rc<RefCell<Option<Addr<Heartbeat>>>>,
    }

    impl Line {
        fn frame(&self, peer_ping: bool) {
            self.life.frame(peer_ping);
            if let Some(heartbeat) = &*self.heartbeat.borrow() {
                heartbeat.do_send(LineAnswered);
            }
        }
    }

    impl Actor for FakeConnection {
        type Context = Context<Self>;
    }

    impl Handler<SendPing> for FakeConnection {
        type Result = ();
        fn handle(&mut self, _: SendPing, _: &mut Context<Self>) {
            self.seen.borrow_mut().pings.push(self.start.elapsed());
            if let Some(line) = &self.answering {
                line.frame(false);
            }
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

    fn start() -> (Addr<Heartbeat>, Line, Rc<RefCell<Seen>>) {
        start_with(false)
    }

    fn start_with(answering: bool) -> (Addr<Heartbeat>, Line, Rc<RefCell<Seen>>) {
        start_timed(INTERVAL, TIMEOUT, answering)
    }

    fn start_timed(
        interval: Duration,
        timeout: Duration,
        answering: bool,
    ) -> (Addr<Heartbeat>, Line, Rc<RefCell<Seen>>) {
        tokio::time::pause();
        let seen = Rc::new(RefCell::new(Seen::default()));
        let line = Line {
            life: LineLife::new(),
            heartbeat: Rc::default(),
        };
        let conn = FakeConnection {
            start: Instant::now(),
            seen: seen.clone(),
            answering: answering.then(|| line.clone()),
        }
        .start();
        let peer = HeartbeatPeer::of(conn);
        let heartbeat = Heartbeat::new(peer, line.life.clone(), interval, timeout).start();
        *line.heartbeat.borrow_mut() = Some(heartbeat.clone());
        (heartbeat, line, seen)
    }

    async fn sleep(d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// At `want`, or a few timer ticks (1 ms each) after it.
    fn near(got: Duration, want: Duration) -> bool {
        got >= want && got <= want + Duration::from_millis(10)
    }

    #[actix_rt::test]
    async fn silence_pings_after_the_interval_and_is_dead_only_after_the_timeout() {
        let (_heartbeat, _line, seen) = start();
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
        let (_heartbeat, line, seen) = start();
        for _ in 0..24 {
            sleep(secs(5.0)).await;
            line.frame(false);
        }
        sleep(secs(14.0)).await;
        let seen = seen.borrow();
        assert!(seen.pings.is_empty(), "pinged a busy line at {:?}", seen.pings);
        assert!(seen.dead.is_empty());
    }

    #[actix_rt::test]
    async fn a_late_answer_within_the_timeout_keeps_the_line_alive() {
        let (_heartbeat, line, seen) = start();
        sleep(secs(15.0 + 9.9)).await;
        assert_eq!(seen.borrow().pings.len(), 1);
        // The Pong comes 9.9 s after the Ping: slow, not dead.
        line.frame(false);
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
        let (heartbeat, _line, seen) = start();
        heartbeat.do_send(StopHeartbeat);
        sleep(secs(60.0)).await;
        let seen = seen.borrow();
        assert!(seen.pings.is_empty() && seen.dead.is_empty());
        assert_eq!(seen.ended, 0, "stopping on request is not an unasked death");
        assert!(!heartbeat.connected(), "stopped");
    }

    #[actix_rt::test]
    async fn a_line_the_server_pings_every_20_s_is_not_pinged_as_well() {
        let (_heartbeat, line, seen) = start_with(true);
        // The server's Pings, every 20 s, for 5 minutes.
        for _ in 0..15 {
            sleep(secs(20.0)).await;
            line.frame(true);
        }
        let pings = seen.borrow().pings.clone();
        // Until two server Pings have shown the cadence (at 40 s), the line
        // is pinged 15 s into each quiet stretch; never again after that.
        assert_eq!(pings.len(), 2, "pings at {pings:?}");
        assert!(near(pings[0], INTERVAL) && near(pings[1], secs(35.0)), "{pings:?}");
        assert!(seen.borrow().dead.is_empty());
    }

    #[actix_rt::test]
    async fn a_server_that_stops_pinging_is_found_within_its_period_and_the_timeout() {
        let (_heartbeat, line, seen) = start();
        for _ in 0..3 {
            sleep(secs(20.0)).await;
            line.frame(true);
        }
        let stopped = secs(60.0);
        // Pinged at 15 and 35 s while the cadence was unknown (each answered
        // in time by the server's next Ping).
        assert_eq!(seen.borrow().pings.len(), 2);
        // Quiet limit 20 + 2.5 s, then 10 s for the answer.
        sleep(secs(22.4)).await;
        assert_eq!(seen.borrow().pings.len(), 2, "no Ping before period + timeout/4");
        sleep(secs(0.2)).await;
        assert_eq!(seen.borrow().pings.len(), 3);
        assert!(near(seen.borrow().pings[2], stopped + secs(22.5)));
        sleep(secs(9.9)).await;
        assert!(seen.borrow().dead.is_empty(), "dead only ping_timeout after the Ping");
        sleep(secs(0.2)).await;
        let seen = seen.borrow();
        assert_eq!(seen.dead.len(), 1);
        assert!(
            near(seen.dead[0].0, stopped + secs(32.5)),
            "dead at {:?}",
            seen.dead[0].0
        );
    }

    #[actix_rt::test]
    async fn a_peer_pinging_slower_than_interval_plus_timeout_changes_nothing() {
        let (_heartbeat, line, seen) = start_with(true);
        sleep(secs(30.0)).await;
        line.frame(true);
        sleep(secs(30.0)).await;
        line.frame(true);
        // A 30 s cadence is beyond 15 + 10 s: the line is still pinged
        // after 15 s of silence (at 15, 45 and 75 s).
        sleep(secs(15.1)).await;
        let pings = seen.borrow().pings.clone();
        assert_eq!(pings.len(), 3, "{pings:?}");
        assert!(near(pings[2], secs(75.0)), "{pings:?}");
    }

    #[actix_rt::test]
    async fn an_early_answer_times_the_next_ping_from_the_answer_not_the_deadline() {
        // An interval shorter than the timeout: waiting for the deadline
        // would leave the line unwatched for the difference.
        let (_heartbeat, line, seen) = start_timed(secs(5.0), secs(10.0), false);
        sleep(secs(5.0 + 0.5)).await;
        // The Pong, half a second after the Ping.
        line.frame(false);
        sleep(secs(4.9)).await;
        assert_eq!(seen.borrow().pings.len(), 1, "not before 5 s after the answer");
        sleep(secs(0.2)).await;
        let pings = seen.borrow().pings.clone();
        assert_eq!(pings.len(), 2, "{pings:?}");
        assert!(
            near(pings[1], secs(10.5)),
            "second Ping at {:?}, not at the deadline",
            pings[1]
        );
    }

    #[actix_rt::test]
    async fn a_heartbeat_that_dies_unasked_tells_its_connection() {
        // A timeout no clock can add to the time of a Ping: the heartbeat
        // panics when it sends its first Ping, as a bug in it would.
        let (heartbeat, _line, seen) = start_timed(INTERVAL, Duration::MAX, false);
        sleep(INTERVAL + secs(1.0)).await;
        let seen = seen.borrow();
        assert_eq!(seen.pings.len(), 1);
        assert_eq!(seen.ended, 1, "the connection must not go on untimed");
        assert!(!heartbeat.connected(), "dead");
    }

    /// Ends the fake connection, as a Connection ends after a loss.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Hangup;

    impl Handler<Hangup> for FakeConnection {
        type Result = ();
        fn handle(&mut self, _: Hangup, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }

    #[actix_rt::test]
    async fn a_heartbeat_whose_connection_is_gone_stops_at_its_ping_instant() {
        tokio::time::pause();
        let seen = Rc::new(RefCell::new(Seen::default()));
        let conn = FakeConnection {
            start: Instant::now(),
            seen: seen.clone(),
            answering: None,
        }
        .start();
        let heartbeat = Heartbeat::new(HeartbeatPeer::of(conn.clone()), LineLife::new(), INTERVAL, TIMEOUT).start();
        conn.do_send(Hangup);
        sleep(secs(1.0)).await;
        assert!(!conn.connected(), "the connection ended");
        assert!(heartbeat.connected(), "nothing to time out before the quiet limit");
        sleep(INTERVAL).await;
        assert!(
            !heartbeat.connected(),
            "stopped at the Ping's instant, not after a Ping nobody can answer"
        );
        let seen = seen.borrow();
        assert!(seen.pings.is_empty() && seen.dead.is_empty() && seen.ended == 0);
    }
}

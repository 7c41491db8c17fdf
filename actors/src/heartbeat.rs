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

//! Supervisor: the only starter of Connections. A connection's end becomes
//! a policy decision, which becomes a delayed restart, a parked `failed`
//! session, or a session that stays `stopped`. Deliberate stops
//! (disconnect, removal, reload, shutdown) never ask the policy.
//!
//! It also owns each session's queue of text messages, so that what local
//! programs send survives the connections that come and go.

mod journal;
mod queue;

use std::collections::HashMap;
use std::mem;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::oneshot;

pub use self::queue::{Held, OutboundQueue};
use crate::client::{ClientCache, ClientKey};
use crate::connection::{ConnectPlan, Connection, ConnectionLinks};
use crate::events::DropReason;
use crate::loss::Cause;
use crate::loss::LossReport;
use crate::messages::*;
use crate::monitor::Monitor;
use crate::ota::Discovered;
use crate::policy::ReconnectPolicy;
use crate::settings::SessionSettings;
use crate::state::{SessionState, StateUpdate};
use crate::traffic::TrafficCounters;

/// What the Supervisor does once a live connection has ended.
enum AfterEnd {
    /// Ask the policy (the connection was lost).
    Decide,
    /// Stay `stopped` (disconnect, shutdown).
    Stop,
    /// Connect again at once with a fresh attempt count.
    Restart,
    /// Forget the session.
    Remove,
    /// Take these settings and connect again.
    Replace(Box<SessionSettings>),
}

enum Run {
    Stopped,
    Live {
        conn: Addr<Connection>,
        ready: bool,
        then: AfterEnd,
    },
    Waiting(SpawnHandle),
    Failed(Option<SpawnHandle>),
}

struct Slot {
    settings: Arc<SessionSettings>,
    traffic: Arc<TrafficCounters>,
    generation: u64,
    attempt: u32,
    run: Run,
    queue: OutboundQueue,
    expiry_timer: Option<SpawnHandle>,
    /// Stopped after a clean close under `keep = "on_demand"`: traffic wakes it.
    wakes_on_send: bool,
    /// The OTA endpoint's last answer.
    discovered: Option<Discovered>,
    /// The next attempt asks the OTA endpoint again.
    refresh_next: bool,
}

/// Restarts one Connection per session, by the ReconnectPolicy's decisions.
pub struct Supervisor {
    slots: HashMap<String, Slot>,
    policy: Addr<ReconnectPolicy>,
    monitor: Addr<Monitor>,
    clients: ClientCache,
    next_generation: u64,
    /// Set once shutdown began: who waits for the last connection to end.
    shutdown: Option<Vec<oneshot::Sender<()>>>,
}

impl Supervisor {
    /// A supervisor using this policy and monitor.
    pub fn new(policy: Addr<ReconnectPolicy>, monitor: Addr<Monitor>) -> Self {
        Supervisor {
            slots: HashMap::new(),
            policy,
            monitor,
            clients: ClientCache::default(),
            next_generation: 0,
            shutdown: None,
        }
    }

    fn publish(&self, name: &str, state: SessionState, loss: Option<LossReport>, retry_in: Option<Duration>) {
        let Some(slot) = self.slots.get(name) else { return };
        let activation_code = loss.as_ref().and_then(|l| l.activation_code.clone());
        self.monitor.do_send(PublishState(StateUpdate {
            session: name.to_owned(),
            state,
            attempt: slot.attempt,
            max_attempts: slot.settings.reconnect.max_attempts,
            retry_in,
            loss,
            session_id: None,
            activation_code,
            at: SystemTime::now(),
        }));
    }

    fn start(&mut self, name: &str, attempt: u32, loss: Option<LossReport>, ctx: &mut Context<Self>) {
        if self.shutdown.is_some() {
            return;
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let me = ctx.address();
        let links = ConnectionLinks {
            phase: me.clone().recipient(),
            ended: me.recipient(),
            messages: self.monitor.clone().recipient(),
            audio: self.monitor.clone().recipient(),
            rtt: self.monitor.clone().recipient(),
        };
        let Some(slot) = self.slots.get_mut(name) else { return };
        if matches!(slot.run, Run::Live { .. }) {
            return;
        }
        cancel_timers(&mut slot.run, ctx);
        slot.generation = generation;
        slot.attempt = attempt;
        slot.wakes_on_send = false;
        let client = self.clients.get(&ClientKey::of(&slot.settings));
        let plan = ConnectPlan {
            known: slot.discovered.clone(),
            refresh: std::mem::take(&mut slot.refresh_next),
        };
        let conn = Connection::new(
            slot.settings.clone(),
            generation,
            client,
            plan,
            links,
            slot.traffic.clone(),
        )
        .start();
        slot.run = Run::Live {
            conn,
            ready: false,
            then: AfterEnd::Decide,
        };
        self.publish(name, SessionState::Connecting, loss, None);
    }

    /// Start a fresh burst: the policy forgets past failures.
    fn restart(&mut self, name: &str, loss: Option<LossReport>, ctx: &mut Context<Self>) {
        self.policy.do_send(ResetAttempts(name.to_owned()));
        self.start(name, 1, loss, ctx);
    }

    /// Close a live connection and say what follows; false if none is live.
    fn close_live(&mut self, name: &str, after: AfterEnd, reason: &str) -> bool {
        let Some(Slot {
            run: Run::Live { conn, then, .. },
            ..
        }) = self.slots.get_mut(name)
        else {
            return false;
        };
        *then = after;
        conn.do_send(CloseConnection {
            reason: reason.to_owned(),
        });
        true
    }

    fn stay_stopped(&mut self, name: &str, loss: Option<LossReport>, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        cancel_timers(&mut slot.run, ctx);
        slot.run = Run::Stopped;
        slot.attempt = 0;
        self.drop_queue(name, DropReason::SessionStopped);
        self.publish(name, SessionState::Stopped, loss, None);
    }

    fn remove(&mut self, name: &str, ctx: &mut Context<Self>) {
        self.drop_queue(name, DropReason::SessionStopped);
        if let Some(mut slot) = self.slots.remove(name) {
            cancel_timers(&mut slot.run, ctx);
            if let Some(timer) = slot.expiry_timer {
                ctx.cancel_future(timer);
            }
        }
        self.policy.do_send(ForgetPolicy(name.to_owned()));
        self.monitor.do_send(UnregisterSession(name.to_owned()));
    }

    fn apply_settings(&mut self, settings: SessionSettings) {
        let name = settings.name.clone();
        if settings.tls.insecure {
            log::warn!("session={name} tls_insecure = true: the server's certificate is NOT verified");
        }
        self.policy.do_send(ConfigurePolicy {
            session: name.clone(),
            reconnect: settings.reconnect,
            keep: settings.keep,
            refresh_on_auth_failure: settings.ota.is_some(),
        });
        let traffic = match self.slots.get(&name) {
            Some(slot) => slot.traffic.clone(),
            None => Arc::default(),
        };
        self.monitor.do_send(RegisterSession {
            session: name.clone(),
            url: settings.url.clone(),
            max_attempts: settings.reconnect.max_attempts,
            traffic: traffic.clone(),
        });
        let settings = Arc::new(settings);
        match self.slots.get_mut(&name) {
            Some(slot) => {
                // What an old OTA endpoint said may not hold for the new settings.
                slot.discovered = None;
                slot.settings = settings;
            }
            None => {
                let slot = Slot {
                    settings,
                    traffic,
                    generation: 0,
                    attempt: 0,
                    run: Run::Stopped,
                    queue: OutboundQueue::default(),
                    expiry_timer: None,
                    wakes_on_send: false,
                    discovered: None,
                    refresh_next: false,
                };
                self.slots.insert(name, slot);
            }
        }
    }

    fn decided(&mut self, name: String, report: LossReport, decision: Decision, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(&name) else { return };
        let max_attempts = slot.settings.reconnect.max_attempts;
        match decision {
            Decision::Retry {
                attempt,
                after,
                refresh,
            } => {
                let state = if report.cause == Cause::ActivationRequired {
                    journal::activation(&name, &report, after);
                    SessionState::Activating
                } else {
                    journal::retrying(&name, attempt, max_attempts, after);
                    SessionState::Backoff
                };
                slot.attempt = attempt;
                slot.refresh_next = refresh;
                let timer = ctx.run_later(after, move |act, ctx| act.start(&name.clone(), attempt, None, ctx));
                slot.run = Run::Waiting(timer);
                let name = &slot.settings.name.clone();
                self.publish(name, state, Some(report), Some(after));
            }
            Decision::GiveUp { attempts } => {
                let revive_after = slot.settings.reconnect.revive_after;
                journal::gave_up(&name, attempts, report.cause, revive_after);
                slot.attempt = attempts;
                let revive = revive_after.map(|after| {
                    let name = name.clone();
                    ctx.run_later(after, move |act, ctx| {
                        journal::reviving(&name);
                        act.restart(&name, None, ctx);
                    })
                });
                slot.run = Run::Failed(revive);
                self.publish(&name, SessionState::Failed, Some(report), None);
            }
            Decision::StayDown => {
                slot.run = Run::Stopped;
                slot.attempt = 0;
                slot.wakes_on_send = report.is_clean_close();
                self.publish(&name, SessionState::Stopped, Some(report), None);
            }
        }
    }

    /// The session's live connection and whether it is ready.
    fn connection_of(&self, name: &str) -> Result<(&Addr<Connection>, bool), CommandError> {
        match self.slots.get(name) {
            Some(Slot {
                run: Run::Live { conn, ready, .. },
                ..
            }) => Ok((conn, *ready)),
            Some(_) => Err(CommandError::NotReady(name.to_owned())),
            None => Err(CommandError::NotFound(name.to_owned())),
        }
    }

    fn finish_shutdown_if_done(&mut self) {
        let live = self.slots.values().any(|slot| matches!(slot.run, Run::Live { .. }));
        if !live {
            if let Some(waiters) = &mut self.shutdown {
                for waiter in waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
        }
    }

    // ───────────── the queue ─────────────

    fn hand_to_connection(&mut self, name: &str, held: Held, conn: Addr<Connection>, ctx: &mut Context<Self>) {
        let name = name.to_owned();
        let write = conn.send(WriteText(held.message.clone()));
        ctx.spawn(write.into_actor(self).map(move |result, act, ctx| {
            // Handed back, or the connection died with it in its mailbox: hold it again.
            if !matches!(result, Ok(Ok(()))) {
                act.hold_again(&name, held, ctx);
            }
        }));
    }

    fn hold_again(&mut self, name: &str, held: Held, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        if matches!(slot.run, Run::Stopped) && !slot.wakes_on_send {
            self.report_dropped(name, 1, DropReason::SessionStopped);
            return;
        }
        let overflow = slot.queue.restore(vec![held], slot.settings.queue.limit);
        if overflow > 0 {
            self.report_dropped(name, overflow, DropReason::QueueFull);
        }
        self.queue_changed(name, ctx);
        if let Some(Slot {
            run: Run::Live { ready: true, .. },
            ..
        }) = self.slots.get(name)
        {
            self.flush(name, ctx);
        }
    }

    /// Write everything held, oldest first, right after the server hello.
    fn flush(&mut self, name: &str, ctx: &mut Context<Self>) {
        self.expire(name, ctx);
        let Some(slot) = self.slots.get_mut(name) else { return };
        let Run::Live { conn, ready: true, .. } = &slot.run else {
            return;
        };
        let conn = conn.clone();
        let held = slot.queue.drain();
        self.queue_changed(name, ctx);
        for message in held {
            self.hand_to_connection(name, message, conn.clone(), ctx);
        }
    }

    fn expire(&mut self, name: &str, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        let expired = slot.queue.expire(Instant::now(), slot.settings.queue.ttl);
        if expired > 0 {
            self.report_dropped(name, expired, DropReason::QueueTtl);
            self.queue_changed(name, ctx);
        }
    }

    /// Publish the queue length and arm the timer for the oldest message's expiry.
    fn queue_changed(&mut self, name: &str, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        if let Some(timer) = slot.expiry_timer.take() {
            ctx.cancel_future(timer);
        }
        if let Some(at) = slot.queue.next_expiry(slot.settings.queue.ttl) {
            let owned = name.to_owned();
            let wait = at.saturating_duration_since(Instant::now());
            slot.expiry_timer = Some(ctx.run_later(wait, move |act, ctx| act.expire(&owned, ctx)));
        }
        self.monitor.do_send(RecordQueued {
            session: name.to_owned(),
            queued: slot.queue.len(),
        });
    }

    fn drop_queue(&mut self, name: &str, why: DropReason) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        let count = slot.queue.drain().len() as u64;
        if count > 0 {
            self.report_dropped(name, count, why);
            self.monitor.do_send(RecordQueued {
                session: name.to_owned(),
                queued: 0,
            });
        }
    }

    fn report_dropped(&self, name: &str, count: u64, why: DropReason) {
        journal::dropped(name, count, why);
        self.monitor.do_send(PublishDropped {
            session: name.to_owned(),
            count,
            why,
        });
    }
}

fn cancel_timers(run: &mut Run, ctx: &mut Context<Supervisor>) {
    match mem::replace(run, Run::Stopped) {
        Run::Waiting(timer) | Run::Failed(Some(timer)) => {
            ctx.cancel_future(timer);
        }
        other => *run = other,
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;
}

impl Handler<AddSession> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: AddSession, ctx: &mut Context<Self>) -> Self::Result {
        let name = msg.0.name.clone();
        if self.slots.contains_key(&name) {
            return Err(CommandError::AlreadyExists(name));
        }
        let autostart = msg.0.autostart;
        self.apply_settings(msg.0);
        self.publish(&name, SessionState::Stopped, None, None);
        if autostart {
            self.start(&name, 1, None, ctx);
        }
        Ok(())
    }
}

impl Handler<ReplaceSession> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: ReplaceSession, ctx: &mut Context<Self>) -> Self::Result {
        let name = msg.0.name.clone();
        let slot = self
            .slots
            .get_mut(&name)
            .ok_or_else(|| CommandError::NotFound(name.clone()))?;
        if matches!(slot.run, Run::Live { .. }) {
            self.close_live(&name, AfterEnd::Replace(Box::new(msg.0)), "configuration changed");
            return Ok(());
        }
        let was_running = !matches!(slot.run, Run::Stopped);
        cancel_timers(&mut slot.run, ctx);
        self.apply_settings(msg.0);
        if was_running {
            self.restart(&name, None, ctx);
        }
        Ok(())
    }
}

impl Handler<RemoveSession> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: RemoveSession, ctx: &mut Context<Self>) -> Self::Result {
        if !self.slots.contains_key(&msg.0) {
            return Err(CommandError::NotFound(msg.0));
        }
        if !self.close_live(&msg.0, AfterEnd::Remove, "session removed") {
            self.remove(&msg.0, ctx);
        }
        Ok(())
    }
}

impl Handler<ConnectSession> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: ConnectSession, ctx: &mut Context<Self>) -> Self::Result {
        let slot = self
            .slots
            .get(&msg.0)
            .ok_or_else(|| CommandError::NotFound(msg.0.clone()))?;
        if !matches!(slot.run, Run::Live { .. }) {
            self.restart(&msg.0, None, ctx);
        }
        Ok(())
    }
}

impl Handler<DisconnectSession> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: DisconnectSession, ctx: &mut Context<Self>) -> Self::Result {
        let slot = self
            .slots
            .get(&msg.0)
            .ok_or_else(|| CommandError::NotFound(msg.0.clone()))?;
        match slot.run {
            Run::Live { .. } => {
                self.close_live(&msg.0, AfterEnd::Stop, "disconnect");
            }
            Run::Stopped => {}
            Run::Waiting(_) | Run::Failed(_) => self.stay_stopped(&msg.0, None, ctx),
        }
        Ok(())
    }
}

impl Handler<ReconnectSession> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: ReconnectSession, ctx: &mut Context<Self>) -> Self::Result {
        if !self.slots.contains_key(&msg.0) {
            return Err(CommandError::NotFound(msg.0));
        }
        if !self.close_live(&msg.0, AfterEnd::Restart, "reconnect") {
            self.restart(&msg.0, None, ctx);
        }
        Ok(())
    }
}

impl Handler<SendText> for Supervisor {
    type Result = Result<SendOutcome, CommandError>;

    fn handle(&mut self, msg: SendText, ctx: &mut Context<Self>) -> Self::Result {
        let name = msg.session;
        let slot = self
            .slots
            .get_mut(&name)
            .ok_or_else(|| CommandError::NotFound(name.clone()))?;
        let held = Held {
            seq: slot.queue.next_seq(),
            accepted_at: Instant::now(),
            message: msg.message,
        };
        if let Run::Live { conn, ready: true, .. } = &slot.run {
            let conn = conn.clone();
            self.hand_to_connection(&name, held, conn, ctx);
            return Ok(SendOutcome::Sent);
        }
        if matches!(slot.run, Run::Stopped) && !slot.wakes_on_send {
            return Err(CommandError::NotReady(name));
        }
        let limit = slot.settings.queue.limit;
        if limit == 0 {
            return Err(CommandError::NotReady(name));
        }
        let position = slot
            .queue
            .push(held, limit)
            .map_err(|_| CommandError::QueueFull(name.clone()))?;
        let wake = matches!(slot.run, Run::Stopped);
        self.queue_changed(&name, ctx);
        if wake {
            self.restart(&name, None, ctx);
        }
        Ok(SendOutcome::Queued { position })
    }
}

impl Handler<SendAudio> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: SendAudio, _: &mut Context<Self>) -> Self::Result {
        match self.connection_of(&msg.session)? {
            (conn, true) => {
                conn.do_send(WriteBinary(msg.data));
                Ok(())
            }
            (_, false) => Err(CommandError::NotReady(msg.session)),
        }
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.shutdown.get_or_insert_with(Vec::new).push(tx);
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for name in names {
            if !self.close_live(&name, AfterEnd::Stop, "shutdown") {
                if let Some(slot) = self.slots.get_mut(&name) {
                    cancel_timers(&mut slot.run, ctx);
                }
            }
        }
        self.finish_shutdown_if_done();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<ProbeTree> for Supervisor {
    type Result = ResponseFuture<Result<usize, String>>;

    /// The Supervisor answers by handling this; the rest must answer in time.
    fn handle(&mut self, msg: ProbeTree, _: &mut Context<Self>) -> Self::Result {
        let mut probes: Vec<(String, Recipient<Probe>)> = vec![
            ("reconnect policy".to_owned(), self.policy.clone().recipient()),
            ("monitor".to_owned(), self.monitor.clone().recipient()),
        ];
        for (name, slot) in &self.slots {
            if let Run::Live { conn, .. } = &slot.run {
                probes.push((format!("session={name} connection"), conn.clone().recipient()));
            }
        }
        let probes: Vec<_> = probes
            .into_iter()
            .map(|(who, actor)| (who, actor.send(Probe)))
            .collect();
        Box::pin(async move {
            let count = probes.len() + 1;
            let deadline = tokio::time::Instant::now() + msg.within;
            for (who, probe) in probes {
                match tokio::time::timeout_at(deadline, probe).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {} // ended meanwhile: not wedged
                    Err(_) => return Err(who),
                }
            }
            Ok(count)
        })
    }
}

impl Handler<ConnectionPhase> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ConnectionPhase, ctx: &mut Context<Self>) {
        let Some(slot) = self
            .slots
            .get_mut(&msg.session)
            .filter(|s| s.generation == msg.generation)
        else {
            return;
        };
        let Run::Live { ready, .. } = &mut slot.run else { return };
        match msg.phase {
            Phase::Discovered(found) => {
                if slot.settings.url.is_none() {
                    self.monitor.do_send(RegisterSession {
                        session: msg.session.clone(),
                        url: found.url.clone(),
                        max_attempts: slot.settings.reconnect.max_attempts,
                        traffic: slot.traffic.clone(),
                    });
                }
                slot.discovered = Some(found);
            }
            Phase::Handshaking => self.publish(&msg.session, SessionState::Handshaking, None, None),
            Phase::Ready { url, session_id, took } => {
                *ready = true;
                slot.attempt = 0;
                journal::connected(&msg.session, &url, session_id.as_deref(), took);
                self.monitor.do_send(PublishState(StateUpdate {
                    session: msg.session.clone(),
                    state: SessionState::Ready,
                    attempt: 0,
                    max_attempts: slot.settings.reconnect.max_attempts,
                    retry_in: None,
                    loss: None,
                    session_id,
                    activation_code: None,
                    at: SystemTime::now(),
                }));
                self.flush(&msg.session, ctx);
            }
        }
    }
}

impl Handler<ConnectionEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ConnectionEnded, ctx: &mut Context<Self>) {
        let Some(slot) = self
            .slots
            .get_mut(&msg.session)
            .filter(|s| s.generation == msg.generation)
        else {
            return;
        };
        let Run::Live { then, .. } = mem::replace(&mut slot.run, Run::Stopped) else {
            return;
        };
        journal::lost(&msg.session, &msg.report, msg.ready_for);
        let name = msg.session;
        match then {
            AfterEnd::Stop => self.stay_stopped(&name, Some(msg.report), ctx),
            AfterEnd::Restart => self.restart(&name, Some(msg.report), ctx),
            AfterEnd::Remove => self.remove(&name, ctx),
            AfterEnd::Replace(settings) => {
                self.apply_settings(*settings);
                self.restart(&name, Some(msg.report), ctx);
            }
            AfterEnd::Decide if self.shutdown.is_some() => self.stay_stopped(&name, Some(msg.report), ctx),
            AfterEnd::Decide => {
                let decide = Decide {
                    session: name.clone(),
                    report: msg.report.clone(),
                    ready_for: msg.ready_for,
                };
                // Waiting here keeps every other command out until the decision
                // is applied, so no session is ever "between" states.
                ctx.wait(
                    self.policy
                        .send(decide)
                        .into_actor(self)
                        .map(move |decision, act, ctx| {
                            let decision = decision.unwrap_or_else(|err| {
                                log::error!("session={name} reconnect policy unavailable: {err}");
                                Decision::GiveUp { attempts: 0 }
                            });
                            act.decided(name, msg.report, decision, ctx);
                        }),
                );
            }
        }
        self.finish_shutdown_if_done();
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<PanicConnection> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: PanicConnection, _: &mut Context<Self>) -> Self::Result {
        self.connection_of(&msg.0)?.0.do_send(InjectPanic);
        Ok(())
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<WedgeConnection> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: WedgeConnection, _: &mut Context<Self>) -> Self::Result {
        self.connection_of(&msg.0)?.0.do_send(InjectWedge);
        Ok(())
    }
}

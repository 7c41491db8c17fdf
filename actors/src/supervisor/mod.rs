//! Supervisor: the only starter of Connections. A connection's end becomes
//! a policy decision, which becomes a delayed restart, a parked `failed`
//! session, or a session that stays `stopped`. Deliberate stops
//! (disconnect, removal, reload, shutdown) never ask the policy.
//!
//! Each session's state is a `Run` that holds its own data; every change
//! goes through [`Supervisor::transition`], which checks it against the
//! table in `run`, cancels what the old state owned, and publishes the
//! state derived from the new one.
//!
//! It also owns each session's queue of text messages, so that what local
//! programs send survives the connections that come and go.
//!
//! Here: the session records, the transition, starting connections, and
//! what follows a connection's end. `commands` has the daemon's commands,
//! `outbound` the queue's traffic, `activating` the activation state,
//! `run` the states and their table, `journal` the log lines.

mod activating;
mod commands;
mod journal;
mod outbound;
mod queue;
mod run;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use tokio::sync::{oneshot, Semaphore};

pub use self::queue::{Bounds, Held, OutboundQueue, QueueBound};
use self::run::{allowed, AfterEnd, LivePhase, Purpose, Run};
use crate::client::{ClientCache, ClientKey};
use crate::connection::{ConnectPlan, Connection, ConnectionLinks, SessionShared, UPGRADES_IN_FLIGHT};
use crate::events::DropReason;
use crate::logsafe;
use crate::loss::{Cause, LossReport};
use crate::mcp::{McpMode, McpResponder, McpShared, SessionTools};
use crate::messages::*;
use crate::monitor::Monitor;
use crate::ota::Discovered;
use crate::policy::ReconnectPolicy;
use crate::settings::SessionSettings;
use crate::state::StateUpdate;

/// What the Supervisor must know of the daemon around it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SupervisorOptions {
    /// The daemon exits once every session has given up (`on_give_up =
    /// "exit"`): said in the give-up line, so it does not promise probes.
    pub exit_when_all_fail: bool,
}

struct Slot {
    settings: Arc<SessionSettings>,
    shared: SessionShared,
    generation: u64,
    run: Run,
    queue: OutboundQueue,
    expiry_timer: Option<SpawnHandle>,
    /// The OTA endpoint's last answer.
    discovered: Option<Discovered>,
    /// The server refused the configured token and the OTA endpoint gave
    /// another: use that one from now on (until the settings change).
    prefer_discovered_token: bool,
    /// Activation: the code shown and since when (a new one is logged as new).
    activation: activating::Seen,
    /// The session's MCP responder; it outlives the connections.
    mcp: Option<Addr<McpResponder>>,
}

impl Slot {
    fn bounds(&self) -> Bounds {
        Bounds {
            messages: self.settings.queue.limit,
            bytes: self.settings.queue.bytes,
        }
    }
}

/// Restarts one Connection per session, by the ReconnectPolicy's decisions.
pub struct Supervisor {
    /// Boxed, as the policies (see `ReconnectPolicy`): the table's empty
    /// buckets then cost a pointer, not a slot.
    slots: HashMap<String, Box<Slot>>,
    policy: Addr<ReconnectPolicy>,
    monitor: Addr<Monitor>,
    clients: ClientCache,
    /// Upgrades in flight, for every connection of the tree.
    upgrades: Arc<Semaphore>,
    options: SupervisorOptions,
    next_generation: u64,
    /// Set once shutdown began: who waits for the last connection to end.
    shutdown: Option<Vec<oneshot::Sender<()>>>,
    /// What the sessions' MCP responders share; without it (a tree built
    /// without [`Supervisor::with_mcp`]) no session answers MCP.
    mcp: Option<McpShared>,
}

impl Supervisor {
    /// A supervisor using this policy and monitor.
    pub fn new(policy: Addr<ReconnectPolicy>, monitor: Addr<Monitor>, options: SupervisorOptions) -> Self {
        Supervisor {
            slots: HashMap::new(),
            policy,
            monitor,
            clients: ClientCache::default(),
            upgrades: Arc::new(Semaphore::new(UPGRADES_IN_FLIGHT)),
            options,
            next_generation: 0,
            shutdown: None,
            mcp: None,
        }
    }

    /// Give every session an MCP responder sharing `mcp`.
    pub fn with_mcp(mut self, mcp: McpShared) -> Self {
        self.mcp = Some(mcp);
        self
    }

    /// The one way a session changes state: checked against the table,
    /// the old state's timer cancelled, the new state published.
    fn transition(&mut self, name: &str, next: Run, loss: Option<LossReport>, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        let (from, to) = (slot.run.kind(), next.kind());
        if !allowed(from, to) {
            // A bug, never a reason to lose the session: say so and go on.
            log::error!("session={name} transition not allowed: {from:?} -> {to:?}");
            debug_assert!(false, "session={name} transition not allowed: {from:?} -> {to:?}");
        }
        if let Some(timer) = slot.run.take_timer() {
            ctx.cancel_future(timer);
        }
        slot.run = next;
        let Some(state) = to.public() else { return };
        let run = &slot.run;
        self.monitor.do_send(PublishState(StateUpdate {
            session: name.to_owned(),
            state,
            attempt: run.attempt(),
            max_attempts: slot.settings.reconnect.max_attempts,
            retry_in: run.retry_in(),
            loss,
            session_id: run.session_id().map(str::to_owned),
            activation_code: run.activation_code().map(str::to_owned),
            at: SystemTime::now(),
        }));
    }

    /// Start a connection: attempt `attempt` of its burst, for `purpose`.
    fn start(&mut self, name: &str, attempt: u32, purpose: Purpose, loss: Option<LossReport>, ctx: &mut Context<Self>) {
        if self.shutdown.is_some() {
            return;
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let links = ConnectionLinks {
            upgrades: self.upgrades.clone(),
            supervisor: ctx.address(),
            monitor: self.monitor.clone(),
            mcp: None,
        };
        let Some(slot) = self.slots.get_mut(name) else { return };
        let links = ConnectionLinks {
            mcp: slot.mcp.clone().map(Addr::recipient),
            ..links
        };
        if slot.run.connection().is_some() {
            return;
        }
        let refresh = match (&slot.run, purpose) {
            (Run::Backoff { refresh, .. }, _) => *refresh,
            (_, Purpose::TokenRefresh) => true,
            // A probe asks the OTA endpoint again: what it said may be stale.
            (_, Purpose::Probe) => slot.settings.ota.is_some(),
            _ => false,
        };
        slot.generation = generation;
        let client = self.clients.get(&ClientKey::of(&slot.settings));
        let plan = ConnectPlan {
            known: slot.discovered.clone(),
            refresh,
            // A refresh after a refusal is there to try the OTA token.
            prefer_discovered_token: slot.prefer_discovered_token || purpose == Purpose::TokenRefresh,
        };
        journal::connecting(name, attempt);
        let conn = Connection::new(
            slot.settings.clone(),
            generation,
            client,
            plan,
            links,
            slot.shared.clone(),
        )
        .start();
        let live = Run::Live {
            conn,
            phase: LivePhase::Connecting,
            attempt,
            purpose,
            then: AfterEnd::Decide,
        };
        self.transition(name, live, loss, ctx);
    }

    /// Start a fresh burst: the policy forgets past failures.
    fn restart(&mut self, name: &str, loss: Option<LossReport>, ctx: &mut Context<Self>) {
        self.policy.do_send(ResetAttempts(name.to_owned()));
        self.start(name, 0, Purpose::Attempt, loss, ctx);
    }

    /// Close a live connection and say what follows; false if none is live.
    fn close_live(&mut self, name: &str, after: AfterEnd, reason: &str) -> bool {
        let Some(Slot {
            run: Run::Live { conn, then, .. },
            ..
        }) = self.slots.get_mut(name).map(|slot| &mut **slot)
        else {
            return false;
        };
        *then = after;
        conn.do_send(CloseConnection {
            reason: reason.to_owned(),
        });
        true
    }

    fn stay_stopped(&mut self, name: &str, wakes_on_send: bool, loss: Option<LossReport>, ctx: &mut Context<Self>) {
        if !wakes_on_send {
            self.drop_queue(name, DropReason::SessionStopped);
        }
        self.transition(name, Run::Stopped { wakes_on_send }, loss, ctx);
    }

    fn remove(&mut self, name: &str, ctx: &mut Context<Self>) {
        self.drop_queue(name, DropReason::SessionStopped);
        if let Some(mut slot) = self.slots.remove(name) {
            if let Some(responder) = slot.mcp.take() {
                responder.do_send(StopMcp);
            }
            if let Some(timer) = slot.run.take_timer() {
                ctx.cancel_future(timer);
            }
            if let Some(timer) = slot.expiry_timer {
                ctx.cancel_future(timer);
            }
        }
        self.policy.do_send(ForgetPolicy(name.to_owned()));
        self.monitor.do_send(UnregisterSession(name.to_owned()));
    }

    fn register_url(monitor: &Addr<Monitor>, name: &str, url: Option<&str>, slot: &Slot) {
        monitor.do_send(RegisterSession {
            session: name.to_owned(),
            url: url.map(logsafe::redact_url),
            max_attempts: slot.settings.reconnect.max_attempts,
            traffic: slot.shared.traffic.clone(),
        });
    }

    fn apply_settings(&mut self, settings: Arc<SessionSettings>) {
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
        match self.slots.get_mut(&name) {
            Some(slot) => {
                // What an old OTA endpoint said may not hold for the new settings.
                slot.discovered = None;
                slot.prefer_discovered_token = false;
                slot.activation = activating::Seen::default();
                if slot.settings.mcp != settings.mcp {
                    if let Some(old) = slot.mcp.take() {
                        old.do_send(StopMcp);
                    }
                }
                slot.settings = settings;
            }
            None => {
                let slot = Slot {
                    settings,
                    shared: SessionShared::default(),
                    generation: 0,
                    run: Run::Stopped { wakes_on_send: false },
                    queue: OutboundQueue::default(),
                    expiry_timer: None,
                    discovered: None,
                    prefer_discovered_token: false,
                    activation: activating::Seen::default(),
                    mcp: None,
                };
                self.slots.insert(name.clone(), Box::new(slot));
            }
        }
        self.start_responder(&name);
        let slot = &self.slots[&name];
        Self::register_url(&self.monitor, &name, slot.settings.url.as_deref(), slot);
    }

    /// What follows a lost connection, as the policy decided.
    fn decided(
        &mut self,
        name: String,
        ended: &ConnectionEnded,
        purpose: Purpose,
        decision: Decision,
        ctx: &mut Context<Self>,
    ) {
        let Some(slot) = self.slots.get(&name) else { return };
        let max_attempts = slot.settings.reconnect.max_attempts;
        let report = ended.report.clone();
        let refreshing = matches!(decision, Decision::Retry { refresh: true, .. }) && report.cause == Cause::AuthFailed;
        journal::lost(&name, ended, purpose == Purpose::Probe, refreshing);
        match decision {
            Decision::Retry {
                attempt,
                after,
                refresh,
            } => {
                let purpose = if refreshing {
                    Purpose::TokenRefresh
                } else {
                    Purpose::Attempt
                };
                // A refusal that one refresh may repair is not a loss yet.
                let loss = (!refreshing).then_some(report);
                if after.is_zero() {
                    return self.start(&name, attempt, purpose, loss, ctx);
                }
                journal::retrying(&name, attempt, max_attempts, after);
                let owned = name.clone();
                let timer = ctx.run_later(after, move |act, ctx| act.start(&owned, attempt, purpose, None, ctx));
                let next = Run::Backoff {
                    timer,
                    attempt,
                    after,
                    refresh,
                };
                self.transition(&name, next, loss, ctx);
            }
            Decision::AwaitActivation { after } => self.await_activation(&name, report, after, ctx),
            Decision::GiveUp { attempts, probe_in } => {
                let revive_after = slot.settings.reconnect.revive_after;
                journal::gave_up(
                    &name,
                    attempts,
                    report.cause,
                    revive_after,
                    self.options.exit_when_all_fail,
                );
                let failed = self.parked(&name, attempts, probe_in, ctx);
                self.transition(&name, failed, Some(report), ctx);
            }
            Decision::KeepProbing { probe_in } => {
                journal::probe_failed(&name, report.cause, probe_in);
                let attempts = slot.run.attempt().max(max_attempts);
                let failed = self.parked(&name, attempts, probe_in, ctx);
                self.transition(&name, failed, Some(report), ctx);
            }
            Decision::StayDown => {
                let wakes_on_send = report.is_clean_close();
                self.stay_stopped(&name, wakes_on_send, Some(report), ctx);
            }
        }
    }

    /// Give the session a responder when its settings want one and it has none.
    fn start_responder(&mut self, name: &str) {
        let (Some(shared), Some(slot)) = (&self.mcp, self.slots.get_mut(name)) else {
            return;
        };
        if slot.mcp.is_none() && slot.settings.mcp.answered() {
            let settings = Arc::new(slot.settings.mcp.clone());
            let responder = McpResponder::new(name, settings, shared.broker.clone(), shared.stats.clone());
            slot.mcp = Some(responder.start());
        }
    }

    /// The `failed` state, with its next probe scheduled.
    fn parked(&self, name: &str, attempts: u32, probe_in: Option<Duration>, ctx: &mut Context<Self>) -> Run {
        let probe = probe_in.map(|after| {
            let owned = name.to_owned();
            let timer = ctx.run_later(after, move |act, ctx| {
                journal::probing(&owned);
                act.start(&owned, attempts, Purpose::Probe, None, ctx);
            });
            (timer, after)
        });
        Run::Failed { probe, attempts }
    }

    /// The session's ready connection.
    fn ready_connection(&self, name: &str) -> Result<Addr<Connection>, CommandError> {
        let slot = self
            .slots
            .get(name)
            .ok_or_else(|| CommandError::NotFound(name.to_owned()))?;
        match &slot.run {
            Run::Live {
                conn,
                phase: LivePhase::Ready { .. },
                ..
            } => Ok(conn.clone()),
            run => Err(CommandError::NotReady {
                session: name.to_owned(),
                state: run.kind().public(),
            }),
        }
    }

    fn finish_shutdown_if_done(&mut self) {
        let live = self.slots.values().any(|slot| slot.run.connection().is_some());
        if !live {
            if let Some(waiters) = &mut self.shutdown {
                for waiter in waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;
}

impl Handler<ProbeTree> for Supervisor {
    type Result = ResponseFuture<Result<usize, Unanswered>>;

    /// The Supervisor answers by handling this; the rest must answer in time.
    fn handle(&mut self, msg: ProbeTree, _: &mut Context<Self>) -> Self::Result {
        let mut probes: Vec<(String, Recipient<Probe>)> = vec![
            ("reconnect policy".to_owned(), self.policy.clone().recipient()),
            ("monitor".to_owned(), self.monitor.clone().recipient()),
        ];
        if let Some(mcp) = &self.mcp {
            probes.push(("tool broker".to_owned(), mcp.broker.clone().recipient()));
        }
        for (name, slot) in &self.slots {
            if let Some(conn) = slot.run.connection() {
                probes.push((format!("session={name} connection"), conn.clone().recipient()));
            }
            if let Some(responder) = &slot.mcp {
                probes.push((format!("session={name} mcp responder"), responder.clone().recipient()));
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
                    Err(_) => return Err(Unanswered { who }),
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
        let Run::Live {
            conn, attempt, purpose, ..
        } = &slot.run
        else {
            return;
        };
        let (conn, attempt, purpose) = (conn.clone(), *attempt, *purpose);
        let advanced = |phase| Run::Live {
            conn,
            phase,
            attempt,
            purpose,
            then: AfterEnd::Decide,
        };
        match msg.phase {
            Phase::Offered(offered) => Self::record_offered(&self.monitor, &msg.session, slot, offered),
            Phase::Discovered(found) => {
                if slot.settings.url.is_none() {
                    Self::register_url(&self.monitor, &msg.session, found.url.as_deref(), slot);
                }
                slot.discovered = Some(found);
            }
            Phase::Handshaking => self.keep_then(&msg.session, advanced(LivePhase::Handshaking), ctx),
            Phase::Ready { url, session_id, took } => {
                journal::connected(&msg.session, &url, session_id.as_deref(), took);
                slot.activation = activating::Seen::default();
                if purpose == Purpose::TokenRefresh {
                    let configured = slot.settings.credential.is_some();
                    slot.prefer_discovered_token |= configured;
                    journal::token_refreshed(&msg.session, configured);
                }
                let next = advanced(LivePhase::Ready { session_id });
                self.keep_then(&msg.session, next, ctx);
                self.flush(&msg.session, ctx);
            }
        }
    }
}

impl Supervisor {
    /// Move a live connection to its next phase, keeping what its end was
    /// already meant to lead to.
    fn keep_then(&mut self, name: &str, mut next: Run, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        if let (Run::Live { then: old, .. }, Run::Live { then: new, .. }) = (&mut slot.run, &mut next) {
            std::mem::swap(old, new);
        }
        self.transition(name, next, None, ctx);
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
        let Run::Live { then, purpose, .. } = &mut slot.run else {
            return;
        };
        let (then, purpose) = (std::mem::replace(then, AfterEnd::Decide), *purpose);
        let name = msg.session.clone();
        // Every end passes through `Deciding`; a deliberate stop settles it
        // without asking the policy.
        self.transition(&name, Run::Deciding, None, ctx);
        let name = msg.session.clone();
        match then {
            AfterEnd::Stop => {
                journal::lost(&name, &msg, false, false);
                self.stay_stopped(&name, false, Some(msg.report), ctx)
            }
            AfterEnd::Restart => {
                journal::lost(&name, &msg, false, false);
                self.restart(&name, Some(msg.report), ctx)
            }
            AfterEnd::Remove => {
                journal::lost(&name, &msg, false, false);
                self.remove(&name, ctx)
            }
            AfterEnd::Replace(settings) => {
                journal::lost(&name, &msg, false, false);
                self.apply_settings(settings);
                self.restart(&name, Some(msg.report), ctx);
            }
            AfterEnd::Decide if self.shutdown.is_some() => {
                journal::lost(&name, &msg, false, false);
                self.stay_stopped(&name, false, Some(msg.report), ctx)
            }
            AfterEnd::Decide => self.ask_policy(name, msg, purpose, ctx),
        }
        self.finish_shutdown_if_done();
    }
}

impl Supervisor {
    /// Ask the policy what follows `ended` (the session is `Deciding`).
    fn ask_policy(&mut self, name: String, ended: ConnectionEnded, purpose: Purpose, ctx: &mut Context<Self>) {
        let decide = Decide {
            session: name.clone(),
            report: ended.report.clone(),
            ready_for: ended.ready_for,
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
                        Decision::GiveUp {
                            attempts: 0,
                            probe_in: None,
                        }
                    });
                    act.decided(name, &ended, purpose, decision, ctx);
                }),
        );
    }
}

impl Handler<GetSessionTools> for Supervisor {
    type Result = ResponseFuture<Result<SessionTools, CommandError>>;

    fn handle(&mut self, msg: GetSessionTools, _: &mut Context<Self>) -> Self::Result {
        let slot = match self.slots.get(&msg.0) {
            Some(slot) => slot,
            None => return Box::pin(async move { Err(CommandError::NotFound(msg.0)) }),
        };
        let mode = slot.settings.mcp.mode;
        let responder = slot.mcp.clone().filter(|_| mode == McpMode::Builtin);
        Box::pin(async move {
            let tools = match responder {
                Some(responder) => responder.send(ListTools).await.unwrap_or_default(),
                None => Vec::new(),
            };
            Ok(SessionTools { mode, tools })
        })
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<PanicConnection> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: PanicConnection, _: &mut Context<Self>) -> Self::Result {
        self.ready_connection(&msg.0)?.do_send(InjectPanic);
        Ok(())
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<WedgeConnection> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: WedgeConnection, _: &mut Context<Self>) -> Self::Result {
        self.ready_connection(&msg.0)?.do_send(InjectWedge);
        Ok(())
    }
}

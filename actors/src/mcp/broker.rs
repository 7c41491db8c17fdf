//! ToolBroker: the tools local programs offer over the control socket, for
//! every session's responder. One per daemon. A program (a *provider*)
//! offers tools for some sessions or all; the broker hands each call to it
//! as a [`ToolCall`] with a fresh call id, answers the responder with the
//! program's result, or with an error once the tool's timeout passes or the
//! program goes away (its tools are withdrawn then, and its calls in
//! flight end as [`ToolOutcome::Withdrawn`]). Every call gets exactly one
//! answer.
//!
//! Bounded: providers, tools per provider, and calls waiting for each
//! provider (its channel and its table of calls in flight).
//!
//! It knows nothing of the control socket: a provider is a channel of
//! calls and an id, whatever carries them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::outcome::ToolOutcome;
use super::tool::ToolSpec;
use crate::messages::{AnswerToolCall, CallOfferedTool, OfferTools, OfferedTools, Probe, WithdrawTools};

/// Programs offering tools at once.
pub const MAX_PROVIDERS: usize = 256;
/// Tools one program may offer.
pub const MAX_TOOLS_PER_PROVIDER: usize = 64;
/// Calls one program may have unanswered; the capacity of its channel too.
pub const MAX_CALLS_PER_PROVIDER: usize = 64;

/// One program's place in the broker.
pub type ProviderId = u64;

/// A call handed to the program offering the tool.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// Answer with this id.
    pub call_id: String,
    /// The session whose server asked.
    pub session: String,
    /// The tool.
    pub tool: String,
    /// The arguments, already checked against the tool's schema.
    pub arguments: Value,
    /// Time the program has to answer.
    pub timeout: Duration,
}

/// What a program offers.
#[derive(Debug)]
pub struct Offer {
    /// The sessions that offer these tools; `None`: every session, those
    /// added later included.
    pub sessions: Option<BTreeSet<String>>,
    /// The tools.
    pub tools: Vec<ToolSpec>,
    /// Where the calls go; hold at least [`MAX_CALLS_PER_PROVIDER`].
    pub calls: mpsc::Sender<ToolCall>,
}

/// Why an offer was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// No tools in it.
    #[error("an offer needs at least one tool")]
    Empty,
    /// More tools than one program may offer.
    #[error("a program may offer at most {MAX_TOOLS_PER_PROVIDER} tools")]
    TooManyTools,
    /// The same name twice in it.
    #[error("tool {0} is offered twice")]
    Duplicate(String),
    /// Another program offers that name for one of these sessions.
    #[error("tool {0} is already offered by another program for one of these sessions")]
    Conflict(String),
    /// Too many programs offer tools already.
    #[error("{MAX_PROVIDERS} programs offer tools already")]
    TooManyProviders,
}

/// Why an answer was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// No call with that id waits for this program (it timed out, or was
    /// never handed to it).
    #[error("no call {0:?} is waiting for an answer from this program (it may have timed out)")]
    UnknownCall(String),
}

struct Provider {
    sessions: Option<BTreeSet<String>>,
    tools: Vec<Arc<ToolSpec>>,
    calls: mpsc::Sender<ToolCall>,
    in_flight: usize,
}

impl Provider {
    fn serves(&self, session: &str) -> bool {
        self.sessions.as_ref().map_or(true, |names| names.contains(session))
    }

    fn overlaps(&self, sessions: &Option<BTreeSet<String>>) -> bool {
        match (&self.sessions, sessions) {
            (Some(mine), Some(theirs)) => !mine.is_disjoint(theirs),
            _ => true,
        }
    }
}

struct Pending {
    provider: ProviderId,
    answer: oneshot::Sender<ToolOutcome>,
    timer: SpawnHandle,
}

/// Tools of local programs, and their calls in flight.
#[derive(Default)]
pub struct ToolBroker {
    providers: HashMap<ProviderId, Provider>,
    pending: HashMap<String, Pending>,
    next_provider: ProviderId,
    next_call: u64,
}

impl ToolBroker {
    /// Ends a call with `outcome`, whoever ends it first.
    fn finish(&mut self, call_id: &str, outcome: ToolOutcome, ctx: &mut Context<Self>) -> bool {
        let Some(pending) = self.pending.remove(call_id) else {
            return false;
        };
        ctx.cancel_future(pending.timer);
        if let Some(provider) = self.providers.get_mut(&pending.provider) {
            provider.in_flight = provider.in_flight.saturating_sub(1);
        }
        let _ = pending.answer.send(outcome);
        true
    }
}

impl Actor for ToolBroker {
    type Context = Context<Self>;
}

impl Handler<OfferTools> for ToolBroker {
    type Result = Result<ProviderId, OfferError>;

    fn handle(&mut self, msg: OfferTools, _: &mut Context<Self>) -> Self::Result {
        let offer = msg.0;
        if offer.tools.is_empty() {
            return Err(OfferError::Empty);
        }
        if offer.tools.len() > MAX_TOOLS_PER_PROVIDER {
            return Err(OfferError::TooManyTools);
        }
        if self.providers.len() >= MAX_PROVIDERS {
            return Err(OfferError::TooManyProviders);
        }
        let mut names = BTreeSet::new();
        for tool in &offer.tools {
            if !names.insert(tool.name()) {
                return Err(OfferError::Duplicate(tool.name().to_owned()));
            }
        }
        for other in self.providers.values().filter(|p| p.overlaps(&offer.sessions)) {
            if let Some(taken) = other.tools.iter().find(|t| names.contains(t.name())) {
                return Err(OfferError::Conflict(taken.name().to_owned()));
            }
        }
        self.next_provider += 1;
        let id = self.next_provider;
        self.providers.insert(
            id,
            Provider {
                sessions: offer.sessions,
                tools: offer.tools.into_iter().map(Arc::new).collect(),
                calls: offer.calls,
                in_flight: 0,
            },
        );
        Ok(id)
    }
}

impl Handler<WithdrawTools> for ToolBroker {
    type Result = ();

    fn handle(&mut self, msg: WithdrawTools, ctx: &mut Context<Self>) {
        if self.providers.remove(&msg.0).is_none() {
            return;
        }
        let theirs: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.provider == msg.0)
            .map(|(id, _)| id.clone())
            .collect();
        for call_id in theirs {
            self.finish(&call_id, ToolOutcome::Withdrawn, ctx);
        }
    }
}

impl Handler<OfferedTools> for ToolBroker {
    type Result = MessageResult<OfferedTools>;

    /// In the order they were offered.
    fn handle(&mut self, msg: OfferedTools, _: &mut Context<Self>) -> Self::Result {
        let mut ids: Vec<&ProviderId> = self.providers.keys().collect();
        ids.sort();
        let tools = ids
            .into_iter()
            .map(|id| &self.providers[id])
            .filter(|p| p.serves(&msg.session))
            .flat_map(|p| p.tools.iter().cloned())
            .collect();
        MessageResult(tools)
    }
}

impl Handler<CallOfferedTool> for ToolBroker {
    type Result = ResponseFuture<ToolOutcome>;

    fn handle(&mut self, msg: CallOfferedTool, ctx: &mut Context<Self>) -> Self::Result {
        // The very tool the arguments were checked against, still offered.
        let found = self
            .providers
            .iter_mut()
            .find(|(_, p)| p.serves(&msg.session) && p.tools.iter().any(|t| Arc::ptr_eq(t, &msg.tool)));
        let Some((&provider_id, provider)) = found else {
            return Box::pin(async { ToolOutcome::Withdrawn });
        };
        let name = msg.tool.name().to_owned();
        if provider.in_flight >= MAX_CALLS_PER_PROVIDER {
            let busy = format!("the program offering tool {name} has {MAX_CALLS_PER_PROVIDER} calls unanswered");
            return Box::pin(async move { ToolOutcome::Busy(busy) });
        }
        self.next_call += 1;
        let call_id = self.next_call.to_string();
        let timeout = msg.tool.timeout();
        let call = ToolCall {
            call_id: call_id.clone(),
            session: msg.session,
            tool: name.clone(),
            arguments: msg.arguments,
            timeout,
        };
        match provider.calls.try_send(call) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let busy = format!("the program offering tool {name} is not reading its calls");
                return Box::pin(async move { ToolOutcome::Busy(busy) });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Box::pin(async { ToolOutcome::Withdrawn }),
        }
        provider.in_flight += 1;
        let (answer, answered) = oneshot::channel();
        let owned = call_id.clone();
        let timer = ctx.run_later(timeout, move |act, ctx| {
            act.finish(&owned, ToolOutcome::TimedOut(timeout), ctx);
        });
        self.pending.insert(
            call_id,
            Pending {
                provider: provider_id,
                answer,
                timer,
            },
        );
        Box::pin(async move { answered.await.unwrap_or(ToolOutcome::Withdrawn) })
    }
}

impl Handler<AnswerToolCall> for ToolBroker {
    type Result = Result<(), AnswerError>;

    fn handle(&mut self, msg: AnswerToolCall, ctx: &mut Context<Self>) -> Self::Result {
        let theirs = self
            .pending
            .get(&msg.call_id)
            .is_some_and(|p| p.provider == msg.provider);
        if !theirs || !self.finish(&msg.call_id, msg.outcome, ctx) {
            return Err(AnswerError::UnknownCall(msg.call_id));
        }
        Ok(())
    }
}

impl Handler<Probe> for ToolBroker {
    type Result = ();

    fn handle(&mut self, _: Probe, _: &mut Context<Self>) {}
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mcp::tool::empty_object_schema;

    fn spec(name: &str, timeout_ms: u64) -> ToolSpec {
        ToolSpec::new(name, "a tool", empty_object_schema(), Duration::from_millis(timeout_ms)).unwrap()
    }

    fn offer(sessions: Option<&[&str]>, tools: Vec<ToolSpec>) -> (OfferTools, mpsc::Receiver<ToolCall>) {
        let (calls, rx) = mpsc::channel(MAX_CALLS_PER_PROVIDER);
        let sessions = sessions.map(|names| names.iter().map(|n| n.to_string()).collect());
        (OfferTools(Offer { sessions, tools, calls }), rx)
    }

    async fn offered(broker: &Addr<ToolBroker>, session: &str) -> Vec<Arc<ToolSpec>> {
        broker
            .send(OfferedTools {
                session: session.into(),
            })
            .await
            .unwrap()
    }

    #[actix_rt::test]
    async fn offers_are_per_session_and_names_do_not_collide() {
        let broker = ToolBroker::default().start();
        let (kitchen, _rx1) = offer(Some(&["kitchen"]), vec![spec("lamp", 1000)]);
        let a = broker.send(kitchen).await.unwrap().unwrap();
        let (hall, _rx2) = offer(Some(&["hall"]), vec![spec("lamp", 1000)]);
        broker.send(hall).await.unwrap().unwrap();
        let (everywhere, _rx3) = offer(None, vec![spec("lamp", 1000)]);
        assert_eq!(
            broker.send(everywhere).await.unwrap(),
            Err(OfferError::Conflict("lamp".into()))
        );
        let (twice, _rx4) = offer(None, vec![spec("x", 1), spec("x", 1)]);
        assert_eq!(
            broker.send(twice).await.unwrap(),
            Err(OfferError::Duplicate("x".into()))
        );
        assert_eq!(offered(&broker, "kitchen").await.len(), 1);
        assert_eq!(offered(&broker, "attic").await.len(), 0);
        broker.send(WithdrawTools(a)).await.unwrap();
        assert!(offered(&broker, "kitchen").await.is_empty());
    }

    #[actix_rt::test]
    async fn a_call_gets_the_answer_the_timeout_or_the_withdrawal() {
        let broker = ToolBroker::default().start();
        let (offer_msg, mut calls) = offer(None, vec![spec("lamp", 200)]);
        let provider = broker.send(offer_msg).await.unwrap().unwrap();
        let tool = offered(&broker, "kitchen").await.remove(0);
        let call = |tool: Arc<ToolSpec>| CallOfferedTool {
            session: "kitchen".into(),
            tool,
            arguments: json!({"on": true}),
        };

        let answered = broker.send(call(tool.clone()));
        let handed = calls.recv().await.unwrap();
        assert_eq!((handed.session.as_str(), handed.tool.as_str()), ("kitchen", "lamp"));
        assert_eq!(handed.arguments, json!({"on": true}));
        let answer = AnswerToolCall {
            provider,
            call_id: handed.call_id.clone(),
            outcome: ToolOutcome::Answered("on".into()),
        };
        assert_eq!(broker.send(answer).await.unwrap(), Ok(()));
        assert_eq!(answered.await.unwrap(), ToolOutcome::Answered("on".into()));
        let late = AnswerToolCall {
            provider,
            call_id: handed.call_id,
            outcome: ToolOutcome::Answered("again".into()),
        };
        assert!(broker.send(late).await.unwrap().is_err(), "one answer per call");

        let started = std::time::Instant::now();
        let timed_out = broker.send(call(tool.clone())).await.unwrap();
        assert_eq!(timed_out, ToolOutcome::TimedOut(Duration::from_millis(200)));
        assert!(started.elapsed() >= Duration::from_millis(200));

        let withdrawn = broker.send(call(tool.clone()));
        let handed = calls.recv().await.unwrap();
        let stranger = AnswerToolCall {
            provider: provider + 1,
            call_id: handed.call_id.clone(),
            outcome: ToolOutcome::Answered("not mine".into()),
        };
        assert!(
            broker.send(stranger).await.unwrap().is_err(),
            "only the provider answers"
        );
        broker.send(WithdrawTools(provider)).await.unwrap();
        assert_eq!(withdrawn.await.unwrap(), ToolOutcome::Withdrawn);
        assert_eq!(broker.send(call(tool)).await.unwrap(), ToolOutcome::Withdrawn);
    }
}

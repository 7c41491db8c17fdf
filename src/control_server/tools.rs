//! MCP tools on the control socket: `offer_tools` makes the connection a
//! provider of tools in the tree's broker, `tool_call` events carry the
//! calls to it, `tool_result` answers them, and `tools` lists what a
//! session offers. A provider's tools last as long as its connection: the
//! [`ProviderLink`] withdraws them when the peer's task drops it, however
//! the connection ended, and the broker then ends its calls in flight.

use std::collections::BTreeSet;
use std::time::Duration;

use actix::Addr;
use serde_json::Value;
use tokio::sync::mpsc;
use wsvisor_actors::mcp::broker::MAX_CALLS_PER_PROVIDER;
use wsvisor_actors::mcp::tool::empty_object_schema;
use wsvisor_actors::mcp::{Offer, ProviderId, ToolBroker, ToolCall, ToolOutcome, ToolSpec};
use wsvisor_actors::messages::{AnswerToolCall, GetSessionTools, ListSessions, OfferTools, WithdrawTools};
use wsvisor_actors::Tree;

use crate::protocol::{
    to_line, ControlError, ErrorCode, EventLine, OfferedTool, SessionToolList, ToolAnswered, ToolCallEvent, ToolEntry,
    ToolsOffered,
};

/// A call's time to answer when the offer does not say.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// The longest a program may ask for.
pub const MAX_TIMEOUT_MS: u64 = 600_000;
/// Bytes of a result or error passed on to the server: the reply must fit
/// its 1 MiB messages even when every byte needs a 6-byte JSON escape.
pub const MAX_RESULT_BYTES: usize = 128 << 10;

/// This connection's place in the broker; dropping it withdraws its tools.
pub struct ProviderLink {
    id: ProviderId,
    calls: mpsc::Receiver<ToolCall>,
    broker: Addr<ToolBroker>,
}

impl ProviderLink {
    /// The next call for this program.
    pub async fn next_call(&mut self) -> Option<ToolCall> {
        self.calls.recv().await
    }
}

impl Drop for ProviderLink {
    fn drop(&mut self) {
        self.broker.do_send(WithdrawTools(self.id));
    }
}

/// The `tool_call` event line of `call`.
pub fn call_line(call: ToolCall) -> String {
    to_line(&EventLine::ToolCall(ToolCallEvent {
        call_id: call.call_id,
        session: call.session,
        tool: call.tool,
        arguments: call.arguments,
        timeout_ms: u64::try_from(call.timeout.as_millis()).unwrap_or(u64::MAX),
    }))
}

/// `offer_tools`: every tool compiled, the sessions checked, then the offer
/// made; nothing is offered when anything is wrong.
pub async fn offer(
    tree: &Tree,
    sessions: Option<Vec<String>>,
    tools: Vec<OfferedTool>,
) -> Result<(ProviderLink, ToolsOffered), ControlError> {
    if let Some(names) = &sessions {
        let known = tree.monitor.send(ListSessions).await.map_err(unavailable)?;
        if let Some(unknown) = names.iter().find(|n| !known.iter().any(|s| &s.name == *n)) {
            return Err(ControlError::new(
                ErrorCode::NotFound,
                format!("no session named '{unknown}'"),
            ));
        }
    }
    let specs = tools.iter().map(compile).collect::<Result<Vec<_>, _>>()?;
    let (sender, calls) = mpsc::channel(MAX_CALLS_PER_PROVIDER);
    let offer = Offer {
        sessions: sessions.clone().map(|names| names.into_iter().collect::<BTreeSet<_>>()),
        tools: specs,
        calls: sender,
    };
    let broker = tree.mcp.broker.clone();
    let id = broker
        .send(OfferTools(offer))
        .await
        .map_err(unavailable)?
        .map_err(|err| ControlError::bad(err.to_string()))?;
    let offered = ToolsOffered {
        tools: tools.into_iter().map(|t| t.name).collect(),
        sessions,
    };
    Ok((ProviderLink { id, calls, broker }, offered))
}

fn compile(tool: &OfferedTool) -> Result<ToolSpec, ControlError> {
    let timeout_ms = tool.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ControlError::bad(format!(
            "tool {:?}: timeout_ms must be from 1 to {MAX_TIMEOUT_MS}",
            tool.name
        )));
    }
    let schema = tool.input_schema.clone().unwrap_or_else(empty_object_schema);
    ToolSpec::new(&tool.name, &tool.description, schema, Duration::from_millis(timeout_ms))
        .map_err(|err| ControlError::bad(err.to_string()))
}

/// `tool_result` from the program behind `link`.
pub async fn answer(
    link: &ProviderLink,
    call_id: String,
    result: Option<Value>,
    error: Option<String>,
) -> Result<ToolAnswered, ControlError> {
    let (outcome, too_large) = match (result, error) {
        (Some(Value::String(text)), _) => fitting(text, ToolOutcome::Answered),
        (Some(other), _) => fitting(other.to_string(), ToolOutcome::Answered),
        (None, Some(error)) => fitting(error, ToolOutcome::Failed),
        (None, None) => return Err(ControlError::bad("`tool_result` needs `result` or `error`")),
    };
    let answer = AnswerToolCall {
        provider: link.id,
        call_id,
        outcome,
    };
    link.broker
        .send(answer)
        .await
        .map_err(unavailable)?
        .map_err(|err| ControlError::new(ErrorCode::NotFound, err.to_string()))?;
    match too_large {
        Some(bytes) => Err(ControlError::bad(format!(
            "the answer is {bytes} bytes, more than {MAX_RESULT_BYTES}; the call was answered as an error"
        ))),
        None => Ok(ToolAnswered { answered: true }),
    }
}

/// The outcome for `text`, or output-too-large (and its size) past the cap.
fn fitting(text: String, outcome: impl FnOnce(String) -> ToolOutcome) -> (ToolOutcome, Option<usize>) {
    if text.len() > MAX_RESULT_BYTES {
        (ToolOutcome::OutputTooLarge(MAX_RESULT_BYTES), Some(text.len()))
    } else {
        (outcome(text), None)
    }
}

/// `tool_result` on a connection that offers no tools.
pub fn not_offering() -> ControlError {
    ControlError::bad("tool_result answers a tool_call sent to this connection; offer tools first (offer_tools)")
}

/// `offer_tools` on a connection that offers tools already.
pub fn offering_already() -> ControlError {
    ControlError::bad(
        "this connection offers tools already; to offer others, close it and offer them on a new connection",
    )
}

/// `tools`: what `session` offers its server.
pub async fn list(tree: &Tree, session: String) -> Result<SessionToolList, ControlError> {
    let listed = tree
        .supervisor
        .send(GetSessionTools(session.clone()))
        .await
        .map_err(unavailable)?
        .map_err(|err| ControlError::new(ErrorCode::NotFound, err.to_string()))?;
    Ok(SessionToolList {
        session,
        mcp: listed.mode.to_string(),
        tools: listed
            .tools
            .into_iter()
            .map(|tool| ToolEntry {
                name: tool.name,
                description: tool.description,
                source: tool.source.to_string(),
                timeout_ms: u64::try_from(tool.timeout.as_millis()).unwrap_or(u64::MAX),
                input_schema: tool.input_schema,
                extra: Default::default(),
            })
            .collect(),
        extra: Default::default(),
    })
}

fn unavailable(err: actix::MailboxError) -> ControlError {
    ControlError::new(ErrorCode::Internal, format!("the actor tree did not answer: {err}"))
}

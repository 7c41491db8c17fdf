//! McpResponder: one session's MCP server, as the firmware's
//! `mcp_server.cc` is one device's. The Supervisor starts it beside the
//! session's connections and stops it with the session; each connection
//! hands it the `mcp` messages it reads, with the way back to itself.
//!
//! It answers `initialize`, `tools/list` (paged like the firmware),
//! `tools/call` (config tools run here, offered tools go through the
//! broker) and `ping`; any other method gets -32601, notifications get
//! nothing. A call's arguments are checked against the tool's schema
//! before anything runs. Every reply goes back to the connection that
//! asked; when that connection is gone the reply is dropped and counted
//! (`abandoned`), never sent to a later connection, whose server knows
//! nothing of the request.
//!
//! Bounded: calls in flight per session ([`MAX_CALLS_IN_FLIGHT`]) and per
//! config tool (`max_concurrent`); lines the server can trigger are rate
//! limited.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::broker::ToolBroker;
use super::jsonrpc::{self, Incoming, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND};
use super::listing::{self, Entry};
use super::outcome::ToolOutcome;
use super::stats::{CallOutcome, CallStats, UNKNOWN_TOOL};
use super::tool::{CommandTool, ToolSpec};
use super::{command, McpSettings, ToolInfo, ToolSource};
use crate::connection::WriteTextRefused;
use crate::logsafe;
use crate::messages::{CallOfferedTool, ListTools, McpArrived, OfferedTools, Probe, StopMcp, WriteText};
use crate::ratelimit::{LineLimiter, Verdict};
use crate::wire::OutboundText;

/// Calls running at once for one session, whatever the tools.
pub const MAX_CALLS_IN_FLIGHT: usize = 16;

/// MCP versions we answer with the client's own; others get the first.
const PROTOCOL_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18"];

/// Characters of a server-chosen method or tool name quoted back.
const NAME_CAP: usize = 128;

/// Call lines per minute per session; the rest are summed up.
const CALL_LINES: u32 = 30;
/// Lines about ignored messages per minute per session.
const ODD_LINES: u32 = 5;
const LINE_WINDOW: Duration = Duration::from_secs(60);

/// Where a reply goes: the connection that asked.
type Reply = Recipient<WriteText>;

/// A tool found for a call.
enum Resolved {
    Command(Arc<CommandTool>),
    Offered(Arc<ToolSpec>),
}

impl Resolved {
    fn spec(&self) -> &ToolSpec {
        match self {
            Resolved::Command(tool) => &tool.spec,
            Resolved::Offered(spec) => spec,
        }
    }
}

/// One call on its way, for the reply and the counters.
struct Call {
    id: Value,
    tool: String,
    reply: Reply,
    arrived: Instant,
}

/// One session's MCP server.
pub struct McpResponder {
    session: String,
    settings: Arc<McpSettings>,
    broker: Addr<ToolBroker>,
    stats: Arc<CallStats>,
    /// Calls running per config tool.
    running: HashMap<String, usize>,
    in_flight: usize,
    call_lines: LineLimiter,
    odd_lines: LineLimiter,
}

impl McpResponder {
    /// The responder of session `session`, with its config tools.
    pub fn new(session: &str, settings: Arc<McpSettings>, broker: Addr<ToolBroker>, stats: Arc<CallStats>) -> Self {
        McpResponder {
            session: session.to_owned(),
            settings,
            broker,
            stats,
            running: HashMap::new(),
            in_flight: 0,
            call_lines: LineLimiter::new(LINE_WINDOW, CALL_LINES),
            odd_lines: LineLimiter::new(LINE_WINDOW, ODD_LINES),
        }
    }

    fn config_tool(&self, name: &str) -> Option<Arc<CommandTool>> {
        self.settings.tools.iter().find(|t| t.spec.name() == name).cloned()
    }

    /// Writes `message` through `reply`; `then` learns whether it was taken.
    fn send(
        &self,
        reply: &Reply,
        message: Map<String, Value>,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, Result<(), String>) + 'static,
    ) {
        let write = reply.send(WriteText(OutboundText::from_object(&message)));
        ctx.spawn(write.into_actor(self).map(move |written, act, _| {
            let taken = match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(WriteTextRefused::NotReady(_))) | Err(_) => {
                    Err("the connection that asked has ended".to_owned())
                }
                Ok(Err(WriteTextRefused::Stalled(why))) => Err(why),
            };
            then(act, taken);
        }));
    }

    /// A reply that is not a tool call's: only its loss is worth a line.
    fn answer(&self, reply: &Reply, method: &str, message: Map<String, Value>, ctx: &mut Context<Self>) {
        let method = method.to_owned();
        self.send(reply, message, ctx, move |act, taken| {
            if let Err(why) = taken {
                act.odd(format_args!(
                    "mcp reply abandoned method={} why={}",
                    logsafe::value(&method),
                    logsafe::quoted(&why)
                ));
            }
        });
    }

    /// A line the server can make us write at will: rate limited.
    fn odd(&mut self, line: std::fmt::Arguments<'_>) {
        log_limited(&mut self.odd_lines, &self.session, log::Level::Info, line);
    }

    fn on_request(&mut self, id: Value, method: String, params: Option<Value>, reply: Reply, ctx: &mut Context<Self>) {
        let arrived = Instant::now();
        match method.as_str() {
            "initialize" => {
                let asked = params
                    .as_ref()
                    .and_then(|p| p.get("protocolVersion"))
                    .and_then(Value::as_str);
                let version = asked
                    .filter(|v| PROTOCOL_VERSIONS.contains(v))
                    .unwrap_or(PROTOCOL_VERSIONS[0]);
                let result = json!({
                    "protocolVersion": version,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "wsvisor", "version": env!("CARGO_PKG_VERSION")},
                });
                log::debug!("session={} mcp initialize", self.session);
                self.answer(&reply, &method, jsonrpc::result(&id, result), ctx);
            }
            "ping" => self.answer(&reply, &method, jsonrpc::result(&id, json!({})), ctx),
            "tools/list" => self.list(id, params, reply, ctx),
            "tools/call" => self.call(id, params, reply, arrived, ctx),
            other => {
                let message = format!("Method not found: {}", capped(other));
                self.answer(&reply, &method, jsonrpc::error(&id, METHOD_NOT_FOUND, &message), ctx);
            }
        }
    }

    fn list(&mut self, id: Value, params: Option<Value>, reply: Reply, ctx: &mut Context<Self>) {
        let cursor = match params.as_ref().and_then(|p| p.get("cursor")) {
            None | Some(Value::Null) => None,
            Some(Value::String(cursor)) => Some(cursor.clone()),
            Some(_) => {
                let error = jsonrpc::error(&id, INVALID_PARAMS, "cursor must be a string");
                return self.answer(&reply, "tools/list", error, ctx);
            }
        };
        let offered = self.broker.send(OfferedTools {
            session: self.session.clone(),
        });
        ctx.spawn(offered.into_actor(self).map(move |offered, act, ctx| {
            let offered = offered.unwrap_or_default();
            let tools = act.visible(&offered);
            let entries: Vec<Entry> = tools
                .iter()
                .map(|(spec, _)| Entry {
                    name: spec.name(),
                    listing: spec.listing(),
                })
                .collect();
            let message = match listing::page(&entries, cursor.as_deref()) {
                Ok(page) => jsonrpc::result(&id, page),
                Err(listing::PageError::UnknownCursor) => {
                    let why = format!("Unknown cursor: {}", capped(cursor.as_deref().unwrap_or_default()));
                    jsonrpc::error(&id, INVALID_PARAMS, &why)
                }
            };
            log::debug!("session={} mcp tools/list tools={}", act.session, entries.len());
            act.answer(&reply, "tools/list", message, ctx);
        }));
    }

    /// Config tools, then the offered ones whose names no config tool
    /// takes (config wins), in that order.
    fn visible<'a>(&'a self, offered: &'a [Arc<ToolSpec>]) -> Vec<(&'a ToolSpec, ToolSource)> {
        let configured = self.settings.tools.iter().map(|t| (&t.spec, ToolSource::Config));
        let from_programs = offered
            .iter()
            .filter(|spec| self.config_tool(spec.name()).is_none())
            .map(|spec| (&**spec, ToolSource::Program));
        configured.chain(from_programs).collect()
    }

    fn call(&mut self, id: Value, params: Option<Value>, reply: Reply, arrived: Instant, ctx: &mut Context<Self>) {
        let (name, arguments) = match call_params(params) {
            Ok(call) => call,
            Err(why) => {
                let call = Call {
                    id,
                    tool: UNKNOWN_TOOL.to_owned(),
                    reply,
                    arrived,
                };
                return self.refuse(call, CallOutcome::InvalidArguments, &why, ctx);
            }
        };
        if let Some(tool) = self.config_tool(&name) {
            let call = Call {
                id,
                tool: name,
                reply,
                arrived,
            };
            return self.start(call, Resolved::Command(tool), arguments, ctx);
        }
        let offered = self.broker.send(OfferedTools {
            session: self.session.clone(),
        });
        ctx.spawn(offered.into_actor(self).map(move |offered, act, ctx| {
            let found = offered.unwrap_or_default().into_iter().find(|t| t.name() == name);
            match found {
                Some(spec) => {
                    let call = Call {
                        id,
                        tool: name,
                        reply,
                        arrived,
                    };
                    act.start(call, Resolved::Offered(spec), arguments, ctx);
                }
                None => {
                    let why = format!("Unknown tool: {}", capped(&name));
                    let call = Call {
                        id,
                        tool: UNKNOWN_TOOL.to_owned(),
                        reply,
                        arrived,
                    };
                    act.log_call(&call, Some(&name), CallOutcome::UnknownTool);
                    act.refuse(call, CallOutcome::UnknownTool, &why, ctx);
                }
            }
        }));
    }

    /// A call answered with a JSON-RPC error: nothing ran.
    fn refuse(&mut self, call: Call, outcome: CallOutcome, why: &str, ctx: &mut Context<Self>) {
        let message = jsonrpc::error(&call.id, INVALID_PARAMS, why);
        self.send(&call.reply.clone(), message, ctx, move |act, taken| {
            let outcome = if taken.is_ok() { outcome } else { CallOutcome::Abandoned };
            act.stats.record(&call.tool, outcome, call.arrived.elapsed());
        });
    }

    fn start(&mut self, call: Call, tool: Resolved, arguments: Value, ctx: &mut Context<Self>) {
        if let Err(why) = tool.spec().check_arguments(&arguments) {
            let why = format!("Invalid arguments for tool {}: {why}", call.tool);
            self.log_call(&call, None, CallOutcome::InvalidArguments);
            return self.refuse(call, CallOutcome::InvalidArguments, &why, ctx);
        }
        let busy = match &tool {
            _ if self.in_flight >= MAX_CALLS_IN_FLIGHT => Some(format!(
                "session {} is running {MAX_CALLS_IN_FLIGHT} tool calls already",
                self.session
            )),
            Resolved::Command(t) if self.running.get(&call.tool).copied().unwrap_or(0) >= t.max_concurrent => {
                Some(format!(
                    "tool {} is running {} times already (max_concurrent = {})",
                    call.tool, t.max_concurrent, t.max_concurrent
                ))
            }
            _ => None,
        };
        if let Some(why) = busy {
            return self.deliver(call, ToolOutcome::Busy(why), ctx);
        }
        self.in_flight += 1;
        let is_command = matches!(tool, Resolved::Command(_));
        if is_command {
            *self.running.entry(call.tool.clone()).or_default() += 1;
        }
        let session = self.session.clone();
        let work: Pin<Box<dyn Future<Output = ToolOutcome>>> = match tool {
            Resolved::Command(tool) => Box::pin(async move { command::run(&tool, &session, &arguments).await }),
            Resolved::Offered(spec) => {
                let asked = self.broker.send(CallOfferedTool {
                    session,
                    tool: spec,
                    arguments,
                });
                Box::pin(async move { asked.await.unwrap_or(ToolOutcome::Withdrawn) })
            }
        };
        ctx.spawn(work.into_actor(self).map(move |outcome, act, ctx| {
            act.in_flight -= 1;
            if is_command {
                if let Some(n) = act.running.get_mut(&call.tool) {
                    *n -= 1;
                    if *n == 0 {
                        act.running.remove(&call.tool);
                    }
                }
            }
            act.deliver(call, outcome, ctx);
        }));
    }

    /// The call's result goes back to the connection that asked.
    fn deliver(&mut self, call: Call, outcome: ToolOutcome, ctx: &mut Context<Self>) {
        let message = jsonrpc::result(&call.id, outcome.to_result(&call.tool));
        self.send(&call.reply.clone(), message, ctx, move |act, taken| {
            let counted = if taken.is_ok() {
                outcome.counted()
            } else {
                CallOutcome::Abandoned
            };
            act.stats.record(&call.tool, counted, call.arrived.elapsed());
            act.log_call(&call, None, counted);
        });
    }

    fn log_call(&mut self, call: &Call, asked_for: Option<&str>, outcome: CallOutcome) {
        let tool = asked_for.unwrap_or(&call.tool);
        let level = match outcome {
            CallOutcome::Ok => log::Level::Info,
            _ => log::Level::Warn,
        };
        log_limited(
            &mut self.call_lines,
            &self.session,
            level,
            format_args!(
                "tool call tool={} id={} outcome={} took_ms={}",
                logsafe::value(tool),
                logsafe::value(&call.id.to_string()),
                outcome.as_str(),
                call.arrived.elapsed().as_millis()
            ),
        );
    }
}

/// `params` of `tools/call`: the tool's name and its arguments (`{}` when absent).
fn call_params(params: Option<Value>) -> Result<(String, Value), String> {
    let Some(Value::Object(mut params)) = params else {
        return Err("tools/call needs params with a tool name".to_owned());
    };
    let name = match params.remove("name") {
        Some(Value::String(name)) => name,
        _ => return Err("tools/call needs params.name, a string".to_owned()),
    };
    match params.remove("arguments") {
        None | Some(Value::Null) => Ok((name, json!({}))),
        Some(arguments @ Value::Object(_)) => Ok((name, arguments)),
        Some(_) => Err(format!(
            "Invalid arguments for tool {}: arguments must be an object",
            capped(&name)
        )),
    }
}

/// A server-chosen name, cut to [`NAME_CAP`] characters for quoting back.
fn capped(text: &str) -> String {
    match text.char_indices().nth(NAME_CAP) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn log_limited(limiter: &mut LineLimiter, session: &str, level: log::Level, line: std::fmt::Arguments<'_>) {
    match limiter.check(Instant::now()) {
        Verdict::Suppress => return,
        Verdict::WriteAfterSuppressed(n) => log::log!(level, "session={session} suppressed {n} similar mcp lines"),
        Verdict::Write => {}
    }
    log::log!(level, "session={session} {line}");
}

impl Actor for McpResponder {
    type Context = Context<Self>;
}

impl Handler<McpArrived> for McpResponder {
    type Result = ();

    fn handle(&mut self, msg: McpArrived, ctx: &mut Context<Self>) {
        match jsonrpc::read(&msg.message) {
            Incoming::Request { id, method, params } => self.on_request(id, method, params, msg.reply, ctx),
            Incoming::Notification { method } => {
                log::debug!(
                    "session={} mcp notification method={}",
                    self.session,
                    logsafe::value(&method)
                );
            }
            Incoming::Invalid { id, why } => {
                self.answer(&msg.reply, "(invalid)", jsonrpc::error(&id, INVALID_REQUEST, &why), ctx);
            }
            Incoming::Ignored(why) => self.odd(format_args!("mcp message ignored why={}", logsafe::quoted(&why))),
        }
    }
}

impl Handler<ListTools> for McpResponder {
    type Result = ResponseActFuture<Self, Vec<ToolInfo>>;

    fn handle(&mut self, _: ListTools, _: &mut Context<Self>) -> Self::Result {
        let offered = self.broker.send(OfferedTools {
            session: self.session.clone(),
        });
        Box::pin(offered.into_actor(self).map(|offered, act, _| {
            let offered = offered.unwrap_or_default();
            act.visible(&offered)
                .into_iter()
                .map(|(spec, source)| ToolInfo::of(spec, source))
                .collect()
        }))
    }
}

impl Handler<StopMcp> for McpResponder {
    type Result = ();

    /// Calls still running are dropped; their commands are killed.
    fn handle(&mut self, _: StopMcp, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Probe> for McpResponder {
    type Result = ();

    fn handle(&mut self, _: Probe, _: &mut Context<Self>) {}
}

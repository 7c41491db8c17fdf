//! MCP: every session answers its server's JSON-RPC as a device's MCP
//! server does (xiaozhi `mcp` messages, field.md B10/B11), with tools that
//! live on the host: commands from the config, and tools that local
//! programs offer over the control socket.
//!
//! Layout of the module:
//! - `responder`: the per-session actor that answers the server;
//! - `broker`: the daemon-wide actor for tools that programs offer;
//! - `tool`: what a tool is, its schema and its checks;
//! - `command`: running a config tool's command;
//! - `listing`: `tools/list` pages within the firmware's byte budget;
//! - `jsonrpc`: reading requests and writing replies;
//! - `outcome`: what a call gave and the result it becomes;
//! - `stats`: calls by tool and outcome, and their latency.
//!
//! A session with `mcp = "external"` announces `features.mcp` but has no
//! responder: a program that speaks MCP itself reads the requests from its
//! subscription and answers with `send`. With `mcp = "off"` the hello does
//! not announce MCP at all.

pub mod broker;
pub mod command;
pub mod jsonrpc;
pub mod listing;
pub mod outcome;
pub mod responder;
pub mod stats;
pub mod tool;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;

pub use self::broker::{AnswerError, Offer, OfferError, ProviderId, ToolBroker, ToolCall};
pub use self::outcome::ToolOutcome;
pub use self::responder::McpResponder;
pub use self::stats::{CallOutcome, CallStats, StatsSnapshot};
pub use self::tool::{CommandTool, ToolSpec, ToolSpecError};

/// Who answers a session's MCP requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, strum::Display, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum McpMode {
    /// wsvisor's responder, with the tools of the config and of programs.
    #[default]
    Builtin,
    /// The hello announces MCP, and wsvisor answers nothing: a program
    /// subscribed to the session answers the requests with `send`.
    External,
    /// Nobody: the hello does not announce MCP, so the server sends none.
    Off,
}

/// A session's MCP settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct McpSettings {
    /// Who answers.
    pub mode: McpMode,
    /// The config tools this session offers, in config order.
    pub tools: Vec<Arc<CommandTool>>,
}

impl McpSettings {
    /// Whether the hello announces `features.mcp`.
    pub fn announced(&self) -> bool {
        self.mode != McpMode::Off
    }

    /// Whether wsvisor answers the requests.
    pub fn answered(&self) -> bool {
        self.mode == McpMode::Builtin
    }
}

/// What the whole tree shares for MCP: the broker of offered tools and the
/// call counters.
#[derive(Clone)]
pub struct McpShared {
    /// Tools of local programs.
    pub broker: Addr<ToolBroker>,
    /// Calls by tool and outcome.
    pub stats: Arc<CallStats>,
}

impl McpShared {
    /// A broker started on the current actix thread, and empty counters.
    pub fn start() -> Self {
        McpShared {
            broker: ToolBroker::default().start(),
            stats: Arc::default(),
        }
    }
}

/// Where a tool comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::Display, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ToolSource {
    /// A `[[tool]]` of the config.
    Config,
    /// A program on the control socket.
    Program,
}

/// A tool as `ctl tools` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolInfo {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its input schema.
    pub input_schema: Value,
    /// Where it comes from.
    pub source: ToolSource,
    /// How long a call may take.
    pub timeout: Duration,
}

impl ToolInfo {
    /// The info of `spec`.
    pub fn of(spec: &ToolSpec, source: ToolSource) -> Self {
        ToolInfo {
            name: spec.name().to_owned(),
            description: spec.description().to_owned(),
            input_schema: spec.input_schema().clone(),
            source,
            timeout: spec.timeout(),
        }
    }
}

/// The tools one session offers, for `ctl tools`.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionTools {
    /// Who answers its MCP requests.
    pub mode: McpMode,
    /// What it offers, in `tools/list` order (empty when `mode` is off).
    pub tools: Vec<ToolInfo>,
}

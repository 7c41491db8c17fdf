//! The xiaozhi server's side of MCP: the options, the JSON-RPC requests the
//! server writes, what it records of the client's replies, and the
//! per-connection bookkeeping (which id asked what, which tool listing is
//! being paged). The connection task sends and reads; nothing here touches
//! a socket.
//!
//! Mirrors xiaozhi-esp32-server v0.9.6,
//! `core/providers/tools/device_mcp/mcp_handler.py` and
//! `core/handle/helloHandle.py`:
//! - a client hello with a truthy `features.mcp` makes the server send
//!   `initialize` (id 1, `protocolVersion` `2024-11-05`, capabilities with
//!   `roots`, `sampling` and a `vision` url and token, `clientInfo`
//!   `XiaozhiClient` 1.0.0) right after its own hello;
//! - the `initialize` result makes it wait 1 s, then send `tools/list` with
//!   id 2 and no params; a result with a non-empty `nextCursor` makes it ask
//!   again at once, with the same id 2 and `params.cursor`;
//! - every message is wrapped as `{"type":"mcp","payload":{...}}`, without a
//!   `session_id` (the firmware puts one in its own messages);
//! - requests from the client (a `method`) are only logged, never answered;
//! - only clients that announced MCP are ever sent MCP messages.
//!
//! The real server numbers its `tools/call` requests from 1, so its first
//! call shares id 1 with `initialize`; the loopback numbers the requests a
//! test makes from [`MCP_FIRST_TEST_ID`] instead, so that every reply can be
//! told apart by its id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Id of the `initialize` request (the real server's `mcpInitializeID`).
pub const MCP_INITIALIZE_ID: u64 = 1;
/// Id of every automatic `tools/list` request and its follow-up pages (the
/// real server's `mcpToolsListID`).
pub const MCP_TOOLS_LIST_ID: u64 = 2;
/// The first id of the requests a test sends (`Server::mcp_*`); ids are
/// unique server-wide from there on.
pub const MCP_FIRST_TEST_ID: u64 = 3;

/// Requests that are not answered are forgotten beyond this many per
/// connection, so a client that never answers cannot grow the table.
const PENDING_LIMIT: usize = 1024;

/// Options of the server's side of MCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpOptions {
    /// Send `initialize` right after the hello to a client whose hello has
    /// a truthy `features.mcp`. Default `true`, as the real server does.
    pub initialize: bool,
    /// After the client's `initialize` result, list its tools (`tools/list`,
    /// id 2, every page) after this delay. `None`: only when a test asks.
    /// Default 1 s, the real server's pause.
    pub list_tools_after: Option<Duration>,
    /// Add the connection's `session_id` to every `mcp` message. Default
    /// `false`: the real server sends none.
    pub include_session_id: bool,
    /// Stop following `nextCursor` after this many pages of one listing (a
    /// client whose cursor never ends cannot keep the server asking).
    pub max_pages: usize,
}

impl Default for McpOptions {
    fn default() -> Self {
        McpOptions {
            initialize: true,
            list_tools_after: Some(Duration::from_secs(1)),
            include_session_id: false,
            max_pages: 100,
        }
    }
}

/// One `mcp` message a client sent (a reply to the server's request, or
/// anything else it chose to send), as the server read it.
#[derive(Clone, Debug, PartialEq)]
pub struct McpReply {
    /// Connection number.
    pub conn: u64,
    /// The connection's `Device-Id` (empty when it sent none).
    pub device_id: String,
    /// The session id the server gave the connection.
    pub session_id: Option<String>,
    /// The JSON-RPC `id`, verbatim (absent in notifications).
    pub id: Option<Value>,
    /// The method of the server's request with that id on this connection
    /// (`initialize`, `tools/list`, `tools/call`, ...), if there was one.
    pub answers: Option<String>,
    /// `result`, if present.
    pub result: Option<Value>,
    /// `error`, if present.
    pub error: Option<Value>,
    /// The whole `payload` (`Value::Null` when the message had none).
    pub payload: Value,
    /// When it was read.
    pub at: Instant,
}

impl McpReply {
    /// The id as a number, when it is one.
    pub fn id_u64(&self) -> Option<u64> {
        self.id.as_ref().and_then(Value::as_u64)
    }

    /// Whether the reply carries a JSON-RPC `error`.
    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }
}

/// What a request sent by a test became.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct McpSent {
    /// Its JSON-RPC id (the same on every connection it went to).
    pub id: u64,
    /// How many connections sent it: those whose client announced MCP.
    pub connections: usize,
}

/// The tools a device listed, gathered over every page of the latest
/// listing of its latest connection.
#[derive(Clone, Debug, PartialEq)]
pub struct McpTools {
    /// The connection that listed them.
    pub conn: u64,
    /// Its session id.
    pub session_id: Option<String>,
    /// Every tool object, in the order the pages gave them.
    pub tools: Vec<Value>,
    /// Pages read so far.
    pub pages: usize,
    /// The `nextCursor` of every page that had one, in order.
    pub cursors: Vec<String>,
    /// The last page had no `nextCursor` (or an empty one).
    pub complete: bool,
}

impl McpTools {
    /// The `name` of every tool, in order.
    pub fn names(&self) -> Vec<String> {
        self.tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }
}

/// A message a test (or the server itself) sends to one connection.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    /// The JSON-RPC payload, sent as is.
    pub(crate) payload: Value,
}

impl Outgoing {
    fn id(&self) -> Option<u64> {
        self.payload.get("id").and_then(Value::as_u64)
    }

    fn method(&self) -> Option<&str> {
        self.payload.get("method").and_then(Value::as_str)
    }
}

/// `{"type":"mcp"[,"session_id":S],"payload":P}`.
pub(crate) fn wrap(payload: &Value, session_id: Option<&str>) -> String {
    let mut message = json!({"type": "mcp", "payload": payload});
    if let Some(id) = session_id {
        message["session_id"] = json!(id);
    }
    message.to_string()
}

/// The real server's `initialize` request.
pub(crate) fn initialize(vision_url: &str, vision_token: &str) -> Outgoing {
    Outgoing {
        payload: json!({
            "jsonrpc": "2.0",
            "id": MCP_INITIALIZE_ID,
            "method": "initialize",
            "params": {
                "protocolVersion": "2024-11-05",
                "capabilities": {
                    "roots": {"listChanged": true},
                    "sampling": {},
                    "vision": {"url": vision_url, "token": vision_token},
                },
                "clientInfo": {"name": "XiaozhiClient", "version": "1.0.0"},
            },
        }),
    }
}

/// `tools/list`, with `params.cursor` for a follow-up page.
pub(crate) fn tools_list(id: u64, cursor: Option<&str>) -> Outgoing {
    let mut payload = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
    if let Some(cursor) = cursor {
        payload["params"] = json!({"cursor": cursor});
    }
    Outgoing { payload }
}

/// Any request with this id.
pub(crate) fn request(id: u64, method: &str, params: Option<Value>) -> Outgoing {
    let mut payload = json!({"jsonrpc": "2.0", "id": id, "method": method});
    if let Some(params) = params {
        payload["params"] = params;
    }
    Outgoing { payload }
}

/// A raw payload, sent exactly as given.
pub(crate) fn raw(payload: Value) -> Outgoing {
    Outgoing { payload }
}

/// Whether a hello's `features.mcp` is set the way python reads it (truthy).
pub(crate) fn announced(hello: &Value) -> bool {
    match hello.get("features").and_then(|f| f.get("mcp")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// What the connection must do after reading a client's `mcp` message.
#[derive(Debug, PartialEq)]
pub(crate) enum FollowUp {
    Nothing,
    /// The `initialize` result arrived: list the tools after this delay.
    ListAfter(Duration),
    /// A tools page arrived: record it; `next` is the request for the
    /// following page, if any.
    ToolsPage {
        first: bool,
        tools: Vec<Value>,
        cursor: Option<String>,
        next: Option<Value>,
    },
}

/// Per-connection MCP state.
#[derive(Default)]
pub(crate) struct McpConn {
    /// The client's hello announced MCP.
    pub(crate) announced: bool,
    /// Method of every request sent and not yet answered, by id.
    pending: HashMap<u64, String>,
    /// Pages read of each `tools/list` listing, by id.
    listings: HashMap<u64, usize>,
}

impl McpConn {
    /// Notes a request about to be sent.
    pub(crate) fn sending(&mut self, out: &Outgoing) {
        let (Some(id), Some(method)) = (out.id(), out.method()) else {
            return;
        };
        if self.pending.len() >= PENDING_LIMIT && !self.pending.contains_key(&id) {
            return;
        }
        if method == "tools/list" && out.payload.pointer("/params/cursor").is_none() {
            self.listings.insert(id, 0);
        }
        self.pending.insert(id, method.to_owned());
    }

    /// Reads a client `payload`: which request it answers, and what to do
    /// next. The pending entry of a `tools/list` stays while pages follow.
    pub(crate) fn on_payload(&mut self, payload: &Value, options: &McpOptions) -> (Option<String>, FollowUp) {
        let id = payload.get("id").and_then(Value::as_u64);
        let answers = id.and_then(|id| self.pending.get(&id).cloned());
        let result = payload.get("result");
        let follow = match (id, answers.as_deref(), result) {
            (Some(_), Some("initialize"), Some(_)) => match options.list_tools_after {
                Some(delay) => FollowUp::ListAfter(delay),
                None => FollowUp::Nothing,
            },
            (Some(id), Some("tools/list"), Some(result)) => self.tools_page(id, result, options),
            _ => FollowUp::Nothing,
        };
        if let Some(id) = id {
            if !matches!(&follow, FollowUp::ToolsPage { next: Some(_), .. }) {
                self.pending.remove(&id);
                self.listings.remove(&id);
            }
        }
        (answers, follow)
    }

    fn tools_page(&mut self, id: u64, result: &Value, options: &McpOptions) -> FollowUp {
        let pages = self.listings.entry(id).or_insert(0);
        let first = *pages == 0;
        *pages += 1;
        let tools = result
            .get("tools")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let cursor = result
            .get("nextCursor")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        let next = match &cursor {
            Some(c) if *pages < options.max_pages => Some(tools_list(id, Some(c)).payload),
            _ => None,
        };
        FollowUp::ToolsPage {
            first,
            tools,
            cursor,
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_like_the_real_server() {
        let out = tools_list(2, None);
        let text = wrap(&out.payload, None);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({"type": "mcp", "payload": {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}})
        );
        let with_id: Value = serde_json::from_str(&wrap(&out.payload, Some("s"))).unwrap();
        assert_eq!(with_id["session_id"], "s");
        let init = initialize("http://v/", "t").payload;
        assert_eq!(init["id"], 1);
        assert_eq!(init["params"]["protocolVersion"], "2024-11-05");
        assert_eq!(init["params"]["clientInfo"]["name"], "XiaozhiClient");
    }

    #[test]
    fn truthy_features_like_python() {
        assert!(announced(&json!({"features": {"mcp": true}})));
        assert!(announced(&json!({"features": {"mcp": 1}})));
        assert!(!announced(&json!({"features": {"mcp": false}})));
        assert!(!announced(&json!({"features": {}})));
        assert!(!announced(&json!({})));
    }

    #[test]
    fn initialize_result_schedules_the_listing_and_pages_are_followed() {
        let options = McpOptions::default();
        let mut conn = McpConn::default();
        conn.sending(&initialize("u", "t"));
        let (answers, follow) = conn.on_payload(&json!({"jsonrpc": "2.0", "id": 1, "result": {}}), &options);
        assert_eq!(answers.as_deref(), Some("initialize"));
        assert_eq!(follow, FollowUp::ListAfter(Duration::from_secs(1)));

        conn.sending(&tools_list(2, None));
        let page1 = json!({"id": 2, "result": {"tools": [{"name": "a"}], "nextCursor": "c1"}});
        let (answers, follow) = conn.on_payload(&page1, &options);
        assert_eq!(answers.as_deref(), Some("tools/list"));
        let FollowUp::ToolsPage {
            first,
            tools,
            cursor,
            next,
        } = follow
        else {
            panic!("{follow:?}")
        };
        assert!(first);
        assert_eq!(tools.len(), 1);
        assert_eq!(cursor.as_deref(), Some("c1"));
        let next = next.unwrap();
        assert_eq!(next["id"], 2);
        assert_eq!(next["params"]["cursor"], "c1");

        let page2 = json!({"id": 2, "result": {"tools": [{"name": "b"}], "nextCursor": ""}});
        let (answers, follow) = conn.on_payload(&page2, &options);
        assert_eq!(answers.as_deref(), Some("tools/list"));
        assert!(matches!(
            follow,
            FollowUp::ToolsPage {
                first: false,
                next: None,
                ..
            }
        ));
        // Answered and finished: a late duplicate answers nothing.
        let (answers, _) = conn.on_payload(&page2, &options);
        assert_eq!(answers, None);
    }

    #[test]
    fn endless_cursors_stop_at_max_pages() {
        let options = McpOptions {
            max_pages: 3,
            ..McpOptions::default()
        };
        let mut conn = McpConn::default();
        conn.sending(&tools_list(7, None));
        let page = json!({"id": 7, "result": {"tools": [], "nextCursor": "again"}});
        let mut followed = 0;
        for _ in 0..10 {
            match conn.on_payload(&page, &options).1 {
                FollowUp::ToolsPage { next: Some(_), .. } => followed += 1,
                _ => break,
            }
        }
        assert_eq!(followed, 2);
    }
}

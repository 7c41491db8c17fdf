//! JSON-RPC 2.0 inside xiaozhi `mcp` messages: reading what the server
//! sent (`{"type":"mcp","payload":{…}}`) and writing our replies. Pure.
//!
//! The real server (field.md B10) sends requests with numeric ids that it
//! reuses (`tools/call` ids restart at 1), never reads our `session_id`,
//! and turns the id of every reply into a number with `int()`: a reply
//! with `"id": null` would raise inside its handler and close the
//! connection. So a request whose id cannot be echoed is never answered,
//! only logged; everything else gets exactly its id back.

use serde_json::{json, Map, Value};

use crate::json::{self, kind, JsonError};

/// Method not found.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid params (also unknown tools and arguments that fail the schema,
/// as MCP says).
pub const INVALID_PARAMS: i64 = -32602;
/// Invalid request (not JSON-RPC 2.0).
pub const INVALID_REQUEST: i64 = -32600;
/// Internal error.
pub const INTERNAL_ERROR: i64 = -32603;

/// Values an MCP message may hold: the tree's bound for any peer's JSON
/// (a few MB parsed at worst), far above any request a server sends.
const MAX_PAYLOAD_VALUES: usize = json::MAX_JSON_VALUES;

/// What an `mcp` message asks of us.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A request: answer it with its `id`.
    Request {
        /// Echoed exactly.
        id: Value,
        /// The method.
        method: String,
        /// `params`, when present (an object or an array).
        params: Option<Value>,
    },
    /// A notification (no `id`): never answered.
    Notification {
        /// The method.
        method: String,
    },
    /// Not JSON-RPC 2.0 but with an id we can echo: answer
    /// [`INVALID_REQUEST`].
    Invalid {
        /// Echoed exactly.
        id: Value,
        /// What is wrong.
        why: String,
    },
    /// Nothing to answer: a response to a request we never sent, a payload
    /// that is not an object, an id that cannot be echoed (see the module
    /// doc). Says why, for the log.
    Ignored(String),
}

/// Reads the xiaozhi message `text` (one whole `{"type":"mcp",…}`).
pub fn read(text: &str) -> Incoming {
    let message = match json::parse_bounded(text.as_bytes(), MAX_PAYLOAD_VALUES) {
        Ok(message) => message,
        Err(JsonError::TooManyValues { limit }) => {
            return Incoming::Ignored(format!("a payload of more than {limit} JSON values"))
        }
        Err(JsonError::Invalid(why)) => return Incoming::Ignored(format!("invalid JSON: {why}")),
    };
    let Some(Value::Object(mut payload)) = message.get("payload").cloned() else {
        return Incoming::Ignored("no payload object".to_owned());
    };
    let id = payload.remove("id");
    let method = payload.remove("method");
    let version_ok = payload.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    match (id, method) {
        (Some(id), _) if !echoable(&id) => Incoming::Ignored(format!("an id that is {}", kind(&id))),
        (None, Some(Value::String(method))) => Incoming::Notification { method },
        (None, _) => Incoming::Ignored("neither a request nor a notification".to_owned()),
        (Some(id), _) if !version_ok => Incoming::Invalid {
            id,
            why: "jsonrpc must be \"2.0\"".to_owned(),
        },
        (Some(id), Some(Value::String(method))) => match payload.remove("params") {
            None | Some(Value::Null) => Incoming::Request {
                id,
                method,
                params: None,
            },
            Some(params @ (Value::Object(_) | Value::Array(_))) => Incoming::Request {
                id,
                method,
                params: Some(params),
            },
            Some(other) => Incoming::Invalid {
                id,
                why: format!("params must be an object, not {}", kind(&other)),
            },
        },
        (Some(_), None) if payload.contains_key("result") || payload.contains_key("error") => {
            Incoming::Ignored("a response to a request we never sent".to_owned())
        }
        (Some(id), _) => Incoming::Invalid {
            id,
            why: "method must be a string".to_owned(),
        },
    }
}

/// Ids we echo: numbers and strings (JSON-RPC also allows null, which the
/// real server could not read back).
fn echoable(id: &Value) -> bool {
    matches!(id, Value::Number(_) | Value::String(_))
}

/// The xiaozhi message carrying a successful reply.
pub fn result(id: &Value, result: Value) -> Map<String, Value> {
    wrap(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

/// The xiaozhi message carrying an error reply (with its `code`, which the
/// firmware leaves out and the JSON-RPC spec requires).
pub fn error(id: &Value, code: i64, message: &str) -> Map<String, Value> {
    wrap(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
}

/// `{"type":"mcp","payload":P}`; the connection adds `session_id` when it
/// writes it, as the firmware does.
fn wrap(payload: Value) -> Map<String, Value> {
    let mut message = Map::new();
    message.insert("type".into(), "mcp".into());
    message.insert("payload".into(), payload);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mcp(payload: Value) -> String {
        json!({"type": "mcp", "payload": payload}).to_string()
    }

    #[test]
    fn requests_and_notifications() {
        let init = mcp(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"a": 1}}));
        assert_eq!(
            read(&init),
            Incoming::Request {
                id: json!(1),
                method: "initialize".into(),
                params: Some(json!({"a": 1}))
            }
        );
        let list = mcp(json!({"jsonrpc": "2.0", "id": "x-2", "method": "tools/list"}));
        assert!(matches!(read(&list), Incoming::Request { id, params: None, .. } if id == "x-2"));
        let note = mcp(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert_eq!(
            read(&note),
            Incoming::Notification {
                method: "notifications/initialized".into()
            }
        );
    }

    #[test]
    fn what_is_answered_with_an_error_and_what_is_only_logged() {
        let old = mcp(json!({"jsonrpc": "1.0", "id": 7, "method": "ping"}));
        assert!(matches!(read(&old), Incoming::Invalid { id, .. } if id == 7));
        let bad_params = mcp(json!({"jsonrpc": "2.0", "id": 8, "method": "ping", "params": "x"}));
        assert!(matches!(read(&bad_params), Incoming::Invalid { id, .. } if id == 8));
        let no_method = mcp(json!({"jsonrpc": "2.0", "id": 9, "method": 5}));
        assert!(matches!(read(&no_method), Incoming::Invalid { .. }));
        for ignored in [
            mcp(json!({"jsonrpc": "2.0", "id": null, "method": "ping"})),
            mcp(json!({"jsonrpc": "2.0", "id": [1], "method": "ping"})),
            mcp(json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
            mcp(json!("text")),
            r#"{"type":"mcp"}"#.to_owned(),
            format!(
                r#"{{"type":"mcp","payload":{{"id":1,"method":"x","params":[{}0]}}}}"#,
                "0,".repeat(MAX_PAYLOAD_VALUES)
            ),
        ] {
            assert!(matches!(read(&ignored), Incoming::Ignored(_)), "{ignored:.80}");
        }
    }

    #[test]
    fn replies_echo_the_id_and_carry_codes() {
        let ok = Value::Object(result(&json!(1), json!({})));
        assert_eq!(
            ok,
            json!({"type": "mcp", "payload": {"jsonrpc": "2.0", "id": 1, "result": {}}})
        );
        let err = Value::Object(error(&json!("a"), METHOD_NOT_FOUND, "Method not found: x"));
        assert_eq!(err["payload"]["id"], "a");
        assert_eq!(err["payload"]["error"]["code"], -32601);
        let big = json!(18446744073709551615u64);
        assert_eq!(Value::Object(result(&big, json!(null)))["payload"]["id"], big);
    }
}

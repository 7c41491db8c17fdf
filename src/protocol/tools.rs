//! The wire types of MCP tools on the control socket: a tool a program
//! offers (`offer_tools`), what each of the three tool commands answers,
//! and the `tool_call` event a program receives. See docs/control.md.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Extra;

/// One tool in `offer_tools`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfferedTool {
    /// `[A-Za-z0-9_.-]{1,64}`.
    pub name: String,
    /// What it does; the assistant chooses tools by it.
    pub description: String,
    /// Its JSON Schema, `{"type": "object", ...}`; no arguments when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Milliseconds the program has to answer a call; 10000 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `offer_tools`: what is offered where. Calls follow as `tool_call` events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolsOffered {
    /// The tools' names.
    pub tools: Vec<String>,
    /// The sessions that offer them; `null`: every session.
    pub sessions: Option<Vec<String>>,
}

/// `tool_result`: the answer went to the call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolAnswered {
    /// Always true.
    pub answered: bool,
}

/// `tools`: what a session offers its server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionToolList {
    /// The session.
    pub session: String,
    /// `builtin` (wsvisor answers its server's MCP requests) or `off`.
    pub mcp: String,
    /// In `tools/list` order.
    pub tools: Vec<ToolEntry>,
    /// Fields this reader does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One tool of [`SessionToolList`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolEntry {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// `config` or `program`.
    pub source: String,
    /// Milliseconds a call may take.
    pub timeout_ms: u64,
    /// Its JSON Schema.
    pub input_schema: Value,
    /// Fields this reader does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `tool_call` event: a program's tool was called; answer with
/// `tool_result` and this `call_id` within `timeout_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCallEvent {
    /// Answer with this id.
    pub call_id: String,
    /// The session whose server asked.
    pub session: String,
    /// The tool.
    pub tool: String,
    /// The arguments, already checked against the tool's schema.
    pub arguments: Value,
    /// Milliseconds left to answer; the server is told of a timeout after that.
    pub timeout_ms: u64,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{parse_request, to_line, Command, ErrorCode, EventLine, Request};
    use super::*;

    fn command(line: &str) -> Command {
        parse_request(line.as_bytes()).unwrap().command
    }

    fn error(line: &str) -> (ErrorCode, String) {
        let (_, error) = parse_request(line.as_bytes()).unwrap_err();
        (error.code, error.message)
    }

    #[test]
    fn the_three_tool_commands_parse() {
        assert_eq!(
            command(r#"{"cmd":"tools","session":"kitchen"}"#),
            Command::Tools {
                session: "kitchen".into()
            }
        );
        let offer = command(
            r#"{"cmd":"offer_tools","sessions":["kitchen"],"tools":[{"name":"lamp","description":"A lamp",
                "input_schema":{"type":"object"},"timeout_ms":1500},{"name":"bell","description":"A bell"}]}"#,
        );
        assert_eq!(
            offer,
            Command::OfferTools {
                sessions: Some(vec!["kitchen".into()]),
                tools: vec![
                    OfferedTool {
                        name: "lamp".into(),
                        description: "A lamp".into(),
                        input_schema: Some(json!({"type": "object"})),
                        timeout_ms: Some(1500),
                    },
                    OfferedTool {
                        name: "bell".into(),
                        description: "A bell".into(),
                        input_schema: None,
                        timeout_ms: None,
                    },
                ],
            }
        );
        assert_eq!(
            command(r#"{"cmd":"tool_result","call_id":"7","result":{"on":true}}"#),
            Command::ToolResult {
                call_id: "7".into(),
                result: Some(json!({"on": true})),
                error: None
            }
        );
        assert_eq!(
            command(r#"{"cmd":"tool_result","call_id":"7","error":"lamp unreachable"}"#),
            Command::ToolResult {
                call_id: "7".into(),
                result: None,
                error: Some("lamp unreachable".into())
            }
        );
    }

    #[test]
    fn each_mistake_is_named() {
        let cases = [
            (r#"{"cmd":"offer_tools"}"#, "`offer_tools` needs `tools`"),
            (
                r#"{"cmd":"offer_tools","tools":{}}"#,
                "`tools` must be an array of tools, not an object",
            ),
            (
                r#"{"cmd":"offer_tools","tools":[1]}"#,
                "`tools[0]` must be an object, not a number",
            ),
            (
                r#"{"cmd":"offer_tools","tools":[{"description":"d"}]}"#,
                "`tools[0]` needs `name`",
            ),
            (
                r#"{"cmd":"offer_tools","tools":[{"name":"t"}]}"#,
                "`tools[0]` (tool \"t\") needs `description`",
            ),
            (
                r#"{"cmd":"offer_tools","tools":[{"name":"t","description":"d","input_schema":"x"}]}"#,
                "`tools[0].input_schema` must be a JSON Schema object, not a string",
            ),
            (
                r#"{"cmd":"offer_tools","tools":[{"name":"t","description":"d","timeout_ms":-1}]}"#,
                "`tools[0].timeout_ms` must be a whole number of milliseconds",
            ),
            (
                r#"{"cmd":"offer_tools","tools":[{"name":"t","description":"d","command":["sh"]}]}"#,
                "`tools[0]` takes no argument \"command\"",
            ),
            (
                r#"{"cmd":"offer_tools","sessions":"k","tools":[]}"#,
                "`sessions` must be an array, not a string",
            ),
            (r#"{"cmd":"tool_result","result":"x"}"#, "`tool_result` needs `call_id`"),
            (r#"{"cmd":"tool_result","call_id":"1"}"#, "exactly one of `result`"),
            (
                r#"{"cmd":"tool_result","call_id":"1","result":"a","error":"b"}"#,
                "exactly one of `result`",
            ),
            (r#"{"cmd":"tools"}"#, "`tools` needs `session`"),
        ];
        for (line, expected) in cases {
            let (code, message) = error(line);
            assert_eq!(code, ErrorCode::BadRequest, "{line}");
            assert!(message.contains(expected), "{line}: {message}");
        }
    }

    #[test]
    fn what_a_client_writes_the_server_reads_back() {
        let commands = [
            Command::OfferTools {
                sessions: None,
                tools: vec![OfferedTool {
                    name: "lamp".into(),
                    description: "A lamp".into(),
                    input_schema: None,
                    timeout_ms: Some(3),
                }],
            },
            Command::ToolResult {
                call_id: "9".into(),
                result: Some(json!("on")),
                error: None,
            },
            Command::Tools { session: "k".into() },
        ];
        for command in commands {
            let line = to_line(&Request {
                id: json!(1),
                command: command.clone(),
            });
            assert_eq!(parse_request(line.as_bytes()).unwrap().command, command, "{line}");
        }
    }

    #[test]
    fn a_tool_call_event_line() {
        let call = ToolCallEvent {
            call_id: "3".into(),
            session: "kitchen".into(),
            tool: "lamp".into(),
            arguments: json!({"on": true}),
            timeout_ms: 10000,
        };
        let line = to_line(&EventLine::ToolCall(call.clone()));
        assert_eq!(
            line,
            r#"{"arguments":{"on":true},"call_id":"3","event":"tool_call","session":"kitchen","timeout_ms":10000,"tool":"lamp"}"#
        );
        assert_eq!(
            serde_json::from_str::<EventLine>(&line).unwrap(),
            EventLine::ToolCall(call)
        );
    }
}

//! What running a tool gave, and the MCP `tools/call` result it becomes:
//! `{"content":[{"type":"text","text":T}],"isError":B}`. A failed call
//! also carries `"error": T`: the real server reads the message of an
//! `isError` result from `result.error` (field.md B10) and would otherwise
//! tell the assistant only that "the tool returned an error".

use std::time::Duration;

use serde_json::{json, Value};

use super::stats::CallOutcome;

/// How a call of a tool that exists ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolOutcome {
    /// The tool's answer (a command's standard output, a program's result).
    Answered(String),
    /// The tool ran and failed: exit status and standard error's tail, or
    /// the program's error message.
    Failed(String),
    /// No answer within the tool's timeout (a command is killed).
    TimedOut(Duration),
    /// The answer passed its byte limit (`max_output` of a command, which is
    /// then killed; 128 KiB from a program).
    OutputTooLarge(usize),
    /// The command could not be started.
    NotStarted(String),
    /// Too many calls were running; says which limit.
    Busy(String),
    /// The program offering the tool went away before answering.
    Withdrawn,
}

impl ToolOutcome {
    /// How it is counted.
    pub fn counted(&self) -> CallOutcome {
        match self {
            ToolOutcome::Answered(_) => CallOutcome::Ok,
            ToolOutcome::Failed(_) => CallOutcome::Error,
            ToolOutcome::TimedOut(_) => CallOutcome::Timeout,
            ToolOutcome::OutputTooLarge(_) => CallOutcome::OutputTooLarge,
            ToolOutcome::NotStarted(_) => CallOutcome::NotStarted,
            ToolOutcome::Busy(_) => CallOutcome::Busy,
            ToolOutcome::Withdrawn => CallOutcome::Withdrawn,
        }
    }

    /// The text the assistant is given.
    pub fn text(&self, tool: &str) -> String {
        match self {
            ToolOutcome::Answered(text) | ToolOutcome::Failed(text) | ToolOutcome::Busy(text) => text.clone(),
            ToolOutcome::TimedOut(after) => format!("tool {tool} did not answer within {}ms", after.as_millis()),
            ToolOutcome::OutputTooLarge(limit) => format!("tool {tool} gave more than {limit} bytes of output"),
            ToolOutcome::NotStarted(why) => format!("tool {tool} could not be started: {why}"),
            ToolOutcome::Withdrawn => format!("the program offering tool {tool} went away before answering"),
        }
    }

    /// The `result` of the `tools/call` reply.
    pub fn to_result(&self, tool: &str) -> Value {
        let text = self.text(tool);
        if matches!(self, ToolOutcome::Answered(_)) {
            json!({"content": [{"type": "text", "text": text}], "isError": false})
        } else {
            json!({"content": [{"type": "text", "text": text}], "isError": true, "error": text})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_as_mcp_and_the_real_server_read_them() {
        let ok = ToolOutcome::Answered("22 °C".into()).to_result("temp");
        assert_eq!(
            ok,
            json!({"content": [{"type": "text", "text": "22 °C"}], "isError": false})
        );
        let late = ToolOutcome::TimedOut(Duration::from_millis(1500)).to_result("temp");
        assert_eq!(late["isError"], true);
        assert_eq!(late["error"], "tool temp did not answer within 1500ms");
        assert_eq!(late["content"][0]["text"], late["error"]);
        assert_eq!(ToolOutcome::Withdrawn.counted(), CallOutcome::Withdrawn);
    }
}

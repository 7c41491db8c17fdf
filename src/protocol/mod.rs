//! The control protocol (CONTRACT §3), one type per message, shared by both
//! ends: the daemon's control server writes these types and `wsvisor ctl`,
//! the demo, the tests and the benchmarks read them back through the one
//! control client. Nothing here does I/O.
//!
//! Layout of the module:
//! - `request`: the commands a client sends ([`Request`], [`Command`]);
//! - `parse`: the server's total parser of request lines;
//! - `response`: response lines, error codes and errors;
//! - `results`: the `result` of each command;
//! - `summary`: a session summary and its counters;
//! - `event`: the event lines of a subscription (and of offered tools);
//! - `tools`: MCP tools offered by programs, their calls and answers;
//! - `lines`: newline framing with a byte cap, for both ends;
//! - `timestamp`: RFC 3339 times as the protocol writes them.
//!
//! Every line is written by [`to_line`]: keys in sorted order, as every
//! line since the first release (they were built as `serde_json::Value`
//! maps, which sort), so the bytes on the wire did not change when these
//! types replaced the maps.

mod event;
pub mod lines;
mod parse;
mod request;
mod response;
mod results;
mod summary;
mod timestamp;
mod tools;

#[cfg(test)]
mod tests;

pub use self::event::{event_line, EventLine, StateEvent};
pub use self::parse::{kind, parse_request};
pub use self::request::{Command, ListenMode, ListenState, Request};
pub use self::response::{error_response, ok_response, ControlError, ErrorCode, Response};
pub use self::results::{
    ActivationStatus, Delivery, IdentityInfo, MetricsText, Pong, ReloadSummary, Requested, SessionList, StateCounts,
    Status, Subscribed,
};
pub use self::summary::{Counters, LastClose, OtaOffer, SessionSummary};
pub use self::timestamp::Timestamp;
pub use self::tools::{OfferedTool, SessionToolList, ToolAnswered, ToolCallEvent, ToolEntry, ToolsOffered};
/// The name tables the protocol shares with the actor tree: states, loss
/// causes and drop reasons, each with its serde and strum names.
pub use wsvisor_actors::{events::DropReason, loss::Cause, state::SessionState};

use serde::Serialize;
use serde_json::{Map, Value};

/// Longest request line accepted, newline excluded.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Fields a reader does not know, kept so that a newer daemon's additions
/// still reach a person (`ctl` prints them) instead of vanishing. Always
/// empty in what this daemon writes.
pub type Extra = Map<String, Value>;

/// One protocol line, without its newline: `value` as JSON with its keys
/// sorted at every level (see the module doc).
pub fn to_line<T: Serialize + ?Sized>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(value) => value.to_string(),
        // Only a map with non-string keys fails, and no wire type has one.
        Err(err) => {
            let error = ControlError::new(ErrorCode::Internal, format!("cannot encode an answer: {err}"));
            serde_json::json!({"error": error, "id": null, "ok": false}).to_string()
        }
    }
}

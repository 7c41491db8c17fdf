//! Response lines (`{"id", "ok", "result"}` or `{"id", "ok": false,
//! "error"}`), the contract's error codes and the error object.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use strum::{Display, EnumString, IntoStaticStr, VariantArray};

use super::to_line;

/// The contract's error codes (plus `bad_config`, for a reload whose file
/// does not validate).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed.
    BadRequest,
    /// No such command.
    UnknownCommand,
    /// No such session.
    NotFound,
    /// The session is not ready (audio) or stopped (text).
    NotReady,
    /// The session's queue is full.
    QueueFull,
    /// The peer's uid is not allowed.
    Forbidden,
    /// The daemon failed.
    Internal,
    /// `reload` found the config file invalid; nothing changed.
    BadConfig,
}

/// A failed request: the `error` of a response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ControlError {
    /// Machine-readable.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

impl ControlError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ControlError {
            code,
            message: message.into(),
        }
    }

    /// A `bad_request` error.
    pub fn bad(message: impl Into<String>) -> Self {
        ControlError::new(ErrorCode::BadRequest, message)
    }
}

/// One response line. `R` is the command's result type (see `results`);
/// a reader that does not know it yet reads a `serde_json::Value`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response<R = Value> {
    /// The request's `id`; `null` when the request had none or could not
    /// be read (and for a refused peer).
    #[serde(default)]
    pub id: Value,
    /// Whether the command succeeded.
    pub ok: bool,
    /// The command's result when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<R>,
    /// What went wrong when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ControlError>,
}

/// A success line.
pub fn ok_response<R: Serialize>(id: &Value, result: R) -> String {
    to_line(&Response {
        id: id.clone(),
        ok: true,
        result: Some(result),
        error: None,
    })
}

/// An error line.
pub fn error_response(id: &Value, error: &ControlError) -> String {
    to_line(&Response::<()> {
        id: id.clone(),
        ok: false,
        result: None,
        error: Some(error.clone()),
    })
}

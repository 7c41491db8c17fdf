//! Why a connection ended: the causes of CONTRACT §3 and the one report a
//! dead connection leaves behind.

use serde::{Deserialize, Serialize};
use strum::{Display, EnumCount, EnumString, IntoStaticStr, VariantArray};

use crate::ota::ActivationAsk;

/// Why a connection ended. The names are the contract's `cause` values;
/// the variant order is the order metrics list them in.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    IntoStaticStr,
    Display,
    EnumString,
    VariantArray,
    EnumCount,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Cause {
    /// The server sent a Close frame (its code, 1005 when it had none).
    ServerClose,
    /// TCP ended without a Close frame (1006).
    Abnormal,
    /// The connection was reset (RST) or another I/O error hit it.
    Reset,
    /// Nothing arrived within `ping_timeout` after a Ping.
    PingTimeout,
    /// The server hello did not arrive within `hello_timeout`.
    HelloTimeout,
    /// TCP or TLS could not be established, or DNS failed.
    ConnectFailed,
    /// TCP + TLS + upgrade took longer than `connect_timeout`.
    ConnectTimeout,
    /// The upgrade was refused with an HTTP status other than 401/403.
    HttpStatus,
    /// The server refused our credentials (401/403, or its `认证失败` text).
    AuthFailed,
    /// The peer broke the WebSocket or xiaozhi protocol.
    ProtocolError,
    /// The OTA endpoint asks for the device to be activated first.
    ActivationRequired,
    /// We closed on purpose (disconnect, reconnect, reload, shutdown).
    LocalStop,
    /// The connection actor died without saying why (a panic).
    Internal,
    /// The peer stopped reading and the outbound byte budget filled.
    WriteStalled,
    /// The token file could not be read, was empty or held more than one
    /// line: nothing was refused by the server, so it is retried on backoff.
    CredentialsUnavailable,
}

impl Cause {
    /// The contract's name of this cause.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Position in `Cause::VARIANTS`, for per-cause counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Close code RFC 6455 §7.1.5 reserves for "a Close frame without a code".
pub const CODE_NO_STATUS: u16 = 1005;
/// Close code RFC 6455 §7.1.5 reserves for "closed without a Close frame".
pub const CODE_ABNORMAL: u16 = 1006;

/// What one dead connection leaves behind: exactly one per connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LossReport {
    /// Why it ended.
    pub cause: Cause,
    /// WebSocket close code, when the cause has one.
    pub code: Option<u16>,
    /// HTTP status of a refused upgrade.
    pub status: Option<u16>,
    /// Human-readable detail (close reason, I/O error text). Never a token.
    pub reason: String,
    /// With `ActivationRequired`: the OTA endpoint's `activation` section
    /// (the code to enter in the server's console, the challenge to sign);
    /// boxed, since most reports have none.
    pub activation: Option<Box<ActivationAsk>>,
}

impl LossReport {
    /// A loss with a cause and a reason and no code.
    pub fn new(cause: Cause, reason: impl Into<String>) -> Self {
        LossReport {
            cause,
            code: None,
            status: None,
            reason: reason.into(),
            activation: None,
        }
    }

    /// The same loss with a WebSocket close code.
    pub fn with_code(mut self, code: u16) -> Self {
        self.code = Some(code);
        self
    }

    /// The same loss with the HTTP status of a refused upgrade.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// A Close frame from the server.
    pub fn server_close(code: Option<u16>, reason: impl Into<String>) -> Self {
        LossReport::new(Cause::ServerClose, reason).with_code(code.unwrap_or(CODE_NO_STATUS))
    }

    /// True for a close the server meant as "goodbye for now" (1000, 1001).
    pub fn is_clean_close(&self) -> bool {
        self.cause == Cause::ServerClose && matches!(self.code, Some(1000 | 1001))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_has_its_contract_name_and_its_own_counter() {
        for (position, cause) in Cause::VARIANTS.iter().enumerate() {
            let serde_name = serde_json::to_value(cause).unwrap();
            assert_eq!(serde_name, cause.as_str(), "{cause:?}");
            assert_eq!(cause.index(), position, "{cause:?}");
        }
        assert_eq!(Cause::PingTimeout.as_str(), "ping_timeout");
    }

    #[test]
    fn only_1000_and_1001_from_the_server_are_clean() {
        assert!(LossReport::server_close(Some(1000), "").is_clean_close());
        assert!(LossReport::server_close(Some(1001), "").is_clean_close());
        assert!(!LossReport::server_close(Some(1011), "").is_clean_close());
        assert_eq!(LossReport::server_close(None, "").code, Some(CODE_NO_STATUS));
        assert!(!LossReport::new(Cause::Reset, "").with_code(1000).is_clean_close());
    }
}

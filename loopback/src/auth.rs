//! Who may talk to the server: the token check and the device-id check,
//! as xiaozhi-esp32-server v0.9.6 does them (`core/websocket_server.py`,
//! `_handle_connection` and `_handle_auth`): both happen after the upgrade,
//! and a refusal is a text frame and Close 1000, never an HTTP status.

use crate::options::ServerOptions;
use crate::record::Headers;

/// The text the real server sends before closing an unauthenticated
/// connection.
pub const AUTH_FAILED_TEXT: &str = "认证失败";

/// The text the real server sends before closing a connection that names
/// no device ("port is fine; to test a connection, start digital-human").
pub const NO_DEVICE_ID_TEXT: &str = "端口正常，如需测试连接，请启动digital-human测试";

/// Whether a client with these headers is let in (see
/// [`ServerOptions::expected_token`] and its neighbours).
pub(crate) fn accepts(options: &ServerOptions, headers: &Headers) -> bool {
    let Some(expected) = options.expected_token.as_deref() else {
        return true;
    };
    if headers
        .device_id
        .as_ref()
        .is_some_and(|device| options.allowed_devices.contains(device))
    {
        return true;
    }
    match headers.authorization.as_deref() {
        // HTTP parsers trim header values, so an empty bearer token arrives
        // as a bare `Bearer`.
        None | Some("") | Some("Bearer") => options.accept_missing_token,
        // Only this exact prefix: the real server refuses `bearer x` or a
        // bare token.
        Some(value) => match value.strip_prefix("Bearer ") {
            Some("") if options.accept_missing_token => true,
            Some(token) => token == expected,
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: Option<&str>, device: &str) -> Headers {
        Headers {
            authorization: authorization.map(str::to_owned),
            device_id: Some(device.to_owned()),
            ..Headers::default()
        }
    }

    #[test]
    fn without_an_expected_token_anything_goes() {
        let options = ServerOptions::default();
        assert!(accepts(&options, &headers(None, "d")));
        assert!(accepts(&options, &headers(Some("junk"), "d")));
    }

    #[test]
    fn an_expected_token_needs_the_exact_bearer_form() {
        let options = ServerOptions {
            expected_token: Some("t".into()),
            ..ServerOptions::default()
        };
        assert!(accepts(&options, &headers(Some("Bearer t"), "d")));
        assert!(!accepts(&options, &headers(Some("Bearer u"), "d")));
        assert!(!accepts(&options, &headers(Some("t"), "d")));
        assert!(!accepts(&options, &headers(Some("bearer t"), "d")));
        assert!(!accepts(&options, &headers(None, "d")));
        assert!(!accepts(&options, &headers(Some("Bearer "), "d")));
    }

    #[test]
    fn a_missing_token_can_be_accepted_and_devices_whitelisted() {
        let options = ServerOptions {
            expected_token: Some("t".into()),
            accept_missing_token: true,
            allowed_devices: vec!["vip".into()],
            ..ServerOptions::default()
        };
        assert!(accepts(&options, &headers(None, "d")));
        assert!(accepts(&options, &headers(Some("Bearer "), "d")));
        assert!(accepts(&options, &headers(Some("Bearer"), "d")));
        assert!(!accepts(&options, &headers(Some("Bearer wrong"), "d")));
        assert!(accepts(&options, &headers(Some("Bearer wrong"), "vip")));
    }
}

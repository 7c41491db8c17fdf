//! The awc client every connection of this thread shares.

use std::time::Duration;

/// Long enough never to fire: each attempt is bounded by its session's
/// `connect_timeout` instead, so sessions may differ.
const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);

/// A WebSocket client: HTTP/1.1 only (the upgrade does not exist in h2),
/// no limit on concurrent sockets (awc's pool holds a permit for every
/// open WebSocket, 100 by default), no redirects, no awc timeouts.
pub fn websocket_client() -> awc::Client {
    // awc builds its rustls config from the process default provider; with
    // only `ring` compiled in, install it (a second install is a no-op).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connector = awc::Connector::new()
        .max_http_version(awc::http::Version::HTTP_11)
        .limit(0)
        .timeout(UNBOUNDED)
        .handshake_timeout(UNBOUNDED);
    awc::Client::builder()
        .connector(connector)
        .disable_timeout()
        .max_redirects(0)
        .finish()
}

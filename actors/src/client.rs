//! The awc clients that connections use: HTTP/1.1 only (the upgrade does
//! not exist in h2), no limit on concurrent sockets (awc's pool holds a
//! permit for every open WebSocket, 100 by default), no redirects, no awc
//! timeouts (each attempt is bounded by its session's `connect_timeout`),
//! TLS from the system roots plus an optional private CA, and tuned TCP
//! sockets. Sessions with the same TLS and liveness settings share one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_service::Service;
use actix_tls::connect::rustls_0_23::{native_roots_cert_store, webpki_roots_cert_store};
use actix_tls::connect::{ConnectError, ConnectInfo, Connection, ConnectorService};
use awc::http::Uri;
use futures_util::future::LocalBoxFuture;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

use crate::settings::{SessionSettings, TlsSettings};

/// Why the private CA of `ca_file` cannot be trusted: no client is built,
/// and the session's attempts fail with this (`wsvisor check` says it first).
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// Unreadable, or not PEM.
    #[error("ca_file {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// PEM without a certificate.
    #[error("ca_file {}: no certificate in it", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A certificate rustls refuses as a root.
    #[error("ca_file {}: {source}", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
}

/// Long enough never to fire.
const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);

/// Keepalive probes start after this much idleness; the heartbeat usually
/// notices first, this covers a connection whose heartbeat is generous.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;

/// What makes two sessions need different clients.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// Extra CA and verification switch.
    pub tls: TlsSettings,
    /// The kernel gives up on unacknowledged data after this.
    pub tcp_user_timeout: Duration,
}

impl ClientKey {
    /// The client a session needs: `TCP_USER_TIMEOUT` matches its heartbeat,
    /// so the kernel and wsvisor agree on when a silent peer is dead.
    pub fn of(settings: &SessionSettings) -> Self {
        let liveness = settings.liveness;
        ClientKey {
            tls: settings.tls.clone(),
            tcp_user_timeout: liveness.ping_interval + liveness.ping_timeout,
        }
    }
}

/// One client per distinct `ClientKey`, built on first use.
#[derive(Default)]
pub struct ClientCache {
    clients: HashMap<ClientKey, awc::Client>,
}

impl ClientCache {
    /// The client for `key`, or why it cannot be built (an unreadable CA file).
    pub fn get(&mut self, key: &ClientKey) -> Result<awc::Client, CaFileError> {
        if let Some(client) = self.clients.get(key) {
            return Ok(client.clone());
        }
        let client = websocket_client(key)?;
        self.clients.insert(key.clone(), client.clone());
        Ok(client)
    }
}

/// A client for `key`.
pub fn websocket_client(key: &ClientKey) -> Result<awc::Client, CaFileError> {
    // awc builds on the process default provider; with only `ring`
    // compiled in, install it (a second install is a no-op).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connector = awc::Connector::new()
        .connector(TunedTcp {
            inner: actix_tls::connect::Connector::default().service(),
            key: key.clone(),
        })
        .rustls_0_23(Arc::new(tls_config(&key.tls)?))
        .limit(0)
        .timeout(UNBOUNDED)
        .handshake_timeout(UNBOUNDED);
    Ok(awc::Client::builder()
        .connector(connector)
        .disable_timeout()
        .max_redirects(0)
        .finish())
}

fn tls_config(tls: &TlsSettings) -> Result<ClientConfig, CaFileError> {
    let mut config = if tls.insecure {
        ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyCertificate::new()))
            .with_no_client_auth()
    } else {
        let mut roots = system_roots();
        if let Some(ca_file) = &tls.ca_file {
            add_ca_file(&mut roots, ca_file)?;
        }
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth()
    };
    // The WebSocket upgrade is HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The system's trusted roots; Mozilla's set when the system has none.
fn system_roots() -> RootCertStore {
    match native_roots_cert_store() {
        Ok(roots) if !roots.is_empty() => roots,
        _ => webpki_roots_cert_store(),
    }
}

/// Trust the CA certificates of a PEM file as well (a self-hosted server's CA).
pub fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), CaFileError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect())
        .map_err(|source| CaFileError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(CaFileError::Empty { path: path.to_owned() });
    }
    for cert in certs {
        roots.add(cert).map_err(|source| CaFileError::Refused {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// Checks a CA file the way connections will use it (for `wsvisor check`).
pub fn check_ca_file(path: &Path) -> Result<(), CaFileError> {
    add_ca_file(&mut RootCertStore::empty(), path)
}

/// actix-tls's TCP connector, with socket options set on every new socket.
#[derive(Clone)]
struct TunedTcp {
    inner: ConnectorService,
    key: ClientKey,
}

impl Service<ConnectInfo<Uri>> for TunedTcp {
    type Response = Connection<Uri, TcpStream>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        Service::<ConnectInfo<Uri>>::poll_ready(&self.inner, cx)
    }

    fn call(&self, request: ConnectInfo<Uri>) -> Self::Future {
        let connect = self.inner.call(request);
        let user_timeout = self.key.tcp_user_timeout;
        Box::pin(async move {
            let connection = connect.await?;
            tune(connection.io_ref(), user_timeout);
            Ok(connection)
        })
    }
}

/// Small frames should leave at once (Nagle would hold audio back), and a
/// peer that stops acknowledging must not hold our writes for the
/// kernel's default of about 15 minutes.
fn tune(stream: &TcpStream, user_timeout: Duration) {
    let socket = SockRef::from(stream);
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    let results = [
        socket.set_tcp_nodelay(true),
        socket.set_tcp_keepalive(&keepalive),
        socket.set_tcp_user_timeout(Some(user_timeout)),
    ];
    if let Some(Err(err)) = results.into_iter().find(Result::is_err) {
        log::warn!("cannot set TCP options on a session socket: {err}");
    }
}

/// The verifier behind `tls_insecure = true`.
mod insecure {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, Error, SignatureScheme};

    /// Accepts any certificate; signatures are still checked, so the
    /// handshake is sound, only the server's identity is not.
    #[derive(Debug)]
    pub struct AcceptAnyCertificate(CryptoProvider);

    impl AcceptAnyCertificate {
        pub fn new() -> Self {
            AcceptAnyCertificate(rustls::crypto::ring::default_provider())
        }
    }

    impl ServerCertVerifier for AcceptAnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

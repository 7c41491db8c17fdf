//! The optional HTTP endpoint for Prometheus (`[daemon] metrics_listen`),
//! since Prometheus cannot scrape a Unix socket:
//! - `GET /metrics`: the same text as the control socket's `metrics`
//!   (exposition format 0.0.4);
//! - `GET /healthz`: 200 while every actor of the tree answers the
//!   watchdog's probe in time, 503 (naming the one that did not) otherwise.
//!
//! Served by actix-web on one worker thread of its own: the actor tree is
//! reached through its addresses, so a wedged tree is reported (503)
//! rather than hanging the endpoint. actix-web's own signal handling is
//! off: the daemon owns SIGTERM, SIGINT and SIGHUP.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, App, HttpResponse, HttpServer};
use wsvisor_actors::messages::{ListSessions, ProbeTree};
use wsvisor_actors::Tree;

use crate::control_server::{metrics, tool_metrics};
use crate::trimming_body::TrimmingBody;

/// The Prometheus text exposition content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Patience of `/healthz`; parameters so tests run in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct HealthOptions {
    /// Every actor must answer the probe within this.
    pub probe_within: Duration,
    /// A verdict this young is reused, so a flood of requests is not a
    /// flood of probes through the tree.
    pub reuse_for: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            probe_within: Duration::from_secs(1),
            reuse_for: Duration::from_millis(500),
        }
    }
}

type Verdict = Result<(), String>;

#[derive(Clone)]
struct State {
    tree: Tree,
    started: Instant,
    health: HealthOptions,
    last: Arc<Mutex<Option<(Instant, Verdict)>>>,
}

/// A running endpoint; dropping it stops the server.
pub struct MetricsEndpoint {
    handle: ServerHandle,
    /// Where it listens (the port is known even when 0 was asked for).
    pub local_addr: SocketAddr,
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        // Not awaited: the process is ending, or a test is done with it.
        drop(self.handle.stop(false));
    }
}

/// Starts serving on `addr` from the current actix system.
pub fn start(
    addr: SocketAddr,
    tree: Tree,
    started: Instant,
    health: HealthOptions,
) -> std::io::Result<MetricsEndpoint> {
    let state = State {
        tree,
        started,
        health,
        last: Arc::new(Mutex::new(None)),
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .route("/metrics", web::get().to(serve_metrics))
            .route("/healthz", web::get().to(serve_health))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(addr)?;
    let local_addr = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    log::info!("metrics endpoint listening url=http://{local_addr}/metrics");
    Ok(MetricsEndpoint { handle, local_addr })
}

async fn serve_metrics(state: web::Data<State>) -> HttpResponse {
    log::debug!("metrics endpoint: GET /metrics");
    let sessions = state.tree.monitor.send(ListSessions);
    match tokio::time::timeout(state.health.probe_within, sessions).await {
        Ok(Ok(sessions)) => HttpResponse::Ok()
            .content_type(CONTENT_TYPE)
            .insert_header(CacheControl(vec![CacheDirective::NoCache]))
            .body({
                let mut text = metrics::render(&sessions, state.started.elapsed());
                text.push_str(&tool_metrics::render(&state.tree.mcp.stats.snapshot()));
                TrimmingBody::new(text)
            }),
        _ => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("the monitor did not answer\n"),
    }
}

async fn serve_health(state: web::Data<State>) -> HttpResponse {
    let verdict = verdict(&state).await;
    log::debug!("metrics endpoint: GET /healthz healthy={}", verdict.is_ok());
    let mut response = match &verdict {
        Ok(()) => HttpResponse::Ok(),
        Err(_) => HttpResponse::ServiceUnavailable(),
    };
    response
        .content_type("text/plain; charset=utf-8")
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(match verdict {
            Ok(()) => "ok\n".to_owned(),
            Err(why) => format!("unhealthy: {why}\n"),
        })
}

/// The probe's verdict, fresh or at most `reuse_for` old.
async fn verdict(state: &State) -> Verdict {
    if let Some((at, verdict)) = state.last.lock().map(|last| last.clone()).ok().flatten() {
        if at.elapsed() < state.health.reuse_for {
            return verdict;
        }
    }
    let within = state.health.probe_within;
    let probe = state.tree.supervisor.send(ProbeTree { within });
    // The supervisor answers within `within` unless it is wedged itself.
    let verdict = match tokio::time::timeout(within * 2, probe).await {
        Ok(Ok(Ok(_))) => Ok(()),
        Ok(Ok(Err(unanswered))) => Err(format!("{unanswered} within {within:?}")),
        Ok(Err(_)) | Err(_) => Err(format!("the supervisor did not answer within {:?}", within * 2)),
    };
    if let Ok(mut last) = state.last.lock() {
        *last = Some((Instant::now(), verdict.clone()));
    }
    verdict
}

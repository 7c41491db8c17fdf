//! The start-up floor: how fast a server takes N sessions from plain
//! WebSocket clients in this process (tokio-tungstenite, the daemon's
//! headers and hello, no more upgrades in flight than the daemon allows
//! itself), so that the daemon's start-up reads against what the server
//! grants any client. Against the Python server this floor is the server's
//! one core: its handshakes, not the client, set it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::Semaphore;
use wsvisor_actors::connection::UPGRADES_IN_FLIGHT;

use crate::forward_latency;
use crate::servers::{ServerChild, ServerKind};

/// What one floor run measured.
pub struct Floor {
    /// From the first upgrade until every client had its server hello.
    pub all_answered: Duration,
    /// The server's CPU seconds by then (since its own start).
    pub server_cpu: f64,
}

/// `sessions` plain clients against a fresh `kind` server, all held until
/// the last is answered.
pub fn measure(kind: ServerKind, sessions: usize) -> Floor {
    let mut server = ServerChild::start(kind);
    let url = server.url().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let clients = runtime.block_on(async {
        let gate = Arc::new(Semaphore::new(UPGRADES_IN_FLIGHT));
        let connecting = (0..sessions).map(|i| {
            let (gate, url) = (gate.clone(), url.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("the gate stays open");
                forward_latency::connect_direct(&url, i).await
            })
        });
        join_all(connecting).await
    });
    let all_answered = started.elapsed();
    let server_cpu = server.usage().1;
    assert_eq!(clients.len(), sessions);
    assert!(clients.iter().all(Result::is_ok), "a plain client failed");
    assert_eq!(
        server.ready() as usize,
        sessions,
        "the server does not see every client"
    );
    // Closed inside the runtime that owns their sockets.
    runtime.block_on(async move { drop(clients) });
    Floor {
        all_answered,
        server_cpu,
    }
}

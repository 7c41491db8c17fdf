//! Many idle connections at once. Ignored by default (it needs about two file
//! descriptors per connection); run with
//! `LOOPBACK_SCALE=9000 cargo test -p wsvisor-loopback --release --test scale -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wsvisor_loopback::{Fault, Server, ServerOptions};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn thousands_of_idle_connections() {
    let n: usize = std::env::var("LOOPBACK_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let server = Server::start(ServerOptions::default()).unwrap();
    let url = server.url();
    let rss_before = rss_kib();
    let start = Instant::now();
    let mut clients = Vec::with_capacity(n);
    // Batches keep the connect burst within the listen backlog.
    for batch in (0..n).collect::<Vec<_>>().chunks(500) {
        let tasks: Vec<_> = batch
            .iter()
            .map(|&i| {
                let url = url.clone();
                tokio::spawn(async move {
                    let mut ws = try_connect(&url, &format!("dev-{i}"), Some("t")).await.unwrap();
                    hello(&mut ws).await;
                    ws
                })
            })
            .collect();
        for task in tasks {
            clients.push(task.await.unwrap());
        }
    }
    assert!(server.wait_for_open(n, Duration::from_secs(30)));
    let connected = start.elapsed();
    let rss = rss_kib();
    println!(
        "{n} connections in {connected:?}; RSS {} MiB -> {} MiB (clients and server), {:.1} KiB/connection",
        rss_before / 1024,
        rss / 1024,
        (rss - rss_before) as f64 / n as f64
    );
    // Idle: the server thread should use next to no CPU now.
    let t0 = Instant::now();
    let hit = server.inject_where(None, Fault::Text("{\"type\":\"tts\",\"state\":\"stop\"}".into()));
    println!("text to {} connections applied in {:?}", hit.connections, t0.elapsed());
    assert_eq!(hit.connections, n);
    let t0 = Instant::now();
    let hit = server.inject_where(None, Fault::Drop);
    println!("drop of {} connections applied in {:?}", hit.connections, t0.elapsed());
    assert!(server.wait_for_open(0, Duration::from_secs(30)));
    drop(clients);
}

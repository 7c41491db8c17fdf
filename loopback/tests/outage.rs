//! Outages and scale: the listener going away and coming back on the same
//! port, restarts, shutting the server down, and many connections at once.

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wsvisor_loopback::{EventKind, Fault, Server, ServerOptions};

#[tokio::test]
async fn outage_refuses_connections_then_listens_on_the_same_port() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let addr = server.addr();
    // An open connection survives the outage (and must not block the rebind).
    let (mut survivor, _) = ready(&server, "survivor").await;

    server.stop_listening();
    assert!(!server.is_listening());
    let err = TcpStream::connect(addr).await.expect_err("connect should be refused");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert!(try_connect(&server.url(), "dev", None).await.is_err());

    server.start_listening().unwrap();
    assert!(server.is_listening());
    assert_eq!(server.addr(), addr);
    let (_ws, _) = ready(&server, "dev").await;

    survivor.send(Message::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut survivor).await["type"], "pong");
    assert_eq!(server.open_connections(), 2);

    let kinds: Vec<EventKind> = server.events().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::ListenerStopped));
    assert!(kinds.contains(&EventKind::ListenerStarted));
    // Idempotent both ways.
    server.start_listening().unwrap();
    server.stop_listening();
    server.stop_listening();
    server.start_listening().unwrap();
}

#[tokio::test]
async fn restart_closes_with_1012_and_comes_back() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let (mut a, _) = ready(&server, "a").await;
    let (mut b, _) = ready(&server, "b").await;
    let at = server.restart().unwrap();
    assert!(at <= Instant::now());
    for ws in [&mut a, &mut b] {
        assert_eq!(expect_close(ws).await, Some((1012, "service restart".to_owned())));
    }
    assert!(server.wait_for_open(0, SOON));
    let (_c, _) = ready(&server, "c").await;
    assert_eq!(server.open_connections(), 1);
}

#[tokio::test]
async fn dropping_the_server_closes_everything_promptly() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let addr = server.addr();
    let (mut ws, _) = ready(&server, "dev").await;
    let start = Instant::now();
    drop(server);
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    // The connection ends (how depends on what was unread), never hangs.
    loop {
        match next(&mut ws).await {
            None | Some(Err(_)) => break,
            Some(Ok(Message::Close(_))) => {}
            Some(Ok(_)) => {}
        }
    }
    let err = TcpStream::connect(addr).await.expect_err("nobody listens any more");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn server_methods_work_from_plain_threads() {
    let server = std::sync::Arc::new(Server::start(ServerOptions::default()).unwrap());
    let (_ws, _) = ready(&server, "dev").await;
    let s = server.clone();
    let applied = std::thread::spawn(move || {
        assert!(s.wait_for_hellos(1, SOON));
        s.inject(Fault::Text("from a thread".into()))
    })
    .join()
    .unwrap();
    assert!(applied <= Instant::now());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_connections_all_get_hellos() {
    const N: usize = 200;
    let server = Server::start(ServerOptions::default()).unwrap();
    let url = server.url();
    let mut tasks = Vec::new();
    for i in 0..N {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut ws = try_connect(&url, &format!("dev-{i}"), Some("t")).await.unwrap();
            let id = hello(&mut ws).await;
            (ws, id)
        }));
    }
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(tokio::time::timeout(SOON * 2, task).await.unwrap().unwrap());
    }
    assert!(server.wait_for_hellos(N as u64, SOON));
    assert!(server.wait_for_open(N, SOON));
    let mut ids: Vec<&String> = clients.iter().map(|(_, id)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N);

    let hit = server.inject_where(None, Fault::Close(1001, "going away".into()));
    assert_eq!(hit.connections, N);
    for (ws, _) in clients.iter_mut() {
        assert_eq!(expect_close(ws).await.map(|c| c.0), Some(1001));
    }
    assert!(server.wait_for_open(0, SOON));
}

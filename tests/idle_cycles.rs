//! Many consecutive idle closes: every one recovers, and nothing leaks:
//! neither the daemon's file descriptors nor connection or heartbeat actors.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::process::{open_fds, wsvisor, Daemon, Scratch};
use support::{settings, Watcher};
use wsvisor_actors::census;
use wsvisor_actors::messages::AddSession;
use wsvisor_actors::state::SessionState;
use wsvisor_loopback::{Server, ServerOptions};

const CYCLES: u64 = 1_000;
const WARM_UP: u64 = 20;

#[test]
fn a_thousand_idle_closes_all_recover_without_leaking_descriptors() {
    let server = Server::start(ServerOptions {
        idle_close: Some(Duration::from_millis(5)),
        ..Default::default()
    })
    .unwrap();
    let scratch = Scratch::new("idle");
    let dir = &scratch.0;
    let config = scratch.write(
        "config.toml",
        &format!(
            "[daemon]\ncontrol_socket = \"{}\"\n[defaults.reconnect]\ninitial_delay = \"2ms\"\nmax_delay = \"20ms\"\n\
             [[session]]\nname = \"kitchen\"\nurl = \"{}\"\ntoken = \"t\"\ndevice_id = \"d\"\nclient_id = \"c\"\n",
            dir.join("control.sock").display(),
            server.url()
        ),
    );
    let child = Daemon::spawn(
        wsvisor(&["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null()),
    );

    assert!(
        server.wait_for_hellos(WARM_UP, Duration::from_secs(10)),
        "warm-up cycles did not complete"
    );
    let fds_after_warm_up = open_fds(child.id());
    let started = Instant::now();
    let finished = server.wait_for_hellos(WARM_UP + CYCLES, Duration::from_secs(90));
    let took = started.elapsed();
    let fds_at_end = open_fds(child.id());
    // The daemon must still stop cleanly after it all.
    child.stop();

    assert!(
        finished,
        "only {} of {} cycles recovered",
        server.hellos().saturating_sub(WARM_UP),
        CYCLES
    );
    // A connection may be mid-handshake at either count: allow its socket.
    assert!(
        fds_at_end <= fds_after_warm_up + 2,
        "descriptors grew from {fds_after_warm_up} to {fds_at_end} over {CYCLES} cycles"
    );
    eprintln!("{CYCLES} idle-close cycles in {took:?}; descriptors {fds_after_warm_up} -> {fds_at_end}");
}

#[actix_rt::test]
async fn no_connection_or_heartbeat_outlives_its_connection() {
    let server = Server::start(ServerOptions {
        idle_close: Some(Duration::from_millis(5)),
        ..Default::default()
    })
    .unwrap();
    let tree = wsvisor_actors::start_tree(Default::default());
    let mut watcher = Watcher::subscribe(&tree).await;
    let mut session = settings("kitchen", &server.url());
    session.reconnect.initial_delay = Duration::from_millis(2);
    tree.supervisor.send(AddSession(session.into())).await.unwrap().unwrap();
    for _ in 0..200 {
        watcher.wait_state(SessionState::Ready, Duration::from_secs(2)).await;
    }
    // One session: at most one connection and one heartbeat alive, ever.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (connections, heartbeats) = census::live();
        if connections <= 1 && heartbeats <= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{connections} connections and {heartbeats} heartbeats alive"
        );
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}

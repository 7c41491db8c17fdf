//! A connection actor that panics is a loss like any other: reported as
//! `internal`, restarted by the Supervisor, and nothing else notices: in
//! the actor tree, and in the real daemon through its control socket.

mod support;

use std::time::Duration;

use support::{settings, Watcher};
use wsvisor_actors::loss::Cause;
use wsvisor_actors::messages::{AddSession, GetSession, PanicConnection};
use wsvisor_actors::state::SessionState;
use wsvisor_loopback::{Server, ServerOptions};

#[actix_rt::test]
async fn a_panicking_connection_is_restarted_and_its_neighbour_carries_on() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let tree = wsvisor_actors::start_tree(Default::default());
    let mut watcher = Watcher::subscribe(&tree).await;
    for name in ["kitchen", "attic"] {
        tree.supervisor
            .send(AddSession(settings(name, &server.url()).into()))
            .await
            .unwrap()
            .unwrap();
    }
    for _ in 0..2 {
        watcher.wait_state(SessionState::Ready, Duration::from_secs(3)).await;
    }
    let attic_before = tree.monitor.send(GetSession("attic".into())).await.unwrap().unwrap();

    tree.supervisor
        .send(PanicConnection("kitchen".into()))
        .await
        .unwrap()
        .unwrap();
    let (loss, update, _) = watcher.wait_loss(Duration::from_secs(2)).await;
    assert_eq!(
        (update.session.as_str(), loss.cause),
        ("kitchen", Cause::Internal),
        "{loss:?}"
    );
    assert_eq!(update.state, SessionState::Backoff);
    let (ready, _) = watcher.wait_state(SessionState::Ready, Duration::from_secs(3)).await;
    assert_eq!(ready.session, "kitchen");

    let attic_after = tree.monitor.send(GetSession("attic".into())).await.unwrap().unwrap();
    assert_eq!(attic_after.state, SessionState::Ready);
    assert_eq!(
        attic_after.session_id, attic_before.session_id,
        "the neighbour was disturbed"
    );
}

/// The same through the real binary and its control socket (`panic` is a
/// test-only command of the `fault-injection` feature): the daemon, the
/// other session and the control socket carry on, every time.
#[cfg(feature = "fault-injection")]
#[test]
fn the_daemon_restarts_a_panicked_connection_and_nothing_else_notices() {
    use std::time::Instant;

    use support::process::{config_toml, control, socket_of, Control, Daemon, Scratch};
    use wsvisor::protocol::{Command, EventLine, MetricsText, Pong, Requested, SessionSummary};

    const PANICS: usize = 5;
    const LIMIT: Duration = Duration::from_secs(10);

    let server = Server::start(ServerOptions::default()).unwrap();
    let url = server.url();
    let scratch = Scratch::new("daemon-panic");
    let config = scratch.write(
        "config.toml",
        &config_toml(&scratch, "", &[("kitchen", &url), ("attic", &url)]),
    );
    let log = scratch.0.join("stderr.log");
    let mut daemon = Daemon::run(&config, &log);
    let mut control = control(&socket_of(&scratch));
    let summary = |control: &mut Control, name: &str| control.session(name).expect("session");
    let wait_ready = |control: &mut Control, name: &str, not_id: Option<&str>| -> SessionSummary {
        let deadline = Instant::now() + LIMIT;
        loop {
            let s = summary(control, name);
            if s.state == SessionState::Ready && s.session_id.as_deref() != not_id {
                return s;
            }
            assert!(Instant::now() < deadline, "{name} never ready again: {s:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut kitchen = wait_ready(&mut control, "kitchen", None);
    let attic = wait_ready(&mut control, "attic", None);

    let mut events = support::process::control(&socket_of(&scratch))
        .subscribe(None, false)
        .expect("subscribed");

    for round in 0..PANICS {
        let panic = Command::Panic {
            session: "kitchen".into(),
        };
        let requested: Requested = control.result(&panic).expect("panic");
        assert_eq!(requested.requested, "panic", "{requested:?}");
        // The loss is reported as `internal`, then the session comes back.
        let deadline = Instant::now() + LIMIT;
        let mut lost = false;
        loop {
            let event = events.next_event().unwrap().expect("the event stream ended");
            // Its server's messages (MCP listing its tools) are not a disturbance; a state change is.
            if let EventLine::State(state) = &event {
                assert_ne!(state.session, "attic", "the neighbour was disturbed: {event:?}");
            }
            if let EventLine::State(state) = &event {
                if state.state == SessionState::Backoff {
                    assert_eq!(state.cause, Some(Cause::Internal), "round {round}: {event:?}");
                    lost = true;
                }
                if lost && state.state == SessionState::Ready {
                    assert_ne!(state.session_id, kitchen.session_id);
                    break;
                }
            }
            assert!(Instant::now() < deadline, "round {round}: kitchen never came back");
        }
        kitchen = wait_ready(&mut control, "kitchen", kitchen.session_id.as_deref());
        assert_eq!(
            kitchen.last_close.as_ref().map(|c| c.cause),
            Some(Cause::Internal),
            "{kitchen:?}"
        );
        assert!(daemon.try_wait().unwrap().is_none(), "the daemon died");
    }

    let attic_after = summary(&mut control, "attic");
    assert_eq!(attic_after.state, SessionState::Ready);
    assert_eq!(attic_after.session_id, attic.session_id, "the neighbour reconnected");
    assert_eq!(control.result::<Pong>(&Command::Ping).unwrap().pid, daemon.id());
    let metrics = control.result::<MetricsText>(&Command::Metrics).unwrap().text;
    let internal = format!("wsvisor_session_losses_total{{session=\"kitchen\",cause=\"internal\"}} {PANICS}\n");
    assert!(metrics.contains(&internal), "{metrics}");
    // A new client is served too, not only the ones already connected.
    assert_eq!(
        support::process::control(&socket_of(&scratch))
            .result::<Pong>(&Command::Ping)
            .unwrap()
            .pid,
        daemon.id()
    );

    // The daemon stops cleanly after the panics.
    daemon.stop();
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        said.matches("session=kitchen lost cause=internal").count(),
        PANICS,
        "{said}"
    );
}

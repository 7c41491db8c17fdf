//! A connection actor that panics is a loss like any other: reported as
//! `internal`, restarted by the Supervisor, and nothing else notices.

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
    let tree = wsvisor_actors::start_tree();
    let mut watcher = Watcher::subscribe(&tree).await;
    for name in ["kitchen", "attic"] {
        tree.supervisor
            .send(AddSession(settings(name, &server.url())))
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

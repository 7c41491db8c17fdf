//! Shared by the end-to-end tests: session settings with millisecond
//! timings, a tree started with one session, and a watcher that waits for
//! state events with bounded time.

#![allow(dead_code)]

pub mod as_user;
pub mod ota;
pub mod process;
pub mod tls;

use std::time::{Duration, Instant};

use wsvisor::protocol::{Command, ListenState};
use wsvisor_actors::events::Event;
use wsvisor_actors::loss::LossReport;
use wsvisor_actors::messages::{AddSession, SendOutcome, SendText, Subscribe};
use wsvisor_actors::settings::{
    BufferLimits, Credential, Keep, LivenessSettings, QueueSettings, ReconnectSettings, SessionSettings, TlsSettings,
};
use wsvisor_actors::state::{SessionState, StateUpdate};
use wsvisor_actors::subscription::{SubscriberLimits, Subscription};
use wsvisor_actors::wire::AudioParams;
use wsvisor_actors::{start_tree, Tree};

/// Heartbeat timings of the tests: silence is found within 400 ms.
pub const PING_INTERVAL: Duration = Duration::from_millis(200);
/// See `PING_INTERVAL`.
pub const PING_TIMEOUT: Duration = Duration::from_millis(200);

/// A session against `url` with test timings.
pub fn settings(name: &str, url: &str) -> SessionSettings {
    SessionSettings {
        name: name.into(),
        url: Some(url.into()),
        credential: Some(Credential::Token("test-token".into())),
        ota: None,
        tls: TlsSettings::default(),
        device_id: format!("dev-{name}"),
        client_id: "6f1c0b8e-0000-4000-8000-000000000001".into(),
        protocol_version: 1,
        activation: Default::default(),
        autostart: true,
        audio_params: AudioParams::default(),
        liveness: LivenessSettings {
            ping_interval: PING_INTERVAL,
            ping_timeout: PING_TIMEOUT,
            app_ping_interval: None,
        },
        connect_timeout: Duration::from_secs(2),
        hello_timeout: Duration::from_millis(300),
        keep: Keep::Always,
        queue: QueueSettings {
            limit: 64,
            bytes: 1 << 20,
            ttl: Duration::from_secs(30),
        },
        limits: BufferLimits::default(),
        reconnect: ReconnectSettings {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            multiplier: 2.0,
            jitter: 0.5,
            max_attempts: 5,
            stable_after: Duration::from_secs(10),
            revive_after: None,
        },
        mcp: Default::default(),
    }
}

/// A new tree with `session` added, and a watcher subscribed before it was.
pub async fn start(session: SessionSettings) -> (Tree, Watcher) {
    let tree = start_tree(Default::default());
    let watcher = Watcher::subscribe(&tree).await;
    tree.supervisor.send(AddSession(session.into())).await.unwrap().unwrap();
    (tree, watcher)
}

/// Hands a xiaozhi `listen detect` with `text` to `session` through the
/// Supervisor, built as the control socket's `listen` builds it.
pub async fn send_listen(tree: &Tree, session: &str, text: &str) -> SendOutcome {
    let listen = Command::Listen {
        session: session.into(),
        state: ListenState::Detect,
        mode: None,
        text: Some(text.into()),
    };
    let (session, message) = listen.into_text_message().expect("listen is a text message");
    tree.supervisor
        .send(SendText { session, message })
        .await
        .expect("the supervisor answers")
        .expect("the session takes the message")
}

/// State events of one session, as they arrive.
pub struct Watcher {
    rx: Subscription,
    seen: Vec<StateUpdate>,
}

impl Watcher {
    /// Subscribe to every event of the tree.
    pub async fn subscribe(tree: &Tree) -> Watcher {
        // RUST_LOG=debug shows the tree's own lines next to a failure.
        let _ = env_logger::builder().is_test(true).try_init();
        let rx = tree
            .monitor
            .send(Subscribe {
                sessions: None,
                limits: SubscriberLimits {
                    events: 100_000,
                    bytes: 1 << 30,
                    lag_limit: Duration::from_secs(3600),
                },
                states_only: false,
            })
            .await
            .unwrap();
        Watcher { rx, seen: Vec::new() }
    }

    /// The next state event matching `pred`, with the instant it arrived.
    pub async fn wait_for(&mut self, limit: Duration, pred: impl Fn(&StateUpdate) -> bool) -> (StateUpdate, Instant) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = actix_rt::time::timeout(left, self.rx.recv()).await;
            match next.as_ref().map(|e| e.as_ref().map(|e| &e.event)) {
                Ok(Some(Event::State(update))) => {
                    let update = update.clone();
                    let at = Instant::now();
                    self.seen.push(update.clone());
                    if pred(&update) {
                        return (update, at);
                    }
                }
                Ok(Some(Event::Lagged { skipped })) => panic!("watcher lagged by {skipped} events"),
                Ok(Some(_)) => {}
                Ok(None) => panic!("monitor went away"),
                Err(_) => panic!("no matching state within {limit:?}; seen: {:#?}", self.history()),
            }
        }
    }

    /// Wait for `state`.
    pub async fn wait_state(&mut self, state: SessionState, limit: Duration) -> (StateUpdate, Instant) {
        self.wait_for(limit, |u| u.state == state).await
    }

    /// Wait for the next state event that carries a loss.
    pub async fn wait_loss(&mut self, limit: Duration) -> (LossReport, StateUpdate, Instant) {
        let (update, at) = self.wait_for(limit, |u| u.loss.is_some()).await;
        (update.loss.clone().unwrap(), update, at)
    }

    /// Any event (state or not) within `limit`, else None.
    pub async fn next_event(&mut self, limit: Duration) -> Option<Event> {
        let shared = actix_rt::time::timeout(limit, self.rx.recv()).await.ok().flatten()?;
        Some(shared.event.clone())
    }

    /// Take every event for `span`, noting the states (see `history`).
    pub async fn record_for(&mut self, span: Duration) {
        let deadline = Instant::now() + span;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match actix_rt::time::timeout(left, self.rx.recv()).await {
                Ok(Some(shared)) => {
                    if let Event::State(update) = &shared.event {
                        self.seen.push(update.clone());
                    }
                }
                Ok(None) => panic!("monitor went away"),
                Err(_) => return,
            }
        }
    }

    /// Assert that no state event arrives within `quiet`. A closed event
    /// stream fails: it proves nothing about the states.
    pub async fn assert_no_state_change(&mut self, quiet: Duration) {
        let deadline = Instant::now() + quiet;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = actix_rt::time::timeout(left, self.rx.recv()).await;
            match next.as_ref().map(|e| e.as_ref().map(|e| &e.event)) {
                Ok(Some(Event::State(update))) => panic!("unexpected state change: {update:#?}"),
                Ok(Some(Event::Lagged { skipped })) => panic!("watcher lagged by {skipped} events"),
                Ok(Some(_)) => {}
                // A closed channel proves nothing about the session.
                Ok(None) => panic!("monitor went away while checking for quiet"),
                Err(_) => return,
            }
        }
    }

    /// States seen so far, compactly.
    pub fn history(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|u| match &u.loss {
                Some(loss) => format!(
                    "{} ({} {:?} {:?} {})",
                    u.state, loss.cause, loss.code, loss.status, loss.reason
                ),
                None => u.state.to_string(),
            })
            .collect()
    }
}

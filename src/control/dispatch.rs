//! Carrying out one parsed command against the tree. Commands go to the
//! Supervisor; reads and subscriptions go to the Monitor.

use std::collections::HashSet;
use std::rc::Rc;
use std::time::Instant;
use strum::VariantArray;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use wsvisor_actors::messages::{
    CommandError, ConnectSession, CountStates, DisconnectSession, GetSession, ListSessions, ReconnectSession,
    SendAudio, SendOutcome, SendText, Subscribe,
};
use wsvisor_actors::state::SessionState;
use wsvisor_actors::subscription::{SubscriberLimits, Subscription};
use wsvisor_actors::Tree;

use super::protocol::{Command, ControlError, ErrorCode};
use super::{json, metrics};
use crate::reload::Reloader;

/// What the control server needs from the daemon.
pub struct DaemonHandle {
    /// The actor tree.
    pub tree: Tree,
    /// Config reloads.
    pub reloader: Rc<Reloader>,
    /// When the daemon started.
    pub started: Instant,
    /// What may wait for one subscriber.
    pub subscriber_limits: SubscriberLimits,
}

/// A command's outcome.
pub enum Reply {
    /// The `result` of the response.
    Value(Value),
    /// `subscribe`: answer `{"subscribed": true}`, then stream these events.
    Subscribed {
        /// The subscription.
        events: Subscription,
        /// Include audio payloads.
        audio: bool,
    },
}

/// Carry out `command`.
pub async fn execute(daemon: &DaemonHandle, command: Command) -> Result<Reply, ControlError> {
    let tree = &daemon.tree;
    let value = match command {
        Command::Ping => json!({"version": env!("CARGO_PKG_VERSION"), "pid": std::process::id()}),
        Command::Status => status(daemon).await?,
        Command::Sessions => {
            let sessions = tree.monitor.send(ListSessions).await.map_err(unavailable)?;
            json!({"sessions": sessions.iter().map(json::summary).collect::<Vec<_>>()})
        }
        Command::Session(name) => match tree.monitor.send(GetSession(name.clone())).await.map_err(unavailable)? {
            Some(summary) => json::summary_with_counters(&summary),
            None => return Err(not_found(&name)),
        },
        Command::Connect(name) => {
            tree.supervisor
                .send(ConnectSession(name.clone()))
                .await
                .map_err(unavailable)?
                .map_err(refused)?;
            json!({"session": name, "requested": "connect"})
        }
        Command::Disconnect(name) => {
            tree.supervisor
                .send(DisconnectSession(name.clone()))
                .await
                .map_err(unavailable)?
                .map_err(refused)?;
            json!({"session": name, "requested": "disconnect"})
        }
        Command::Reconnect(name) => {
            tree.supervisor
                .send(ReconnectSession(name.clone()))
                .await
                .map_err(unavailable)?
                .map_err(refused)?;
            json!({"session": name, "requested": "reconnect"})
        }
        Command::Send { session, message } => send(tree, session, message).await?,
        Command::Audio { session, data } => {
            let audio = SendAudio {
                session,
                data: Bytes::from(data),
            };
            tree.supervisor
                .send(audio)
                .await
                .map_err(unavailable)?
                .map_err(refused)?;
            json!({"sent": true})
        }
        Command::Subscribe { sessions, audio } => {
            return subscribe(tree, sessions, audio, daemon.subscriber_limits).await
        }
        Command::Reload => {
            let summary = daemon
                .reloader
                .reload()
                .await
                .map_err(|err| ControlError::new(ErrorCode::BadConfig, err.to_string()))?;
            json!({
                "added": summary.added,
                "removed": summary.removed,
                "changed": summary.changed,
                "unchanged": summary.unchanged,
            })
        }
        #[cfg(feature = "fault-injection")]
        Command::Wedge(name) => {
            let wedge = wsvisor_actors::messages::WedgeConnection(name.clone());
            tree.supervisor
                .send(wedge)
                .await
                .map_err(unavailable)?
                .map_err(refused)?;
            json!({"session": name, "requested": "wedge"})
        }
        #[cfg(feature = "fault-injection")]
        Command::Panic(name) => {
            let panic = wsvisor_actors::messages::PanicConnection(name.clone());
            tree.supervisor
                .send(panic)
                .await
                .map_err(unavailable)?
                .map_err(refused)?;
            json!({"session": name, "requested": "panic"})
        }
        Command::Metrics => {
            let sessions = tree.monitor.send(ListSessions).await.map_err(unavailable)?;
            json!({"text": metrics::render(&sessions, daemon.started.elapsed())})
        }
    };
    Ok(Reply::Value(value))
}

async fn status(daemon: &DaemonHandle) -> Result<Value, ControlError> {
    let counts = daemon.tree.monitor.send(CountStates).await.map_err(unavailable)?;
    let mut by_state = Map::new();
    by_state.insert("total".into(), json!(counts.total()));
    for &state in SessionState::VARIANTS {
        by_state.insert(state.as_str().into(), json!(counts.of(state)));
    }
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_s": daemon.started.elapsed().as_secs(),
        "config": daemon.reloader.path().display().to_string(),
        "sessions": by_state,
    }))
}

async fn send(tree: &Tree, session: String, message: Map<String, Value>) -> Result<Value, ControlError> {
    let outcome = tree
        .supervisor
        .send(SendText { session, message })
        .await
        .map_err(unavailable)?
        .map_err(refused)?;
    Ok(match outcome {
        SendOutcome::Sent => json!({"sent": true}),
        SendOutcome::Queued { position } => json!({"queued": true, "position": position}),
    })
}

async fn subscribe(
    tree: &Tree,
    sessions: Option<Vec<String>>,
    audio: bool,
    limits: SubscriberLimits,
) -> Result<Reply, ControlError> {
    if let Some(names) = &sessions {
        let known = tree.monitor.send(ListSessions).await.map_err(unavailable)?;
        if let Some(unknown) = names.iter().find(|n| !known.iter().any(|s| &s.name == *n)) {
            return Err(not_found(unknown));
        }
    }
    let sessions = sessions.map(|names| names.into_iter().collect::<HashSet<_>>());
    let events = tree
        .monitor
        .send(Subscribe { sessions, limits })
        .await
        .map_err(unavailable)?;
    Ok(Reply::Subscribed { events, audio })
}

fn not_found(name: &str) -> ControlError {
    ControlError::new(ErrorCode::NotFound, format!("no session named '{name}'"))
}

fn refused(err: CommandError) -> ControlError {
    let code = match &err {
        CommandError::NotFound(_) => ErrorCode::NotFound,
        CommandError::NotReady { .. } | CommandError::Stopped(_) => ErrorCode::NotReady,
        CommandError::QueueFull { .. } | CommandError::Stalled { .. } => ErrorCode::QueueFull,
        CommandError::AlreadyExists(_) => ErrorCode::Internal,
    };
    ControlError::new(code, err.to_string())
}

fn unavailable(err: actix::MailboxError) -> ControlError {
    ControlError::new(ErrorCode::Internal, format!("the actor tree did not answer: {err}"))
}

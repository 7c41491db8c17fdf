//! Carrying out one parsed command against the tree. Commands go to the
//! Supervisor; reads and subscriptions go to the Monitor.

use std::collections::HashSet;
use std::rc::Rc;
use std::time::Instant;
use strum::VariantArray;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};
use wsvisor_actors::messages::{
    CommandError, ConnectSession, CountStates, DisconnectSession, GetSession, ListSessions, ReconnectSession,
    SendAudio, SendOutcome, SendText, Subscribe,
};
use wsvisor_actors::state::SessionState;
use wsvisor_actors::subscription::{SubscriberLimits, Subscription};
use wsvisor_actors::Tree;

use super::{metrics, tool_metrics, tools};
use crate::protocol::{
    ActivationStatus, Command, ControlError, Delivery, ErrorCode, Extra, IdentityInfo, MetricsText, Pong, Requested,
    SessionList, SessionSummary, StateCounts, Status,
};
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
    /// The `result` of the response (one of the result types of
    /// [`crate::protocol`], as JSON).
    Value(Value),
    /// `subscribe`: answer `{"subscribed": true}`, then stream these events.
    Subscribed {
        /// The subscription.
        events: Subscription,
        /// Include audio payloads.
        audio: bool,
    },
    /// `offer_tools`: answer `result`, then carry the calls of `link`'s
    /// tools to this connection until it closes.
    Offered {
        /// The connection's place in the broker.
        link: tools::ProviderLink,
        /// The `result` of the response.
        result: Value,
    },
}

/// Carry out `command`.
pub async fn execute(daemon: &DaemonHandle, command: Command) -> Result<Reply, ControlError> {
    let tree = &daemon.tree;
    let value = match command {
        Command::Ping => result(Pong {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            extra: Extra::new(),
        }),
        Command::Status => result(status(daemon).await?),
        Command::Sessions => {
            let sessions = tree.monitor.send(ListSessions).await.map_err(unavailable)?;
            result(SessionList {
                sessions: sessions.iter().map(SessionSummary::from).collect(),
            })
        }
        Command::Session { session } => {
            match tree
                .monitor
                .send(GetSession(session.clone()))
                .await
                .map_err(unavailable)?
            {
                Some(summary) => result(SessionSummary::with_counters(&summary)),
                None => return Err(not_found(&session)),
            }
        }
        Command::Connect { session } => requested(
            tree.supervisor.send(ConnectSession(session.clone())).await,
            session,
            "connect",
        )?,
        Command::Disconnect { session } => requested(
            tree.supervisor.send(DisconnectSession(session.clone())).await,
            session,
            "disconnect",
        )?,
        Command::Reconnect { session } => requested(
            tree.supervisor.send(ReconnectSession(session.clone())).await,
            session,
            "reconnect",
        )?,
        command @ (Command::Send { .. } | Command::Listen { .. } | Command::Abort { .. }) => {
            let Some((session, message)) = command.into_text_message() else {
                unreachable!("send, listen and abort carry a text message")
            };
            result(send(tree, session, message).await?)
        }
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
            result(Delivery::sent())
        }
        Command::Subscribe { sessions, audio } => {
            return subscribe(tree, sessions, audio, daemon.subscriber_limits).await
        }
        Command::Identity { session } => result(identity(daemon, session).await?),
        Command::Reload => {
            let summary = daemon
                .reloader
                .reload()
                .await
                .map_err(|err| ControlError::new(ErrorCode::BadConfig, err.to_string()))?;
            result(summary)
        }
        #[cfg(feature = "fault-injection")]
        Command::Wedge { session } => {
            let wedge = wsvisor_actors::messages::WedgeConnection(session.clone());
            requested(tree.supervisor.send(wedge).await, session, "wedge")?
        }
        #[cfg(feature = "fault-injection")]
        Command::Panic { session } => {
            let panic = wsvisor_actors::messages::PanicConnection(session.clone());
            requested(tree.supervisor.send(panic).await, session, "panic")?
        }
        Command::Tools { session } => result(tools::list(tree, session).await?),
        Command::OfferTools { sessions, tools } => {
            let (link, offered) = tools::offer(tree, sessions, tools).await?;
            return Ok(Reply::Offered {
                link,
                result: result(offered),
            });
        }
        // A connection that offers tools answers its calls in `peer`.
        Command::ToolResult { .. } => return Err(tools::not_offering()),
        Command::Metrics => {
            let sessions = tree.monitor.send(ListSessions).await.map_err(unavailable)?;
            let mut text = metrics::render(&sessions, daemon.started.elapsed());
            text.push_str(&tool_metrics::render(&tree.mcp.stats.snapshot()));
            result(MetricsText { text })
        }
    };
    Ok(Reply::Value(value))
}

/// A result type as the `result` of a response.
fn result(value: impl Serialize) -> Value {
    // The result types are plain structs of strings and numbers.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The answer to a command that only asks the Supervisor for something.
fn requested(
    answer: Result<Result<(), CommandError>, actix::MailboxError>,
    session: String,
    what: &str,
) -> Result<Value, ControlError> {
    answer.map_err(unavailable)?.map_err(refused)?;
    Ok(result(Requested {
        session,
        requested: what.to_owned(),
    }))
}

async fn status(daemon: &DaemonHandle) -> Result<Status, ControlError> {
    let counts = daemon.tree.monitor.send(CountStates).await.map_err(unavailable)?;
    let by_state = SessionState::VARIANTS
        .iter()
        .map(|&state| (state.to_string(), counts.of(state) as u64))
        .collect();
    Ok(Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        uptime_s: daemon.started.elapsed().as_secs(),
        config: daemon.reloader.path().display().to_string(),
        sessions: StateCounts {
            total: counts.total() as u64,
            by_state,
        },
        extra: Extra::new(),
    })
}

/// `identity`: from the running settings and the Monitor's view of the
/// OTA endpoint's answers; never the key.
async fn identity(daemon: &DaemonHandle, session: String) -> Result<IdentityInfo, ControlError> {
    let Some((settings, need)) = daemon.reloader.session(&session).await else {
        return Err(not_found(&session));
    };
    let summary = daemon
        .tree
        .monitor
        .send(GetSession(session.clone()))
        .await
        .map_err(unavailable)?;
    let activation = match (&settings.ota, &summary) {
        (None, _) => ActivationStatus::NoOtaUrl,
        (_, Some(s)) if s.state == SessionState::Activating => ActivationStatus::Activating,
        (_, Some(s)) => match &s.ota {
            Some(offered) if offered.activation => ActivationStatus::Activating,
            Some(_) => ActivationStatus::Bound,
            None => ActivationStatus::Unknown,
        },
        (_, None) => ActivationStatus::Unknown,
    };
    let configured = match &need {
        None => vec!["device_id".to_owned(), "client_id".to_owned()],
        Some(need) => [
            ("device_id", need.device_id_configured),
            ("client_id", need.client_id_configured),
        ]
        .into_iter()
        .filter(|(_, configured)| *configured)
        .map(|(id, _)| id.to_owned())
        .collect(),
    };
    let key = settings.activation.key.as_ref();
    Ok(IdentityInfo {
        session,
        device_id: settings.device_id.clone(),
        client_id: settings.client_id.clone(),
        serial_number: key.map(|k| k.serial_number.clone()),
        activation_version: if key.is_some() { 2 } else { 1 },
        file: need.and_then(|n| n.file).map(|f| f.display().to_string()),
        configured,
        activation,
        activation_code: summary.and_then(|s| s.activation_code),
        extra: Extra::new(),
    })
}

async fn send(tree: &Tree, session: String, message: Map<String, Value>) -> Result<Delivery, ControlError> {
    let outcome = tree
        .supervisor
        .send(SendText { session, message })
        .await
        .map_err(unavailable)?
        .map_err(refused)?;
    Ok(match outcome {
        SendOutcome::Sent => Delivery::sent(),
        SendOutcome::Queued { position } => Delivery::queued(position),
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
        .send(Subscribe {
            sessions,
            limits,
            states_only: false,
        })
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

//! `wsvisor run`: start the tree with the config's sessions, then live
//! until a signal. SIGTERM/SIGINT close every session with 1000 and exit 0
//! within the shutdown grace; SIGHUP reloads the config; with
//! `on_give_up = "exit"`, the daemon exits 75 once every session failed;
//! after a burst of connection attempts (start-up, a mass loss) the heap
//! is trimmed (`heap`).

use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_rt::signal::unix::{signal, Signal, SignalKind};
use std::sync::Arc;

use wsvisor_actors::events::{Event, SharedEvent};
use wsvisor_actors::messages::{AddSession, CountStates, Shutdown, Subscribe};
use wsvisor_actors::state::SessionState;
use wsvisor_actors::subscription::{SubscriberLimits, Subscription};
use wsvisor_actors::supervisor::SupervisorOptions;
use wsvisor_actors::{start_tree, Tree};

use crate::config::{Config, OnGiveUp};
use crate::control_server::{self, ControlOptions, DaemonHandle};
use crate::heap::{self, BurstTrim};
use crate::reload::Reloader;
use crate::{exit, metrics_http, systemd};

/// Time allowed for every session to send its Close 1000 and end; systemd
/// and the contract give us 2 s in all, this leaves room for the rest.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Run the daemon until a signal; the process exit code.
pub fn run(config: Config) -> i32 {
    actix_rt::System::new().block_on(serve(config))
}

struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }
}

async fn serve(config: Config) -> i32 {
    // Handlers go in before any session starts, so no signal is missed.
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(err) => {
            log::error!("cannot install signal handlers: {err}");
            return exit::FAILURE;
        }
    };
    let tree = start_tree(SupervisorOptions {
        exit_when_all_fail: config.daemon.on_give_up == OnGiveUp::Exit,
    });
    let daemon = Rc::new(DaemonHandle {
        tree: tree.clone(),
        reloader: Rc::new(Reloader::new(tree.clone(), config.clone())),
        started: Instant::now(),
        subscriber_limits: SubscriberLimits {
            bytes: config.daemon.subscriber_buffer,
            ..SubscriberLimits::default()
        },
    });
    // The socket comes first: if another daemon holds it, start nothing.
    let _socket = match control_server::start(&config.daemon, daemon.clone(), ControlOptions::default()).await {
        Ok(socket) => socket,
        Err(err) => {
            log::error!("{err}");
            // A directory others can write stays so at every restart.
            return if err.is_config_problem() {
                exit::USAGE
            } else {
                exit::FAILURE
            };
        }
    };
    let _metrics = match config.daemon.metrics_listen {
        Some(addr) => match metrics_http::start(addr, tree.clone(), daemon.started, Default::default()) {
            Ok(endpoint) => Some(endpoint),
            Err(err) => {
                log::error!("metrics_listen {addr}: {err}");
                return exit::FAILURE;
            }
        },
        None => None,
    };
    let mut events = watch_states(&tree).await;
    for settings in &config.sessions {
        let _ = tree.supervisor.send(AddSession(settings.clone())).await;
    }
    log::info!(
        "started version={} config={} sessions={}",
        env!("CARGO_PKG_VERSION"),
        config.path.display(),
        config.sessions.len()
    );
    // The reloader keeps the running config, whose sessions' settings the
    // Supervisor shares: nothing here needs them once every session is added.
    let exit_on_give_up = config.daemon.on_give_up == OnGiveUp::Exit;
    drop(config);
    let mut burst = BurstTrim::default();
    let mut status = systemd::session_status(&tree).await;
    systemd::ready(&status);
    if let Some(period) = systemd::watchdog_period() {
        systemd::spawn_watchdog(tree.clone(), period);
    }
    loop {
        tokio::select! {
            _ = signals.terminate.recv() => break stop(&tree, "SIGTERM").await,
            _ = signals.interrupt.recv() => break stop(&tree, "SIGINT").await,
            _ = signals.hangup.recv() => {
                let _ = daemon.reloader.reload().await;
            }
            event = next_event(&mut events) => {
                let Some(event) = event else {
                    // Never seen, but a stream that ended would end every
                    // STATUS= update and the give-up check: watch anew.
                    log::warn!("the daemon's own view of session states ended; watching again");
                    events = watch_states(&tree).await;
                    continue;
                };
                let mut changed = is_state_change(&event.event);
                count_attempt(&mut burst, &event.event);
                // Take a burst (thousands of sessions connecting at start)
                // as one change: each recount below walks every session, and
                // one per event made start-up quadratic (4 CPU-s after
                // 10,000 sessions were already ready).
                if let Some(rx) = events.as_mut() {
                    while let Some(more) = rx.try_recv() {
                        changed |= is_state_change(&more.event);
                        count_attempt(&mut burst, &more.event);
                    }
                }
                if changed && burst.pending() {
                    let counts = tree.monitor.send(CountStates).await.unwrap_or_default();
                    let in_flight = counts.of(SessionState::Connecting) + counts.of(SessionState::Handshaking);
                    if burst.settled(in_flight) {
                        heap::trim();
                    }
                }
                if changed {
                    let now = systemd::session_status(&tree).await;
                    if now != status {
                        systemd::status(&now);
                        status = now;
                    }
                }
                if exit_on_give_up && changed && all_failed(&tree).await {
                    log::error!("every session gave up and on_give_up = \"exit\"; exiting {}", exit::ALL_GAVE_UP);
                    stop(&tree, "on_give_up").await;
                    break exit::ALL_GAVE_UP;
                }
            }
        }
    }
}

/// The daemon's own subscription: state changes only, so that no server
/// message can fill it, and patient enough never to be cut off.
async fn watch_states(tree: &Tree) -> Option<Subscription> {
    let subscribe = Subscribe {
        sessions: None,
        limits: SubscriberLimits {
            events: 1 << 16,
            bytes: 64 << 20,
            lag_limit: Duration::from_secs(24 * 3600),
        },
        states_only: true,
    };
    tree.monitor.send(subscribe).await.ok()
}

async fn next_event(events: &mut Option<Subscription>) -> Option<Arc<SharedEvent>> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A new connection attempt, counted towards the burst that a heap trim
/// follows.
fn count_attempt(burst: &mut BurstTrim, event: &Event) {
    if matches!(event, Event::State(update) if update.state == SessionState::Connecting) {
        burst.attempt();
    }
}

/// A state change, or missed events that may have held one.
fn is_state_change(event: &Event) -> bool {
    matches!(event, Event::State(_) | Event::Lagged { .. })
}

async fn all_failed(tree: &Tree) -> bool {
    let counts = tree.monitor.send(CountStates).await.unwrap_or_default();
    counts.total() > 0 && counts.of(SessionState::Failed) == counts.total()
}

async fn stop(tree: &Tree, why: &str) -> i32 {
    log::info!("stopping signal={why}");
    systemd::stopping();
    match actix_rt::time::timeout(SHUTDOWN_GRACE, tree.supervisor.send(Shutdown)).await {
        Ok(_) => log::info!("stopped"),
        Err(_) => log::warn!(
            "stopped with sessions still closing after {}ms",
            SHUTDOWN_GRACE.as_millis()
        ),
    }
    exit::OK
}

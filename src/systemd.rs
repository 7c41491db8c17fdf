//! systemd glue (sd_notify(3)): READY, STATUS, RELOADING, STOPPING and the
//! watchdog. Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.
//!
//! The watchdog is patted only after every actor of the tree answered a
//! probe in time, so a wedged actor system is killed and restarted by
//! systemd rather than patted for ever by a timer that still runs.

use std::time::Duration;

use sd_notify::NotifyState;
use wsvisor_actors::messages::{CountStates, ProbeTree};
use wsvisor_actors::state::SessionState;
use wsvisor_actors::Tree;

fn notify(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        log::warn!("cannot notify systemd: {err}");
    }
}

/// Startup done (or a reload finished).
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A new one-line status for `systemctl status`.
pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// A reload began; `READY=1` follows when it is done.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// Shutdown began.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// `3/3 sessions ready`, from the Monitor.
pub async fn session_status(tree: &Tree) -> String {
    let counts = tree.monitor.send(CountStates).await.unwrap_or_default();
    format!("{}/{} sessions ready", counts.of(SessionState::Ready), counts.total())
}

/// Pat the watchdog every half `period`, each time only after the whole
/// tree answered a probe within a quarter `period`.
pub fn spawn_watchdog(tree: Tree, period: Duration) {
    actix_rt::spawn(async move {
        let mut patted = true;
        loop {
            actix_rt::time::sleep(period / 2).await;
            match tree.supervisor.send(ProbeTree { within: period / 4 }).await {
                Ok(Ok(_)) => {
                    notify(&[NotifyState::Watchdog]);
                    if !patted {
                        log::info!("watchdog: every actor answers again");
                    }
                    patted = true;
                }
                Ok(Err(who)) if patted => {
                    log::error!(
                        "watchdog: the {who} did not answer within {:?}; not patting",
                        period / 4
                    );
                    patted = false;
                }
                Err(_) if patted => {
                    log::error!("watchdog: the supervisor did not answer; not patting");
                    patted = false;
                }
                _ => {}
            }
        }
    });
}

/// The watchdog period systemd asked for, if any.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

//! systemd glue (sd_notify(3)): READY, STATUS, RELOADING, STOPPING and the
//! watchdog. Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.
//!
//! The watchdog is patted only after every actor of the tree answered a
//! probe in time, so a wedged actor system is killed and restarted by
//! systemd rather than patted for ever by a timer that still runs.

use std::time::Duration;

use sd_notify::NotifyState;
use wsvisor_actors::logsafe;
use wsvisor_actors::messages::{CountStates, ListSessions, ProbeTree};
use wsvisor_actors::state::{SessionState, SessionSummary};
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

/// Sessions waiting on activation named in `STATUS=`; more are counted.
const STATUS_CODES_SHOWN: usize = 3;

/// `3/3 sessions ready`, from the Monitor; with the codes of sessions
/// waiting on activation: `2/3 sessions ready; kitchen: enter code 123456
/// in the server's console`, so `systemctl status` says what to do.
pub async fn session_status(tree: &Tree) -> String {
    let counts = tree.monitor.send(CountStates).await.unwrap_or_default();
    let mut status = format!("{}/{} sessions ready", counts.of(SessionState::Ready), counts.total());
    // The summaries are read only when someone waits on activation.
    if counts.of(SessionState::Activating) > 0 {
        let sessions = tree.monitor.send(ListSessions).await.unwrap_or_default();
        status.push_str(&activation_status(&sessions));
    }
    status
}

/// `; kitchen: enter code 123456 in the server's console`, one per
/// activating session (the first few). The code is the server's choice:
/// escaped, so it cannot end the `STATUS=` line or forge another.
fn activation_status(sessions: &[SessionSummary]) -> String {
    let waiting: Vec<String> = sessions
        .iter()
        .filter(|s| s.state == SessionState::Activating)
        .filter_map(|s| {
            let code = s.activation_code.as_deref()?;
            Some(format!(
                "{}: enter code {} in the server's console",
                s.name,
                logsafe::value(code)
            ))
        })
        .collect();
    let mut text: String = waiting
        .iter()
        .take(STATUS_CODES_SHOWN)
        .map(|line| format!("; {line}"))
        .collect();
    if waiting.len() > STATUS_CODES_SHOWN {
        text.push_str(&format!("; {} more activating", waiting.len() - STATUS_CODES_SHOWN));
    }
    text
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
                Ok(Err(unanswered)) if patted => {
                    log::error!("watchdog: {unanswered} within {:?}; not patting", period / 4);
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

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn session(name: &str, state: SessionState, code: Option<&str>) -> SessionSummary {
        SessionSummary {
            name: name.into(),
            state,
            session_id: None,
            url: None,
            attempt: 0,
            max_attempts: 10,
            since: SystemTime::now(),
            next_retry_in: None,
            last_close: None,
            rtt: None,
            queued: 0,
            activation_code: code.map(str::to_owned),
            ota: None,
            counters: Default::default(),
        }
    }

    #[test]
    fn activating_sessions_show_their_codes_safely() {
        let sessions = [
            session("attic", SessionState::Ready, None),
            session("kitchen", SessionState::Activating, Some("123456")),
            session("porch", SessionState::Activating, Some("1\nREADY=1")),
        ];
        assert_eq!(
            activation_status(&sessions),
            "; kitchen: enter code 123456 in the server's console; porch: enter code \"1\\nREADY=1\" in the server's console"
        );
        let many: Vec<_> = (0..5)
            .map(|i| session(&format!("s{i}"), SessionState::Activating, Some("1")))
            .collect();
        let text = activation_status(&many);
        assert!(
            text.ends_with("; s2: enter code 1 in the server's console; 2 more activating"),
            "{text}"
        );
        assert_eq!(activation_status(&sessions[..1]), "");
    }
}

//! The life of one session as the Supervisor keeps it: each state holds
//! exactly the data that only it has (the live connection, the retry
//! timer, the activation code, the next probe), the published
//! `SessionState` is derived from it, and which state may follow which is
//! one table, [`allowed`], that every change is checked against.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::connection::Connection;
use crate::settings::SessionSettings;
use crate::state::SessionState;

/// What the Supervisor does once a live connection has ended.
pub enum AfterEnd {
    /// Ask the policy (the connection was lost).
    Decide,
    /// Stay `stopped` (disconnect, shutdown).
    Stop,
    /// Connect again at once with a fresh attempt count.
    Restart,
    /// Forget the session.
    Remove,
    /// Take these settings and connect again (a reload, or a session
    /// removed and added back while its old connection was closing).
    Replace(Arc<SessionSettings>),
}

/// How far a live connection got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LivePhase {
    /// TCP, TLS, upgrade.
    Connecting,
    /// Upgraded, hello sent.
    Handshaking,
    /// The server hello arrived.
    Ready {
        /// The server's session id.
        session_id: Option<String>,
    },
}

/// Why this connection was started, which shapes what its end means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// An ordinary attempt of a burst.
    Attempt,
    /// A single probe of a `failed` session.
    Probe,
    /// A retry with a token fresh from the OTA endpoint after a refusal.
    TokenRefresh,
}

/// A session's state, with what only that state has.
pub enum Run {
    /// Down on purpose; `wakes_on_send` after a clean close with
    /// `keep = "on_demand"`: the next message sent starts it.
    Stopped { wakes_on_send: bool },
    /// A connection exists.
    Live {
        /// The Connection actor.
        conn: Addr<Connection>,
        /// How far it got.
        phase: LivePhase,
        /// Number of this retry in its burst (0: the first try).
        attempt: u32,
        /// Why it was started.
        purpose: Purpose,
        /// What follows its end.
        then: AfterEnd,
    },
    /// The connection ended and the policy is deciding what follows:
    /// never published, never mistaken for `stopped`.
    Deciding,
    /// Waiting to retry.
    Backoff {
        /// Fires the retry.
        timer: SpawnHandle,
        /// Number of the coming retry in its burst.
        attempt: u32,
        /// The wait.
        after: Duration,
        /// The retry asks the OTA endpoint again first.
        refresh: bool,
    },
    /// The OTA endpoint asks for activation: waiting on a person.
    Activating {
        /// Fires the next question to the endpoint, or (v2) runs the round
        /// of confirmations to `/activate`.
        timer: SpawnHandle,
        /// The code to enter in the server's console.
        code: String,
        /// Until the next question; `None` while confirming (v2).
        after: Option<Duration>,
    },
    /// Gave up after a burst (or an auth refusal); probes with one attempt now and then.
    Failed {
        /// The next probe and when, unless probing is off.
        probe: Option<(SpawnHandle, Duration)>,
        /// Consecutive failed attempts of the burst.
        attempts: u32,
    },
}

/// The kind of a `Run`, without its data: what the transition table speaks of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Run::Stopped`.
    Stopped,
    /// `Run::Live` before the upgrade.
    Connecting,
    /// `Run::Live` waiting for the hello.
    Handshaking,
    /// `Run::Live` after the hello.
    Ready,
    /// `Run::Deciding`.
    Deciding,
    /// `Run::Backoff`.
    Backoff,
    /// `Run::Activating`.
    Activating,
    /// `Run::Failed`.
    Failed,
}

impl Run {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Run::Stopped { .. } => Kind::Stopped,
            Run::Live { phase, .. } => match phase {
                LivePhase::Connecting => Kind::Connecting,
                LivePhase::Handshaking => Kind::Handshaking,
                LivePhase::Ready { .. } => Kind::Ready,
            },
            Run::Deciding => Kind::Deciding,
            Run::Backoff { .. } => Kind::Backoff,
            Run::Activating { .. } => Kind::Activating,
            Run::Failed { .. } => Kind::Failed,
        }
    }

    /// The timer this state owns, to cancel when it is left.
    pub fn take_timer(&mut self) -> Option<SpawnHandle> {
        match self {
            Run::Backoff { timer, .. } | Run::Activating { timer, .. } => Some(*timer),
            Run::Failed { probe, .. } => probe.take().map(|(timer, _)| timer),
            Run::Stopped { .. } | Run::Live { .. } | Run::Deciding => None,
        }
    }

    /// The live connection, if any.
    pub fn connection(&self) -> Option<&Addr<Connection>> {
        match self {
            Run::Live { conn, .. } => Some(conn),
            _ => None,
        }
    }

    /// The attempt count shown with this state.
    pub fn attempt(&self) -> u32 {
        match self {
            Run::Live { attempt, .. } | Run::Backoff { attempt, .. } => *attempt,
            Run::Failed { attempts, .. } => *attempts,
            Run::Stopped { .. } | Run::Deciding | Run::Activating { .. } => 0,
        }
    }

    /// Until the next attempt, when one is scheduled.
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            Run::Backoff { after, .. } => Some(*after),
            Run::Activating { after, .. } => *after,
            Run::Failed { probe, .. } => probe.as_ref().map(|(_, after)| *after),
            Run::Stopped { .. } | Run::Live { .. } | Run::Deciding => None,
        }
    }

    /// The server's session id while ready.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Run::Live {
                phase: LivePhase::Ready { session_id },
                ..
            } => session_id.as_deref(),
            _ => None,
        }
    }

    /// The activation code while activating.
    pub fn activation_code(&self) -> Option<&str> {
        match self {
            Run::Activating { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Text sent now is written at once.
    pub fn is_ready(&self) -> bool {
        self.kind() == Kind::Ready
    }

    /// Text sent now is refused: the session is down on purpose.
    pub fn refuses_text(&self) -> bool {
        matches!(self, Run::Stopped { wakes_on_send: false })
    }
}

impl Kind {
    /// The state operators see; `Deciding` is an instant inside the
    /// Supervisor and is never shown.
    pub fn public(self) -> Option<SessionState> {
        Some(match self {
            Kind::Stopped => SessionState::Stopped,
            Kind::Connecting => SessionState::Connecting,
            Kind::Handshaking => SessionState::Handshaking,
            Kind::Ready => SessionState::Ready,
            Kind::Backoff => SessionState::Backoff,
            Kind::Activating => SessionState::Activating,
            Kind::Failed => SessionState::Failed,
            Kind::Deciding => return None,
        })
    }
}

/// Whether a session may go from `from` to `to`.
///
/// A connection moves forward through its phases and its end is always
/// `Deciding`, settled by the policy or by the command that closed it
/// (stop, restart, replace). A decision leads to a wait, a park, a stop or
/// a new attempt; waits and parks end in an attempt or a stop. A round of
/// activation confirmations that the server refused ends in `Deciding`
/// too, like a connection. Nothing else.
pub fn allowed(from: Kind, to: Kind) -> bool {
    use Kind::*;
    let live = |k: Kind| matches!(k, Connecting | Handshaking | Ready);
    match (from, to) {
        (Connecting, Handshaking) | (Handshaking, Ready) => true,
        (f, Deciding) if live(f) || f == Activating => true,
        (Deciding, Backoff | Activating | Failed | Stopped | Connecting) => true,
        (Stopped | Backoff | Activating | Failed, Connecting | Stopped) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Kind; 8] = [
        Kind::Stopped,
        Kind::Connecting,
        Kind::Handshaking,
        Kind::Ready,
        Kind::Deciding,
        Kind::Backoff,
        Kind::Activating,
        Kind::Failed,
    ];

    fn successors(from: Kind) -> Vec<Kind> {
        ALL.into_iter().filter(|to| allowed(from, *to)).collect()
    }

    #[test]
    fn the_transition_table() {
        use Kind::*;
        assert_eq!(successors(Stopped), [Stopped, Connecting]);
        assert_eq!(successors(Connecting), [Handshaking, Deciding]);
        assert_eq!(successors(Handshaking), [Ready, Deciding]);
        assert_eq!(successors(Ready), [Deciding]);
        assert_eq!(successors(Deciding), [Stopped, Connecting, Backoff, Activating, Failed]);
        assert_eq!(successors(Backoff), [Stopped, Connecting]);
        assert_eq!(successors(Activating), [Stopped, Connecting, Deciding]);
        assert_eq!(successors(Failed), [Stopped, Connecting]);
    }

    #[test]
    fn only_a_connection_reaches_ready_and_only_a_decision_waits_or_parks() {
        for from in ALL {
            assert_eq!(
                allowed(from, Kind::Ready),
                from == Kind::Handshaking,
                "{from:?} -> Ready"
            );
            for wait in [Kind::Backoff, Kind::Activating, Kind::Failed] {
                assert_eq!(allowed(from, wait), from == Kind::Deciding, "{from:?} -> {wait:?}");
            }
        }
    }

    /// An address no actor answers: enough for a `Run::Live` to hold.
    fn connection() -> Addr<Connection> {
        let (tx, _rx) = actix::dev::channel::channel(1);
        Addr::new(tx)
    }

    fn live(phase: LivePhase) -> Run {
        Run::Live {
            conn: connection(),
            phase,
            attempt: 3,
            purpose: Purpose::Attempt,
            then: AfterEnd::Decide,
        }
    }

    #[test]
    fn each_state_shows_what_only_it_has() {
        let timer = SpawnHandle::default().next();
        let second = Duration::from_secs(1);
        let ready = live(LivePhase::Ready {
            session_id: Some("s-1".into()),
        });
        assert_eq!(ready.kind(), Kind::Ready);
        assert!(ready.is_ready() && !ready.refuses_text());
        assert_eq!(
            (ready.session_id(), ready.attempt(), ready.retry_in()),
            (Some("s-1"), 3, None)
        );
        assert!(ready.connection().is_some());
        let handshaking = live(LivePhase::Handshaking);
        assert_eq!(handshaking.kind(), Kind::Handshaking);
        assert!(!handshaking.is_ready() && handshaking.session_id().is_none());
        assert_eq!(live(LivePhase::Connecting).kind(), Kind::Connecting);

        let mut backoff = Run::Backoff {
            timer,
            attempt: 2,
            after: second,
            refresh: false,
        };
        assert_eq!((backoff.attempt(), backoff.retry_in()), (2, Some(second)));
        assert!(backoff.connection().is_none() && !backoff.is_ready() && !backoff.refuses_text());
        assert_eq!(backoff.take_timer(), Some(timer));

        let mut activating = Run::Activating {
            timer,
            code: "123456".into(),
            after: None,
        };
        assert_eq!(activating.activation_code(), Some("123456"));
        assert_eq!((activating.attempt(), activating.retry_in()), (0, None));
        assert_eq!(activating.take_timer(), Some(timer));
        assert!(ready.activation_code().is_none());

        let mut failed = Run::Failed {
            probe: Some((timer, second)),
            attempts: 10,
        };
        assert_eq!((failed.attempt(), failed.retry_in()), (10, Some(second)));
        assert_eq!(failed.take_timer(), Some(timer));
        assert_eq!(
            (failed.take_timer(), failed.retry_in()),
            (None, None),
            "the probe was taken"
        );

        let mut stopped = Run::Stopped { wakes_on_send: false };
        assert!(stopped.refuses_text() && stopped.take_timer().is_none());
        assert!(
            !Run::Stopped { wakes_on_send: true }.refuses_text(),
            "on_demand wakes on a send"
        );
        assert_eq!(stopped.attempt(), 0);
        assert_eq!(Run::Deciding.kind(), Kind::Deciding);
    }

    #[test]
    fn every_state_but_stopped_is_shown_and_deciding_never_is() {
        assert_eq!(Kind::Deciding.public(), None);
        let shown: Vec<_> = ALL.into_iter().filter_map(Kind::public).collect();
        assert_eq!(shown.len(), SessionState::VARIANTS.len());
        use strum::VariantArray;
        for state in SessionState::VARIANTS {
            assert!(shown.contains(state), "{state} has a kind");
        }
    }
}

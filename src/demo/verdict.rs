//! The demo's exit status, decided from what happened: exit 1 when the run
//! broke off, when a fault was not repaired (unless Ctrl-C cut the run
//! short), or when the daemon did not stop cleanly; 0 otherwise. Pure, so
//! each way of failing is tested without running a demo; it prints nothing.

use std::time::Duration;

use super::daemon::Stopped;
use crate::exit;

/// What the end of a demo run found.
#[derive(Debug)]
pub struct Facts<'a> {
    /// Why the run broke off (the daemon died, did not start, or stopped
    /// answering), if it did.
    pub broke_off: Option<&'a str>,
    /// Ctrl-C or SIGTERM ended the run early.
    pub interrupted: bool,
    /// Session losses the faults caused.
    pub hits: usize,
    /// Of those, the ones repaired.
    pub recovered: usize,
    /// The faults some session never came back from: each one's label and
    /// the sessions still down.
    pub unrepaired: Vec<(&'static str, Vec<String>)>,
    /// How long the last fault had to be repaired after the run.
    pub repair_grace: Duration,
    /// The daemon exited 0 on SIGTERM.
    pub daemon_ok: bool,
}

/// The exit status, and the lines that say why it is not 0.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The process exit code.
    pub code: i32,
    /// One line per reason for failing (the daemon's own words are in the
    /// summary already).
    pub complaints: Vec<String>,
}

/// The exit status of a run that ended with `facts`.
pub fn decide(facts: &Facts) -> Verdict {
    let mut complaints = Vec::new();
    let mut failed = !facts.daemon_ok;
    if let Some(why) = facts.broke_off {
        complaints.push(why.to_owned());
        failed = true;
    }
    // An interrupted run was not given the time to repair its last fault.
    if !facts.interrupted && !facts.unrepaired.is_empty() {
        let named: Vec<String> = facts
            .unrepaired
            .iter()
            .map(|(fault, sessions)| format!("{fault} ({})", sessions.join(", ")))
            .collect();
        complaints.push(format!(
            "{} of {} session losses were not repaired within {}s after the run: {}",
            facts.hits - facts.recovered,
            facts.hits,
            facts.repair_grace.as_secs(),
            named.join("; ")
        ));
        failed = true;
    }
    Verdict {
        code: if failed { exit::FAILURE } else { exit::OK },
        complaints,
    }
}

/// How the daemon's stop reads in the summary, and whether it was clean
/// (exit 0 after SIGTERM).
pub fn daemon_stop(stopped: &Stopped, grace: Duration) -> (String, bool) {
    match stopped {
        Stopped::Exited(status) if status.success() => ("stopped by SIGTERM, exit 0".to_owned(), true),
        Stopped::Exited(status) => (format!("stopped by SIGTERM, {status}"), false),
        Stopped::AlreadyExited(status) => (format!("exited on its own, {status}"), false),
        Stopped::Killed => (
            format!("did not stop within {}s of SIGTERM; killed", grace.as_secs()),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    fn clean_run() -> Facts<'static> {
        Facts {
            broke_off: None,
            interrupted: false,
            hits: 5,
            recovered: 5,
            unrepaired: Vec::new(),
            repair_grace: Duration::from_secs(10),
            daemon_ok: true,
        }
    }

    fn outage_not_repaired() -> Facts<'static> {
        Facts {
            recovered: 3,
            hits: 5,
            unrepaired: vec![("outage", vec!["demo-1".to_owned(), "demo-2".to_owned()])],
            ..clean_run()
        }
    }

    #[test]
    fn a_run_with_every_fault_repaired_and_a_clean_stop_exits_0() {
        assert_eq!(
            decide(&clean_run()),
            Verdict {
                code: exit::OK,
                complaints: vec![]
            }
        );
    }

    #[test]
    fn a_fault_not_repaired_fails_the_run_and_is_named() {
        let verdict = decide(&outage_not_repaired());
        assert_eq!(verdict.code, exit::FAILURE);
        assert_eq!(
            verdict.complaints,
            ["2 of 5 session losses were not repaired within 10s after the run: outage (demo-1, demo-2)"]
        );
    }

    #[test]
    fn ctrl_c_excuses_an_unrepaired_fault_but_nothing_else() {
        let interrupted = Facts {
            interrupted: true,
            ..outage_not_repaired()
        };
        assert_eq!(decide(&interrupted).code, exit::OK);
        let and_unclean = Facts {
            daemon_ok: false,
            ..interrupted
        };
        assert_eq!(decide(&and_unclean).code, exit::FAILURE);
    }

    #[test]
    fn a_broken_off_run_or_an_unclean_stop_fails() {
        let broke = Facts {
            broke_off: Some("the daemon closed its control connection"),
            ..clean_run()
        };
        assert_eq!(
            decide(&broke),
            Verdict {
                code: exit::FAILURE,
                complaints: vec!["the daemon closed its control connection".to_owned()]
            }
        );
        let unclean = Facts {
            daemon_ok: false,
            ..clean_run()
        };
        assert_eq!(decide(&unclean).code, exit::FAILURE);
    }

    #[test]
    fn only_exit_0_after_sigterm_is_a_clean_stop() {
        let grace = Duration::from_secs(3);
        let exited = |code: i32| ExitStatus::from_raw(code << 8);
        assert_eq!(
            daemon_stop(&Stopped::Exited(exited(0)), grace),
            ("stopped by SIGTERM, exit 0".to_owned(), true)
        );
        assert_eq!(
            daemon_stop(&Stopped::Exited(exited(1)), grace),
            ("stopped by SIGTERM, exit status: 1".to_owned(), false)
        );
        assert_eq!(
            daemon_stop(&Stopped::AlreadyExited(exited(0)), grace),
            ("exited on its own, exit status: 0".to_owned(), false),
            "a daemon that ended before the demo asked failed it"
        );
        assert_eq!(
            daemon_stop(&Stopped::Killed, grace),
            ("did not stop within 3s of SIGTERM; killed".to_owned(), false)
        );
    }
}

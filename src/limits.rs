//! The open-file limit. Every session holds one socket, so a daemon with
//! thousands of sessions needs more descriptors than the usual soft limit
//! of 1024 that a shell hands down (systemd's unit sets `LimitNOFILE`; a
//! daemon started by hand has no such help). At start the daemon raises its
//! soft limit towards the hard one when its sessions need it, and says so;
//! it never lowers anything.

/// Descriptors for everything but sessions: the control socket and its
/// clients, the log, the runtime's own.
const RESERVE: u64 = 256;

/// Where the soft limit goes when the hard limit is unlimited.
const UNLIMITED_TARGET: u64 = 65_536;

/// What [`ensure_open_files`] did, for its log line and tests.
#[derive(Debug, PartialEq, Eq)]
pub enum FdLimit {
    /// The soft limit was enough.
    Enough,
    /// Raised from the first to the second value.
    Raised(u64, u64),
    /// Still short (the hard limit is too low, or setrlimit failed): the
    /// limit in force and what is needed.
    Short(u64, u64),
}

/// Raises the soft limit so `sessions` sessions fit, and logs what it did.
pub fn ensure_open_files(sessions: usize) -> FdLimit {
    let needed = sessions as u64 + RESERVE;
    let outcome = raise_to(needed);
    match outcome {
        FdLimit::Enough => {}
        FdLimit::Raised(from, to) => {
            log::info!("raised the open-file limit from {from} to {to} for {sessions} sessions")
        }
        FdLimit::Short(limit, needed) => log::warn!(
            "the open-file limit is {limit}, below the {needed} that {sessions} sessions need; \
             connections beyond it will fail: raise LimitNOFILE (systemd) or `ulimit -n`"
        ),
    }
    outcome
}

fn raise_to(needed: u64) -> FdLimit {
    let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return FdLimit::Enough;
    };
    if soft >= needed {
        return FdLimit::Enough;
    }
    let target = if hard == rlimit::INFINITY {
        needed.max(UNLIMITED_TARGET)
    } else {
        hard
    };
    // Only the soft limit changes.
    let raised = rlimit::setrlimit(rlimit::Resource::NOFILE, target, hard).is_ok();
    match (raised, target >= needed) {
        (true, true) => FdLimit::Raised(soft, target),
        (true, false) => FdLimit::Short(target, needed),
        (false, _) => FdLimit::Short(soft, needed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_that_is_enough_is_left_alone() {
        assert_eq!(raise_to(1), FdLimit::Enough);
    }

    #[test]
    fn more_than_the_hard_limit_is_reported_short() {
        match raise_to(u64::MAX / 2) {
            FdLimit::Short(_, needed) => assert_eq!(needed, u64::MAX / 2),
            other => panic!("{other:?}"),
        }
    }
}

//! The open-file limit. Every session holds one socket, so a daemon with
//! thousands of sessions needs more descriptors than the usual soft limit
//! of 1024 that a shell hands down (systemd's unit sets `LimitNOFILE`; a
//! daemon started by hand has no such help). At start the daemon raises its
//! soft limit towards the hard one when its sessions need it, and says so;
//! it never lowers anything. Sessions that still do not fit are not
//! started, at start or at `reload` ([`admit`]): a daemon whose sessions
//! took every descriptor could no longer answer its control socket, and
//! its sessions would loop on `Too many open files`.

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
             sessions beyond {} are not started: raise LimitNOFILE (systemd) or `ulimit -n`",
            limit.saturating_sub(RESERVE)
        ),
    }
    outcome
}

/// How many new sessions may start.
#[derive(Debug, PartialEq, Eq)]
pub struct Admission {
    /// The first this many of the new sessions may start.
    pub admitted: usize,
    /// Why the rest may not, when there is a rest.
    pub why_not: Option<String>,
}

/// Room for `new` sessions next to `running` ones: the soft limit is
/// raised first when it must be; the sessions beyond what it allows are
/// refused (`admitted` < `new`), each still keeping [`RESERVE`]
/// descriptors for the control socket and the daemon's own.
pub fn admit(running: usize, new: usize) -> Admission {
    admission(ensure_open_files(running + new), running, new)
}

fn admission(outcome: FdLimit, running: usize, new: usize) -> Admission {
    let FdLimit::Short(limit, _) = outcome else {
        return Admission {
            admitted: new,
            why_not: None,
        };
    };
    let room = usize::try_from(limit.saturating_sub(RESERVE)).unwrap_or(usize::MAX);
    let admitted = room.saturating_sub(running).min(new);
    Admission {
        admitted,
        why_not: (admitted < new).then(|| {
            format!(
                "the open-file limit is {limit}: room for {room} sessions with {RESERVE} descriptors kept \
                 for the control socket; raise LimitNOFILE (systemd) or `ulimit -n`"
            )
        }),
    }
}

/// Up to `max` names and a count of the rest, for a log line.
pub fn some_names<'a>(names: impl ExactSizeIterator<Item = &'a str>, max: usize) -> String {
    let total = names.len();
    let shown: Vec<&str> = names.take(max).collect();
    match total - shown.len() {
        0 => shown.join(","),
        rest => format!("{} and {rest} more", shown.join(",")),
    }
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
    fn sessions_beyond_the_limit_less_the_reserve_are_refused() {
        let short = |limit| FdLimit::Short(limit, 0);
        assert_eq!(admission(short(300), 1, 100).admitted, 43);
        assert!(admission(short(300), 1, 100)
            .why_not
            .unwrap()
            .contains("room for 44 sessions"));
        assert_eq!(admission(short(300), 50, 10).admitted, 0);
        assert_eq!(
            admission(short(300), 0, 44),
            Admission {
                admitted: 44,
                why_not: None
            }
        );
        assert_eq!(admission(short(100), 0, 5).admitted, 0);
        assert_eq!(admission(FdLimit::Raised(1024, 4096), 0, 3000).admitted, 3000);
        assert_eq!(admission(FdLimit::Enough, 7, 3).admitted, 3);
    }

    #[test]
    fn long_name_lists_are_cut() {
        let names = ["a", "b", "c", "d"];
        assert_eq!(some_names(names.iter().copied(), 2), "a,b and 2 more");
        assert_eq!(some_names(names.iter().copied(), 4), "a,b,c,d");
    }

    #[test]
    fn more_than_the_hard_limit_is_reported_short() {
        match raise_to(u64::MAX / 2) {
            FdLimit::Short(_, needed) => assert_eq!(needed, u64::MAX / 2),
            other => panic!("{other:?}"),
        }
    }
}

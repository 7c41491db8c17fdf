//! The faults the demo injects, in the order it cycles through them, how
//! each is done to the loopback server, and when the next one is due.
//!
//! The four per-session faults hit one session each (round robin); an
//! outage and a restart hit every session at once, as they would in life.
//! A new fault waits until the previous one has been repaired, so each
//! recovery is measured on its own and the viewer can follow it.

use std::time::Duration;

use wsvisor_loopback::{Fault, Server};

/// How long the server stays away in an outage: long enough for a few
/// refused reconnects, short enough for a 30 s demo.
pub const OUTAGE: Duration = Duration::from_secs(2);

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Close 1000, as xiaozhi-esp32-server does to idle sessions.
    IdleClose,
    /// A Close frame without a status code (the client reports 1005).
    CloseNoCode,
    /// A TCP reset.
    Reset,
    /// The server stops answering anything, with the socket still open:
    /// only the heartbeat can tell.
    Silence,
    /// The server goes away: listener closed, every connection reset,
    /// back after [`OUTAGE`].
    Outage,
    /// A server restart: Close 1012 to everyone, listener reopened.
    Restart,
}

impl FaultKind {
    /// The order the demo goes through them.
    pub const CYCLE: [FaultKind; 6] = [
        FaultKind::IdleClose,
        FaultKind::CloseNoCode,
        FaultKind::Reset,
        FaultKind::Silence,
        FaultKind::Outage,
        FaultKind::Restart,
    ];

    /// A short name for tables.
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::IdleClose => "idle close",
            FaultKind::CloseNoCode => "close 1005",
            FaultKind::Reset => "RST",
            FaultKind::Silence => "silence",
            FaultKind::Outage => "outage",
            FaultKind::Restart => "restart",
        }
    }

    /// What the server does, for the event lines.
    pub fn describe(self) -> &'static str {
        match self {
            FaultKind::IdleClose => "server sends Close 1000, as it does to idle sessions",
            FaultKind::CloseNoCode => "server sends a Close frame without a code",
            FaultKind::Reset => "server resets the TCP connection",
            FaultKind::Silence => "server goes silent, socket open (only the heartbeat can tell)",
            FaultKind::Outage => "server down for 2s: listener closed, connections reset",
            FaultKind::Restart => "server restarts: Close 1012 to everyone",
        }
    }

    /// Whether it hits every session rather than one.
    pub fn hits_everyone(self) -> bool {
        matches!(self, FaultKind::Outage | FaultKind::Restart)
    }

    /// Does it to `server`, for the connections of `device` (`None`: all).
    /// Blocks: an outage lasts [`OUTAGE`]. Returns how many connections it
    /// reached.
    pub fn apply(self, server: &Server, device: Option<&str>) -> usize {
        let one = |fault: Fault| server.inject_where(device, fault).connections;
        match self {
            FaultKind::IdleClose => one(Fault::Close(1000, String::new())),
            FaultKind::CloseNoCode => one(Fault::CloseNoCode),
            FaultKind::Reset => one(Fault::Reset),
            FaultKind::Silence => one(Fault::Silence),
            FaultKind::Outage => {
                server.stop_listening();
                let hit = server.inject_where(None, Fault::Reset).connections;
                std::thread::sleep(OUTAGE);
                if let Err(err) = server.start_listening() {
                    log::error!("demo: the loopback server could not listen again: {err}");
                }
                hit
            }
            FaultKind::Restart => {
                let open = server.open_connections();
                if let Err(err) = server.restart() {
                    log::error!("demo: the loopback server could not listen again: {err}");
                }
                open
            }
        }
    }
}

/// When faults are due, relative to the start of the demo's clock.
#[derive(Debug)]
pub struct Schedule {
    interval: Duration,
    /// No fault starts after this, so the last one can be repaired in time.
    last_start: Duration,
    next_due: Duration,
    count: usize,
}

impl Schedule {
    /// A fault every `interval` (or as soon after as the previous one is
    /// repaired) within `duration`.
    pub fn new(duration: Duration) -> Schedule {
        let interval = Self::interval_for(duration);
        Schedule {
            interval,
            last_start: duration.saturating_sub(Duration::from_secs(1)),
            next_due: interval,
            count: 0,
        }
    }

    /// A tenth of the run, between 1 s and 3 s: about ten faults in a 30 s
    /// demo, and still a few in a short test run.
    pub fn interval_for(duration: Duration) -> Duration {
        (duration / 10).clamp(Duration::from_secs(1), Duration::from_secs(3))
    }

    /// The gap between faults.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When the next fault is due; `None` when the run is too far along
    /// for another.
    pub fn next_due(&self) -> Option<Duration> {
        (self.next_due <= self.last_start).then_some(self.next_due)
    }

    /// The kind of the next fault.
    pub fn next_kind(&self) -> FaultKind {
        FaultKind::CYCLE[self.count % FaultKind::CYCLE.len()]
    }

    /// Which session the next per-session fault hits, of `n`.
    pub fn next_target(&self, n: usize) -> usize {
        self.count % n.max(1)
    }

    /// A fault started at `now`.
    pub fn started(&mut self, now: Duration) {
        self.count += 1;
        self.next_due = now + self.interval;
    }

    /// The previous fault was repaired at `now`: leave the viewer a moment
    /// to see the session ready again before the next one.
    pub fn repaired(&mut self, now: Duration) {
        self.next_due = self.next_due.max(now + self.interval / 3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cycle_covers_every_fault_of_the_issue() {
        let labels: Vec<_> = FaultKind::CYCLE.iter().map(|k| k.label()).collect();
        assert_eq!(
            labels,
            ["idle close", "close 1005", "RST", "silence", "outage", "restart"]
        );
        assert!(FaultKind::Outage.hits_everyone() && !FaultKind::Silence.hits_everyone());
    }

    #[test]
    fn about_ten_faults_in_thirty_seconds() {
        assert_eq!(Schedule::interval_for(Duration::from_secs(30)), Duration::from_secs(3));
        assert_eq!(Schedule::interval_for(Duration::from_secs(6)), Duration::from_secs(1));
        assert_eq!(Schedule::interval_for(Duration::from_secs(300)), Duration::from_secs(3));
    }

    #[test]
    fn faults_stop_a_second_before_the_end_and_wait_for_repairs() {
        let mut schedule = Schedule::new(Duration::from_secs(6));
        assert_eq!(schedule.next_due(), Some(Duration::from_secs(1)));
        assert_eq!(schedule.next_kind(), FaultKind::IdleClose);
        schedule.started(Duration::from_secs(1));
        assert_eq!(schedule.next_kind(), FaultKind::CloseNoCode);
        assert_eq!(schedule.next_target(4), 1);
        // Repaired late: the next one waits a little after the repair.
        schedule.repaired(Duration::from_millis(2500));
        assert_eq!(
            schedule.next_due(),
            Some(Duration::from_millis(2500) + Duration::from_secs(1) / 3)
        );
        schedule.started(Duration::from_millis(4500));
        assert_eq!(schedule.next_due(), None, "5.5 s is past the last start at 5 s");
    }
}

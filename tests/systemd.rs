//! The real binary under a fake service manager: a datagram socket of the
//! test as `NOTIFY_SOCKET`, and `WATCHDOG_USEC`. Notifications must come in
//! the order systemd expects, STATUS must follow the sessions, and a
//! wedged actor system must stop patting the watchdog.

mod support;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::process::{config_toml, signal, wait_with_timeout, wsvisor, Daemon, Scratch};
use wsvisor_loopback::{Fault, Server, ServerOptions};

const WATCHDOG: Duration = Duration::from_millis(400);
const LIMIT: Duration = Duration::from_secs(10);

/// Every datagram the daemon sent, with its arrival time.
#[derive(Clone, Default)]
struct Notifications(Arc<Mutex<Vec<(Instant, String)>>>);

impl Notifications {
    fn listen(path: &std::path::Path) -> Notifications {
        let socket = UnixDatagram::bind(path).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let received = Notifications::default();
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with the test process; bounded by it, not by a count.
            loop {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.0.lock().unwrap().push((Instant::now(), text));
                }
            }
        });
        received
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.0.lock().unwrap().clone()
    }

    /// Index of the first datagram at or after `from` containing `needle`, waiting for it.
    fn wait_for(&self, from: usize, needle: &str) -> usize {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(i) = self.all().iter().skip(from).position(|(_, m)| m.contains(needle)) {
                return from + i;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} after #{from}: {:#?}",
                self.texts()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn texts(&self) -> Vec<String> {
        self.all().into_iter().map(|(_, m)| m.replace('\n', " ")).collect()
    }
}

fn start(scratch: &Scratch, server: &Server) -> (Daemon, Notifications) {
    let notify = scratch.0.join("notify.sock");
    let notifications = Notifications::listen(&notify);
    let config = scratch.write("config.toml", &config_toml(scratch, "", &[("kitchen", &server.url())]));
    let daemon = Daemon::spawn(
        wsvisor(&["run", "--config", config.to_str().unwrap()])
            .env("NOTIFY_SOCKET", &notify)
            .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
            .stderr(std::fs::File::create(scratch.0.join("stderr.log")).unwrap()),
    );
    (daemon, notifications)
}

#[test]
fn ready_watchdog_reloading_ready_stopping_in_order_and_status_follows_sessions() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let scratch = Scratch::new("notify");
    let (mut daemon, notes) = start(&scratch, &server);

    let ready = notes.wait_for(0, "READY=1");
    // READY=1 comes once the socket listens and every autostart session was launched.
    assert!(
        support::process::socket_of(&scratch).exists(),
        "READY=1 before the control socket"
    );
    assert!(
        notes.all()[ready].1.contains("/1 sessions ready"),
        "READY=1 before the session was launched"
    );
    let up = notes.wait_for(ready, "STATUS=1/1 sessions ready");
    let first_pat = notes.wait_for(ready, "WATCHDOG=1");
    let second_pat = notes.wait_for(first_pat + 1, "WATCHDOG=1");

    server.inject(Fault::Close(1011, "oops".into()));
    let down = notes.wait_for(up + 1, "STATUS=0/1 sessions ready");
    let back = notes.wait_for(down + 1, "STATUS=1/1 sessions ready");

    signal(&daemon, "HUP");
    let reloading = notes.wait_for(back.max(second_pat) + 1, "RELOADING=1");
    assert!(
        notes.all()[reloading].1.contains("MONOTONIC_USEC="),
        "RELOADING=1 without MONOTONIC_USEC"
    );
    let ready_again = notes.wait_for(reloading + 1, "READY=1");

    signal(&daemon, "TERM");
    let stopping = notes.wait_for(ready_again + 1, "STOPPING=1");
    assert_eq!(
        wait_with_timeout(&mut daemon, Duration::from_secs(2)).and_then(|s| s.code()),
        Some(0)
    );
    assert!(ready < first_pat && second_pat < reloading && reloading < ready_again && ready_again < stopping);
    assert!(
        !notes.texts()[..ready].iter().any(|m| m.contains("WATCHDOG=1")),
        "patted before READY=1"
    );
}

#[test]
fn pats_come_about_twice_per_watchdog_interval() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let scratch = Scratch::new("pats");
    let (_daemon, notes) = start(&scratch, &server);
    let first = notes.wait_for(0, "WATCHDOG=1");
    std::thread::sleep(WATCHDOG * 3);
    let pats: Vec<Instant> = notes
        .all()
        .into_iter()
        .skip(first)
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .map(|(at, _)| at)
        .collect();
    assert!(pats.len() >= 4, "only {} pats in three intervals", pats.len());
    for pair in pats.windows(2) {
        assert!(
            pair[1] - pair[0] < WATCHDOG,
            "{:?} between pats, watchdog {WATCHDOG:?}",
            pair[1] - pair[0]
        );
    }
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_wedged_actor_stops_the_watchdog_within_one_interval() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let scratch = Scratch::new("wedge");
    let (mut daemon, notes) = start(&scratch, &server);
    let first = notes.wait_for(0, "WATCHDOG=1");
    notes.wait_for(first + 1, "WATCHDOG=1");
    let mut control = support::process::control(&support::process::socket_of(&scratch));
    let wedged_at = Instant::now();
    let wedge = wsvisor::protocol::Command::Wedge {
        session: "kitchen".into(),
    };
    assert_eq!(
        control
            .result::<wsvisor::protocol::Requested>(&wedge)
            .unwrap()
            .requested,
        "wedge"
    );
    std::thread::sleep(WATCHDOG * 3);
    let late: Vec<Duration> = notes
        .all()
        .into_iter()
        .filter(|(at, m)| m.contains("WATCHDOG=1") && *at > wedged_at)
        .map(|(at, _)| at - wedged_at)
        .collect();
    assert!(
        late.iter().all(|after| *after < WATCHDOG),
        "patted {late:?} after the wedge"
    );
    assert_eq!(
        control
            .result::<wsvisor::protocol::Pong>(&wsvisor::protocol::Command::Ping)
            .unwrap()
            .pid,
        daemon.id(),
        "the rest still answers"
    );
    let log = support::process::read_all(&scratch.0.join("stderr.log"));
    assert!(
        log.contains("watchdog: the session=kitchen connection did not answer"),
        "{log}"
    );
    signal(&daemon, "TERM");
    assert!(
        wait_with_timeout(&mut daemon, Duration::from_secs(2)).is_some(),
        "no exit after SIGTERM"
    );
}

//! The real daemon (`wsvisor run`) in a child process with a generated
//! config, talked to through wsvisor's control client. SIGTERM on drop.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use wsvisor::control_client::blocking::Client;

use crate::procfs;

/// A session's state change as a subscriber heard it.
pub struct Heard {
    /// When the daemon stamped it (its `at`, millisecond wall clock),
    /// as CLOCK_MONOTONIC seconds (the servers' clock).
    pub at: f64,
    /// The session.
    pub session: String,
    /// Its new state.
    pub state: String,
    /// `retry_in_ms` of a `backoff` event: the delay the policy chose.
    pub retry_in: Option<Duration>,
}

/// The settings a run varies; every other one is the daemon's default.
#[derive(Clone, Debug)]
pub struct DaemonSettings {
    /// Sessions, all to one URL.
    pub sessions: usize,
    /// `[defaults.reconnect] initial_delay`.
    pub initial_delay: Duration,
    /// `[defaults.reconnect] jitter`.
    pub jitter: f64,
    /// `[defaults.reconnect] stable_after`.
    pub stable_after: Duration,
}

impl DaemonSettings {
    /// `sessions` sessions, every setting at the daemon's default.
    pub fn defaults(sessions: usize) -> DaemonSettings {
        DaemonSettings {
            sessions,
            initial_delay: Duration::from_millis(500),
            jitter: 0.5,
            stable_after: Duration::from_secs(10),
        }
    }

    fn config(&self, socket: &std::path::Path, url: &str) -> String {
        let mut config = format!(
            "[daemon]\ncontrol_socket = \"{}\"\nlog_level = \"warn\"\n\n[defaults.reconnect]\n\
             initial_delay = \"{}ms\"\njitter = {}\nstable_after = \"{}ms\"\n",
            socket.display(),
            self.initial_delay.as_millis(),
            self.jitter,
            self.stable_after.as_millis()
        );
        for i in 0..self.sessions {
            config.push_str(&format!(
                "[[session]]\nname = \"s{i}\"\nurl = \"{url}\"\ntoken = \"bench\"\ndevice_id = \"dev-{i}\"\n\
                 client_id = \"6f1c0b8e-0000-4000-8000-{i:012}\"\n"
            ));
        }
        config
    }
}

/// Between two `status` polls while waiting for ready: short enough for a
/// start-up figure in tenths of a second, long enough that polling (each
/// `status` walks every session) costs the daemon little.
pub const READY_POLL: Duration = Duration::from_millis(50);

/// `wsvisor run` in a scratch directory of its own.
pub struct Daemon {
    child: Child,
    spawned: Instant,
    socket: PathBuf,
    dir: PathBuf,
}

impl Daemon {
    /// Starts the daemon against `url`.
    pub fn start(settings: &DaemonSettings, url: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("wsvisor-independent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let socket = dir.join("control.sock");
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, settings.config(&socket, url)).expect("write config");
        let log = std::fs::File::create(dir.join("daemon.log")).expect("log file");
        let spawned = Instant::now();
        let child = procfs::daemon_command(&binary(), &config_path, log)
            .spawn()
            .expect("start wsvisor");
        Daemon {
            child,
            spawned,
            socket,
            dir,
        }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded by `limit`) until `n` sessions are ready; returns how
    /// long after the daemon's start they were, to within [`READY_POLL`].
    pub fn wait_ready(&self, n: usize, limit: Duration) -> Duration {
        procfs::wait_ready(&mut connect(&self.socket), n, limit, READY_POLL);
        self.spawned.elapsed()
    }

    /// The control socket.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Every state event from now on, read by a thread of its own that
    /// ends when the daemon closes the connection (at its exit).
    pub fn subscribe(&self) -> mpsc::Receiver<Heard> {
        let mut events = connect(&self.socket).subscribe(None, false).expect("subscribe");
        events.set_timeout(None);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            while let Ok(Some(line)) = events.next_line() {
                let received = procfs::monotonic_seconds();
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if event["event"] != "state" {
                    continue;
                }
                let stamped = event["at"]
                    .as_str()
                    .and_then(|at| humantime::parse_rfc3339(at).ok())
                    .map(procfs::monotonic_from_wall);
                let heard = Heard {
                    at: stamped.unwrap_or(received),
                    session: event["session"].as_str().unwrap_or_default().to_owned(),
                    state: event["state"].as_str().unwrap_or_default().to_owned(),
                    retry_in: event["retry_in_ms"].as_u64().map(Duration::from_millis),
                };
                if tx.send(heard).is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// Resident memory now and at its peak (KiB), CPU seconds so far
    /// (utime + stime, and the scheduler's nanosecond count).
    pub fn usage(&self) -> (u64, u64, f64, f64) {
        (
            procfs::status_kib(self.pid(), "VmRSS:"),
            procfs::status_kib(self.pid(), "VmHWM:"),
            procfs::cpu_seconds(self.pid()),
            procfs::cpu_seconds_precise(self.pid()),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            // Our own unreaped child: the pid cannot have been reused.
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `$WSVISOR_BIN` when set (to compare builds, e.g. a patched daemon),
/// else the `wsvisor` cargo built for this benchmark.
fn binary() -> PathBuf {
    std::env::var_os("WSVISOR_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wsvisor")), PathBuf::from)
}

/// A control connection, waiting up to 10 s for the daemon to create its socket.
fn connect(socket: &Path) -> Client {
    let mut client = Client::connect_within(socket, Duration::from_secs(10)).expect("the control socket");
    client.set_timeout(Some(Duration::from_secs(30)));
    client
}

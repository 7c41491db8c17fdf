//! Running the real binary: scratch directories, configs, the daemon
//! process, signals, and the control socket through the library's one
//! control client.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;
pub use wsvisor::control_client::blocking::Client as Control;
use wsvisor::protocol::SessionSummary;

/// Every test session's token; must never appear in a log line.
pub const TOKEN: &str = "s3cr3t-token-never-logged";

/// Bound of every wait for the daemon in these helpers.
const LIMIT: Duration = Duration::from_secs(10);

/// A scratch directory removed at the end of the test; `.0` is its path.
pub struct Scratch(pub PathBuf, TempDir);

impl Scratch {
    /// A fresh directory for this test, named after `tag`.
    pub fn new(tag: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("wsvisor-test-{tag}-"))
            .tempdir()
            .expect("a scratch directory");
        Scratch(dir.path().to_path_buf(), dir)
    }

    /// The path of `name` in it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Write a file in it.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// One `[[session]]` table.
pub fn session_toml(name: &str, url: &str) -> String {
    format!(
        "[[session]]\nname = \"{name}\"\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\ndevice_id = \"dev-{name}\"\n\
         client_id = \"6f1c0b8e-0000-4000-8000-000000000001\"\n"
    )
}

/// A config with its control socket in `scratch`, fast reconnects, and these sessions.
pub fn config_toml(scratch: &Scratch, daemon: &str, sessions: &[(&str, &str)]) -> String {
    let socket = scratch.0.join("control.sock");
    let mut text = format!("[daemon]\ncontrol_socket = \"{}\"\n{daemon}\n", socket.display());
    text.push_str(
        "[defaults]\nhello_timeout = \"1s\"\n[defaults.reconnect]\ninitial_delay = \"20ms\"\nmax_delay = \"100ms\"\n\
         max_attempts = 1000\n",
    );
    for (name, url) in sessions {
        text.push_str(&session_toml(name, url));
    }
    text
}

/// The binary under test, with a clean environment.
pub fn wsvisor(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsvisor"));
    command.args(args).env_remove("RUST_LOG").env_remove("JOURNAL_STREAM");
    command
}

/// Wait for exit; kill and None after `limit`.
pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    None
}

/// Send a signal by name (TERM, INT, HUP).
pub fn signal(child: &Child, name: &str) {
    let signal = Signal::from_str(&format!("SIG{name}")).unwrap_or_else(|_| panic!("no signal named {name}"));
    kill(Pid::from_raw(child.id() as i32), signal).unwrap_or_else(|err| panic!("kill -{name}: {err}"));
}

/// A whole file as text.
pub fn read_all(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// The control socket of a daemon started with `config_toml(scratch, ..)`.
pub fn socket_of(scratch: &Scratch) -> PathBuf {
    scratch.0.join("control.sock")
}

/// A control connection, waiting (bounded) while the daemon is still starting.
pub fn control(path: &Path) -> Control {
    Control::connect_within(path, Duration::from_secs(5))
        .unwrap_or_else(|err| panic!("no control socket at {}: {err}", path.display()))
}

/// Polls `sessions` until `pred` holds for the list (bounded); the list.
pub fn wait_sessions(
    control: &mut Control,
    what: &str,
    pred: impl Fn(&[SessionSummary]) -> bool,
) -> Vec<SessionSummary> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let sessions = control.sessions().expect("sessions");
        if pred(&sessions) {
            return sessions;
        }
        assert!(Instant::now() < deadline, "never {what}: {sessions:#?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Open file descriptors of process `pid`; a failed read fails the test.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|err| panic!("cannot count the descriptors of process {pid}: {err}"))
        .count()
}

/// Resident memory of process `pid`, in KiB; a failed read fails the test.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("cannot read the memory of process {pid}: {err}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for process {pid}"))
}

/// The highest resident memory of a process while it is watched, sampled
/// every 10 ms on a thread of its own.
pub struct PeakRss {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<u64>,
}

impl PeakRss {
    /// Start watching process `pid`.
    pub fn watch(pid: u32) -> PeakRss {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = stop.clone();
        let sampler = std::thread::spawn(move || {
            // Sampling ends when told, or when the process is gone (a
            // death the test itself reports).
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match std::panic::catch_unwind(|| rss_kib(pid)) {
                    Ok(rss) => peak = peak.max(rss),
                    Err(_) => break,
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        PeakRss { stop, sampler }
    }

    /// Stop watching; the peak in KiB.
    pub fn peak(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sampler.join().expect("the RSS sampler")
    }
}

/// A daemon process that is killed if the test ends (or panics) without
/// stopping it, so no test leaves a daemon behind.
pub struct Daemon {
    child: Child,
    log: Option<PathBuf>,
}

impl Daemon {
    /// Spawn `command`.
    pub fn spawn(command: &mut Command) -> Daemon {
        Daemon {
            child: command.spawn().expect("spawn wsvisor"),
            log: None,
        }
    }

    /// `wsvisor run --config CONFIG`, its stderr in `log`.
    pub fn run(config: &Path, log: &Path) -> Daemon {
        let stderr = std::fs::File::create(log).expect("the daemon's log file");
        let mut daemon = Daemon::spawn(wsvisor(&["run", "--config", config.to_str().unwrap()]).stderr(stderr));
        daemon.log = Some(log.to_path_buf());
        daemon
    }

    /// Name `log` as where its stderr goes, for [`Daemon::stop`]'s message.
    pub fn logging_to(mut self, log: &Path) -> Daemon {
        self.log = Some(log.to_path_buf());
        self
    }

    /// SIGTERM; the daemon must exit 0 within the contract's 2 s (its log,
    /// when known, is in the failure message).
    pub fn stop(mut self) {
        signal(&self.child, "TERM");
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(2));
        let log = self.log.as_ref().map(std::fs::read_to_string);
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "the daemon did not stop cleanly: {log:?}"
        );
    }
}

impl Deref for Daemon {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

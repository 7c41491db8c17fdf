//! The processes the out-of-process benchmarks drive: the loopback server
//! (this bench binary again, in its server role, so that its memory, CPU and
//! file descriptors are not the daemon's), the real daemon (`wsvisor run`),
//! its control socket through the library's blocking client, and /proc
//! readings of a process.
//!
//! The server child takes one command a line on stdin and answers one line
//! on stdout: `stats` → `stats OPEN BINARY_FRAMES TEXTS`, `quit`.
//! It exits when its stdin closes, so it never outlives the benchmark.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;
use wsvisor::control_client::blocking::Client;
use wsvisor_loopback::{Server, ServerOptions};

use crate::procfs;

/// Set in the environment of the bench binary started as the server.
const ROLE: &str = "WSVISOR_BENCH_ROLE";

/// The server role's value for a server that echoes binary frames.
const ECHO_ROLE: &str = "echo";

/// Raises this process's soft open-file limit to the hard one: 10,000
/// sessions need 10,000 sockets in the daemon and as many in the server.
/// Children inherit it. The soft limit in force after.
pub fn raise_fd_limit() -> u64 {
    let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return 0;
    };
    if soft < hard && rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// Runs the server role and exits, when this process was started as one.
pub fn serve_if_asked() {
    let Some(role) = std::env::var_os(ROLE) else {
        return;
    };
    let server = Server::start(ServerOptions {
        echo_binary: role == ECHO_ROLE,
        ..ServerOptions::default()
    })
    .expect("loopback server");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "url {}", server.url());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "stats" => {
                let _ = writeln!(
                    out,
                    "stats {} {} {}",
                    server.open_connections(),
                    server.received_binary_frames(),
                    server.received_text_count()
                );
            }
            "quit" => break,
            other => {
                let _ = writeln!(out, "error unknown command {other:?}");
            }
        }
        let _ = out.flush();
    }
    drop(server);
    std::process::exit(0);
}

/// What the server child counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerStats {
    /// Connections open.
    pub open: u64,
    /// Binary frames received.
    pub binary_frames: u64,
    /// Text messages received (hellos excluded).
    pub texts: u64,
}

/// The loopback server in a child process.
pub struct ServerProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    url: String,
}

impl ServerProcess {
    /// Starts it and reads its URL.
    pub fn start() -> ServerProcess {
        ServerProcess::start_as("server")
    }

    /// Starts one that sends every binary frame back.
    pub fn start_echoing() -> ServerProcess {
        ServerProcess::start_as(ECHO_ROLE)
    }

    fn start_as(role: &str) -> ServerProcess {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the server child");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("server url");
        let url = line.trim().strip_prefix("url ").expect("url line").to_owned();
        ServerProcess {
            child,
            stdin,
            stdout,
            url,
        }
    }

    /// `ws://127.0.0.1:PORT/xiaozhi/v1/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its resident memory, KiB.
    pub fn rss_kib(&self) -> u64 {
        procfs::status_kib(self.child.id(), "VmRSS:")
    }

    /// Its counters now.
    pub fn stats(&mut self) -> ServerStats {
        writeln!(self.stdin, "stats").expect("server stdin");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("server stats");
        let n: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        ServerStats {
            open: n[0],
            binary_frames: n[1],
            texts: n[2],
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        exit_or_kill(&mut self.child);
    }
}

/// The real daemon, `wsvisor run`, in a child process; SIGTERM on drop.
pub struct Daemon {
    child: Child,
    spawned: Instant,
    socket: PathBuf,
    _scratch: TempDir,
}

impl Daemon {
    /// Starts the daemon with `sessions` sessions against `url`, every
    /// setting at its default.
    pub fn start(tag: &str, sessions: usize, url: &str) -> Daemon {
        let scratch = tempfile::Builder::new()
            .prefix(&format!("wsvisor-bench-{tag}-"))
            .tempdir()
            .expect("scratch dir");
        let socket = scratch.path().join("control.sock");
        let mut config = format!(
            "[daemon]\ncontrol_socket = \"{}\"\nlog_level = \"warn\"\n",
            socket.display()
        );
        for i in 0..sessions {
            config.push_str(&format!(
                "[[session]]\nname = \"s{i}\"\nurl = \"{url}\"\ntoken = \"bench\"\ndevice_id = \"dev-{i}\"\n\
                 client_id = \"6f1c0b8e-0000-4000-8000-{i:012}\"\n"
            ));
        }
        let config_path = scratch.path().join("config.toml");
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(scratch.path().join("daemon.log")).expect("log file");
        let spawned = Instant::now();
        let child = procfs::daemon_command(Path::new(env!("CARGO_BIN_EXE_wsvisor")), &config_path, log)
            .spawn()
            .expect("start wsvisor");
        Daemon {
            child,
            spawned,
            socket,
            _scratch: scratch,
        }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its control socket.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// A new control connection (waits up to 10 s for the socket), whose
    /// answers may take up to 30 s.
    pub fn connect(&self) -> Client {
        let mut client = Client::connect_within(&self.socket, Duration::from_secs(10))
            .unwrap_or_else(|err| panic!("no control socket at {}: {err}", self.socket.display()));
        client.set_timeout(Some(Duration::from_secs(30)));
        client
    }

    /// Waits until `n` sessions are ready; returns how long after the
    /// daemon's start they were (to within the 100 ms polling step, which
    /// is slow on purpose: each `status` walks every session).
    pub fn wait_ready(&self, n: usize, limit: Duration) -> Duration {
        procfs::wait_ready(&mut self.connect(), n, limit, Duration::from_millis(100));
        self.spawned.elapsed()
    }

    /// Resident memory now and at its peak, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        (
            procfs::status_kib(self.pid(), "VmRSS:"),
            procfs::status_kib(self.pid(), "VmHWM:"),
        )
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(self.pid())
    }

    /// SIGTERM and wait (bounded); kill if it does not stop.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // Our own unreaped child: its pid cannot have been reused.
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        exit_or_kill(&mut self.child);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Waits up to 10 s for a child that was asked to exit, then kills it.
fn exit_or_kill(child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

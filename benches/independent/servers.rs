//! The servers the daemon is measured against, each in its own process and
//! each driven through the same control lines (documented in
//! benches/pyserver/server.py): the independent Python `websockets` server,
//! and wsvisor's loopback server (this bench binary again, in the role of
//! `loopback_role`). Either may send its own WebSocket Pings.
//!
//! Nothing here measures; it only starts, asks and stops.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::loopback_role;
use crate::procfs;

/// Which server, and whether it pings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServerKind {
    /// wsvisor's loopback server; `Some(every)`: it sends its own Pings.
    Loopback(Option<Duration>),
    /// The Python `websockets` 14.2 server; `Some(every)`: its keep-alive
    /// Ping (20 s in the field), `None`: keep-alive off.
    Python(Option<Duration>),
}

impl ServerKind {
    /// Parses `loopback`, `loopback-ping`, `python`, `python-noping`.
    pub fn parse(name: &str) -> Option<ServerKind> {
        let field_ping = Some(Duration::from_secs(20));
        match name {
            "loopback" => Some(ServerKind::Loopback(None)),
            "loopback-ping" => Some(ServerKind::Loopback(field_ping)),
            "python" => Some(ServerKind::Python(field_ping)),
            "python-noping" => Some(ServerKind::Python(None)),
            _ => None,
        }
    }

    /// How the results table names it.
    pub fn label(self) -> String {
        let ping = |p: Option<Duration>| match p {
            Some(every) => format!("server Ping every {} s", every.as_secs()),
            None => "no server Ping".to_owned(),
        };
        match self {
            ServerKind::Loopback(p) => format!("loopback ({})", ping(p)),
            ServerKind::Python(p) => format!("Python websockets 14.2 ({})", ping(p)),
        }
    }
}

/// A server child process and its control lines.
pub struct ServerChild {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    url: String,
}

impl ServerChild {
    /// Starts `kind` on 127.0.0.1 with a free port. The Python server's
    /// venv is made on first use by scripts/pyserver-venv.sh.
    pub fn start(kind: ServerKind) -> ServerChild {
        ServerChild::start_with(kind, false)
    }

    /// Starts `kind`, sending every binary frame back (a forwarding
    /// benchmark's server leg).
    pub fn start_echoing(kind: ServerKind) -> ServerChild {
        ServerChild::start_with(kind, true)
    }

    fn start_with(kind: ServerKind, echo_binary: bool) -> ServerChild {
        let mut command = match kind {
            ServerKind::Loopback(ping) => {
                let mut command = Command::new(std::env::current_exe().expect("own path"));
                command.env(loopback_role::ROLE, "loopback");
                if let Some(every) = ping {
                    command.env(loopback_role::PING_MS, every.as_millis().to_string());
                }
                if echo_binary {
                    command.env(loopback_role::ECHO, "1");
                }
                command
            }
            ServerKind::Python(ping) => {
                let root = Path::new(env!("CARGO_MANIFEST_DIR"));
                let mut command = Command::new(python(root));
                command
                    .arg(root.join("benches/pyserver/server.py"))
                    .arg("--ping-interval")
                    .arg(ping.map_or(0.0, |p| p.as_secs_f64()).to_string())
                    // The field's idle close (180 s) would cut a 3-minute run
                    // short; reconnect costs are measured on their own.
                    .arg("--idle-close")
                    .arg("0");
                if echo_binary {
                    command.arg("--echo-binary");
                }
                command
            }
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the server child");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut server = ServerChild {
            child,
            stdin,
            stdout,
            url: String::new(),
        };
        let hello = server.read();
        server.url = hello["url"]
            .as_str()
            .expect("the server's first line names its url")
            .to_owned();
        server
    }

    /// `ws://127.0.0.1:PORT/xiaozhi/v1/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One command, its answer.
    pub fn ask(&mut self, command: &str) -> Value {
        writeln!(self.stdin, "{command}").expect("server stdin");
        self.stdin.flush().expect("server stdin");
        self.read()
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("server stdout");
        assert!(n > 0, "the server child ended");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("server answered {line:?}: {e}"))
    }

    /// Sessions that got a server hello and are still open.
    pub fn ready(&mut self) -> u64 {
        self.ask("stats")["ready"].as_u64().unwrap_or(0)
    }

    /// Its resident memory, KiB, and CPU seconds so far.
    pub fn usage(&self) -> (u64, f64) {
        (
            procfs::status_kib(self.pid(), "VmRSS:"),
            procfs::cpu_seconds(self.pid()),
        )
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The venv's interpreter, made or reused by scripts/pyserver-venv.sh.
fn python(root: &Path) -> String {
    let out = Command::new(root.join("scripts/pyserver-venv.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/pyserver-venv.sh");
    assert!(out.status.success(), "scripts/pyserver-venv.sh failed");
    String::from_utf8(out.stdout).expect("a path").trim().to_owned()
}

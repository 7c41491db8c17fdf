//! Running the real binary: scratch directories, configs, signals, and a
//! blocking control-socket client.

use std::io::{BufRead, BufReader, Read, Write};
use std::ops::{Deref, DerefMut};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every test session's token; must never appear in a log line.
pub const TOKEN: &str = "s3cr3t-token-never-logged";

/// A scratch directory removed at the end of the test.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory for this test.
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("wsvisor-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Write a file in it.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A whole file as text.
pub fn read_all(path: &Path) -> String {
    let mut text = String::new();
    std::fs::File::open(path).unwrap().read_to_string(&mut text).unwrap();
    text
}

/// The control socket of a daemon started with `config_toml(scratch, ..)`.
pub fn socket_of(scratch: &Scratch) -> PathBuf {
    scratch.0.join("control.sock")
}

/// A blocking control-socket client.
pub struct Control {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Control {
    /// Connect, retrying while the daemon is still starting (bounded).
    pub fn connect(path: &Path) -> Control {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let writer = stream.try_clone().unwrap();
                    return Control {
                        reader: BufReader::new(stream),
                        writer,
                        next_id: 0,
                    };
                }
                Err(err) => {
                    assert!(
                        Instant::now() < deadline,
                        "no control socket at {}: {err}",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// Send `cmd` with `args` (a JSON object) and return the response.
    pub fn request(&mut self, cmd: &str, args: Value) -> Value {
        self.next_id += 1;
        let mut request = args;
        request["id"] = self.next_id.into();
        request["cmd"] = cmd.into();
        writeln!(self.writer, "{request}").unwrap();
        let response = self.read_line().expect("the daemon closed the connection");
        assert_eq!(response["id"], self.next_id, "{response}");
        response
    }

    /// The `result` of a successful request.
    pub fn result(&mut self, cmd: &str, args: Value) -> Value {
        let response = self.request(cmd, args);
        assert_eq!(response["ok"], true, "{cmd} failed: {response}");
        response["result"].clone()
    }

    /// The next line, None at the end of the stream.
    pub fn read_line(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("a JSON line")),
            Err(err) => panic!("reading the control socket: {err}"),
        }
    }
}

/// A daemon process that is killed if the test ends (or panics) without
/// stopping it, so no test leaves a daemon behind.
pub struct Daemon(Child);

impl Daemon {
    /// Spawn `command`.
    pub fn spawn(command: &mut Command) -> Daemon {
        Daemon(command.spawn().expect("spawn wsvisor"))
    }
}

impl Deref for Daemon {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

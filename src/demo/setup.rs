//! The demo's throw-away files: a private directory under the system's temp
//! dir holding the daemon's config, control socket and log, removed when the
//! demo ends (however it ends, short of SIGKILL). Also the config itself:
//! short heartbeat and backoff timings so that every fault is seen and
//! repaired within a few seconds, which is what makes a 30 s demo readable.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// Names of the first sessions; more are numbered.
const NAMES: [&str; 8] = [
    "kitchen", "attic", "garage", "porch", "hallway", "study", "cellar", "balcony",
];

/// A private scratch directory (mode 0700), removed on drop.
pub struct Scratch {
    dir: TempDir,
}

impl Scratch {
    /// Creates `$TMPDIR/wsvisor-demo-XXXXXX`.
    pub fn create() -> io::Result<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix("wsvisor-demo-")
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir()?;
        Ok(Scratch { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the daemon's config goes.
    pub fn config(&self) -> PathBuf {
        self.dir().join("config.toml")
    }

    /// The daemon's control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir().join("control.sock")
    }

    /// The daemon's stderr.
    pub fn log(&self) -> PathBuf {
        self.dir().join("daemon.log")
    }

    /// The last `n` lines of the daemon's log, for when it died on us.
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        let text = fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|l| l.to_string())
            .collect()
    }
}

/// `n` session names: friendly ones first, then `session-09`, `session-10`...
pub fn session_names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match NAMES.get(i) {
            Some(name) => (*name).to_owned(),
            None => format!("session-{:02}", i + 1),
        })
        .collect()
}

/// The `Device-Id` a session announces; the loopback server addresses
/// per-session faults by it.
pub fn device_id(name: &str) -> String {
    format!("demo-{name}")
}

/// A TOML basic string. The paths and URLs quoted here come from the temp
/// dir and a loopback address, so escaping `\` and `"` is enough.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The demo daemon's config.
///
/// Why these numbers: a 1 s heartbeat finds a silent server within 2 s
/// (the default 15 s + 10 s would outlast the demo); a 300 ms first retry
/// with jitter shows the backoff without making the viewer wait; a 2 s cap
/// brings sessions back soon after an outage; 1000 attempts so that no
/// session parks as `failed` during one.
pub fn config_text(socket: &Path, url: &str, names: &[String]) -> String {
    let mut text = format!(
        "# Written by `wsvisor demo`; removed when it ends.\n\
         [daemon]\n\
         control_socket = {}\n\
         socket_mode = \"0600\"\n\
         log_level = \"info\"\n\
         \n\
         [defaults]\n\
         ping_interval = \"1s\"\n\
         ping_timeout = \"1s\"\n\
         connect_timeout = \"2s\"\n\
         hello_timeout = \"2s\"\n\
         \n\
         [defaults.reconnect]\n\
         initial_delay = \"300ms\"\n\
         max_delay = \"2s\"\n\
         jitter = 0.5\n\
         max_attempts = 1000\n",
        quoted(&socket.display().to_string())
    );
    for (i, name) in names.iter().enumerate() {
        text.push_str(&format!(
            "\n[[session]]\nname = {}\nurl = {}\ntoken = \"demo-token\"\ndevice_id = {}\n\
             client_id = \"6f1c0b8e-0000-4000-8000-{:012}\"\n",
            quoted(name),
            quoted(url),
            quoted(&device_id(name)),
            i + 1
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_friendly_then_numbered() {
        let names = session_names(10);
        assert_eq!(names[0], "kitchen");
        assert_eq!(names[7], "balcony");
        assert_eq!(names[8], "session-09");
        assert_eq!(names[9], "session-10");
    }

    #[test]
    fn the_config_is_valid() {
        let names = session_names(3);
        let text = config_text(Path::new("/tmp/x/control.sock"), "ws://127.0.0.1:1/xiaozhi/v1/", &names);
        let config = crate::config::parse(Path::new("demo.toml"), &text).expect("valid demo config");
        assert_eq!(config.sessions.len(), 3);
        assert_eq!(config.sessions[1].device_id, "demo-attic");
        assert_eq!(config.daemon.control_socket, Path::new("/tmp/x/control.sock"));
    }

    #[test]
    fn scratch_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = Scratch::create().unwrap();
        let dir = scratch.dir().to_path_buf();
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        fs::write(scratch.log(), "a\nb\nc\n").unwrap();
        assert_eq!(scratch.log_tail(2), vec!["b", "c"]);
        drop(scratch);
        assert!(!dir.exists());
    }
}

//! The configuration file: TOML in, validated settings out.
//!
//! [`load`] reads a file and [`parse`] checks its text; both stop at the
//! first problem and report it as a [`ConfigError`] whose `Display` is
//! `file:line:col: message`, pointing at the offending key or value.
//! The result is a [`Config`]: daemon-wide settings plus one
//! [`SessionSettings`] per `[[session]]`, with every default applied.
//!
//! Layout of the module:
//! - `raw`: serde structs mirroring the TOML, every value with its span;
//! - `value`: checks of single values (durations, integers, choices);
//! - `daemon`, `tunables`, `session`: the three kinds of tables;
//! - `tools`: `[[tool]]`, the MCP tools sessions offer;
//! - `files`: the look at `token_file` and `ca_file` done at load time;
//! - `position`: byte offsets to line:col, and [`ConfigError`].

mod access;
mod daemon;
mod files;
mod position;
mod raw;
mod session;
mod socket_only;
mod tools;
mod tunables;
mod value;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wsvisor_actors::settings::SessionSettings;

pub use access::GroupRef;
pub use position::ConfigError;
pub use socket_only::control_socket_of;

use position::Source;
use raw::RawConfig;
use tunables::Layer;

/// Where the control socket lives when the config does not say.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/wsvisor/control.sock";

/// File mode of the control socket when the config does not say: owner and group may connect.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// A checked configuration.
///
/// `Debug` never shows a token: [`wsvisor_actors::settings::Credential`]
/// redacts it.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file this came from, as named to [`load`] or [`parse`]; `reload` reads it again.
    pub path: PathBuf,
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// One per `[[session]]`, in file order, `[defaults]` and built-ins applied.
    /// Shared with the Supervisor, which holds the same settings while the
    /// session runs: one copy a session, however long the daemon lives.
    pub sessions: Vec<Arc<SessionSettings>>,
    /// The sessions whose identity comes from the state directory, in file order.
    pub identities: Vec<IdentityNeed>,
    /// Problems that do not stop the daemon but deserve a log line, such as
    /// a token file other users can read. Each starts with `session=NAME`
    /// when it concerns a session. Never contains a token.
    pub warnings: Vec<String>,
}

impl Config {
    /// The session called `name`.
    pub fn session(&self, name: &str) -> Option<&SessionSettings> {
        self.sessions.iter().find(|s| s.name == name).map(|s| &**s)
    }
}

/// `[daemon]`: settings of the daemon as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Path of the control socket; relative paths are resolved against the
    /// config file's directory.
    pub control_socket: PathBuf,
    /// File mode the control socket is created with (permission bits only).
    pub socket_mode: u32,
    /// Peers allowed on the control socket besides root and the daemon's own uid.
    pub allowed_uids: Vec<u32>,
    /// Groups whose members (primary or supplementary) may use the control
    /// socket; names are resolved when the daemon starts.
    pub allowed_groups: Vec<GroupRef>,
    /// Where to serve Prometheus `/metrics` and `/healthz` over HTTP, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Log level when `RUST_LOG` is not set.
    pub log_level: log::LevelFilter,
    /// What to do once every session has given up.
    pub on_give_up: OnGiveUp,
    /// Bytes of events that may wait for one subscriber of the control socket.
    pub subscriber_buffer: usize,
    /// Where device identities are kept (`identity/NAME.json`); `None`:
    /// `$STATE_DIRECTORY`, else `/var/lib/wsvisor` (see `crate::identity`).
    /// Relative paths are resolved against the config file's directory.
    pub state_dir: Option<PathBuf>,
}

/// A session that does not name both `device_id` and `client_id`: its
/// identity comes from the state directory. Until `crate::identity::settle`
/// has run, its settings hold `""` for each id the config does not name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityNeed {
    /// The session.
    pub session: String,
    /// `device_id` is in the config (it wins over the file's).
    pub device_id_configured: bool,
    /// `client_id` is in the config (it wins over the file's).
    pub client_id_configured: bool,
    /// The identity file, once settled.
    pub file: Option<PathBuf>,
}

/// What the daemon does when every session is `failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnGiveUp {
    /// Keep running: sessions revive after `revive_after`, and `ctl connect` works.
    Park,
    /// Exit with status 75 so that systemd's restart policy takes over.
    Exit,
}

/// Reads and checks the configuration file at `path`.
///
/// Errors about the file as a whole (missing, unreadable) point at 1:1 so
/// that every error has the same `file:line:col: message` shape.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let whole_file = |message: String| ConfigError {
        file: path.to_path_buf(),
        line: 1,
        col: 1,
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        whole_file(format!("cannot read config: {why}"))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let prefix = std::str::from_utf8(&e.as_bytes()[..valid]).unwrap_or_default();
        Source { path, text: prefix }.error_at(valid, "the file is not valid UTF-8")
    })?;
    parse(path, &text)
}

/// Checks configuration `text`; `path_for_messages` names it in errors and
/// is the base of relative paths in it.
///
/// No I/O happens except looking at the files sessions name (`token_file`,
/// `ca_file`), so that a missing one is reported now rather than at the
/// first connection attempt.
pub fn parse(path_for_messages: &Path, text: &str) -> Result<Config, ConfigError> {
    let src = Source {
        path: path_for_messages,
        text,
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(&src, &e))?;
    let base_dir = path_for_messages.parent().unwrap_or(Path::new(""));

    let daemon = daemon::build(&src, raw.daemon.as_ref(), base_dir)?;
    let defaults = match &raw.defaults {
        Some(d) => Layer::read(&src, d)?,
        None => Layer::default(),
    };
    // Relations between keys of [defaults] are checked even when no session
    // inherits them yet, so a later added session does not surface old mistakes.
    defaults.finish(&src, &(0..0))?;

    let mut sessions = Vec::new();
    let mut identities = Vec::new();
    let mut warnings = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw_session) in raw.session.map(|l| l.0).unwrap_or_default().iter().enumerate() {
        let settings = session::build(&src, raw_session, i + 1, &seen, &defaults, base_dir, &mut warnings)?;
        seen.insert(settings.name.clone(), raw_session.span().start);
        let (device_id_configured, client_id_configured) =
            (!settings.device_id.is_empty(), !settings.client_id.is_empty());
        if !(device_id_configured && client_id_configured) {
            identities.push(IdentityNeed {
                session: settings.name.clone(),
                device_id_configured,
                client_id_configured,
                file: None,
            });
        }
        sessions.push(settings);
    }
    tools::attach(&src, raw.tool.as_ref(), &mut sessions, base_dir, &mut warnings)?;

    Ok(Config {
        path: path_for_messages.to_path_buf(),
        daemon,
        sessions: sessions.into_iter().map(Arc::new).collect(),
        identities,
        warnings,
    })
}

/// Rewords a toml error into one line at its position.
///
/// serde says "field" where a TOML user says "key"; toml_edit messages can
/// span several lines. Only `message()` is used: `Display` quotes the
/// source line, which could hold a token.
fn toml_error(src: &Source, e: &toml::de::Error) -> ConfigError {
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace("unknown field", "unknown key");
    let offset = e.span().map_or(0, |s| s.start);
    src.error_at(offset, message)
}

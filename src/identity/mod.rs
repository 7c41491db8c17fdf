//! Device identities: what makes each session a distinct device to a
//! xiaozhi server, kept in the state directory so it survives restarts,
//! upgrades and reboots.
//!
//! A session whose config names both `device_id` and `client_id` needs no
//! file: it is the device the config says, a v1 device (no serial number,
//! no activation v2). Any other session gets its identity from
//! `STATE_DIR/identity/NAME.json`, made on first need (`generate`) and
//! written once (`file`): device_id, client_id, serial number and HMAC key
//! (a configured `device_id` or `client_id` still wins over the file's).
//! Those sessions speak activation v2 (`Activation-Version: 2`).
//!
//! `STATE_DIR` is `[daemon] state_dir`, else `$STATE_DIRECTORY` (systemd
//! sets it from `StateDirectory=wsvisor`), else `/var/lib/wsvisor`. There is
//! no fallback to a per-user directory: an identity found in one place by
//! one run and made anew in another by the next would look lost, and a
//! lost identity costs the user a re-binding. A directory that cannot be
//! written is an error at start that names it.
//!
//! The HMAC key never leaves this module except into the session's
//! settings: no log line, `check` line or `ctl` answer shows it.

mod file;
mod generate;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use wsvisor_actors::settings::{ActivationKey, HmacKey, SessionSettings};

use crate::config::{Config, ConfigError, DaemonConfig};

/// Where identities live when nothing else says.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/wsvisor";

/// One device identity. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// A MAC address, lowercase with colons (the `Device-Id` header).
    pub device_id: String,
    /// A UUID (the `Client-Id` header).
    pub client_id: String,
    /// The `Serial-Number` header of activation v2.
    pub serial_number: String,
    /// Signs activation challenges.
    pub hmac_key: HmacKey,
    /// When it was made, RFC 3339.
    pub created_at: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("device_id", &self.device_id)
            .field("client_id", &self.client_id)
            .field("serial_number", &self.serial_number)
            .field("hmac_key", &self.hmac_key)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Why an identity could not be had: `file:line:col: message`, the form of
/// config errors, naming the identity file (or the directory) and never
/// quoting its content.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}:{col}: {problem}", file.display())]
pub struct IdentityError {
    /// The identity file, or the directory that could not be made.
    pub file: PathBuf,
    /// 1-based line (1 when the problem is not at a place in the file).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub problem: IdentityProblem,
}

impl IdentityError {
    /// A problem with `file` as a whole.
    pub fn whole(file: &Path, problem: IdentityProblem) -> Self {
        IdentityError {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            problem,
        }
    }
}

impl From<IdentityError> for ConfigError {
    fn from(err: IdentityError) -> Self {
        ConfigError {
            file: err.file,
            line: err.line,
            col: err.col,
            message: err.problem.to_string(),
        }
    }
}

/// What is wrong with an identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityProblem {
    /// The file exists but cannot be read.
    #[error("identity file cannot be read: {0}; it was left untouched (it is what binds the device to the server)")]
    Unreadable(String),
    /// The file exists but is not a whole identity.
    #[error("identity file is corrupt: {0}; it was left untouched: restore it from a backup of the state directory (it is what binds the device to the server), or move it away to make a new identity, which the server's console must bind again")]
    Corrupt(String),
    /// The identity directory cannot be created.
    #[error("state_dir: cannot create or write this directory: {0}; set [daemon] state_dir to a directory this user can write, or run wsvisor under systemd (StateDirectory=wsvisor provides $STATE_DIRECTORY)")]
    StateDir(String),
    /// A new identity could not be written.
    #[error("cannot write a new identity: {0}")]
    Write(String),
    /// The OS gave no random bytes.
    #[error("cannot make an identity: the OS's random source failed: {0}")]
    Random(String),
    /// Two sessions would be the same device.
    #[error("session {session} would share its {field} with session {other}; two sessions must never be one device: give one of them another identity file (or remove its copy)")]
    Shared {
        /// The session whose file holds the id.
        session: String,
        /// The session that has it too.
        other: String,
        /// `device_id` or `client_id`.
        field: &'static str,
    },
}

/// The state directory: `state_dir` if configured, else the first path of
/// `$STATE_DIRECTORY` (systemd may list several, separated by `:`), else
/// [`DEFAULT_STATE_DIR`].
pub fn state_dir(configured: Option<&Path>, state_directory_env: Option<OsString>) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_path_buf();
    }
    let from_systemd = state_directory_env
        .as_ref()
        .and_then(|v| v.to_str())
        .and_then(|v| v.split(':').find(|p| !p.is_empty()))
        .map(PathBuf::from);
    from_systemd.unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// The identity files of one state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityStore {
    dir: PathBuf,
}

impl IdentityStore {
    /// The identities under `state_dir/identity`.
    pub fn new(state_dir: &Path) -> Self {
        IdentityStore {
            dir: state_dir.join("identity"),
        }
    }

    /// The store of a daemon with this `[daemon]` table, in this environment.
    pub fn for_daemon(daemon: &DaemonConfig) -> Self {
        IdentityStore::new(&state_dir(
            daemon.state_dir.as_deref(),
            std::env::var_os("STATE_DIRECTORY"),
        ))
    }

    /// `STATE_DIR/identity`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `session`.
    pub fn file(&self, session: &str) -> PathBuf {
        self.dir.join(format!("{session}.json"))
    }

    /// The identity of `session`, if it has one already. Never writes.
    pub fn read(&self, session: &str) -> Result<Option<Identity>, IdentityError> {
        file::read(&self.file(session))
    }

    /// The identity of `session`, made and written now if it has none;
    /// true when it was made now.
    pub fn load_or_create(&self, session: &str) -> Result<(Identity, bool), IdentityError> {
        if let Some(identity) = self.read(session)? {
            return Ok((identity, false));
        }
        let created_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let path = self.file(session);
        let fresh = generate::new_identity(created_at)
            .map_err(|e| IdentityError::whole(&path, IdentityProblem::Random(e.to_string())))?;
        if file::write_new(&path, &fresh)? {
            return Ok((fresh, true));
        }
        // Another process wrote one first: that one is the identity.
        let existing = file::read(&path)?.ok_or_else(|| {
            IdentityError::whole(
                &path,
                IdentityProblem::Write("it appeared and vanished while being written".into()),
            )
        })?;
        Ok((existing, false))
    }
}

/// What settling did for one session, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The session.
    pub session: String,
    /// Its identity file.
    pub file: PathBuf,
    /// Made now (else read).
    pub created: bool,
    /// The device id it sends.
    pub device_id: String,
    /// The file's permission bits, when others may read it.
    pub exposed_mode: Option<u32>,
}

/// Give every session that needs one its identity from `store`, making
/// the missing ones, and put it in the session's settings; the sessions
/// that name both ids in the config are left alone. Stops at the first
/// problem, having changed no file but the ones it made.
pub fn settle(config: &mut Config, store: &IdentityStore) -> Result<Vec<Settled>, IdentityError> {
    let mut settled = Vec::new();
    for need in &mut config.identities {
        let (identity, created) = store.load_or_create(&need.session)?;
        let path = store.file(&need.session);
        let Some(settings) = config.sessions.iter_mut().find(|s| s.name == need.session) else {
            continue;
        };
        let settings = Arc::make_mut(settings);
        if !need.device_id_configured {
            settings.device_id = identity.device_id.clone();
        }
        if !need.client_id_configured {
            settings.client_id = identity.client_id.clone();
        }
        settings.activation.key = Some(ActivationKey {
            serial_number: identity.serial_number.clone(),
            hmac_key: identity.hmac_key.clone(),
        });
        need.file = Some(path.clone());
        settled.push(Settled {
            session: need.session.clone(),
            exposed_mode: file::mode(&path).filter(|mode| mode & 0o077 != 0),
            file: path,
            created,
            device_id: settings.device_id.clone(),
        });
    }
    check_unshared(config)?;
    Ok(settled)
}

/// The log lines of a settling: one per identity made (with the backup
/// advice), one per identity read, one per file others may read.
pub fn log(settled: &[Settled]) {
    for done in settled {
        let (session, file, device) = (&done.session, done.file.display(), &done.device_id);
        if done.created {
            let folder = done.file.parent().unwrap_or(Path::new(".")).display();
            log::info!(
                "session={session} identity created file={file} device_id={device}; back up {folder}: its files are what binds the devices to the server"
            );
        } else {
            log::info!("session={session} identity file={file} device_id={device}");
        }
        if let Some(mode) = done.exposed_mode {
            log::warn!("session={session} identity file {file} has mode {mode:04o}: other users may read its HMAC key; chmod 600 it");
        }
    }
}

/// No id that came from a file is another session's too (a copied file).
fn check_unshared(config: &Config) -> Result<(), IdentityError> {
    for need in &config.identities {
        let (Some(path), Some(mine)) = (&need.file, config.session(&need.session)) else {
            continue;
        };
        let from_file = [
            ("device_id", !need.device_id_configured, &mine.device_id),
            ("client_id", !need.client_id_configured, &mine.client_id),
        ];
        for (field, taken_from_file, id) in from_file {
            if !taken_from_file {
                continue;
            }
            let same = |s: &&Arc<SessionSettings>| {
                let theirs = if field == "device_id" {
                    &s.device_id
                } else {
                    &s.client_id
                };
                s.name != mine.name && theirs == id
            };
            if let Some(other) = config.sessions.iter().find(same) {
                let shared = IdentityProblem::Shared {
                    session: mine.name.clone(),
                    other: other.name.clone(),
                    field,
                };
                return Err(IdentityError::whole(path, shared));
            }
        }
    }
    Ok(())
}

/// What `wsvisor check` says about identities, one line each, without
/// writing anything: which files are used and which would be made. A file
/// that exists but is unusable is an error, as at start.
pub fn preview(config: &Config, store: &IdentityStore) -> Result<Vec<String>, IdentityError> {
    let mut lines = Vec::new();
    for need in &config.identities {
        let path = store.file(&need.session);
        let line = match store.read(&need.session)? {
            Some(identity) => format!(
                "session={} identity {} device_id={} serial_number={}",
                need.session,
                path.display(),
                identity.device_id,
                identity.serial_number
            ),
            None => format!(
                "session={} identity {} does not exist yet; `wsvisor run` will create it (a new device, to be bound in the server's console)",
                need.session,
                path.display()
            ),
        };
        lines.push(line);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests;

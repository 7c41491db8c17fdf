//! Where the control socket is when the config leaves it at the default
//! (`/run/wsvisor/control.sock`, which only root or the service's user can
//! create). A daemon run by hand by another user takes
//! `$XDG_RUNTIME_DIR/wsvisor/control.sock` instead, and says so; `ctl`
//! looks there when the default socket does not exist. Any other path,
//! from the config, `--socket` or `$WSVISOR_SOCKET`, is used as given.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};

use crate::config::DEFAULT_CONTROL_SOCKET;

/// The socket the daemon binds, and why when it is not the configured one.
#[derive(Debug, PartialEq, Eq)]
pub struct Chosen {
    /// The path to bind.
    pub path: PathBuf,
    /// A line for the log when the per-user fallback was taken.
    pub note: Option<String>,
}

/// The socket a daemon configured with `configured` binds.
pub fn for_daemon(configured: &Path) -> Chosen {
    let default_dir = default_dir();
    choose_for_daemon(
        configured,
        can_create_in(&default_dir),
        std::env::var_os("XDG_RUNTIME_DIR"),
    )
}

/// The socket a client whose settings say `configured` (from a config or
/// the built-in default) connects to.
pub fn for_client(configured: &Path) -> PathBuf {
    choose_for_client(configured, std::env::var_os("XDG_RUNTIME_DIR"), |p| {
        std::fs::symlink_metadata(p).is_ok()
    })
}

fn default_dir() -> PathBuf {
    Path::new(DEFAULT_CONTROL_SOCKET)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The per-user socket, when `$XDG_RUNTIME_DIR` is an absolute path.
fn per_user(xdg: Option<OsString>) -> Option<PathBuf> {
    let dir = PathBuf::from(xdg?);
    dir.is_absolute().then(|| dir.join("wsvisor").join("control.sock"))
}

/// True when this process can make a socket in `dir`, or make `dir`.
fn can_create_in(dir: &Path) -> bool {
    let wx = AccessFlags::W_OK | AccessFlags::X_OK;
    if dir.exists() {
        access(dir, wx).is_ok()
    } else {
        dir.parent().is_some_and(|parent| access(parent, wx).is_ok())
    }
}

fn choose_for_daemon(configured: &Path, default_dir_writable: bool, xdg: Option<OsString>) -> Chosen {
    let as_configured = Chosen {
        path: configured.to_path_buf(),
        note: None,
    };
    if configured != Path::new(DEFAULT_CONTROL_SOCKET) || default_dir_writable {
        return as_configured;
    }
    match per_user(xdg) {
        Some(path) => Chosen {
            note: Some(format!(
                "control socket: {} is not writable by this user; using {} ($XDG_RUNTIME_DIR) instead",
                default_dir().display(),
                path.display()
            )),
            path,
        },
        None => as_configured,
    }
}

fn choose_for_client(configured: &Path, xdg: Option<OsString>, exists: impl Fn(&Path) -> bool) -> PathBuf {
    if configured != Path::new(DEFAULT_CONTROL_SOCKET) || exists(configured) {
        return configured.to_path_buf();
    }
    match per_user(xdg) {
        Some(path) if exists(&path) => path,
        _ => configured.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XDG: &str = "/run/user/1000";

    fn xdg() -> Option<OsString> {
        Some(XDG.into())
    }

    #[test]
    fn a_daemon_that_cannot_write_the_default_directory_uses_the_per_user_one() {
        let default = Path::new(DEFAULT_CONTROL_SOCKET);
        let chosen = choose_for_daemon(default, false, xdg());
        assert_eq!(chosen.path, Path::new("/run/user/1000/wsvisor/control.sock"));
        assert!(chosen.note.unwrap().contains("/run/wsvisor is not writable"));
        assert_eq!(choose_for_daemon(default, true, xdg()).path, default);
        // No per-user directory: the default, whose error then explains.
        assert_eq!(choose_for_daemon(default, false, None).path, default);
        assert_eq!(choose_for_daemon(default, false, Some("relative".into())).path, default);
    }

    #[test]
    fn a_configured_path_is_never_moved() {
        let mine = Path::new("/srv/wsvisor/control.sock");
        assert_eq!(
            choose_for_daemon(mine, false, xdg()),
            Chosen {
                path: mine.into(),
                note: None
            }
        );
        assert_eq!(choose_for_client(mine, xdg(), |_| false), mine);
    }

    #[test]
    fn a_client_prefers_the_default_socket_and_finds_the_per_user_one() {
        let default = Path::new(DEFAULT_CONTROL_SOCKET);
        let per_user = Path::new("/run/user/1000/wsvisor/control.sock");
        assert_eq!(choose_for_client(default, xdg(), |_| true), default);
        assert_eq!(choose_for_client(default, xdg(), |p| p == per_user), per_user);
        assert_eq!(choose_for_client(default, xdg(), |_| false), default);
        assert_eq!(choose_for_client(default, None, |_| true), default);
    }
}

//! Which control socket `ctl` talks to: `--socket`, else the
//! `daemon.control_socket` of `--config`, else `$WSVISOR_SOCKET`, else the
//! built-in default (or, when that does not exist, the per-user socket
//! under `$XDG_RUNTIME_DIR` that a daemon run by hand uses).
//!
//! Of `--config`, only `control_socket` is read ([`config::control_socket_of`]):
//! never a token file, and nothing else is judged, so a config the daemon
//! would refuse does not keep `ctl` from the daemon (which then reports the
//! file's errors itself, at `reload`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::{self, DEFAULT_CONTROL_SOCKET};
use crate::socket_location;

/// The socket path to use, and a warning for stderr when `--config` could
/// not be read. `env` is the value of `$WSVISOR_SOCKET`, passed in so that
/// tests do not depend on the environment; an empty value counts as unset,
/// as shells make it easy to export one by mistake.
pub fn resolve(socket: Option<&Path>, config: Option<&Path>, env: Option<OsString>) -> (PathBuf, Option<String>) {
    if let Some(socket) = socket {
        return (socket.to_path_buf(), None);
    }
    if let Some(config) = config {
        return match config::control_socket_of(config) {
            Ok(path) => (socket_location::for_client(&path), None),
            Err(why) => {
                let path = socket_location::for_client(Path::new(DEFAULT_CONTROL_SOCKET));
                let warning = format!(
                    "cannot read control_socket from {} ({why}); trying {}",
                    config.display(),
                    path.display()
                );
                (path, Some(warning))
            }
        };
    }
    match env {
        Some(env) if !env.is_empty() => (PathBuf::from(env), None),
        _ => (socket_location::for_client(Path::new(DEFAULT_CONTROL_SOCKET)), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config file in a fresh directory, removed when dropped.
    struct TempConfig(PathBuf, #[allow(dead_code)] tempfile::TempDir);

    impl TempConfig {
        fn new(_tag: &str, text: &str) -> TempConfig {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("config.toml");
            std::fs::write(&path, text).unwrap();
            TempConfig(path, dir)
        }
    }

    #[test]
    fn socket_flag_wins_over_everything() {
        let config = TempConfig::new("flag", "[daemon]\ncontrol_socket = \"/tmp/from-config.sock\"\n");
        let (path, _) = resolve(
            Some(Path::new("/tmp/flag.sock")),
            Some(&config.0),
            Some("/tmp/env.sock".into()),
        );
        assert_eq!(path, Path::new("/tmp/flag.sock"));
    }

    #[test]
    fn socket_flag_wins_even_over_a_broken_config() {
        let (path, warning) = resolve(
            Some(Path::new("/tmp/flag.sock")),
            Some(Path::new("/nonexistent/wsvisor.toml")),
            None,
        );
        assert_eq!(path, Path::new("/tmp/flag.sock"));
        assert_eq!(warning, None);
    }

    #[test]
    fn config_wins_over_env() {
        let config = TempConfig::new("config", "[daemon]\ncontrol_socket = \"/tmp/from-config.sock\"\n");
        let (path, _) = resolve(None, Some(&config.0), Some("/tmp/env.sock".into()));
        assert_eq!(path, Path::new("/tmp/from-config.sock"));
    }

    #[test]
    fn config_without_daemon_table_gives_the_default() {
        let config = TempConfig::new("nodaemon", "");
        let (path, _) = resolve(None, Some(&config.0), Some("/tmp/env.sock".into()));
        assert_eq!(path, socket_location::for_client(Path::new(DEFAULT_CONTROL_SOCKET)));
    }

    #[test]
    fn a_config_the_daemon_would_refuse_still_gives_its_socket() {
        let config = TempConfig::new(
            "bad",
            "[daemon]\ncontrol_socket = \"/tmp/from-config.sock\"\nbogus = 1\n[[session]]\n\
             token_file = \"/nonexistent/k.token\"\n",
        );
        let (path, warning) = resolve(None, Some(&config.0), None);
        assert_eq!(path, Path::new("/tmp/from-config.sock"));
        assert_eq!(warning, None);
    }

    #[test]
    fn a_config_that_cannot_be_read_gives_the_default_with_a_warning() {
        let config = TempConfig::new("broken", "this is not toml\n");
        let (path, warning) = resolve(None, Some(&config.0), Some("/tmp/env.sock".into()));
        assert_eq!(path, socket_location::for_client(Path::new(DEFAULT_CONTROL_SOCKET)));
        let warning = warning.expect("a warning");
        assert!(warning.contains("not valid TOML"), "{warning}");
    }

    #[test]
    fn env_then_default() {
        let default = socket_location::for_client(Path::new(DEFAULT_CONTROL_SOCKET));
        assert_eq!(
            resolve(None, None, Some("/tmp/env.sock".into())).0,
            Path::new("/tmp/env.sock")
        );
        assert_eq!(resolve(None, None, Some("".into())).0, default);
        assert_eq!(resolve(None, None, None).0, default);
    }
}

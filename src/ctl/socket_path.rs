//! Which control socket `ctl` talks to: `--socket`, else the
//! `daemon.control_socket` of `--config`, else `$WSVISOR_SOCKET`, else the
//! built-in default.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::{self, ConfigError, DEFAULT_CONTROL_SOCKET};

/// The socket path to use. `env` is the value of `$WSVISOR_SOCKET`, passed
/// in so that tests do not depend on the environment; an empty value counts
/// as unset, as shells make it easy to export one by mistake.
///
/// The config is loaded (and so fully checked) only when `--socket` does
/// not already decide.
pub fn resolve(socket: Option<&Path>, config: Option<&Path>, env: Option<OsString>) -> Result<PathBuf, ConfigError> {
    if let Some(socket) = socket {
        return Ok(socket.to_path_buf());
    }
    if let Some(config) = config {
        return Ok(config::load(config)?.daemon.control_socket);
    }
    match env {
        Some(env) if !env.is_empty() => Ok(PathBuf::from(env)),
        _ => Ok(PathBuf::from(DEFAULT_CONTROL_SOCKET)),
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
        let path = resolve(
            Some(Path::new("/tmp/flag.sock")),
            Some(&config.0),
            Some("/tmp/env.sock".into()),
        )
        .unwrap();
        assert_eq!(path, Path::new("/tmp/flag.sock"));
    }

    #[test]
    fn socket_flag_wins_even_over_a_broken_config() {
        let path = resolve(
            Some(Path::new("/tmp/flag.sock")),
            Some(Path::new("/nonexistent/wsvisor.toml")),
            None,
        );
        assert_eq!(path.unwrap(), Path::new("/tmp/flag.sock"));
    }

    #[test]
    fn config_wins_over_env() {
        let config = TempConfig::new("config", "[daemon]\ncontrol_socket = \"/tmp/from-config.sock\"\n");
        let path = resolve(None, Some(&config.0), Some("/tmp/env.sock".into())).unwrap();
        assert_eq!(path, Path::new("/tmp/from-config.sock"));
    }

    #[test]
    fn config_without_daemon_table_gives_the_default() {
        let config = TempConfig::new("nodaemon", "");
        let path = resolve(None, Some(&config.0), Some("/tmp/env.sock".into())).unwrap();
        assert_eq!(path, Path::new(DEFAULT_CONTROL_SOCKET));
    }

    #[test]
    fn config_that_does_not_load_is_an_error_with_position() {
        let config = TempConfig::new("bad", "[daemon]\nbogus = 1\n");
        let err = resolve(None, Some(&config.0), Some("/tmp/env.sock".into())).unwrap_err();
        assert_eq!((err.line, err.col), (2, 1), "{err}");
        assert!(err.to_string().starts_with(&config.0.display().to_string()), "{err}");
    }

    #[test]
    fn env_then_default() {
        assert_eq!(
            resolve(None, None, Some("/tmp/env.sock".into())).unwrap(),
            Path::new("/tmp/env.sock")
        );
        assert_eq!(
            resolve(None, None, Some("".into())).unwrap(),
            Path::new(DEFAULT_CONTROL_SOCKET)
        );
        assert_eq!(resolve(None, None, None).unwrap(), Path::new(DEFAULT_CONTROL_SOCKET));
    }
}

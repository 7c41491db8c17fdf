//! What a client (`wsvisor ctl --config`) reads of a config file: the
//! `[daemon] control_socket` key, and nothing else. It never opens a
//! token file and never judges the rest of the file: that is the daemon's
//! job (at start, and at `reload`, which reports a broken file as its own
//! error), so a config with a missing token file or a broken session does
//! not keep `ctl` from a healthy daemon.

use std::path::{Path, PathBuf};

use super::DEFAULT_CONTROL_SOCKET;

/// The control socket that the config at `path` names: relative paths
/// are taken from the config's directory, an absent key gives the default.
/// Err (in words) when the file cannot be read or is not TOML, or the key
/// is not a string.
pub fn control_socket_of(path: &Path) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => err.to_string(),
    })?;
    let table = match toml::from_str::<toml::Table>(&text) {
        Ok(table) => table,
        // A file broken further down (a reload of a half-edited file, say)
        // still names its socket in the lines before the error.
        Err(err) => prefix_before(&text, &err).ok_or_else(|| {
            // The message only: toml's Display quotes the line, which could hold a token.
            format!("not valid TOML: {}", err.message().trim())
        })?,
    };
    let socket = match table.get("daemon").and_then(|daemon| daemon.get("control_socket")) {
        None => return Ok(PathBuf::from(DEFAULT_CONTROL_SOCKET)),
        Some(toml::Value::String(socket)) => socket,
        Some(_) => return Err("[daemon] control_socket is not a string".to_owned()),
    };
    let base = path.parent().unwrap_or(Path::new(""));
    Ok(base.join(socket))
}

/// The table of the lines before the one `err` points at, when they parse
/// and hold a `[daemon]` table.
fn prefix_before(text: &str, err: &toml::de::Error) -> Option<toml::Table> {
    let at = err.span()?.start.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let table: toml::Table = toml::from_str(&text[..line_start]).ok()?;
    table.contains_key("daemon").then_some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn the_socket_is_read_and_nothing_else_is_judged() {
        let (_dir, path) = with(
            "[daemon]\ncontrol_socket = \"/tmp/x.sock\"\nbogus = 1\n[[session]]\nname = \"k\"\n\
             token_file = \"/nonexistent/k.token\"\n",
        );
        assert_eq!(control_socket_of(&path).unwrap(), Path::new("/tmp/x.sock"));
    }

    #[test]
    fn relative_paths_are_the_configs_and_absence_is_the_default() {
        let (dir, path) = with("[daemon]\ncontrol_socket = \"run/c.sock\"\n");
        assert_eq!(control_socket_of(&path).unwrap(), dir.path().join("run/c.sock"));
        let (_dir, path) = with("[defaults]\nping_interval = \"nonsense\"\n");
        assert_eq!(control_socket_of(&path).unwrap(), Path::new(DEFAULT_CONTROL_SOCKET));
    }

    #[test]
    fn unreadable_or_broken_files_say_why_without_quoting_them() {
        assert_eq!(
            control_socket_of(Path::new("/nonexistent/wsvisor.toml")).unwrap_err(),
            "no such file"
        );
        let (_dir, path) =
            with("[daemon]\ncontrol_socket = \"/tmp/a.sock\"\n[[session]]\nname = \"k\"\nthis is not toml\n");
        assert_eq!(
            control_socket_of(&path).unwrap(),
            Path::new("/tmp/a.sock"),
            "the lines before the error"
        );
        let (_dir, path) = with("token = \"s3cr3t\" this is not toml\n");
        let err = control_socket_of(&path).unwrap_err();
        assert!(err.starts_with("not valid TOML"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
        let (_dir, path) = with("[daemon]\ncontrol_socket = 5\n");
        assert!(control_socket_of(&path).unwrap_err().contains("not a string"));
    }
}

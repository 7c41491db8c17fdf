//! Who is listening: before a client sends anything, it checks that the
//! process on the other end of the socket is one a daemon could be. The
//! kernel tells the listener's uid (`SO_PEERCRED` of the connected
//! socket, recorded when it called `listen`); it passes when it is root,
//! the client's own uid, or the owner of the socket's directory when no
//! other user can write that directory. Anyone else who got a socket to
//! that path (by swapping it in a directory others can write) fails,
//! whatever they named it: they are neither root nor us, and the
//! directory is theirs only if it is not private, or not theirs at all.
//!
//! What this file must not do: send or read anything on the connection.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why the listener is not trusted, in words for the error.
pub(super) fn check(path: &Path, listener_uid: u32) -> Result<(), String> {
    let own_uid = nix::unistd::geteuid().as_raw();
    if listener_uid == 0 || listener_uid == own_uid {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let meta = std::fs::metadata(dir).map_err(|err| format!("cannot look at {}: {err}", dir.display()))?;
    judge(dir, meta.uid(), meta.mode(), listener_uid)
}

fn judge(dir: &Path, owner: u32, mode: u32, listener_uid: u32) -> Result<(), String> {
    if owner == listener_uid && mode & 0o022 == 0 {
        return Ok(());
    }
    let whose = if owner == listener_uid {
        format!(
            "its directory {} is uid {owner}'s but other users can write it (mode {:04o})",
            dir.display(),
            mode & 0o7777
        )
    } else {
        format!("its directory {} belongs to uid {owner}", dir.display())
    };
    Err(format!(
        "the process listening there runs as uid {listener_uid}, which is not root, not you, and \
         not the daemon's user by the socket's directory ({whose}); not sending anything: \
         someone may have replaced the socket"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_of_a_private_directory_is_the_daemon() {
        let dir = Path::new("/run/wsvisor");
        assert_eq!(judge(dir, 997, 0o40750, 997), Ok(()));
        assert_eq!(judge(dir, 997, 0o40700, 997), Ok(()));
    }

    #[test]
    fn a_stranger_listening_is_refused() {
        let dir = Path::new("/run/wsvisor");
        // A private directory of the daemon's user; someone else listens.
        let err = judge(dir, 997, 0o40750, 1001).unwrap_err();
        assert!(err.contains("uid 1001") && err.contains("belongs to uid 997"), "{err}");
        // /tmp: anyone may create a socket there.
        assert!(judge(Path::new("/tmp"), 0, 0o41777, 1001).is_err());
        // A directory the listener owns but that others may write.
        let err = judge(Path::new("/srv/x"), 1001, 0o40777, 1001).unwrap_err();
        assert!(err.contains("other users can write it (mode 0777)"), "{err}");
    }

    #[test]
    fn root_and_ourselves_need_no_directory() {
        assert_eq!(check(Path::new("/nonexistent/dir/control.sock"), 0), Ok(()));
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(check(Path::new("/nonexistent/dir/control.sock"), me), Ok(()));
    }
}

//! The directory the control socket lives in, judged before anything is
//! created in it: a missing one is made 0750; one that another user can
//! write is refused, unless it is sticky (like /tmp), where nobody else
//! can remove or rename what we put there. In a directory another user
//! could write, they could swap the socket for a symlink or their own
//! socket between our `bind` and any later look at the path.
//!
//! It must not touch the socket file itself: that is `socket_file`'s job.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::socket_file::ClaimError;

/// Mode of a directory we create for the socket: the group (the daemon's
/// users' group) may enter, others not.
pub const CREATED_DIR_MODE: u32 = 0o750;

/// How far the directory can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirTrust {
    /// Only root and the daemon's own user can change what is in it.
    Private,
    /// Others may create entries, but the sticky bit keeps them from
    /// removing or renaming ours: a socket there is safe once it is ours,
    /// and anything already there must be ours too.
    Sticky,
}

/// Makes sure `dir` exists (creating it 0750 when missing) and judges it
/// for a daemon running as `own_uid`.
pub fn prepare(dir: &Path, own_uid: u32) -> Result<DirTrust, ClaimError> {
    let io_error = |source: io::Error| ClaimError::Io {
        path: dir.to_owned(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(CREATED_DIR_MODE)
            .create(dir)
            .map_err(io_error)?;
        log::info!(
            "created the control socket's directory {} mode={CREATED_DIR_MODE:04o}",
            dir.display()
        );
    }
    // Followed, since /var/run -> /run and the like are ordinary.
    let meta = std::fs::metadata(dir).map_err(io_error)?;
    judge(dir, meta.is_dir(), meta.uid(), meta.permissions().mode(), own_uid)
}

/// The rule itself, apart from the file system so that tests can try every case.
fn judge(dir: &Path, is_dir: bool, owner: u32, mode: u32, own_uid: u32) -> Result<DirTrust, ClaimError> {
    let unsafe_dir = |why: String| ClaimError::UnsafeDirectory {
        dir: dir.to_owned(),
        why,
    };
    if !is_dir {
        return Err(unsafe_dir("is not a directory".into()));
    }
    if owner != 0 && owner != own_uid {
        return Err(unsafe_dir(format!(
            "belongs to uid {owner}, another user, who could replace the socket; \
             use a directory owned by root or by uid {own_uid}"
        )));
    }
    if mode & 0o022 == 0 {
        return Ok(DirTrust::Private);
    }
    if mode & 0o1000 != 0 {
        return Ok(DirTrust::Sticky);
    }
    Err(unsafe_dir(format!(
        "can be written by other users (mode {:04o}) and is not sticky, so they could replace the socket; \
         chmod go-w it, or use a directory only the daemon's user can write",
        mode & 0o7777
    )))
}

/// The directory of a socket path ("." for a bare file name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(owner: u32, mode: u32, own: u32) -> Result<DirTrust, String> {
        judge(Path::new("/d"), true, owner, mode, own).map_err(|e| e.to_string())
    }

    #[test]
    fn private_directories_of_root_or_ourselves_are_trusted() {
        assert_eq!(verdict(0, 0o755, 997), Ok(DirTrust::Private));
        assert_eq!(verdict(997, 0o750, 997), Ok(DirTrust::Private));
        assert_eq!(verdict(0, 0o700, 0), Ok(DirTrust::Private));
    }

    #[test]
    fn sticky_shared_directories_are_trusted_as_sticky() {
        assert_eq!(verdict(0, 0o1777, 1000), Ok(DirTrust::Sticky));
        assert_eq!(verdict(1000, 0o1770, 1000), Ok(DirTrust::Sticky));
    }

    #[test]
    fn writable_by_others_or_owned_by_another_user_is_refused() {
        let err = verdict(0, 0o777, 0).unwrap_err();
        assert!(err.contains("can be written by other users (mode 0777)"), "{err}");
        let err = verdict(0, 0o775, 0).unwrap_err();
        assert!(err.contains("mode 0775"), "{err}");
        let err = verdict(1001, 0o755, 1000).unwrap_err();
        assert!(err.contains("belongs to uid 1001"), "{err}");
        // Sticky does not help when the owner is the stranger: the owner of
        // a sticky directory may still remove anything in it.
        assert!(verdict(1001, 0o1777, 0).is_err());
        assert!(judge(Path::new("/d"), false, 0, 0o755, 0).is_err());
    }
}

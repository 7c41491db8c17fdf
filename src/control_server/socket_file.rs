//! The control socket's file: claimed at start (a stale file from a crash
//! is replaced, a live daemon's socket never), created with `socket_mode`
//! and a deep backlog, and removed on clean exit if it is still ours.
//!
//! Race-free: the socket is bound and given its mode in a private
//! directory, then linked into place, so no `chmod` ever goes through the
//! path, which another user might have turned into a symlink, and the
//! process's umask is never touched. The daemon's uid is the process's, never
//! read back from whatever is at the path. The directory is judged first
//! (`socket_dir`).

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixSocket, UnixStream};

use super::socket_dir::{self, DirTrust};

/// Connections waiting to be accepted; 1,000 clients may arrive at once.
const BACKLOG: u32 = 4096;

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another process is listening on it.
    #[error(
        "control socket {} is in use by {}; not taking it over",
        path.display(),
        match pid { Some(pid) => format!("process {pid} (another wsvisor?)"), None => "another process".to_owned() }
    )]
    InUse {
        /// The socket path.
        path: PathBuf,
        /// The listening process, when the kernel tells.
        pid: Option<i32>,
    },
    /// Something other than a socket is there; it is left alone.
    #[error("control socket {}: exists and is not a socket; not replacing it", path.display())]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },
    /// The directory would let another user swap the socket.
    #[error("control socket directory {}: {why}; not creating the socket there", dir.display())]
    UnsafeDirectory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// In a shared (sticky) directory, something of another user's is at the path.
    #[error(
        "control socket {}: belongs to uid {uid}, not to this daemon (uid {own_uid}); not touching it",
        path.display()
    )]
    NotOurs {
        /// The socket path.
        path: PathBuf,
        /// Whose it is.
        uid: u32,
        /// Our uid.
        own_uid: u32,
    },
    /// No directory, no permission, and the like.
    #[error("control socket {}: {source}{}", path.display(), hint(source))]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

impl ClaimError {
    /// True when the config must change before a start can succeed
    /// (restarting cannot help): the daemon exits 2 for these.
    pub fn is_config_problem(&self) -> bool {
        matches!(self, ClaimError::UnsafeDirectory { .. })
    }
}

/// What to do about a permission error, for people running by hand.
fn hint(source: &io::Error) -> &'static str {
    if source.kind() == io::ErrorKind::PermissionDenied {
        "; run as root, or set [daemon] control_socket to a path this user can write \
         (with the default path and $XDG_RUNTIME_DIR set, $XDG_RUNTIME_DIR/wsvisor/control.sock is used)"
    } else {
        ""
    }
}

/// The bound socket; dropping it removes the file if it is still ours.
pub struct SocketFile {
    path: PathBuf,
    inode: u64,
    owner_uid: u32,
}

impl SocketFile {
    /// Our effective uid (the process's, which created the file).
    pub fn owner_uid(&self) -> u32 {
        self.owner_uid
    }

    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        // A newer daemon may have replaced a file we believed stale: leave theirs alone.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Claim `path` and listen on it with file mode `mode`.
pub async fn bind(path: &Path, mode: u32) -> Result<(UnixListener, SocketFile), ClaimError> {
    let io_error = |source: io::Error| ClaimError::Io {
        path: path.to_owned(),
        source,
    };
    let own_uid = nix::unistd::geteuid().as_raw();
    let trust = socket_dir::prepare(&socket_dir::parent_of(path), own_uid)?;
    claim(path, trust, own_uid).await?;
    let socket = UnixSocket::new_stream().map_err(io_error)?;
    let listener = listen_with_mode(socket, path, mode & 0o777).map_err(io_error)?;
    // What is at the path now is ours: the directory lets nobody else
    // replace it. Checked anyway, without following a link.
    let meta = std::fs::symlink_metadata(path).map_err(io_error)?;
    if !meta.file_type().is_socket() || meta.uid() != own_uid {
        return Err(ClaimError::NotOurs {
            path: path.to_owned(),
            uid: meta.uid(),
            own_uid,
        });
    }
    if meta.mode() & 0o777 != mode & 0o777 {
        log::warn!(
            "control socket {} has mode {:04o}, not socket_mode {:04o}",
            path.display(),
            meta.mode() & 0o777,
            mode & 0o777
        );
    }
    Ok((
        listener,
        SocketFile {
            path: path.to_owned(),
            inode: meta.ino(),
            owner_uid: own_uid,
        },
    ))
}

/// Bind `socket` at `path` with file mode `mode` and listen, never going through a
/// path another user could have replaced, and without the umask (which is
/// the whole process's: changing it, even for an instant, would take bits
/// from files other threads create meanwhile).
///
/// The socket is bound in a fresh private directory beside `path` (0700,
/// ours: nobody else can put a link there), given its mode there, then
/// hard-linked to `path` once it listens (so nobody finds it there
/// refusing connections and takes it for stale). `link` never replaces: if something appeared at
/// `path` since it was claimed (another daemon starting at the same
/// instant), this fails with "file exists" instead of taking it over.
fn listen_with_mode(socket: UnixSocket, path: &Path, mode: u32) -> io::Result<UnixListener> {
    let private = tempfile::Builder::new()
        .prefix(".wsvisor-")
        .tempdir_in(socket_dir::parent_of(path))?;
    // Short, so the detour stays within sun_path's 108 bytes whenever the
    // socket's own name is ("control.sock" is as long as ".wsvisor-XXXXXX/s").
    let staged = private.path().join("s");
    socket.bind(&staged)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
    let listener = socket.listen(BACKLOG)?;
    std::fs::hard_link(&staged, path)?;
    // Dropping `private` removes the staged name and the directory.
    Ok(listener)
}

/// Make sure nothing lives at `path`: remove a stale socket, refuse a live
/// one, and in a shared directory anything that is not ours.
async fn claim(path: &Path, trust: DirTrust, own_uid: u32) -> Result<(), ClaimError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ClaimError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ClaimError::NotASocket { path: path.to_owned() });
    }
    if trust == DirTrust::Sticky && meta.uid() != own_uid {
        return Err(ClaimError::NotOurs {
            path: path.to_owned(),
            uid: meta.uid(),
            own_uid,
        });
    }
    match UnixStream::connect(path).await {
        Ok(stream) => {
            let pid = stream.peer_cred().ok().and_then(|cred| cred.pid());
            Err(ClaimError::InUse {
                path: path.to_owned(),
                pid,
            })
        }
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            log::warn!(
                "replacing stale control socket {} left by a previous run",
                path.display()
            );
            std::fs::remove_file(path).map_err(|source| ClaimError::Io {
                path: path.to_owned(),
                source,
            })
        }
        Err(source) => Err(ClaimError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".wsvisor-"))
            .collect()
    }

    #[tokio::test]
    async fn the_socket_gets_exactly_its_mode_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        // 0666 has bits any usual umask (022, 027, 077) would take away.
        let _listener = listen_with_mode(UnixSocket::new_stream().unwrap(), &path, 0o666).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o666);
        UnixStream::connect(&path).await.expect("listening at its path");
        assert!(leftovers(dir.path()).is_empty(), "the staging directory is gone");
    }

    #[tokio::test]
    async fn whatever_appeared_at_the_path_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        std::fs::write(&path, "someone else's").unwrap();
        let err = listen_with_mode(UnixSocket::new_stream().unwrap(), &path, 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "someone else's");
        assert!(leftovers(dir.path()).is_empty());
    }
}

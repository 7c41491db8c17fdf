//! The control socket's file: claimed at start (a stale file from a crash
//! is replaced, a live daemon's socket never), created with `socket_mode`
//! and a deep backlog, and removed on clean exit if it is still ours.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixSocket, UnixStream};

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
    /// No directory, no permission, and the like.
    #[error("control socket {}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// The bound socket; dropping it removes the file if it is still ours.
pub struct SocketFile {
    path: PathBuf,
    inode: u64,
    owner_uid: u32,
}

impl SocketFile {
    /// Our effective uid: the owner of the socket file we just created.
    pub fn owner_uid(&self) -> u32 {
        self.owner_uid
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
    claim(path).await?;
    // systemd's RuntimeDirectory= makes the directory; by hand, nobody has.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::create_dir_all(dir).map_err(io_error)?;
    }
    let socket = UnixSocket::new_stream().map_err(io_error)?;
    socket.bind(path).map_err(io_error)?;
    let listener = socket.listen(BACKLOG).map_err(io_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_error)?;
    let meta = std::fs::symlink_metadata(path).map_err(io_error)?;
    Ok((
        listener,
        SocketFile {
            path: path.to_owned(),
            inode: meta.ino(),
            owner_uid: meta.uid(),
        },
    ))
}

/// Make sure nothing lives at `path`: remove a stale socket, refuse a live one.
async fn claim(path: &Path) -> Result<(), ClaimError> {
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

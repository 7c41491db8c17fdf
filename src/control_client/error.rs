//! Why a conversation with the daemon gave no answer, sorted by what it
//! means for a caller (and for `ctl`'s exit code): nobody there or nobody
//! answering ([`ClientError::daemon_unreachable`]), or a conversation that
//! broke or an answer that was an error.

use std::io;
use std::path::PathBuf;

use crate::protocol::ErrorCode;

/// Why a request gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed: no socket, nobody listening, no permission.
    #[error("{}", unreachable(path, source))]
    Unreachable {
        /// The socket.
        path: PathBuf,
        /// What `connect` said.
        #[source]
        source: io::Error,
    },
    /// The process listening on the socket is not one a daemon could be
    /// (not root, not us, not the owner of the socket's private directory).
    #[error("not talking to {}: {why}", path.display())]
    Untrusted {
        /// The socket.
        path: PathBuf,
        /// The listener's uid, as the kernel tells.
        uid: u32,
        /// Why it is not trusted.
        why: String,
    },
    /// Connected, but the connection ended or stayed silent before the first answer.
    #[error("the daemon on {} {why}", path.display())]
    NoAnswer {
        /// The socket.
        path: PathBuf,
        /// What happened.
        #[source]
        why: NoAnswer,
    },
    /// The daemon had answered before, and now did not within the timeout.
    #[error("the daemon did not answer in time")]
    TimedOut,
    /// Reading or writing failed after the daemon had answered before.
    #[error("reading from the daemon: {}", os_message(.0))]
    Io(#[source] io::Error),
    /// The daemon closed the connection while an answer was awaited.
    #[error("the daemon closed the connection")]
    Closed,
    /// A line that is not a response (or not the one awaited).
    #[error("the daemon sent {what}: {}", shorten(line))]
    Unreadable {
        /// What was wrong with it.
        what: &'static str,
        /// The line (or its beginning).
        line: String,
    },
    /// A response to another request.
    #[error("the daemon answered id {got} to request {id}")]
    WrongId {
        /// The id it carried.
        got: String,
        /// The id awaited.
        id: u64,
    },
    /// The daemon answered with an error.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// A result that does not have the shape of the command's result type.
    #[error("the daemon's answer to `{cmd}` has an unexpected shape: {source}")]
    Shape {
        /// The command.
        cmd: &'static str,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// True when no daemon could be reached, none answered at all, or the
    /// listener is not one we trust: `ctl` exits 3 for these, and 1 for
    /// the rest.
    pub fn daemon_unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. } | ClientError::NoAnswer { .. } | ClientError::Untrusted { .. }
        )
    }
}

/// How a connected daemon failed to give its first answer.
#[derive(Debug, thiserror::Error)]
pub enum NoAnswer {
    /// It closed the connection.
    #[error("closed the connection without answering")]
    Closed,
    /// It stayed silent for the whole timeout.
    #[error("did not answer in time")]
    TimedOut,
    /// The request could not be written (the daemon closed first).
    #[error("refused the request: {0}")]
    Refused(#[source] io::Error),
    /// Reading failed.
    #[error("failed before answering: {}", os_message(.0))]
    Failed(#[source] io::Error),
}

/// An error the daemon answered with. The code stays as received, so a
/// code that a newer daemon added still reaches the person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DaemonError {
    /// Machine-readable, e.g. `not_found`.
    pub code: String,
    /// For people.
    pub message: String,
}

impl DaemonError {
    /// The code, when it is one of the contract's.
    pub fn code(&self) -> Option<ErrorCode> {
        self.code.parse().ok()
    }
}

fn unreachable(path: &std::path::Path, source: &io::Error) -> String {
    let path = path.display();
    let why = os_message(source);
    match source.kind() {
        io::ErrorKind::PermissionDenied => {
            format!("not allowed to connect to {path} ({why}); run as root or as a user in the socket's group")
        }
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            format!("no daemon answers on {path} ({why}); is wsvisor running? (systemctl status wsvisor)")
        }
        _ => format!("cannot connect to {path} ({why}); is wsvisor running? (systemctl status wsvisor)"),
    }
}

/// `No such file or directory` rather than `No such file or directory (os error 2)`.
fn os_message(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// At most 200 characters of a line, for error messages.
fn shorten(line: &str) -> String {
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}

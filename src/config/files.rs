//! The files a session names, looked at once at load time.
//!
//! The daemon reads `token_file` again at every connection attempt, but a
//! missing or unreadable file is almost always a mistake worth reporting
//! from `wsvisor check` rather than as a connection failure minutes later.

use std::fs;
use std::io;
use std::path::Path;

/// What was learned about a token file. Its content is not kept.
#[derive(Debug)]
pub(super) struct TokenFileState {
    /// Permission bits, on systems that have them.
    pub mode: Option<u32>,
    /// Nothing but whitespace in it (yet).
    pub empty: bool,
}

/// Why a token file cannot be used; its words go into the config error.
#[derive(Debug, thiserror::Error)]
pub(super) enum TokenFileError {
    /// It cannot be looked at.
    #[error("{}", reason(.0))]
    Metadata(#[source] io::Error),
    /// It is a directory.
    #[error("is a directory, expected a file")]
    Directory,
    /// The connections' reader refused it (its words).
    #[error("{0}")]
    Read(String),
    /// More than one line: not a token.
    #[error("holds more than one line (line {0} is the second); a token file holds the token alone")]
    MultiLine(usize),
}

/// Why a file cannot be used, in words for a message.
fn reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Checks that `path` is a readable regular file; returns its permission bits.
fn readable_file(path: &Path) -> Result<Option<u32>, TokenFileError> {
    let meta = fs::metadata(path).map_err(TokenFileError::Metadata)?;
    if meta.is_dir() {
        return Err(TokenFileError::Directory);
    }
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        Some(meta.permissions().mode() & 0o7777)
    };
    #[cfg(not(unix))]
    let mode = None;
    Ok(mode)
}

/// Reads the token file once to prove it can be read, then forgets the token.
pub(super) fn inspect_token_file(path: &Path) -> Result<TokenFileState, TokenFileError> {
    use wsvisor_actors::settings::{read_token_file, CredentialError, MAX_TOKEN_FILE_BYTES};
    let mode = readable_file(path)?;
    // The same bounded read that connections use, so `check` sees what they will.
    let empty = match read_token_file(path) {
        Ok(_) => false,
        // Being rewritten, say: connections retry until it holds a token.
        Err(CredentialError::Empty(_)) => true,
        Err(CredentialError::MultiLine { line, .. }) => return Err(TokenFileError::MultiLine(line)),
        Err(CredentialError::Unreadable { why, .. }) => return Err(TokenFileError::Read(why)),
        Err(CredentialError::NotRegularFile(_)) => return Err(TokenFileError::Read("is not a regular file".into())),
        Err(CredentialError::TooLarge(_)) => {
            return Err(TokenFileError::Read(format!(
                "is larger than {MAX_TOKEN_FILE_BYTES} bytes"
            )))
        }
    };
    Ok(TokenFileState { mode, empty })
}

/// A warning when other users can read or write the token file.
///
/// Read bits leak the token; write bits let another user swap it. Execute
/// bits alone do neither, so they are let through.
pub(super) fn exposure_warning(session: &str, path: &Path, mode: u32) -> Option<String> {
    let what = if mode & 0o044 != 0 {
        "readable"
    } else if mode & 0o022 != 0 {
        "writable"
    } else {
        return None;
    };
    Some(format!(
        "session={session} token_file {} is {what} by other users (mode {:04o}); chmod 600 it",
        path.display(),
        mode & 0o777
    ))
}

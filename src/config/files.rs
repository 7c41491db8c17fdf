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

/// Why a file cannot be used, in words for a message.
fn reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Checks that `path` is a readable regular file; returns its permission bits.
fn readable_file(path: &Path) -> Result<Option<u32>, String> {
    let meta = fs::metadata(path).map_err(|e| reason(&e))?;
    if meta.is_dir() {
        return Err("is a directory, expected a file".into());
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
pub(super) fn inspect_token_file(path: &Path) -> Result<TokenFileState, String> {
    use wsvisor_actors::settings::{read_token_file, CredentialError};
    let mode = readable_file(path)?;
    // The same bounded read that connections use, so `check` sees what they will.
    let empty = match read_token_file(path) {
        Ok(_) => false,
        // Being rewritten, say: connections retry until it holds a token.
        Err(CredentialError::Empty(_)) => true,
        Err(CredentialError::MultiLine { line, .. }) => {
            return Err(format!(
                "holds more than one line (line {line} is the second); a token file holds the token alone"
            ))
        }
        Err(CredentialError::Unreadable { why, .. }) => return Err(why),
        Err(other) => return Err(other.to_string()),
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

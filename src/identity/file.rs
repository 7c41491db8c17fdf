//! One identity file, `STATE_DIR/identity/NAME.json`: read with a size cap
//! and checked, or written once, atomically, never over an existing one.
//!
//! Writing: a temporary file in the same directory (mode 0600), the JSON,
//! fsync, then a link to the final name that fails if the name exists
//! (`persist_noclobber`), then fsync of the directory: after a crash the
//! file is either absent or whole, and a file that appeared meanwhile (a
//! second daemon on the same directory) is kept, not replaced.
//!
//! Reading never repairs: a file that is not whole JSON of the expected
//! shape is an error naming it (with the line and column where JSON says
//! so), and it is left exactly as it is. It is what binds a device to the
//! server: a silent new identity would cost the user a re-binding.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};
use wsvisor_actors::settings::HmacKey;

use super::{Identity, IdentityError, IdentityProblem};

/// The file format this version writes and reads.
const FORMAT: u32 = 1;

/// Largest identity file read; a real one is about 300 bytes.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Longest id, serial number or key taken from a file (they travel in
/// HTTP headers).
const MAX_FIELD_CHARS: usize = 256;

/// The file's JSON. Unknown keys are ignored, so a newer wsvisor may add some.
#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    device_id: String,
    client_id: String,
    serial_number: String,
    hmac_key: String,
    #[serde(default)]
    created_at: String,
}

/// The identity in `path`; `None` when there is no such file.
pub(super) fn read(path: &Path) -> Result<Option<Identity>, IdentityError> {
    let corrupt = |why: String| IdentityError::whole(path, IdentityProblem::Corrupt(why));
    let unreadable = |e: io::Error| IdentityError::whole(path, IdentityProblem::Unreadable(e.to_string()));
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        // A missing directory on the way (ENOTDIR: a file where a
        // directory should be) means no identity yet; making one says why.
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::errno::Errno::ENOTDIR as i32) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(unreadable(e)),
    };
    if !meta.is_file() {
        return Err(corrupt("not a regular file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(corrupt(format!(
            "{} bytes long; an identity file is a few hundred",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| IdentityError {
        file: path.to_path_buf(),
        line: e.line().max(1),
        col: e.column().max(1),
        problem: IdentityProblem::Corrupt(json_problem(&e)),
    })?;
    if stored.format != FORMAT {
        return Err(corrupt(format!(
            "format {} is not {FORMAT}, the one this wsvisor reads (written by another version?)",
            stored.format
        )));
    }
    for (key, value) in [
        ("device_id", &stored.device_id),
        ("client_id", &stored.client_id),
        ("serial_number", &stored.serial_number),
        ("hmac_key", &stored.hmac_key),
    ] {
        let fits = !value.is_empty()
            && value.chars().count() <= MAX_FIELD_CHARS
            && value.bytes().all(|b| b.is_ascii_graphic());
        if !fits {
            // Never the value: it may be the key.
            return Err(corrupt(format!(
                "`{key}` must be 1 to {MAX_FIELD_CHARS} visible ASCII characters"
            )));
        }
    }
    Ok(Some(Identity {
        device_id: stored.device_id,
        client_id: stored.client_id,
        serial_number: stored.serial_number,
        hmac_key: HmacKey::new(stored.hmac_key),
        created_at: stored.created_at,
    }))
}

/// What is wrong, in words that never quote the file's content (serde's
/// "invalid type" messages quote the value, which may be the key).
fn json_problem(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let text = e.to_string();
    let words = text.split(" at line ").next().unwrap_or_default();
    match e.classify() {
        Category::Eof => "it ends early (a truncated file?)".into(),
        Category::Syntax => "it is not valid JSON".into(),
        Category::Data if words.starts_with("missing field") => words.replace("field", "key"),
        Category::Data => "a key holds a value of the wrong type".into(),
        Category::Io => words.to_owned(),
    }
}

/// Write `identity` to `path` unless a file is there already: true when
/// written, false when one existed (and was left alone).
pub(super) fn write_new(path: &Path, identity: &Identity) -> Result<bool, IdentityError> {
    let failed = |e: io::Error| IdentityError::whole(path, IdentityProblem::Write(e.to_string()));
    let dir = path.parent().unwrap_or(Path::new("."));
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| IdentityError::whole(dir, IdentityProblem::StateDir(e.to_string())))?;
    let stored = Stored {
        format: FORMAT,
        device_id: identity.device_id.clone(),
        client_id: identity.client_id.clone(),
        serial_number: identity.serial_number.clone(),
        hmac_key: identity.hmac_key.expose().to_owned(),
        created_at: identity.created_at.clone(),
    };
    let mut text = serde_json::to_string_pretty(&stored).map_err(|e| failed(io::Error::other(e)))?;
    text.push('\n');
    // A directory this user may not write is the state_dir problem, said so.
    let mut temp = tempfile::Builder::new()
        .prefix(".identity-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => IdentityError::whole(dir, IdentityProblem::StateDir(e.to_string())),
            _ => failed(e),
        })?;
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(failed)?;
    temp.write_all(text.as_bytes()).map_err(failed)?;
    temp.as_file().sync_all().map_err(failed)?;
    match temp.persist_noclobber(path) {
        Ok(_) => {}
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(failed(e.error)),
    }
    // The new name is durable only once the directory is.
    File::open(dir).and_then(|d| d.sync_all()).map_err(failed)?;
    Ok(true)
}

/// The file's permission bits.
pub(super) fn mode(path: &Path) -> Option<u32> {
    fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
}

//! `[daemon]`: the control socket and daemon-wide behaviour.

use std::path::{Path, PathBuf};

use toml::{Spanned, Value};

use super::access;
use super::position::{ConfigError, Source};
use super::raw::RawDaemon;
use super::value::{self, At};
use super::{DaemonConfig, OnGiveUp, DEFAULT_CONTROL_SOCKET, DEFAULT_SOCKET_MODE};

/// `sun_path` holds 108 bytes including the terminating NUL on Linux; a
/// longer path would only fail at bind time, far from the config.
const MAX_SOCKET_PATH: usize = 107;

/// Events waiting for one subscriber, in bytes: far above what a reader
/// keeping up ever has waiting, far below what would hurt the daemon.
pub const DEFAULT_SUBSCRIBER_BUFFER: usize = 8 << 20;

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            socket_mode: DEFAULT_SOCKET_MODE,
            allowed_uids: Vec::new(),
            allowed_groups: Vec::new(),
            metrics_listen: None,
            log_level: log::LevelFilter::Info,
            on_give_up: OnGiveUp::Park,
            subscriber_buffer: DEFAULT_SUBSCRIBER_BUFFER,
            state_dir: None,
        }
    }
}

/// Checks `[daemon]`; absent keys take their built-in defaults.
pub(super) fn build(src: &Source, raw: Option<&RawDaemon>, base_dir: &Path) -> Result<DaemonConfig, ConfigError> {
    let mut daemon = DaemonConfig::default();
    let Some(raw) = raw else { return Ok(daemon) };

    if let Some(v) = &raw.control_socket {
        let path = value::plain_string(src, "control_socket", v)?;
        let resolved = base_dir.join(&path.value);
        let len = resolved.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(src.error(
                &path.span,
                format!(
                    "control_socket: {} is {len} bytes long; a Unix socket path must be at most {MAX_SOCKET_PATH} bytes",
                    resolved.display()
                ),
            ));
        }
        daemon.control_socket = resolved;
    }
    if let Some(v) = &raw.socket_mode {
        daemon.socket_mode = socket_mode(src, v)?.value;
    }
    if let Some(list) = &raw.allowed_uids {
        daemon.allowed_uids = list
            .get_ref()
            .0
            .iter()
            .map(|uid| value::integer(src, "allowed_uids", uid, 0, u32::MAX.into()).map(|n| n.value as u32))
            .collect::<Result<_, _>>()?;
    }
    if let Some(list) = &raw.allowed_groups {
        daemon.allowed_groups = list
            .get_ref()
            .0
            .iter()
            .map(|group| access::group(src, group))
            .collect::<Result<_, _>>()?;
    }
    if let Some(v) = &raw.metrics_listen {
        daemon.metrics_listen = Some(access::listen_address(src, v)?);
    }
    if let Some(v) = &raw.log_level {
        use log::LevelFilter::*;
        let levels = [
            ("off", Off),
            ("error", Error),
            ("warn", Warn),
            ("info", Info),
            ("debug", Debug),
            ("trace", Trace),
        ];
        daemon.log_level = value::choice(src, "log_level", v, &levels)?.value;
    }
    if let Some(v) = &raw.on_give_up {
        let options = [("park", OnGiveUp::Park), ("exit", OnGiveUp::Exit)];
        daemon.on_give_up = value::choice(src, "on_give_up", v, &options)?.value;
    }
    if let Some(v) = &raw.subscriber_buffer {
        daemon.subscriber_buffer = value::byte_size(src, "subscriber_buffer", v, 64 << 10, 1 << 30)?.value;
    }
    if let Some(v) = &raw.state_dir {
        let dir = value::plain_string(src, "state_dir", v)?;
        daemon.state_dir = Some(base_dir.join(&dir.value));
    }
    Ok(daemon)
}

/// An octal mode string: `"0660"`, `"660"` or `"0o660"`.
///
/// A TOML integer is refused on purpose: `socket_mode = 660` would be
/// decimal, and `0o660` cannot be told apart from a decimal 432 after parsing.
fn socket_mode(src: &Source, v: &Spanned<Value>) -> Result<At<u32>, ConfigError> {
    const EXPECTED: &str = "socket_mode: expected an octal mode string such as \"0660\"";
    let s = match v.get_ref() {
        Value::String(s) => s,
        Value::Integer(_) => {
            return Err(src.error(&v.span(), format!("{EXPECTED}, found an integer (write it in quotes)")))
        }
        other => return Err(src.error(&v.span(), format!("{EXPECTED}, found {}", value::kind(other)))),
    };
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let mode = if !digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        u32::from_str_radix(digits, 8).ok()
    } else {
        None
    };
    match mode {
        Some(mode) if mode <= 0o777 => Ok(At {
            value: mode,
            span: v.span(),
        }),
        Some(_) => Err(src.error(
            &v.span(),
            format!("socket_mode: {s:?} sets special bits; expected permission bits only, at most \"0777\""),
        )),
        None => Err(src.error(&v.span(), format!("{EXPECTED}, found {s:?}"))),
    }
}

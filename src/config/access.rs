//! The `[daemon]` keys that say who reaches the daemon besides its
//! control socket's uid rules: `allowed_groups` (group names or gids) and
//! `metrics_listen` (an address for Prometheus). Only checked here; group
//! names are resolved by the daemon when it starts, since the groups of the
//! machine it runs on are not those of the machine `wsvisor check` ran on.

use std::fmt;
use std::net::SocketAddr;

use toml::{Spanned, Value};

use super::position::{ConfigError, Source};
use super::value;

/// One entry of `allowed_groups`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRef {
    /// A group name, looked up in the group database at start.
    Name(String),
    /// A numeric gid.
    Gid(u32),
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupRef::Name(name) => f.write_str(name),
            GroupRef::Gid(gid) => write!(f, "{gid}"),
        }
    }
}

/// Longest group name accepted (glibc and shadow's limit is 32).
const MAX_GROUP_NAME: usize = 32;

/// A group name (a string of the usual group-name characters) or a gid.
pub(super) fn group(src: &Source, v: &Spanned<Value>) -> Result<GroupRef, ConfigError> {
    const KEY: &str = "allowed_groups";
    match v.get_ref() {
        Value::Integer(_) => {
            let gid = value::integer(src, KEY, v, 0, u32::MAX.into())?;
            Ok(GroupRef::Gid(gid.value as u32))
        }
        Value::String(name) => {
            let valid = !name.is_empty()
                && name.len() <= MAX_GROUP_NAME
                && !name.starts_with('-')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$'));
            if valid {
                Ok(GroupRef::Name(name.clone()))
            } else {
                Err(src.error(
                    &v.span(),
                    format!(
                        "{KEY}: {:?} is not a group name (letters, digits, '_', '-', '.', at most {MAX_GROUP_NAME})",
                        name.chars().take(40).collect::<String>()
                    ),
                ))
            }
        }
        other => Err(src.error(
            &v.span(),
            format!("{KEY}: expected a group name or a gid, found {}", value::kind(other)),
        )),
    }
}

/// `"127.0.0.1:9464"` or `"[::1]:9464"`: an IP address and a port.
pub(super) fn listen_address(src: &Source, v: &Spanned<Value>) -> Result<SocketAddr, ConfigError> {
    const KEY: &str = "metrics_listen";
    let text = value::string(src, KEY, v)?;
    text.value.parse().map_err(|_| {
        src.error(
            &v.span(),
            format!(
                "{KEY}: expected an IP address and port such as \"127.0.0.1:9464\", found {:?}",
                text.value.chars().take(60).collect::<String>()
            ),
        )
    })
}

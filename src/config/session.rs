//! One `[[session]]`: identity, endpoint, credential, and its tunables.

use std::collections::HashMap;
use std::path::Path;

use toml::Spanned;
use wsvisor_actors::mcp::McpSettings;
use wsvisor_actors::settings::{Credential, OtaSettings, SessionSettings, TlsSettings};

use super::files;
use super::position::{ConfigError, Source};
use super::raw::RawSession;
use super::tunables::Layer;
use super::value::{self, At};

/// Protocol versions xiaozhi servers know (the `Protocol-Version` header).
const PROTOCOL_VERSIONS: (i64, i64) = (1, 3);

/// Checks one session against `defaults` (already read) and the built-ins.
///
/// `number` is 1-based, for messages about a session that has no name.
/// `taken` maps the names of earlier sessions to the offsets of their headers.
/// Warnings are prefixed `session=NAME` like the daemon's log lines.
pub(super) fn build(
    src: &Source,
    raw: &Spanned<RawSession>,
    number: usize,
    taken: &HashMap<String, usize>,
    defaults: &Layer,
    base_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<SessionSettings, ConfigError> {
    let header = raw.span();
    let s = raw.get_ref();

    let name = match &s.name {
        Some(v) => session_name(src, v)?,
        None => {
            let why = "every [[session]] needs a unique name matching [a-z0-9_-]{1,32}";
            return Err(src.error(&header, format!("session #{number} has no `name`; {why}")));
        }
    };
    if let Some(first) = taken.get(&name.value) {
        let line = src.line_of(*first);
        return Err(src.error(
            &name.span,
            format!(
                "name: duplicate session name {:?}; the session at line {line} already uses it",
                name.value
            ),
        ));
    }
    let n = name.value.as_str();
    let missing = |key: &str, hint: &str| src.error(&header, format!("session {n:?}: missing `{key}`{hint}"));

    let ota = match &s.ota_url {
        Some(v) => {
            let ota = value::plain_string(src, "ota_url", v)?;
            check_url(
                &ota.value,
                &["http://", "https://"],
                "http://127.0.0.1:8003/xiaozhi/ota/",
            )
            .map_err(|why| src.error(&ota.span, format!("ota_url: {why}")))?;
            Some(OtaSettings { url: ota.value })
        }
        None => None,
    };
    let tls = tls_settings(src, s, n, base_dir, warnings)?;

    // With an OTA endpoint, url and token may be learnt there; explicit ones win.
    let url = match &s.url {
        Some(v) => {
            let url = value::string(src, "url", v)?;
            check_url(&url.value, &["ws://", "wss://"], "ws://127.0.0.1:8000/xiaozhi/v1/")
                .map_err(|why| src.error(&url.span, format!("url: {why}")))?;
            Some(url.value)
        }
        None if ota.is_some() => None,
        None => {
            return Err(missing(
                "url",
                ", such as url = \"ws://127.0.0.1:8000/xiaozhi/v1/\" (or ota_url to learn it)",
            ))
        }
    };

    let credential = match (&s.token, &s.token_file) {
        (Some(token), Some(file)) => {
            // Point at whichever of the two comes second: that is the one added by mistake.
            let later = if token.span().start > file.span().start {
                token
            } else {
                file
            };
            return Err(src.error(
                &later.span(),
                "`token` and `token_file` are exclusive; set only one of them",
            ));
        }
        (Some(token), None) => Some(Credential::Token(value::plain_string(src, "token", token)?.value)),
        (None, Some(file)) => {
            let file = value::plain_string(src, "token_file", file)?;
            let path = base_dir.join(&file.value);
            let state = files::inspect_token_file(&path)
                .map_err(|why| src.error(&file.span, format!("token_file: cannot read {}: {why}", path.display())))?;
            if let Some(warning) = state.mode.and_then(|mode| files::exposure_warning(n, &path, mode)) {
                warnings.push(warning);
            }
            if state.empty {
                warnings.push(format!(
                    "session={n} token_file {} is empty; connections will fail until it holds a token",
                    path.display()
                ));
            }
            Some(Credential::TokenFile(path))
        }
        (None, None) if ota.is_some() => None,
        (None, None) => {
            warnings.push(format!(
                "session={n} has no token, token_file or ota_url: it connects without an Authorization header, \
                 which only a server with authentication off accepts"
            ));
            None
        }
    };

    // Absent ids come from the state directory (`crate::identity`); `""`
    // until then, which `plain_string` never lets a configured one be.
    let device_id = match &s.device_id {
        Some(v) => value::plain_string(src, "device_id", v)?.value,
        None => String::new(),
    };
    let client_id = match &s.client_id {
        Some(v) => value::plain_string(src, "client_id", v)?.value,
        None => String::new(),
    };
    let protocol_version = match &s.protocol_version {
        Some(v) => value::integer(src, "protocol_version", v, PROTOCOL_VERSIONS.0, PROTOCOL_VERSIONS.1)?.value as u32,
        None => 1,
    };
    let autostart = match &s.autostart {
        Some(v) => value::boolean(src, "autostart", v)?.value,
        None => true,
    };

    let tunables = Layer::read(src, &s.tunables())?.over(defaults).finish(src, &header)?;

    Ok(SessionSettings {
        name: name.value.clone(),
        url,
        credential,
        ota,
        tls,
        device_id,
        client_id,
        protocol_version,
        activation: Default::default(),
        autostart,
        audio_params: tunables.audio_params,
        liveness: tunables.liveness,
        connect_timeout: tunables.connect_timeout,
        hello_timeout: tunables.hello_timeout,
        keep: tunables.keep,
        queue: tunables.queue,
        limits: tunables.limits,
        reconnect: tunables.reconnect,
        // Its config tools are added once every [[tool]] is read.
        mcp: McpSettings {
            mode: tunables.mcp,
            tools: Vec::new(),
        },
    })
}

/// `ca_file` (checked the way connections will load it) and `tls_insecure`.
fn tls_settings(
    src: &Source,
    s: &RawSession,
    name: &str,
    base_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<TlsSettings, ConfigError> {
    let ca_file = match &s.ca_file {
        Some(v) => {
            let file = value::plain_string(src, "ca_file", v)?;
            let path = base_dir.join(&file.value);
            wsvisor_actors::client::check_ca_file(&path).map_err(|why| src.error(&file.span, why.to_string()))?;
            Some(path)
        }
        None => None,
    };
    let insecure = match &s.tls_insecure {
        Some(v) => value::boolean(src, "tls_insecure", v)?.value,
        None => false,
    };
    if insecure {
        warnings.push(format!(
            "session={name} tls_insecure = true: the server's TLS certificate is NOT verified"
        ));
    }
    if insecure && ca_file.is_some() {
        warnings.push(format!("session={name} ca_file has no effect with tls_insecure = true"));
    }
    Ok(TlsSettings { ca_file, insecure })
}

/// `[a-z0-9_-]{1,32}`: safe in log fields, metric labels and file names.
fn session_name(src: &Source, v: &Spanned<toml::Value>) -> Result<At<String>, ConfigError> {
    let name = value::string(src, "name", v)?;
    let valid = (1..=32).contains(&name.value.len())
        && name
            .value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        return Err(src.error(
            &name.span,
            format!(
                "name: {:?} is not a valid session name; expected 1 to 32 characters from a-z, 0-9, _ and -",
                name.value
            ),
        ));
    }
    Ok(name)
}

/// Checks that `url` has one of `schemes` and a host, with a numeric port if any.
///
/// Deliberately small: the connector parses the URL for real; this only
/// catches what is certainly wrong, early and with a position.
fn check_url(url: &str, schemes: &[&str], example: &str) -> Result<(), String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} contains spaces or control characters"));
    }
    let expected = || {
        format!(
            "expected a {} URL such as {example:?}, found {url:?}",
            schemes.join(" or ")
        )
    };
    let rest = schemes
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or_else(expected)?;
    if rest.contains('#') {
        return Err(format!("{url:?} has a #fragment, which a request URL cannot carry"));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("{url:?} has an unclosed [ in its host"))?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| format!("{url:?} has an invalid host"))?,
                ),
            ),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host; {}", expected()));
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("{url:?} has an invalid port {port:?}; expected 1 to 65535"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn urls() {
        let ws = |u| check_url(u, &["ws://", "wss://"], "ws://h/");
        assert!(ws("ws://127.0.0.1:8000/xiaozhi/v1/").is_ok());
        assert!(ws("wss://example.com/xiaozhi/v1/?a=b").is_ok());
        assert!(ws("ws://[::1]:8000/").is_ok());
        assert!(ws("ws://user:pw@host").is_ok());
        assert!(ws("ws://host").is_ok());
        assert!(ws("http://host/")
            .unwrap_err()
            .contains("expected a ws:// or wss:// URL"));
        assert!(ws("ws:///path").unwrap_err().contains("has no host"));
        assert!(ws("ws://:80/").unwrap_err().contains("has no host"));
        assert!(ws("ws://h:99999/").unwrap_err().contains("invalid port"));
        assert!(ws("ws://h:x/").unwrap_err().contains("invalid port"));
        assert!(ws("ws://[::1/").unwrap_err().contains("unclosed"));
        assert!(ws("ws://h/#x").unwrap_err().contains("fragment"));
        assert!(ws("ws://h /").unwrap_err().contains("spaces"));
        assert!(ws("WS://h/").is_err());
    }
}

//! Strings a peer chooses, made safe for a log line: a server picks the
//! session_id, message types, close reasons, HTTP status lines, OTA fields
//! and URLs, and a newline in any of them would forge a whole journald line
//! with a priority of its choosing. Every such value goes through
//! [`value`] (an unquoted `key=value` when harmless, quoted and escaped
//! otherwise) or [`quoted`], both capped in length; URLs go through
//! [`redact_url`] first, so credentials in them are never shown.

use std::fmt;

use awc::http::Uri;

/// Default cap, in characters, for identifiers (session_id, type, code).
pub const ID_CAP: usize = 128;
/// Default cap, in characters, for free text (reasons, error texts).
pub const TEXT_CAP: usize = 256;

/// A peer-chosen string, printed safely: as is when it is a short run of
/// printable ASCII without quotes, `=` or backslashes, else quoted with
/// every control character escaped. At most `cap` characters are shown.
#[derive(Clone, Copy)]
pub struct Safe<'a> {
    text: &'a str,
    cap: usize,
    always_quote: bool,
}

/// `key={value(x)}`: bare when harmless, quoted and escaped otherwise.
pub fn value(text: &str) -> Safe<'_> {
    Safe {
        text,
        cap: ID_CAP,
        always_quote: false,
    }
}

/// `reason={quoted(x)}`: always quoted and escaped, capped at [`TEXT_CAP`].
pub fn quoted(text: &str) -> Safe<'_> {
    Safe {
        text,
        cap: TEXT_CAP,
        always_quote: true,
    }
}

impl<'a> Safe<'a> {
    /// The same, capped at `cap` characters instead.
    pub fn capped(mut self, cap: usize) -> Safe<'a> {
        self.cap = cap;
        self
    }

    fn is_bare(&self) -> bool {
        !self.always_quote
            && !self.text.is_empty()
            && self.text.chars().count() <= self.cap
            && self
                .text
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'=' | b'\\'))
    }
}

impl fmt::Display for Safe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_bare() {
            return f.write_str(self.text);
        }
        f.write_str("\"")?;
        for (shown, (at, c)) in self.text.char_indices().enumerate() {
            if shown == self.cap {
                let rest = self.text.len() - at;
                return write!(f, "\"…(+{rest} bytes)");
            }
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if needs_escape(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

/// C0 and C1 controls, DEL, and the Unicode format characters that reorder
/// or hide text on a terminal (bidi overrides, zero-width joiners, BOM).
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Query parameters whose values are credentials.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "key", "auth", "pass", "secret", "sig", "cred", "session"]
        .iter()
        .any(|word| name.contains(word))
}

/// A URL as it may be shown: user and password in the authority, and the
/// values of query parameters that look like credentials (`token`,
/// `access_token`, `key`, `password`, …), replaced by `***`. A URL that
/// does not parse is not shown at all.
pub fn redact_url(url: &str) -> String {
    let Ok(uri) = url.parse::<Uri>() else {
        return "<unparsable url>".to_owned();
    };
    let mut shown = String::with_capacity(url.len());
    if let Some(scheme) = uri.scheme_str() {
        shown.push_str(scheme);
        shown.push_str("://");
    }
    if let Some(authority) = uri.authority() {
        match authority.as_str().rsplit_once('@') {
            Some((_, host)) => {
                shown.push_str("***@");
                shown.push_str(host);
            }
            None => shown.push_str(authority.as_str()),
        }
    }
    shown.push_str(uri.path());
    if let Some(query) = uri.query() {
        shown.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                shown.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) if is_secret_param(name) => {
                    shown.push_str(name);
                    shown.push_str("=***");
                }
                _ => shown.push_str(pair),
            }
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmless_values_stay_bare_and_the_rest_is_quoted_and_escaped() {
        assert_eq!(value("abc-123_x.y").to_string(), "abc-123_x.y");
        assert_eq!(value("").to_string(), "\"\"");
        assert_eq!(value("a b").to_string(), "\"a b\"");
        let forged = "x\n<0>session=kitchen gave up";
        let shown = value(forged).to_string();
        assert!(!shown.contains('\n'), "{shown}");
        assert_eq!(shown, "\"x\\n<0>session=kitchen gave up\"");
        assert_eq!(value("\u{1b}[2J\u{9b}").to_string(), "\"\\u{1b}[2J\\u{9b}\"");
        assert_eq!(value("a\u{202e}b").to_string(), "\"a\\u{202e}b\"");
        assert_eq!(quoted("ok").to_string(), "\"ok\"");
        assert_eq!(quoted("say \"hi\"\\").to_string(), "\"say \\\"hi\\\"\\\\\"");
    }

    #[test]
    fn long_values_are_capped_with_what_was_left_out() {
        let long = "a".repeat(300);
        let shown = value(&long).to_string();
        assert_eq!(shown, format!("\"{}\"…(+172 bytes)", "a".repeat(ID_CAP)));
        assert_eq!(quoted(&long).capped(4).to_string(), "\"aaaa\"…(+296 bytes)");
        // Characters, not bytes, are counted, and a cut never splits one.
        assert_eq!(quoted("认证失败").capped(2).to_string(), "\"认证\"…(+6 bytes)");
        assert_eq!(value(&"b".repeat(ID_CAP)).to_string(), "b".repeat(ID_CAP));
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_url("wss://user:pa55@example.com:8000/xiaozhi/v1/?token=abc&device-id=aa"),
            "wss://***@example.com:8000/xiaozhi/v1/?token=***&device-id=aa"
        );
        assert_eq!(
            redact_url("ws://h/x?access_token=1&Authorization=2&client_key=3&a=4"),
            "ws://h/x?access_token=***&Authorization=***&client_key=***&a=4"
        );
        assert_eq!(
            redact_url("ws://127.0.0.1:8000/xiaozhi/v1/"),
            "ws://127.0.0.1:8000/xiaozhi/v1/"
        );
        assert_eq!(redact_url("ws://h/\n"), "<unparsable url>");
    }
}

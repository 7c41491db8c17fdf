//! Turning one spanned TOML value into a checked Rust value.
//!
//! Every message starts with the key and says what was expected. A wrong
//! type is described by its kind only ("found an integer"), never by its
//! content, so that a misplaced token cannot end up in an error.

use std::ops::Range;
use std::time::Duration;

use toml::{Spanned, Value};

use super::position::{ConfigError, Source};

/// A checked value and where it was written, for later cross-checks.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct At<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// Longer durations are surely typos, and would overflow the `Instant`
/// arithmetic of timers long before they were useful.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

const DURATION_EXAMPLES: &str = "such as \"250ms\", \"20s\" or \"5m\"";

/// "a string", "an integer", ... for "found ..." in messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn at<T>(value: T, spanned: &Spanned<Value>) -> At<T> {
    At {
        value,
        span: spanned.span(),
    }
}

/// Any string.
pub(super) fn string(src: &Source, key: &str, v: &Spanned<Value>) -> Result<At<String>, ConfigError> {
    match v.get_ref() {
        Value::String(s) => Ok(at(s.clone(), v)),
        other => Err(src.error(&v.span(), format!("{key}: expected a string, found {}", kind(other)))),
    }
}

/// A string that ends up in an HTTP header or a path: not blank, no control characters.
///
/// The content is never quoted back, because `token` goes through here too.
pub(super) fn plain_string(src: &Source, key: &str, v: &Spanned<Value>) -> Result<At<String>, ConfigError> {
    let s = string(src, key, v)?;
    if s.value.trim().is_empty() {
        return Err(src.error(&s.span, format!("{key}: must not be empty")));
    }
    if s.value.chars().any(char::is_control) {
        return Err(src.error(
            &s.span,
            format!("{key}: must not contain control characters such as newlines or tabs"),
        ));
    }
    Ok(s)
}

/// `true` or `false`.
pub(super) fn boolean(src: &Source, key: &str, v: &Spanned<Value>) -> Result<At<bool>, ConfigError> {
    match v.get_ref() {
        Value::Boolean(b) => Ok(at(*b, v)),
        other => Err(src.error(
            &v.span(),
            format!("{key}: expected true or false, found {}", kind(other)),
        )),
    }
}

/// An integer within `min..=max`.
pub(super) fn integer(src: &Source, key: &str, v: &Spanned<Value>, min: i64, max: i64) -> Result<At<i64>, ConfigError> {
    let expected = format!("{key}: expected an integer from {min} to {max}");
    match v.get_ref() {
        Value::Integer(n) if (min..=max).contains(n) => Ok(at(*n, v)),
        Value::Integer(n) => Err(src.error(&v.span(), format!("{expected}, found {n}"))),
        other => Err(src.error(&v.span(), format!("{expected}, found {}", kind(other)))),
    }
}

/// A finite number; integers are accepted since `multiplier = 2` is natural to write.
pub(super) fn number(src: &Source, key: &str, v: &Spanned<Value>) -> Result<At<f64>, ConfigError> {
    let n = match v.get_ref() {
        Value::Float(f) => *f,
        Value::Integer(i) => *i as f64,
        other => return Err(src.error(&v.span(), format!("{key}: expected a number, found {}", kind(other)))),
    };
    if !n.is_finite() {
        return Err(src.error(&v.span(), format!("{key}: expected a finite number, found {n}")));
    }
    Ok(at(n, v))
}

/// A humantime duration string, at most [`MAX_DURATION`]; zero allowed.
pub(super) fn duration(src: &Source, key: &str, v: &Spanned<Value>) -> Result<At<Duration>, ConfigError> {
    let text = match v.get_ref() {
        Value::String(s) => s,
        other => {
            return Err(src.error(
                &v.span(),
                format!(
                    "{key}: expected a duration string {DURATION_EXAMPLES}, found {}",
                    kind(other)
                ),
            ))
        }
    };
    let d = humantime::parse_duration(text.trim()).map_err(|_| {
        src.error(
            &v.span(),
            format!("{key}: invalid duration {text:?}: expected a number with a unit {DURATION_EXAMPLES}"),
        )
    })?;
    if d > MAX_DURATION {
        return Err(src.error(&v.span(), format!("{key}: {text:?} is too long; at most 365d")));
    }
    Ok(at(d, v))
}

/// A byte size: a string such as `"64KiB"`, `"1MiB"`, `"1.5 MB"`, or a
/// plain integer of bytes; within `min..=max`.
pub(super) fn byte_size(
    src: &Source,
    key: &str,
    v: &Spanned<Value>,
    min: u64,
    max: u64,
) -> Result<At<usize>, ConfigError> {
    let bytes = match v.get_ref() {
        Value::Integer(n) => u64::try_from(*n).ok(),
        Value::String(text) => text.trim().parse::<bytesize::ByteSize>().ok().map(|size| size.as_u64()),
        other => {
            return Err(src.error(
                &v.span(),
                format!(
                    "{key}: expected a size such as \"64KiB\" or \"1MiB\", found {}",
                    kind(other)
                ),
            ))
        }
    };
    let Some(bytes) = bytes else {
        return Err(src.error(
            &v.span(),
            format!("{key}: invalid size: expected a number with a unit such as \"64KiB\" or \"1MiB\""),
        ));
    };
    if !(min..=max).contains(&bytes) {
        let (min, max) = (bytesize::ByteSize(min), bytesize::ByteSize(max));
        return Err(src.error(&v.span(), format!("{key}: must be between {min} and {max}")));
    }
    Ok(at(bytes as usize, v))
}

/// A duration where zero makes no sense.
pub(super) fn positive_duration(src: &Source, key: &str, v: &Spanned<Value>) -> Result<At<Duration>, ConfigError> {
    let d = duration(src, key, v)?;
    if d.value.is_zero() {
        return Err(src.error(&d.span, format!("{key}: must be greater than 0s")));
    }
    Ok(d)
}

/// A duration where `"0s"` means "never" (`None`).
pub(super) fn optional_duration(
    src: &Source,
    key: &str,
    v: &Spanned<Value>,
) -> Result<At<Option<Duration>>, ConfigError> {
    let d = duration(src, key, v)?;
    Ok(At {
        value: Some(d.value).filter(|d| !d.is_zero()),
        span: d.span,
    })
}

/// One of a fixed set of strings, ignoring ASCII case (`log_level = "INFO"` is common).
pub(super) fn choice<T: Clone>(
    src: &Source,
    key: &str,
    v: &Spanned<Value>,
    options: &[(&str, T)],
) -> Result<At<T>, ConfigError> {
    let names: Vec<String> = options.iter().map(|(name, _)| format!("{name:?}")).collect();
    let expected = match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    match v.get_ref() {
        Value::String(s) => options
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, value)| at(value.clone(), v))
            .ok_or_else(|| src.error(&v.span(), format!("{key}: expected {expected}, found {s:?}"))),
        other => Err(src.error(&v.span(), format!("{key}: expected {expected}, found {}", kind(other)))),
    }
}

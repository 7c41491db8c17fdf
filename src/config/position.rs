//! Where in the file a problem is, and the error that says so.
//!
//! toml reports byte offsets; people and editors want 1-based line and
//! column, so every error is converted here, in one place.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration problem, located in the file it came from.
///
/// `Display` gives `file:line:col: message`, the form `wsvisor check`
/// prints and editors understand. Messages never contain a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file, as it was named to `load` or `parse`.
    pub file: PathBuf,
    /// 1-based line of the offending key or value.
    pub line: usize,
    /// 1-based column, counted in characters, of the offending key or value.
    pub col: usize,
    /// What is wrong and what is expected instead.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// The text being checked, so that byte spans can become positions.
#[derive(Clone, Copy)]
pub(super) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    /// An error pointing at the start of `span`.
    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> ConfigError {
        self.error_at(span.start, message)
    }

    /// An error pointing at byte `offset`.
    pub fn error_at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, col) = line_col(self.text, offset);
        ConfigError {
            file: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    /// The 1-based line of byte `offset`, for messages that refer to another place.
    pub fn line_of(&self, offset: usize) -> usize {
        line_col(self.text, offset).0
    }
}

/// 1-based line and character column of byte `offset` in `text`.
///
/// Offsets past the end or inside a character are clamped so a slightly
/// off span from a parser still yields a usable position, never a panic.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let mut col = before[line_start..].chars().count() + 1;
    // An editor does not show a byte order mark, so it must not shift column numbers.
    if line_start == 0 && before.starts_with('\u{feff}') {
        col -= 1;
    }
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "ab\ncdé = 1\r\nxy";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 1), (1, 2));
        assert_eq!(line_col(text, 3), (2, 1));
        // 'é' is two bytes, one column.
        assert_eq!(line_col(text, 8), (2, 5));
        assert_eq!(line_col(text, text.len() - 1), (3, 2));
        assert_eq!(line_col(text, text.len()), (3, 3));
        assert_eq!(line_col(text, 10_000), (3, 3));
        // Inside a multi-byte character: clamp back to its start.
        assert_eq!(line_col(text, 6), (2, 3));
        assert_eq!(line_col("\u{feff}[x]", 3), (1, 1));
    }

    #[test]
    fn display_is_file_line_col_message() {
        let src = Source {
            path: Path::new("/etc/wsvisor.toml"),
            text: "a\nbc = 1\n",
        };
        let e = src.error(&(4..5), "bad");
        assert_eq!(e.to_string(), "/etc/wsvisor.toml:2:3: bad");
    }
}

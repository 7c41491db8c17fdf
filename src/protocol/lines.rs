//! Reading request lines with a hard length limit. A line over the limit
//! is skipped up to its newline and reported, never buffered whole, so a
//! client cannot make the daemon hold more than the limit per connection.
//! Cancel-safe: all progress lives in the reader, so a `select!` that
//! drops `next` loses nothing.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// What the next read produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, newline (and a `\r` before it) removed.
    Complete(Vec<u8>),
    /// A line longer than the limit, now skipped.
    TooLong,
    /// The peer closed its side.
    End,
}

/// Lines of one connection.
pub struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    overflowed: bool,
    limit: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// Lines of `inner`, each at most `limit` bytes.
    pub fn new(inner: R, limit: usize) -> Self {
        LineReader {
            inner: BufReader::new(inner),
            line: Vec::new(),
            overflowed: false,
            limit,
        }
    }

    /// The next line.
    pub async fn next(&mut self) -> io::Result<Line> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                // A last line without its newline still counts.
                return Ok(match (self.overflowed, self.line.is_empty()) {
                    (true, _) => self.finish(),
                    (false, true) => Line::End,
                    (false, false) => self.finish(),
                });
            }
            let (chunk, newline) = match available.iter().position(|b| *b == b'\n') {
                Some(at) => (&available[..at], true),
                None => (available, false),
            };
            if !self.overflowed {
                if self.line.len() + chunk.len() > self.limit {
                    self.overflowed = true;
                    self.line = Vec::new();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            let used = chunk.len() + usize::from(newline);
            self.inner.consume(used);
            if newline {
                return Ok(self.finish());
            }
        }
    }

    fn finish(&mut self) -> Line {
        if std::mem::take(&mut self.overflowed) {
            return Line::TooLong;
        }
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Line::Complete(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], limit: usize) -> Vec<Line> {
        let mut reader = LineReader::new(input, limit);
        let mut out = Vec::new();
        loop {
            match reader.next().await.unwrap() {
                Line::End => return out,
                line => out.push(line),
            }
        }
    }

    #[actix_rt::test]
    async fn splits_lines_and_skips_overlong_ones() {
        let got = lines(b"short\r\n0123456789abc\nok\nlast", 10).await;
        assert_eq!(
            got,
            vec![
                Line::Complete(b"short".to_vec()),
                Line::TooLong,
                Line::Complete(b"ok".to_vec()),
                Line::Complete(b"last".to_vec())
            ]
        );
    }

    #[actix_rt::test]
    async fn an_overlong_line_is_not_kept_in_memory() {
        let mut input = vec![b'x'; 5 * 1024 * 1024];
        input.push(b'\n');
        let mut reader = LineReader::new(&input[..], 1024);
        assert_eq!(reader.next().await.unwrap(), Line::TooLong);
        assert!(
            reader.line.capacity() <= 1024 + 8192,
            "kept {} bytes",
            reader.line.capacity()
        );
    }
}

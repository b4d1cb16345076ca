//! The byte level of batch reading: large reads, cut into whole JSON values.
//!
//! A batch file is read in chunks of a megabyte. The group reader in `read`
//! steps through the file's outer structure (brackets, commas, keys) with
//! `peek`/`bump`, and `value` cuts out each fact (or other value) whole, so it
//! can be parsed from a slice, which serde_json does several times faster than
//! from a reader. Only the value being cut is held, never the whole file.
//!
//! While cutting, it enforces Glean's nesting limit: folly parses batches at
//! a recursion limit of 500 (serde_json's own is 128, so that one is lifted).
//! It also counts lines, so that an error found inside a cut value can name
//! its place in the file (`Position::relocate`). It never interprets a value:
//! a malformed one is cut as far as its brackets go and left to the parser.

use std::io::{self, Read};

/// Glean's JSON recursion limit.
pub const MAX_DEPTH: u32 = 500;

/// Bytes read at a time; the buffer grows beyond it only for a larger value.
const CHUNK: usize = 1 << 20;

/// The error a too-deep document produces.
#[derive(Debug, thiserror::Error)]
#[error("JSON nested deeper than {MAX_DEPTH} levels (Glean's parser limit)")]
pub struct TooDeep;

/// Why scanning stopped.
#[derive(Debug)]
pub enum ScanError {
    /// Reading failed.
    Io(io::Error),
    /// Brackets nest deeper than `MAX_DEPTH`, at this place.
    TooDeep(Position),
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Io(e)
    }
}

/// A place in the file as serde_json reports it: 1-based line, column =
/// bytes before it on its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Bytes before this place on its line.
    pub column: usize,
}

impl Position {
    /// Turns a position inside a value cut at `self` into a position in the file.
    pub fn relocate(self, line: usize, column: usize) -> Position {
        match line {
            0 | 1 => Position { line: self.line, column: self.column + column },
            _ => Position { line: self.line + line - 1, column },
        }
    }
}

/// A value cut out of the file, and where it starts.
pub struct Cut<'a> {
    /// The value's bytes (up to the end of the file if it never closes).
    pub bytes: &'a [u8],
    /// Where its first byte is.
    pub at: Position,
    /// The byte after a number or literal (none at the end of the input):
    /// the parser looks at it to see where the token ends.
    pub next: Option<u8>,
}

/// Reads a batch in chunks and hands out whole values.
pub struct Scanner<R> {
    reader: R,
    buf: Vec<u8>,
    /// Next unread byte of `buf`.
    pos: usize,
    /// End of the bytes read into `buf`.
    end: usize,
    eof: bool,
    /// Line of `pos`, and where that line starts relative to `buf` (before it when negative).
    line: usize,
    line_start: isize,
}

/// Where `value` is inside a string or container, so that it can resume after a read.
#[derive(Default)]
struct CutState {
    /// Bytes of the value scanned so far.
    len: usize,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl<R: Read> Scanner<R> {
    /// Scans `reader` from its start.
    pub fn new(reader: R) -> Self {
        Scanner { reader, buf: vec![0; CHUNK], pos: 0, end: 0, eof: false, line: 1, line_start: 0 }
    }

    /// Where the next byte is.
    pub fn position(&self) -> Position {
        Position { line: self.line, column: (self.pos as isize - self.line_start) as usize }
    }

    /// Where serde_json reports an error about the byte `peek` returned: just
    /// after it, or at the end of the input when there was none.
    pub fn peek_position(&self) -> Position {
        let here = self.position();
        if self.pos < self.end { Position { column: here.column + 1, ..here } } else { here }
    }

    /// Skips whitespace and returns the next byte, without consuming it; `None` at the end.
    pub fn peek(&mut self) -> io::Result<Option<u8>> {
        loop {
            while self.pos < self.end {
                match self.buf[self.pos] {
                    b' ' | b'\t' | b'\r' => self.pos += 1,
                    b'\n' => {
                        self.pos += 1;
                        self.line += 1;
                        self.line_start = self.pos as isize;
                    }
                    b => return Ok(Some(b)),
                }
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Consumes the byte `peek` returned (never a newline).
    pub fn bump(&mut self) {
        self.pos += 1;
    }

    /// Cuts out the value starting at the cursor (after `peek`), inside
    /// containers nested `depth` deep, and moves past it.
    pub fn value(&mut self, depth: u32) -> Result<Cut<'_>, ScanError> {
        let at = self.position();
        let (len, scalar) = match self.buf[self.pos] {
            b'"' | b'[' | b'{' => (self.cut_nested(depth, at)?, false),
            b'-' | b'0'..=b'9' => (self.cut_scalar(is_number_byte)?, true),
            b'a'..=b'z' | b'A'..=b'Z' => (self.cut_scalar(|b| b.is_ascii_alphanumeric())?, true),
            // Not a value: one byte, so the parser says "expected value" right there.
            _ => (1, false),
        };
        let start = self.pos;
        self.consume(len);
        let next = if scalar { self.buf[..self.end].get(self.pos).copied() } else { None };
        Ok(Cut { bytes: &self.buf[start..start + len], at, next })
    }

    /// Length of the string, array or object at the cursor.
    fn cut_nested(&mut self, depth: u32, at: Position) -> Result<usize, ScanError> {
        let mut st = CutState::default();
        loop {
            if let Some(len) = self.scan(&mut st, depth, at)? {
                return Ok(len);
            }
            if !self.fill()? {
                return Ok(st.len);
            }
        }
    }

    /// Scans on from `st`; `Some(len)` once the value closes.
    fn scan(&mut self, st: &mut CutState, depth: u32, at: Position) -> Result<Option<usize>, ScanError> {
        let bytes = &self.buf[self.pos..self.end];
        while st.len < bytes.len() {
            if st.in_string {
                if st.escaped {
                    st.escaped = false;
                    st.len += 1;
                    continue;
                }
                // Strings are most of a batch: jump to the next quote or backslash.
                let Some(i) = memchr::memchr2(b'"', b'\\', &bytes[st.len..]) else {
                    st.len = bytes.len();
                    break;
                };
                st.len += i + 1;
                if bytes[st.len - 1] == b'\\' {
                    st.escaped = true;
                } else {
                    st.in_string = false;
                    if st.depth == 0 {
                        return Ok(Some(st.len));
                    }
                }
                continue;
            }
            match bytes[st.len] {
                b'"' => st.in_string = true,
                b'[' | b'{' => {
                    st.depth += 1;
                    if depth + st.depth > MAX_DEPTH {
                        let offset = &bytes[..=st.len];
                        return Err(ScanError::TooDeep(locate(at, offset)));
                    }
                }
                b']' | b'}' => {
                    st.depth -= 1;
                    if st.depth == 0 {
                        return Ok(Some(st.len + 1));
                    }
                }
                _ => {}
            }
            st.len += 1;
        }
        Ok(None)
    }

    /// Length of the number or literal at the cursor, made of `token` bytes.
    fn cut_scalar(&mut self, token: impl Fn(u8) -> bool) -> io::Result<usize> {
        let mut len = 0;
        loop {
            let bytes = &self.buf[self.pos..self.end];
            match bytes[len..].iter().position(|b| !token(*b)) {
                Some(i) => return Ok(len + i),
                None => len = bytes.len(),
            }
            if !self.fill()? {
                return Ok(len);
            }
        }
    }

    /// Moves past `len` bytes, counting their lines.
    fn consume(&mut self, len: usize) {
        let bytes = &self.buf[self.pos..self.pos + len];
        if let Some(last) = memchr::memrchr(b'\n', bytes) {
            self.line += memchr::memchr_iter(b'\n', bytes).count();
            self.line_start = (self.pos + last + 1) as isize;
        }
        self.pos += len;
    }

    /// Reads more, keeping the unread bytes; false at the end of the input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.line_start -= self.pos as isize;
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            // One value larger than the buffer: make room for it.
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Bytes a JSON number (`-1.5e3`) is made of.
fn is_number_byte(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
}

/// The position just after `prefix`, a piece of the file starting at `at`.
fn locate(at: Position, prefix: &[u8]) -> Position {
    match memchr::memrchr(b'\n', prefix) {
        None => Position { line: at.line, column: at.column + prefix.len() },
        Some(last) => Position { line: at.line + memchr::memchr_iter(b'\n', prefix).count(), column: prefix.len() - last - 1 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cuts every value of a top-level array, the way the group reader does.
    fn cut_all(json: &str) -> Result<Vec<String>, ScanError> {
        let mut s = Scanner::new(json.as_bytes());
        assert_eq!(s.peek().expect("read"), Some(b'['));
        s.bump();
        let mut out = Vec::new();
        loop {
            match s.peek()? {
                Some(b']') | None => return Ok(out),
                Some(b',') => s.bump(),
                Some(_) => out.push(String::from_utf8_lossy(s.value(1)?.bytes).into_owned()),
            }
        }
    }

    #[test]
    fn limit_is_500() {
        let ok = "[".repeat(500) + &"]".repeat(500);
        assert!(cut_all(&ok).is_ok());
        let deep = "[".repeat(501) + &"]".repeat(501);
        assert!(matches!(cut_all(&deep), Err(ScanError::TooDeep(Position { line: 1, column: 501 }))));
    }

    #[test]
    fn brackets_in_strings_do_not_count() {
        let s = format!("[\"{}\\\"{}\"]", "[".repeat(600), "{".repeat(600));
        assert!(cut_all(&s).is_ok());
    }

    #[test]
    fn values_are_cut_whole() {
        let values = cut_all(r#"[ {"a": [1, "]", {"b": "\"}"}]}, "s\\", 12.5e3, true ,null]"#).expect("cut");
        assert_eq!(values, [r#"{"a": [1, "]", {"b": "\"}"}]}"#, r#""s\\""#, "12.5e3", "true", "null"]);
    }

    #[test]
    fn values_larger_than_a_chunk_grow_the_buffer() {
        let big = format!(r#"["{}", "{}"]"#, "x".repeat(3 * CHUNK), "y".repeat(10));
        let values = cut_all(&big).expect("cut");
        assert_eq!(values[0].len(), 3 * CHUNK + 2);
        assert_eq!(values[1].len(), 12);
    }

    #[test]
    fn positions_count_lines_and_columns_like_serde_json() {
        let mut s = Scanner::new(&b"[\n  {\"a\":\n 1},\n  7]"[..]);
        s.peek().expect("read");
        s.bump();
        s.peek().expect("read");
        let first = s.value(1).expect("cut");
        assert_eq!(first.at, Position { line: 2, column: 2 });
        assert_eq!(first.at.relocate(2, 3), Position { line: 3, column: 3 });
        assert_eq!(first.at.relocate(1, 3), Position { line: 2, column: 5 });
        s.peek().expect("read");
        s.bump();
        s.peek().expect("read");
        assert_eq!(s.position(), Position { line: 4, column: 2 });
    }
}

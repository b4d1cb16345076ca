//! The JSON syntax of a batch's outer structure, over the scanner.
//!
//! The top-level array, each group object and each `facts` array are walked
//! here, a bracket, comma or key at a time; everything inside them (facts,
//! predicate names, units) is cut out whole and parsed from the slice into
//! `Terms`. Syntax errors read as serde_json words them, at the line and
//! column of the file (errors inside a cut value are moved from the slice to
//! the file), so a bad file is reported as it was when serde_json parsed all
//! of it. What the structure means (groups, predicates) is `group`'s business.

use super::scan::{Cut, Position, ScanError, Scanner, TooDeep};
use super::term::{Term, Terms};
use super::{BatchError, DecompressError};
use serde::de::{self, Deserializer as _, Visitor};
use serde_json::error::Category;
use std::fmt;
use std::io::Read;

/// A batch file being read: its scanner, and the arena its values are parsed into.
pub struct Source<'f, R> {
    file: &'f str,
    scan: Scanner<R>,
    terms: Terms,
}

/// How serde_json used to be asked for a value, which decides where it
/// reports one of the wrong type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// For any value (a visitor that accepts only some).
    Any,
    /// For a sequence.
    Sequence,
}

/// A value cut out and kept for later (facts that come before their predicate).
pub struct Kept {
    bytes: Vec<u8>,
    at: Position,
}

impl<'f, R: Read> Source<'f, R> {
    /// Reads `reader`, naming it `file` in errors.
    pub fn new(file: &'f str, reader: R) -> Self {
        Source { file, scan: Scanner::new(reader), terms: Terms::default() }
    }

    /// The next byte after whitespace, not consumed.
    pub fn peek(&mut self) -> Result<Option<u8>, BatchError> {
        let file = self.file;
        self.scan.peek().map_err(|e| scan_error(file, ScanError::Io(e)))
    }

    /// Enters the array at the cursor, or fails as serde_json would for a
    /// value that is not what `expected` describes, asked for as `asked`.
    pub fn enter_array(&mut self, expected: &'static str, asked: Asked, depth: u32) -> Result<(), BatchError> {
        self.enter(b'[', expected, asked, depth)
    }

    /// Enters the object at the cursor, or fails as for a value that is not what `expected` describes.
    pub fn enter_object(&mut self, expected: &'static str, depth: u32) -> Result<(), BatchError> {
        self.enter(b'{', expected, Asked::Any, depth)
    }

    fn enter(&mut self, open: u8, expected: &'static str, asked: Asked, depth: u32) -> Result<(), BatchError> {
        match self.peek()? {
            Some(b) if b == open => {
                self.scan.bump();
                Ok(())
            }
            None => Err(self.syntax("EOF while parsing a value")),
            Some(_) => Err(self.wrong_type(expected, asked == Asked::Sequence, depth)),
        }
    }

    /// Moves to the next element of an entered array: false (and past its `]`) when there is none.
    pub fn next_element(&mut self, first: bool) -> Result<bool, BatchError> {
        match self.peek()? {
            Some(b']') => {
                self.scan.bump();
                return Ok(false);
            }
            Some(b',') if !first => self.scan.bump(),
            Some(_) if first => return Ok(true),
            Some(_) => return Err(self.syntax("expected `,` or `]`")),
            None => return Err(self.syntax("EOF while parsing a list")),
        }
        match self.peek()? {
            Some(b']') => Err(self.syntax("trailing comma")),
            Some(_) => Ok(true),
            None => Err(self.syntax("EOF while parsing a value")),
        }
    }

    /// The next key of an entered object (`depth` deep), with its `:` read;
    /// `None` (and past its `}`) when there is none.
    pub fn next_key(&mut self, first: bool, depth: u32) -> Result<Option<String>, BatchError> {
        match self.peek()? {
            Some(b'}') => {
                self.scan.bump();
                return Ok(None);
            }
            Some(b',') if !first => self.scan.bump(),
            Some(_) if first => {}
            Some(_) => return Err(self.syntax("expected `,` or `}`")),
            None => return Err(self.syntax("EOF while parsing an object")),
        }
        match self.peek()? {
            Some(b'"') => {}
            Some(b'}') => return Err(self.syntax("trailing comma")),
            Some(_) => return Err(self.syntax("key must be a string")),
            None => return Err(self.syntax("EOF while parsing a value")),
        }
        let file = self.file;
        let key = self.cut(depth)?;
        let key: String = serde_json::from_slice(key.bytes).map_err(|e| parse_error(file, e, key.at))?;
        match self.peek()? {
            Some(b':') => self.scan.bump(),
            Some(_) => return Err(self.syntax("expected `:`")),
            None => return Err(self.syntax("EOF while parsing an object")),
        }
        Ok(Some(key))
    }

    /// Fails unless the input ends here (after whitespace).
    pub fn end(&mut self) -> Result<(), BatchError> {
        match self.peek()? {
            None => Ok(()),
            Some(_) => Err(self.syntax("trailing characters")),
        }
    }

    /// Parses the value at the cursor, inside containers `depth` deep.
    pub fn value(&mut self, depth: u32) -> Result<Term<'_>, BatchError> {
        let file = self.file;
        let cut = cut(&mut self.scan, file, depth)?;
        parse(&mut self.terms, file, &cut)?;
        Ok(self.terms.root())
    }

    /// Checks the syntax of the value at the cursor and moves past it.
    /// An array is skipped an element at a time, so it is never held whole.
    pub fn skip(&mut self, depth: u32) -> Result<(), BatchError> {
        if self.peek()? != Some(b'[') {
            return self.value(depth).map(drop);
        }
        self.scan.bump();
        let mut first = true;
        while self.next_element(first)? {
            first = false;
            self.value(depth + 1)?;
        }
        Ok(())
    }

    /// Checks the syntax of the value at the cursor and keeps it for `parse_kept`.
    pub fn keep(&mut self, depth: u32) -> Result<Kept, BatchError> {
        let file = self.file;
        let cut = cut(&mut self.scan, file, depth)?;
        parse(&mut self.terms, file, &cut)?;
        Ok(Kept { bytes: cut.bytes.to_vec(), at: cut.at })
    }

    /// Parses a value kept by `keep` (whose syntax is known to be right).
    pub fn parse_kept(&mut self, kept: &Kept) -> Result<Term<'_>, BatchError> {
        self.terms.parse(&kept.bytes).map_err(|e| parse_error(self.file, e, kept.at))?;
        Ok(self.terms.root())
    }

    fn cut(&mut self, depth: u32) -> Result<Cut<'_>, BatchError> {
        cut(&mut self.scan, self.file, depth)
    }

    /// A syntax error about the byte last peeked at (or the end of the input).
    fn syntax(&self, code: &str) -> BatchError {
        json_error(self.file, self.scan.peek_position(), code)
    }

    /// serde_json's "invalid type: ..., expected ..." for the value at the
    /// cursor, which is not what `expected` describes (`seq`: serde_json was
    /// asked for a sequence, else for any value). serde_json itself words it;
    /// the place is where serde_json had read to when it gave up.
    fn wrong_type(&mut self, expected: &'static str, seq: bool, depth: u32) -> BatchError {
        let file = self.file;
        let open = match self.peek() {
            Ok(Some(b @ (b'[' | b'{'))) => b,
            Ok(_) => return self.wrong_scalar(expected, seq, depth),
            Err(e) => return e,
        };
        let message = without_position(&expect(&[open], expected, seq));
        // Asked for a sequence, it stops at the bracket; asked for any value, it
        // enters the array or object and reads on to the next byte.
        if !seq {
            self.scan.bump();
            if let Err(e) = self.peek() {
                return e;
            }
        }
        json_error(file, self.scan.peek_position(), &message)
    }

    /// `wrong_type` for a string, number or literal.
    fn wrong_scalar(&mut self, expected: &'static str, seq: bool, depth: u32) -> BatchError {
        let file = self.file;
        let cut = match cut(&mut self.scan, file, depth) {
            Ok(cut) => cut,
            Err(e) => return e,
        };
        let e = expect(&with_next(&cut), expected, seq);
        let mut at = cut.at.relocate(e.line(), e.column());
        // Having read a number, serde_json has looked at the byte after it too.
        if e.classify() == Category::Data && matches!(cut.bytes[0], b'-' | b'0'..=b'9') {
            at = match cut.next {
                Some(b'\n') => Position { line: at.line + 1, column: 0 },
                Some(_) => Position { column: at.column + 1, ..at },
                None => at,
            };
        }
        json_error(file, at, &without_position(&e))
    }
}

/// Parses a cut value into `terms`. A number or literal that does not parse
/// is parsed again with the byte after it, which serde_json would have seen
/// reading the whole file and which decides its error (`tru,` is "expected
/// ident", not an early end of the input).
fn parse(terms: &mut Terms, file: &str, cut: &Cut<'_>) -> Result<(), BatchError> {
    let Err(e) = terms.parse(cut.bytes) else { return Ok(()) };
    if cut.next.is_none() {
        return Err(parse_error(file, e, cut.at));
    }
    match terms.parse(&with_next(cut)) {
        Err(with_next) => Err(parse_error(file, with_next, cut.at)),
        Ok(()) => Err(parse_error(file, e, cut.at)),
    }
}

/// Cuts out the value after the cursor's whitespace, inside containers `depth` deep.
fn cut<'s, R: Read>(scan: &'s mut Scanner<R>, file: &str, depth: u32) -> Result<Cut<'s>, BatchError> {
    match scan.peek() {
        Ok(Some(_)) => scan.value(depth).map_err(|e| scan_error(file, e)),
        Ok(None) => Err(json_error(file, scan.peek_position(), "EOF while parsing a value")),
        Err(e) => Err(scan_error(file, ScanError::Io(e))),
    }
}

/// The cut's bytes followed by the byte after them, if any.
fn with_next(cut: &Cut<'_>) -> Vec<u8> {
    let mut bytes = cut.bytes.to_vec();
    bytes.extend(cut.next);
    bytes
}

/// serde_json's error for `bytes` when it expected what `expected` describes.
fn expect(bytes: &[u8], expected: &'static str, seq: bool) -> serde_json::Error {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = if seq { (&mut de).deserialize_seq(Expect(expected)) } else { (&mut de).deserialize_any(Expect(expected)) };
    result.err().unwrap_or_else(|| de::Error::custom(format!("expected {expected}")))
}

/// A visitor that accepts nothing, for serde_json to word what was expected.
struct Expect(&'static str);

impl<'de> Visitor<'de> for Expect {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A syntax error at `at`, worded as serde_json words it (`code at line L column C`).
fn json_error(file: &str, at: Position, code: &str) -> BatchError {
    BatchError::Json {
        file: file.to_owned(),
        line: at.line,
        column: at.column,
        message: format!("{code} at line {} column {}", at.line, at.column),
    }
}

/// serde_json's error for a value cut at `at`, moved from the slice to the file.
fn parse_error(file: &str, e: serde_json::Error, at: Position) -> BatchError {
    if e.line() == 0 {
        return BatchError::Json { file: file.to_owned(), line: at.line, column: at.column, message: e.to_string() };
    }
    json_error(file, at.relocate(e.line(), e.column()), &without_position(&e))
}

/// serde_json's message without the ` at line L column C` it ends with.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.strip_suffix(&format!(" at line {} column {}", e.line(), e.column())) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

fn scan_error(file: &str, e: ScanError) -> BatchError {
    let file = file.to_owned();
    match e {
        ScanError::TooDeep(at) => BatchError::Json { file, line: at.line, column: at.column, message: TooDeep.to_string() },
        ScanError::Io(io) => match io.get_ref() {
            Some(inner) if inner.is::<DecompressError>() => BatchError::Decompress { file, message: inner.to_string() },
            _ => BatchError::Io { file, source: io },
        },
    }
}

//! JSON batch files: reading them as a stream and checking every fact.
//!
//! A batch is a JSON array of predicate groups `{"predicate": P, "facts":
//! [...], "unit"?: U}` and `{"schema_id": H}` markers (GLEAN.md 1.1-1.2). The
//! file is read as a stream, one fact at a time, so a million-fact file never
//! sits in memory; `.zst` files are decompressed on the fly. The stages:
//! `scan` cuts the bytes into whole values (enforcing Glean's nesting limit),
//! `syntax` walks the outer structure, `term` parses each fact into a reusable
//! arena, `group` gives the structure its meaning, and the `Checker` (`check`)
//! turns each fact into its canonical form for a `FactSink` (`sink`). Errors
//! name the file, predicate, fact index and field path, or the line and column
//! of a JSON error. This module never commits anything: the caller owns the
//! transaction that makes a file all-or-nothing.

mod base64;
mod check;
mod group;
mod scan;
mod sink;
mod syntax;
mod term;
mod text;

pub use check::Checker;
pub(crate) use sink::Prehashed;
pub use sink::{Deferred, DefineError, FIRST_FACT_ID, FactId, FactSink, MemorySink, StoreFailure};
pub(crate) use text::write_str;

use crate::schema::Schema;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Why a batch file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The batch file.
        file: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A `.zst` file could not be decompressed.
    #[error("{file}: zstd decompression failed: {message}")]
    Decompress {
        /// The batch file.
        file: String,
        /// What the decoder said.
        message: String,
    },
    /// The file is not valid JSON (or nests deeper than Glean allows).
    #[error("{file}: invalid JSON at line {line} column {column}: {message}")]
    Json {
        /// The batch file.
        file: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// The file's structure is wrong (not an array, a group without `facts`, ...).
    #[error("{file}: {message}")]
    Format {
        /// The batch file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A fact does not match its predicate.
    #[error("{file}: {predicate} fact #{index}{}{path}: {message}", if path.is_empty() { "" } else { " " })]
    Fact {
        /// The batch file.
        file: String,
        /// The predicate, `name.version`.
        predicate: String,
        /// Index of the fact in its group's `facts` array (0-based).
        index: usize,
        /// Path to the bad value inside the fact, e.g. `.kind`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The fact store failed while the file was being written.
    #[error("{file}: storage error: {source}")]
    Store {
        /// The batch file.
        file: String,
        /// The store's error.
        source: StoreFailure,
    },
}

impl BatchError {
    /// True when the file itself is at fault (rather than the disk or the store).
    pub fn is_invalid_batch(&self) -> bool {
        !matches!(self, BatchError::Io { .. } | BatchError::Store { .. })
    }
}

/// What a checked file contained.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    /// Predicate groups read.
    pub groups: usize,
    /// Top-level facts defined.
    pub facts: u64,
    /// The first `schema_id` marker, if any.
    pub schema_id: Option<String>,
}

/// Opens a batch file for streaming, decompressing it when its name ends in `.zst`.
pub fn open(path: &Path) -> Result<Box<dyn Read + Send>, BatchError> {
    let file_name = path.display().to_string();
    let file = File::open(path).map_err(|source| BatchError::Io { file: file_name.clone(), source })?;
    if path.extension().is_some_and(|e| e == "zst") {
        let decoder =
            zstd::stream::read::Decoder::new(file).map_err(|e| BatchError::Decompress { file: file_name, message: e.to_string() })?;
        Ok(Box::new(Decompressing(decoder)))
    } else {
        Ok(Box::new(file))
    }
}

/// Marks errors of the zstd decoder so they are reported as decompression errors.
struct Decompressing<R>(R);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DecompressError(io::Error);

impl<R: Read> Read for Decompressing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, DecompressError(e)))
    }
}

/// Checks the file at `path` into `checker`'s sink.
pub fn check_file<S: FactSink>(path: &Path, checker: &mut Checker<'_, S>) -> Result<BatchSummary, BatchError> {
    let name = path.display().to_string();
    check_reader(&name, open(path)?, checker)
}

/// Checks a batch read from `reader`, named `file` in errors.
pub fn check_reader<S: FactSink>(file: &str, reader: impl Read, checker: &mut Checker<'_, S>) -> Result<BatchSummary, BatchError> {
    group::read_batch(file, reader, checker)
}

/// Checks a batch against `schema` alone, without a database (`validate`).
pub fn validate_file(path: &Path, schema: &Schema, strict: bool) -> Result<BatchSummary, BatchError> {
    let mut sink = MemorySink::default();
    let mut checker = Checker::new(schema, &mut sink, strict);
    check_file(path, &mut checker)
}

/// Like `validate_file`, for bytes already in memory.
pub fn validate_bytes(name: &str, bytes: &[u8], schema: &Schema, strict: bool) -> Result<BatchSummary, BatchError> {
    let mut sink = MemorySink::default();
    let mut checker = Checker::new(schema, &mut sink, strict);
    check_reader(name, bytes, &mut checker)
}

#[cfg(test)]
mod tests;

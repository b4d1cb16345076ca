//! JSON batch files: reading them as a stream and checking every fact.
//!
//! A batch is a JSON array of predicate groups `{"predicate": P, "facts":
//! [...], "unit"?: U}` and `{"schema_id": H}` markers (GLEAN.md 1.1-1.2). The
//! file is parsed as a stream, one fact at a time, so a million-fact file never
//! sits in memory; `.zst` files are decompressed on the fly. Each fact goes
//! through the `Checker` into a `FactSink`. Errors name the file, predicate,
//! fact index and field path. This module never commits anything: the caller
//! owns the transaction that makes a file all-or-nothing.

mod base64;
mod check;
mod depth;
mod sink;

pub use check::Checker;
pub(crate) use check::write_str;
pub use sink::{DefineError, FactId, FactSink, MemorySink, StoreFailure, FIRST_FACT_ID};

use crate::schema::{Lookup, PredId, Schema};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
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
        let decoder = zstd::stream::read::Decoder::new(file).map_err(|e| BatchError::Decompress { file: file_name, message: e.to_string() })?;
        Ok(Box::new(Decompressing(decoder)))
    } else {
        Ok(Box::new(file))
    }
}

/// Marks errors of the zstd decoder so they are reported as decompression errors.
struct Decompressing<R>(R);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DecompressError(io::Error);

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
    let reader = BufReader::with_capacity(1 << 18, depth::DepthLimit::new(reader));
    let mut de = serde_json::Deserializer::from_reader(reader);
    de.disable_recursion_limit();
    let mut ctx = Ctx { checker, file, error: None, summary: BatchSummary::default() };
    let parsed = Top(&mut ctx).deserialize(&mut de).and_then(|()| de.end());
    match (parsed, ctx.error) {
        (_, Some(e)) => Err(e),
        (Ok(()), None) => Ok(ctx.summary),
        (Err(e), None) => Err(json_error(file, e)),
    }
}

fn json_error(file: &str, e: serde_json::Error) -> BatchError {
    let (line, column) = (e.line(), e.column());
    if e.is_io() {
        let io = io::Error::from(e);
        let file = file.to_owned();
        return match io.get_ref() {
            Some(inner) if inner.is::<DecompressError>() => BatchError::Decompress { file, message: inner.to_string() },
            Some(inner) if inner.is::<depth::TooDeep>() => {
                BatchError::Json { file, line, column, message: inner.to_string() }
            }
            _ => BatchError::Io { file, source: io },
        };
    }
    BatchError::Json { file: file.to_owned(), line, column, message: e.to_string() }
}

struct Ctx<'c, 'a, S: FactSink> {
    checker: &'c mut Checker<'a, S>,
    file: &'c str,
    /// The first error met; serde only carries a placeholder back up.
    error: Option<BatchError>,
    summary: BatchSummary,
}

impl<S: FactSink> Ctx<'_, '_, S> {
    /// Records `e` and returns the placeholder serde error that unwinds the parse.
    fn fail<E: de::Error>(&mut self, e: BatchError) -> E {
        self.error.get_or_insert(e);
        E::custom("batch rejected")
    }

    fn format<E: de::Error>(&mut self, message: String) -> E {
        let file = self.file.to_owned();
        self.fail(BatchError::Format { file, message })
    }

    fn fact<E: de::Error>(&mut self, pred: PredId, index: usize, fact: &Value) -> Result<(), E> {
        match self.checker.fact(pred, fact) {
            Ok(Some(_)) => {
                self.summary.facts += 1;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(f) => {
                let file = self.file.to_owned();
                let err = match f.store {
                    Some(source) => BatchError::Store { file, source },
                    None => BatchError::Fact {
                        file,
                        predicate: self.checker.schema().predicate(pred).full_name(),
                        index,
                        path: f.path(),
                        message: f.message,
                    },
                };
                Err(self.fail(err))
            }
        }
    }

    /// Resolves a group's `"predicate"`: `"name.N"` or `{"name":..., "version": N}`.
    fn predicate<E: de::Error>(&mut self, group: usize, v: &Value) -> Result<PredId, E> {
        let (name, version, versioned) = match v {
            Value::String(s) => parse_ref(s),
            Value::Object(o) => match (o.get("name").and_then(Value::as_str), o.get("version").and_then(Value::as_u64)) {
                (Some(n), Some(ver)) if ver <= u64::from(u32::MAX) => (n.to_owned(), ver as u32, true),
                _ => return Err(self.format(format!("group #{group}: a predicate object needs \"name\" (string) and \"version\" (number), got {v}"))),
            },
            _ => return Err(self.format(format!("group #{group}: \"predicate\" must be \"name.version\" or {{\"name\", \"version\"}}, got {v}"))),
        };
        if !versioned && self.checker.strict() {
            return Err(self.format(format!("group #{group}: predicate \"{name}\" has no version (Glean would assume {name}.1)")));
        }
        match self.checker.schema().lookup(&name, version) {
            Lookup::Predicate(id) => Ok(id),
            Lookup::Type => Err(self.format(format!("group #{group}: {name}.{version} is a type, not a predicate"))),
            Lookup::Missing => Err(self.format(format!("group #{group}: not in scope: {name}.{version}"))),
        }
    }
}

/// Splits `name.N` at the last dot; without a numeric version Glean assumes 1.
fn parse_ref(s: &str) -> (String, u32, bool) {
    match s.rsplit_once('.') {
        Some((name, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => match v.parse() {
            Ok(ver) => (name.to_owned(), ver, true),
            Err(_) => (s.to_owned(), 1, false),
        },
        _ => (s.to_owned(), 1, false),
    }
}

struct Top<'x, 'c, 'a, S: FactSink>(&'x mut Ctx<'c, 'a, S>);

impl<'de, S: FactSink> DeserializeSeed<'de> for Top<'_, '_, '_, S> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: FactSink> Visitor<'de> for Top<'_, '_, '_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of predicate groups (the top level of a batch must be an array)")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq.next_element_seed(Group { ctx: &mut *self.0, index })?.is_some() {
            index += 1;
        }
        Ok(())
    }
}

struct Group<'x, 'c, 'a, S: FactSink> {
    ctx: &'x mut Ctx<'c, 'a, S>,
    index: usize,
}

impl<'de, S: FactSink> DeserializeSeed<'de> for Group<'_, '_, '_, S> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// What a group object held, as its keys arrive in any order.
#[derive(Default)]
struct GroupParts {
    pred: Option<PredId>,
    /// Facts that arrived before the predicate, kept until it is known.
    buffered: Option<Vec<Value>>,
    streamed: bool,
    unit: Option<Value>,
    schema_id: Option<Value>,
}

impl<'de, S: FactSink> Visitor<'de> for Group<'_, '_, '_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a predicate group object {\"predicate\": ..., \"facts\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Group { ctx, index } = self;
        let mut parts = GroupParts::default();
        ctx.checker.collect_defined(true);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "predicate" => {
                    let v: Value = map.next_value()?;
                    parts.pred = Some(ctx.predicate(index, &v)?);
                }
                "facts" if parts.streamed || parts.buffered.is_some() => {
                    return Err(ctx.format(format!("group #{index}: \"facts\" appears twice")));
                }
                "facts" if parts.schema_id.is_some() => {
                    // Glean reads an element with a schema_id as a marker; its facts are never written.
                    map.next_value::<IgnoredAny>()?;
                }
                "facts" => match parts.pred {
                    Some(pred) => {
                        map.next_value_seed(Facts { ctx: &mut *ctx, pred })?;
                        parts.streamed = true;
                    }
                    None => parts.buffered = Some(map.next_value()?),
                },
                "unit" => parts.unit = Some(map.next_value()?),
                "schema_id" if parts.streamed => {
                    return Err(ctx.format(format!("group #{index}: a group carrying facts must not also carry \"schema_id\"")));
                }
                "schema_id" => parts.schema_id = Some(map.next_value()?),
                other => {
                    if ctx.checker.strict() {
                        return Err(ctx.format(format!("group #{index}: unknown key \"{other}\" (Glean ignores it)")));
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        finish_group(ctx, index, parts)
    }
}

fn finish_group<S: FactSink, E: de::Error>(ctx: &mut Ctx<'_, '_, S>, index: usize, parts: GroupParts) -> Result<(), E> {
    if let Some(marker) = parts.schema_id {
        if ctx.checker.strict() && (parts.pred.is_some() || parts.buffered.is_some()) {
            return Err(ctx.format(format!("group #{index}: mixes \"schema_id\" with a predicate group")));
        }
        let Value::String(id) = marker else {
            return Err(ctx.format(format!("group #{index}: \"schema_id\" must be a string")));
        };
        ctx.summary.schema_id.get_or_insert(id);
        return Ok(());
    }
    let Some(pred) = parts.pred else {
        return Err(ctx.format(format!("group #{index}: missing \"predicate\"")));
    };
    let unit = match parts.unit {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => Some(u),
        Some(other) => return Err(ctx.format(format!("group #{index}: \"unit\" must be a string, got {other}"))),
    };
    match parts.buffered {
        Some(facts) => {
            for (i, fact) in facts.iter().enumerate() {
                ctx.fact(pred, i, fact)?;
            }
        }
        None if !parts.streamed => return Err(ctx.format(format!("group #{index}: missing \"facts\""))),
        None => {}
    }
    ctx.summary.groups += 1;
    let defined = ctx.checker.take_defined();
    if let Some(unit) = unit {
        if let Err(source) = ctx.checker.sink().own(&unit, &defined) {
            let file = ctx.file.to_owned();
            return Err(ctx.fail(BatchError::Store { file, source }));
        }
    }
    Ok(())
}

struct Facts<'x, 'c, 'a, S: FactSink> {
    ctx: &'x mut Ctx<'c, 'a, S>,
    pred: PredId,
}

impl<'de, S: FactSink> DeserializeSeed<'de> for Facts<'_, '_, '_, S> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: FactSink> Visitor<'de> for Facts<'_, '_, '_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of facts")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(fact) = seq.next_element::<Value>()? {
            self.ctx.fact(self.pred, index, &fact)?;
            index += 1;
        }
        Ok(())
    }
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

//! What a batch's elements mean: predicate groups and schema-id markers.
//!
//! Reads the top-level array element by element (GLEAN.md 1.1-1.2): a group's
//! `predicate` is resolved against the schema, its `facts` go one at a time
//! through the `Checker` (or are kept until the predicate is known, when they
//! come first), its `unit` owns the facts the group defined. Errors name the
//! file, group, predicate and fact index. It never commits anything.

use super::check::{Checker, Fail};
use super::sink::FactSink;
use super::syntax::{Asked, Kept, Source};
use super::term::{Term, View};
use super::{BatchError, BatchSummary};
use crate::schema::{Lookup, PredId};
use std::io::Read;

/// Nesting of a group's values: inside the top-level array and the group object.
const GROUP_VALUE_DEPTH: u32 = 2;
/// Nesting of a fact: inside the array, the group and its `facts` array.
const FACT_DEPTH: u32 = 3;

/// Reads the batch in `reader` (named `file` in errors) into `checker`.
pub fn read_batch<S: FactSink>(file: &str, reader: impl Read, checker: &mut Checker<'_, S>) -> Result<BatchSummary, BatchError> {
    let mut batch = Batch { src: Source::new(file, reader), ctx: Ctx { checker, file, summary: BatchSummary::default() } };
    match batch.groups() {
        Ok(()) => Ok(batch.ctx.summary),
        Err(e) => Err(batch.ctx.settle_first(e)),
    }
}

struct Batch<'c, 'a, S: FactSink, R> {
    src: Source<'c, R>,
    ctx: Ctx<'c, 'a, S>,
}

/// What a group object held, as its keys arrive in any order.
struct GroupParts {
    pred: Option<PredId>,
    /// Facts that arrived before the predicate, kept until it is known.
    kept: Option<Vec<Kept>>,
    streamed: bool,
    /// `Err` holds a `unit` that is not a string, reported once the group is read.
    unit: Result<Option<String>, String>,
    /// `Err` when the marker is not a string.
    schema_id: Option<Result<String, ()>>,
}

impl<S: FactSink, R: Read> Batch<'_, '_, S, R> {
    fn groups(&mut self) -> Result<(), BatchError> {
        self.src.enter_array("a JSON array of predicate groups (the top level of a batch must be an array)", Asked::Any, 0)?;
        let mut index = 0;
        while self.src.next_element(index == 0)? {
            self.group(index)?;
            index += 1;
        }
        self.src.end()
    }

    fn group(&mut self, index: usize) -> Result<(), BatchError> {
        self.src.enter_object("a predicate group object {\"predicate\": ..., \"facts\": [...]}", 1)?;
        let mut parts = GroupParts { pred: None, kept: None, streamed: false, unit: Ok(None), schema_id: None };
        self.ctx.checker.collect_defined(true);
        let mut first = true;
        while let Some(key) = self.src.next_key(first, GROUP_VALUE_DEPTH)? {
            first = false;
            self.group_value(index, &key, &mut parts)?;
        }
        self.finish_group(index, parts)
    }

    fn group_value(&mut self, index: usize, key: &str, parts: &mut GroupParts) -> Result<(), BatchError> {
        match key {
            "predicate" => {
                let v = self.src.value(GROUP_VALUE_DEPTH)?;
                parts.pred = Some(self.ctx.predicate(index, v)?);
            }
            "facts" if parts.streamed || parts.kept.is_some() => {
                return Err(self.ctx.format(format!("group #{index}: \"facts\" appears twice")));
            }
            // Glean reads an element with a schema_id as a marker; its facts are never written.
            "facts" if parts.schema_id.is_some() => self.src.skip(GROUP_VALUE_DEPTH)?,
            "facts" => match parts.pred {
                Some(pred) => {
                    self.facts(pred)?;
                    parts.streamed = true;
                }
                None => parts.kept = Some(self.keep_facts()?),
            },
            "unit" => {
                let v = self.src.value(GROUP_VALUE_DEPTH)?;
                parts.unit = match v.view() {
                    View::Null => Ok(None),
                    View::Str(u) => Ok(Some(u.to_owned())),
                    _ => Err(v.to_string()),
                }
            }
            "schema_id" if parts.streamed => {
                return Err(self.ctx.format(format!("group #{index}: a group carrying facts must not also carry \"schema_id\"")));
            }
            "schema_id" => parts.schema_id = Some(self.src.value(GROUP_VALUE_DEPTH)?.as_str().map(str::to_owned).ok_or(())),
            other => {
                if self.ctx.checker.strict() {
                    return Err(self.ctx.format(format!("group #{index}: unknown key \"{other}\" (Glean ignores it)")));
                }
                self.src.skip(GROUP_VALUE_DEPTH)?;
            }
        }
        Ok(())
    }

    /// Checks a group's facts one at a time as they are read.
    fn facts(&mut self, pred: PredId) -> Result<(), BatchError> {
        self.src.enter_array("an array of facts", Asked::Sequence, GROUP_VALUE_DEPTH)?;
        let mut index = 0;
        while self.src.next_element(index == 0)? {
            let fact = self.src.value(FACT_DEPTH)?;
            self.ctx.fact(pred, index, fact)?;
            index += 1;
        }
        Ok(())
    }

    /// Keeps the facts of a group whose predicate is not known yet.
    fn keep_facts(&mut self) -> Result<Vec<Kept>, BatchError> {
        // serde's own wording for a `Vec`, which this used to be read as.
        self.src.enter_array("a sequence", Asked::Sequence, GROUP_VALUE_DEPTH)?;
        let mut kept = Vec::new();
        while self.src.next_element(kept.is_empty())? {
            kept.push(self.src.keep(FACT_DEPTH)?);
        }
        Ok(kept)
    }

    fn finish_group(&mut self, index: usize, parts: GroupParts) -> Result<(), BatchError> {
        let ctx = &mut self.ctx;
        if let Some(marker) = parts.schema_id {
            if ctx.checker.strict() && (parts.pred.is_some() || parts.kept.is_some()) {
                return Err(ctx.format(format!("group #{index}: mixes \"schema_id\" with a predicate group")));
            }
            let Ok(id) = marker else {
                return Err(ctx.format(format!("group #{index}: \"schema_id\" must be a string")));
            };
            ctx.summary.schema_id.get_or_insert(id);
            return Ok(());
        }
        let Some(pred) = parts.pred else {
            return Err(ctx.format(format!("group #{index}: missing \"predicate\"")));
        };
        let unit = match parts.unit {
            Ok(unit) => unit,
            Err(other) => return Err(ctx.format(format!("group #{index}: \"unit\" must be a string, got {other}"))),
        };
        match parts.kept {
            Some(facts) => {
                for (i, fact) in facts.iter().enumerate() {
                    let fact = self.src.parse_kept(fact)?;
                    self.ctx.fact(pred, i, fact)?;
                }
            }
            None if !parts.streamed => return Err(self.ctx.format(format!("group #{index}: missing \"facts\""))),
            None => {}
        }
        self.ctx.summary.groups += 1;
        if let Err((pred, i, f)) = self.ctx.checker.settle() {
            return Err(self.ctx.fact_error(pred, i, f));
        }
        let defined = self.ctx.checker.take_defined();
        if let Some(unit) = unit
            && let Err(source) = self.ctx.checker.sink().own(&unit, &defined)
        {
            return Err(BatchError::Store { file: self.ctx.file.to_owned(), source });
        }
        Ok(())
    }
}

/// The checking side of reading a batch.
struct Ctx<'c, 'a, S: FactSink> {
    checker: &'c mut Checker<'a, S>,
    file: &'c str,
    summary: BatchSummary,
}

impl<S: FactSink> Ctx<'_, '_, S> {
    fn format(&self, message: String) -> BatchError {
        BatchError::Format { file: self.file.to_owned(), message }
    }

    fn fact(&mut self, pred: PredId, index: usize, fact: Term<'_>) -> Result<(), BatchError> {
        match self.checker.fact(pred, fact, index) {
            Ok(defined) => {
                self.summary.facts += u64::from(defined);
                Ok(())
            }
            Err(f) => {
                let e = self.fact_error(pred, index, f);
                Err(self.settle_first(e))
            }
        }
    }

    /// The error to report for `e`, met while earlier facts may still be
    /// stored later: if one of those failed, it was first, so it is the error.
    fn settle_first(&mut self, e: BatchError) -> BatchError {
        match self.checker.settle() {
            Ok(()) => e,
            Err((pred, index, f)) => self.fact_error(pred, index, f),
        }
    }

    fn fact_error(&self, pred: PredId, index: usize, f: Fail) -> BatchError {
        let file = self.file.to_owned();
        match f.store {
            Some(source) => BatchError::Store { file, source },
            None => BatchError::Fact {
                file,
                predicate: self.checker.schema().predicate(pred).full_name(),
                index,
                path: f.path(),
                message: f.message,
            },
        }
    }

    /// Resolves a group's `"predicate"`: `"name.N"` or `{"name":..., "version": N}`.
    fn predicate(&self, group: usize, v: Term<'_>) -> Result<PredId, BatchError> {
        let (name, version, versioned) = match v.view() {
            View::Str(s) => parse_ref(s),
            View::Object(_) => match (v.get("name").and_then(Term::as_str), v.get("version").and_then(Term::as_u64)) {
                (Some(n), Some(ver)) if ver <= u64::from(u32::MAX) => (n.to_owned(), ver as u32, true),
                _ => {
                    return Err(self
                        .format(format!("group #{group}: a predicate object needs \"name\" (string) and \"version\" (number), got {v}")));
                }
            },
            _ => {
                return Err(
                    self.format(format!("group #{group}: \"predicate\" must be \"name.version\" or {{\"name\", \"version\"}}, got {v}"))
                );
            }
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

//! Checking one fact against its predicate, producing its canonical form.
//!
//! Follows Glean's `factToTerm`/`jsonToTerm` (GLEAN.md 1.3-1.4): the shapes of
//! fact objects, ids and references, inline nested facts, records with
//! defaulted fields, sums, `maybe`, enums, `[byte]` as base64, sets, and the
//! leniencies real Glean has (re-used ids, wrapping `nat`, out-of-range
//! `byte`, padded base64), which `strict` turns into errors.
//!
//! The canonical form is compact JSON as `glean query` prints it: record
//! fields in schema order with defaults filled in, `maybe` nothing omitted,
//! sets sorted and de-duplicated, `[byte]` as unpadded base64, references as
//! `{"id":N}` with the stored fact id. Equal terms give equal text, which is
//! what fact de-duplication compares. Nothing here touches storage directly:
//! facts go to a `FactSink`.

use super::base64;
use super::sink::{DefineError, FactId, FactSink, StoreFailure};
use super::term::{Entries, Term, View};
use super::text::write_str;
use crate::schema::{Field, PredId, Schema, Type};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Ids at or above 2^62 are reserved by Glean for its own fact numbering.
const FIRST_ANON_ID: i64 = 1 << 62;

/// A failed check: the message, and the path to the offending value.
#[derive(Debug)]
pub struct Fail {
    /// Path segments, innermost first (they are added while the error unwinds).
    rev_path: Vec<String>,
    /// What was wrong.
    pub message: String,
    /// Set when the failure came from the store rather than from the batch.
    pub store: Option<StoreFailure>,
}

impl Fail {
    fn new(message: impl Into<String>) -> Fail {
        Fail { rev_path: Vec::new(), message: message.into(), store: None }
    }

    fn at(mut self, seg: impl FnOnce() -> String) -> Fail {
        self.rev_path.push(seg());
        self
    }

    /// The path to the offending value, e.g. `.kind` or `value.items[2]`.
    pub fn path(&self) -> String {
        self.rev_path.iter().rev().map(String::as_str).collect()
    }
}

type R<T> = Result<T, Fail>;

/// Checks facts of one batch file; holds the file-local fact names.
pub struct Checker<'a, S: FactSink> {
    schema: &'a Schema,
    sink: &'a mut S,
    strict: bool,
    /// File-local `id` names: the fact each names, and its predicate.
    names: HashMap<i64, (FactId, PredId)>,
    /// Facts defined since the last `take_defined` (for `unit` ownership).
    defined: Vec<FactId>,
    /// Whether to collect `defined` at all.
    collect: bool,
    /// Text buffers for canonical forms, reused from fact to fact.
    spare: Vec<String>,
}

/// The two ways a fact object can be read.
enum Shape<'t> {
    /// `{"id": N}` alone.
    Reference(i64),
    /// `{["id": N,] "key": K [, "value": V]}`; id 0 means anonymous.
    Definition { id: i64, key: Term<'t>, value: Option<Term<'t>> },
}

const FACT_FORM: &str = "Expecting a fact, which should be of the form: {[\"id\" : N, ] \"key\": ... [, \"value\": ...]}";

impl<'a, S: FactSink> Checker<'a, S> {
    /// A checker writing into `sink`; `strict` rejects what only lenient Glean accepts.
    pub fn new(schema: &'a Schema, sink: &'a mut S, strict: bool) -> Self {
        Checker { schema, sink, strict, names: HashMap::new(), defined: Vec::new(), collect: false, spare: Vec::new() }
    }

    /// Starts or stops recording the ids of defined facts.
    pub fn collect_defined(&mut self, on: bool) {
        self.collect = on && self.sink.records_ownership();
        self.defined.clear();
    }

    /// The ids of facts defined since the last call.
    /// (`settle` first, so that facts the sink stored later are among them.)
    pub fn take_defined(&mut self) -> Vec<FactId> {
        std::mem::take(&mut self.defined)
    }

    /// The schema facts are checked against.
    pub fn schema(&self) -> &'a Schema {
        self.schema
    }

    /// Whether unversioned names and other lenient forms are errors.
    pub fn strict(&self) -> bool {
        self.strict
    }

    /// The store the facts go to.
    pub fn sink(&mut self) -> &mut S {
        self.sink
    }

    /// Checks and stores one top-level fact of `pred`, the `index`th of its
    /// group; true when it defines a fact (rather than naming one).
    pub(crate) fn fact(&mut self, pred: PredId, fact: Term<'_>, index: usize) -> R<bool> {
        match shape(fact)? {
            Shape::Reference(0) => Err(Fail::new(format!("Cannot use 0 as a fact ID: {fact}"))),
            Shape::Reference(id) if self.strict => Err(Fail::new(format!("a top-level entry that only names fact {id} writes nothing"))),
            Shape::Reference(_) => Ok(false),
            // Nothing refers to an anonymous top-level fact: the sink may store it later.
            Shape::Definition { id: 0, key, value } => {
                self.with_text(pred, key, value, |this, key, value| this.store_later(pred, key, value, index))?;
                Ok(true)
            }
            Shape::Definition { id, key, value } => self.define(pred, id, key, value).map(|_| true),
        }
    }

    /// Waits for the facts the sink stores later (see `FactSink::define_later`);
    /// a failure comes with the fact's predicate and index in its group.
    pub(crate) fn settle(&mut self) -> Result<(), (PredId, usize, Fail)> {
        match self.sink.settle() {
            Ok(ids) => {
                if self.collect {
                    self.defined.extend(ids);
                }
                Ok(())
            }
            Err(d) => Err((d.pred, d.tag, self.define_failure(d.pred, d.error))),
        }
    }

    fn define(&mut self, pred: PredId, id: i64, key: Term<'_>, value: Option<Term<'_>>) -> R<FactId> {
        if id >= FIRST_ANON_ID {
            return Err(Fail::new(format!("id too high: {id}")));
        }
        if self.strict && id < 0 {
            return Err(Fail::new(format!("fact ids must be positive, got {id}")));
        }
        self.with_text(pred, key, value, |this, key, value| this.store(pred, id, key, value))
    }

    /// Encodes a fact's key and value, then hands their text to `then`.
    fn with_text<T>(
        &mut self,
        pred: PredId,
        key: Term<'_>,
        value: Option<Term<'_>>,
        then: impl FnOnce(&mut Self, &str, Option<&str>) -> R<T>,
    ) -> R<T> {
        // Nested facts are defined while their parent is encoded, so each level takes its own buffers.
        let mut key_text = self.spare.pop().unwrap_or_default();
        let mut value_text = self.spare.pop().unwrap_or_default();
        let result = self
            .encode_fact(pred, key, value, &mut key_text, &mut value_text)
            .and_then(|has_value| then(self, &key_text, has_value.then_some(value_text.as_str())));
        for mut buffer in [key_text, value_text] {
            buffer.clear();
            self.spare.push(buffer);
        }
        result
    }

    /// Writes the canonical key and value of a fact; false when it has no value to store.
    fn encode_fact(
        &mut self,
        pred: PredId,
        key: Term<'_>,
        value: Option<Term<'_>>,
        key_text: &mut String,
        value_text: &mut String,
    ) -> R<bool> {
        let def = self.schema.predicate(pred);
        self.encode(&def.key, key, key_text)?;
        match value {
            Some(v) => self.encode(&def.value, v, value_text).map_err(|f| f.at(|| "value".into()))?,
            None if def.value.is_unit() => {}
            None => return Err(Fail::new(format!("\"value\" is missing: {} has values of type {}", def.full_name(), def.value))),
        }
        // Key-only predicates store no value, as Glean prints none.
        Ok(value.is_some() && !def.value.is_unit())
    }

    /// Hands a checked fact to the sink and records its id (and name, if it has one).
    fn store(&mut self, pred: PredId, id: i64, key_text: &str, value_text: Option<&str>) -> R<FactId> {
        let fact_id = self.sink.define(pred, key_text, value_text).map_err(|e| self.define_failure(pred, e))?;
        if self.collect {
            self.defined.push(fact_id);
        }
        if id != 0 && self.names.insert(id, (fact_id, pred)).is_some() && self.strict {
            return Err(Fail::new(format!("fact id {id} is defined twice in this file")));
        }
        Ok(fact_id)
    }

    /// Hands an anonymous top-level fact to the sink, which may store it later.
    fn store_later(&mut self, pred: PredId, key_text: &str, value_text: Option<&str>, index: usize) -> R<()> {
        match self.sink.define_later(pred, key_text, value_text, index) {
            Ok(Some(fact_id)) if self.collect => self.defined.push(fact_id),
            Ok(_) => {}
            Err(e) => return Err(self.define_failure(pred, e)),
        }
        Ok(())
    }

    fn define_failure(&self, pred: PredId, e: DefineError) -> Fail {
        match e {
            DefineError::Redefinition(existing) => {
                Fail::new(format!("invalid fact redefinition of ${existing} : {}", self.schema.predicate(pred).full_name()))
            }
            DefineError::Store(e) => Fail { store: Some(e), ..Fail::new("storage failure") },
        }
    }

    /// A reference to fact `n`, which must be of predicate `want`.
    fn reference(&mut self, want: PredId, n: i64) -> R<FactId> {
        let want_name = || self.schema.predicate(want).full_name();
        if n == 0 {
            return Err(Fail::new("Cannot use 0 as a fact ID"));
        }
        let (fact_id, got) = match self.names.get(&n) {
            Some(&found) => found,
            None if self.strict => return Err(Fail::new(format!("reference to fact {n}, which is not defined earlier in this file"))),
            None => {
                let found = match u64::try_from(n) {
                    Ok(real) => self.sink.predicate_of(real).map_err(|e| Fail { store: Some(e), ..Fail::new("storage failure") })?,
                    Err(_) => None,
                };
                match found {
                    Some(p) => (n as FactId, p),
                    None => return Err(Fail::new(format!("unknown fact {n}, expecting a fact of predicate {}", want_name()))),
                }
            }
        };
        if got != want {
            return Err(Fail::new(format!(
                "invalid reference to fact {n}: expected {}, got {}",
                want_name(),
                self.schema.predicate(got).full_name()
            )));
        }
        Ok(fact_id)
    }

    /// Checks `v` against `ty`, appending its canonical form to `out`.
    fn encode(&mut self, ty: &Type, v: Term<'_>, out: &mut String) -> R<()> {
        match (ty, v.view()) {
            (Type::Byte, _) => write_num(out, u64::from(self.byte(v)?)),
            (Type::Nat, View::Number) => {
                let n = integer(v)?;
                if self.strict && n < 0 {
                    return Err(Fail::new(format!("nat must not be negative, got {n}")));
                }
                // Negative int64 values wrap, as in Glean.
                write_num(out, n as u64);
            }
            (Type::String, View::Str(s)) => write_str(out, s),
            (Type::Bool, View::Bool(b)) => out.push_str(if b { "true" } else { "false" }),
            (Type::Array(elem), _) | (Type::Set(elem), _) if **elem == Type::Byte => {
                let mut bytes = self.bytes(v).ok_or_else(|| mismatch(ty, v))??;
                if matches!(ty, Type::Set(_)) {
                    bytes.sort_unstable();
                    bytes.dedup();
                }
                write_str(out, &base64::encode(&bytes));
            }
            (Type::Array(elem), View::Array(items)) => {
                out.push('[');
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.encode(elem, item, out).map_err(|f| f.at(|| format!("[{i}]")))?;
                }
                out.push(']');
            }
            (Type::Set(elem), View::Array(items)) => {
                let mut encoded = items
                    .enumerate()
                    .map(|(i, item)| {
                        let mut s = String::new();
                        self.encode(elem, item, &mut s).map_err(|f| f.at(|| format!("[{i}]")))?;
                        Ok(s)
                    })
                    .collect::<R<Vec<_>>>()?;
                encoded.sort_unstable();
                encoded.dedup();
                out.push('[');
                out.push_str(&encoded.join(","));
                out.push(']');
            }
            (Type::Maybe(inner), _) => self.encode(inner, v, out)?,
            (Type::Enum(names), View::Number) => {
                let n = integer(v)?;
                if n < 0 || n as u64 >= names.len() as u64 {
                    return Err(Fail::new(format!(
                        "enum index {n} out of range: expected a number below {} ({})",
                        names.len(),
                        names.join(" | ")
                    )));
                }
                write_num(out, n as u64);
            }
            (Type::Record(fields), View::Object(map)) => self.record(fields, map, out)?,
            (Type::Sum(alts), View::Object(map)) => self.sum(alts, map, out)?,
            (Type::Predicate(p), View::Number) => {
                let fid = self.reference(*p, integer(v)?)?;
                write_ref(out, fid);
            }
            (Type::Predicate(p), View::Object(_)) => {
                let fid = match shape(v)? {
                    Shape::Reference(n) => self.reference(*p, n)?,
                    Shape::Definition { id, key, value } => self.define(*p, id, key, value)?,
                };
                write_ref(out, fid);
            }
            _ => return Err(mismatch(ty, v)),
        }
        Ok(())
    }

    /// `[byte]` from base64 text or an array of numbers; `None` if neither.
    fn bytes(&mut self, v: Term<'_>) -> Option<R<Vec<u8>>> {
        match v.view() {
            View::Str(s) => Some(if self.strict {
                base64::check_strict(s).map(|()| base64::decode_lenient(s.as_bytes())).map_err(Fail::new)
            } else {
                Ok(base64::decode_lenient(s.as_bytes()))
            }),
            View::Array(items) => Some(items.enumerate().map(|(i, item)| self.byte(item).map_err(|f| f.at(|| format!("[{i}]")))).collect()),
            _ => None,
        }
    }

    /// A `byte`: Glean casts any int64 to 8 bits without a range check.
    fn byte(&self, v: Term<'_>) -> R<u8> {
        if !matches!(v.view(), View::Number) {
            return Err(mismatch(&Type::Byte, v));
        }
        let n = integer(v)?;
        if self.strict && !(0..=255).contains(&n) {
            return Err(Fail::new(format!("byte out of range: {n}")));
        }
        Ok(n as u8)
    }

    fn record(&mut self, fields: &[Field], map: Entries<'_>, out: &mut String) -> R<()> {
        if let Some((unknown, _)) = map.clone().find(|(k, _)| !fields.iter().any(|f| f.name == *k)) {
            return Err(Fail::new(format!("unknown field \"{unknown}\" (allowed fields: {})", field_names(fields))));
        }
        out.push('{');
        let mut first = true;
        for f in fields {
            let present = map.clone().find(|(k, _)| *k == f.name).map(|(_, v)| v);
            if present.is_none() && matches!(f.ty, Type::Maybe(_)) {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            write_str(out, &f.name);
            out.push(':');
            let result = match present {
                Some(fv) => self.encode(&f.ty, fv, out),
                None => default(self.schema, &f.name, &f.ty, out),
            };
            result.map_err(|e| e.at(|| format!(".{}", f.name)))?;
        }
        out.push('}');
        Ok(())
    }

    fn sum(&mut self, alts: &[Field], map: Entries<'_>, out: &mut String) -> R<()> {
        let mut entries = map.clone();
        let (Some((name, v)), None) = (entries.next(), entries.next()) else {
            return Err(Fail::new(format!("expected exactly one alternative of {{{}}}, got {} fields", alt_names(alts), map.len())));
        };
        let Some(alt) = alts.iter().find(|a| a.name == *name) else {
            return Err(Fail::new(format!("unknown alternative \"{name}\" (allowed: {})", alt_names(alts))));
        };
        out.push('{');
        write_str(out, name);
        out.push(':');
        self.encode(&alt.ty, v, out).map_err(|e| e.at(|| format!(".{name}")))?;
        out.push('}');
        Ok(())
    }
}

/// Reads a fact object's shape, as Glean's `factToTerm` does.
fn shape(v: Term<'_>) -> R<Shape<'_>> {
    let View::Object(map) = v.view() else {
        return Err(Fail::new(format!("{FACT_FORM}, got {}", kind(v))));
    };
    // A non-integer "id" makes the object id-less, so the key count no longer matches.
    let id = v.get("id").and_then(Term::as_i64);
    let key = v.get("key");
    let value = v.get("value");
    let expected = usize::from(id.is_some()) + usize::from(key.is_some()) + usize::from(value.is_some());
    if map.len() != expected || (key.is_none() && (id.is_none() || value.is_some())) {
        return Err(Fail::new(format!("{FACT_FORM}, in JSON term: {v}")));
    }
    Ok(match key {
        None => Shape::Reference(id.unwrap_or_default()),
        Some(key) => Shape::Definition { id: id.unwrap_or(0), key, value },
    })
}

/// An int64, as folly parses numbers; floats and wider integers are errors.
fn integer(v: Term<'_>) -> R<i64> {
    match v.as_i64() {
        Some(n) => Ok(n),
        None if v.is_u64() => Err(Fail::new(format!("integer {v} does not fit in 64 signed bits"))),
        None => Err(Fail::new(format!("expected an integer, got float {v}"))),
    }
}

/// Writes the default Glean gives a missing field, or fails for predicate types.
fn default(schema: &Schema, field: &str, ty: &Type, out: &mut String) -> R<()> {
    match ty {
        Type::Byte | Type::Nat | Type::Enum(_) => out.push('0'),
        Type::String => out.push_str("\"\""),
        Type::Bool => out.push_str("false"),
        Type::Array(e) | Type::Set(e) if **e == Type::Byte => out.push_str("\"\""),
        Type::Array(_) | Type::Set(_) => out.push_str("[]"),
        Type::Maybe(_) => out.push_str("{\"nothing\":{}}"),
        Type::Record(fields) => {
            out.push('{');
            let mut first = true;
            for f in fields.iter().filter(|f| !matches!(f.ty, Type::Maybe(_))) {
                if !first {
                    out.push(',');
                }
                first = false;
                write_str(out, &f.name);
                out.push(':');
                default(schema, &f.name, &f.ty, out).map_err(|e| e.at(|| format!(".{}", f.name)))?;
            }
            out.push('}');
        }
        Type::Sum(alts) => {
            let first = alts.first().ok_or_else(|| Fail::new("a sum type has no alternatives"))?;
            out.push('{');
            write_str(out, &first.name);
            out.push(':');
            default(schema, &first.name, &first.ty, out)?;
            out.push('}');
        }
        Type::Predicate(p) => {
            return Err(Fail::new(format!(
                "Field '{field}' is missing, but it has a predicate type: {}",
                schema.predicate(*p).full_name()
            )));
        }
    }
    Ok(())
}

fn mismatch(ty: &Type, v: Term<'_>) -> Fail {
    let expected = match ty {
        Type::Byte => "byte (a number)".to_owned(),
        Type::Nat => "nat (a number)".to_owned(),
        Type::String => "string".to_owned(),
        Type::Bool => "bool (true or false)".to_owned(),
        Type::Array(e) | Type::Set(e) if **e == Type::Byte => "[byte] (a base64 string or an array of numbers)".to_owned(),
        Type::Array(_) => "an array".to_owned(),
        Type::Set(_) => "a set (an array)".to_owned(),
        Type::Maybe(inner) => return mismatch(inner, v),
        Type::Enum(names) => format!("an enum index (a number below {})", names.len()),
        Type::Record(fields) => format!("a record (an object with fields: {})", field_names(fields)),
        Type::Sum(alts) => format!("a sum (an object with one of: {})", alt_names(alts)),
        Type::Predicate(_) => "a fact: N, {\"id\": N} or {\"key\": ...}".to_owned(),
    };
    Fail::new(format!("expected {expected}, got {}", kind(v)))
}

fn kind(v: Term<'_>) -> &'static str {
    match v.view() {
        View::Null => "null",
        View::Bool(_) => "bool",
        View::Number if v.is_float() => "float",
        View::Number => "number",
        View::Str(_) => "string",
        View::Array(_) => "array",
        View::Object(_) => "object",
    }
}

fn field_names(fields: &[Field]) -> String {
    fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn alt_names(alts: &[Field]) -> String {
    alts.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(" | ")
}

fn write_num(out: &mut String, n: u64) {
    let _ = write!(out, "{n}");
}

fn write_ref(out: &mut String, id: FactId) {
    let _ = write!(out, "{{\"id\":{id}}}");
}

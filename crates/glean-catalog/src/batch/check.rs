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
use crate::schema::{Field, PredId, Schema, Type};
use serde_json::{Map, Value};
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
}

/// The two ways a fact object can be read.
enum Shape<'v> {
    /// `{"id": N}` alone.
    Reference(i64),
    /// `{["id": N,] "key": K [, "value": V]}`; id 0 means anonymous.
    Definition { id: i64, key: &'v Value, value: Option<&'v Value> },
}

const FACT_FORM: &str = "Expecting a fact, which should be of the form: {[\"id\" : N, ] \"key\": ... [, \"value\": ...]}";

impl<'a, S: FactSink> Checker<'a, S> {
    /// A checker writing into `sink`; `strict` rejects what only lenient Glean accepts.
    pub fn new(schema: &'a Schema, sink: &'a mut S, strict: bool) -> Self {
        Checker { schema, sink, strict, names: HashMap::new(), defined: Vec::new(), collect: false }
    }

    /// Starts or stops recording the ids of defined facts.
    pub fn collect_defined(&mut self, on: bool) {
        self.collect = on;
        self.defined.clear();
    }

    /// The ids of facts defined since the last call.
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

    /// Checks and stores one top-level fact of `pred`.
    pub fn fact(&mut self, pred: PredId, fact: &Value) -> R<Option<FactId>> {
        match shape(fact)? {
            Shape::Reference(0) => Err(Fail::new(format!("Cannot use 0 as a fact ID: {fact}"))),
            Shape::Reference(id) if self.strict => Err(Fail::new(format!(
                "a top-level entry that only names fact {id} writes nothing"
            ))),
            Shape::Reference(_) => Ok(None),
            Shape::Definition { id, key, value } => self.define(pred, id, key, value).map(Some),
        }
    }

    fn define(&mut self, pred: PredId, id: i64, key: &Value, value: Option<&Value>) -> R<FactId> {
        if id >= FIRST_ANON_ID {
            return Err(Fail::new(format!("id too high: {id}")));
        }
        if self.strict && id < 0 {
            return Err(Fail::new(format!("fact ids must be positive, got {id}")));
        }
        let def = self.schema.predicate(pred);
        let mut key_text = String::with_capacity(64);
        self.encode(&def.key, key, &mut key_text)?;
        let value_text = match value {
            Some(v) => {
                let mut out = String::new();
                self.encode(&def.value, v, &mut out).map_err(|f| f.at(|| "value".into()))?;
                Some(out)
            }
            None if def.value.is_unit() => None,
            None => {
                return Err(Fail::new(format!(
                    "\"value\" is missing: {} has values of type {}",
                    def.full_name(),
                    def.value
                )))
            }
        };
        // Key-only predicates store no value, as Glean prints none.
        let value_text = value_text.filter(|_| !def.value.is_unit());
        let fact_id = match self.sink.define(pred, &key_text, value_text.as_deref()) {
            Ok(fid) => fid,
            Err(DefineError::Redefinition(existing)) => {
                return Err(Fail::new(format!("invalid fact redefinition of ${existing} : {}", def.full_name())))
            }
            Err(DefineError::Store(e)) => return Err(Fail { store: Some(e), ..Fail::new("storage failure") }),
        };
        if self.collect {
            self.defined.push(fact_id);
        }
        if id != 0 {
            if self.names.insert(id, (fact_id, pred)).is_some() && self.strict {
                return Err(Fail::new(format!("fact id {id} is defined twice in this file")));
            }
        }
        Ok(fact_id)
    }

    /// A reference to fact `n`, which must be of predicate `want`.
    fn reference(&mut self, want: PredId, n: i64) -> R<FactId> {
        let want_name = || self.schema.predicate(want).full_name();
        if n == 0 {
            return Err(Fail::new("Cannot use 0 as a fact ID"));
        }
        let (fact_id, got) = match self.names.get(&n) {
            Some(&found) => found,
            None if self.strict => {
                return Err(Fail::new(format!("reference to fact {n}, which is not defined earlier in this file")))
            }
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
    fn encode(&mut self, ty: &Type, v: &Value, out: &mut String) -> R<()> {
        match (ty, v) {
            (Type::Byte, _) => write_num(out, u64::from(self.byte(v)?)),
            (Type::Nat, Value::Number(_)) => {
                let n = integer(v)?;
                if self.strict && n < 0 {
                    return Err(Fail::new(format!("nat must not be negative, got {n}")));
                }
                // Negative int64 values wrap, as in Glean.
                write_num(out, n as u64);
            }
            (Type::String, Value::String(s)) => write_str(out, s),
            (Type::Bool, Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
            (Type::Array(elem), _) | (Type::Set(elem), _) if **elem == Type::Byte => {
                let mut bytes = self.bytes(v).ok_or_else(|| mismatch(ty, v))??;
                if matches!(ty, Type::Set(_)) {
                    bytes.sort_unstable();
                    bytes.dedup();
                }
                write_str(out, &base64::encode(&bytes));
            }
            (Type::Array(elem), Value::Array(items)) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.encode(elem, item, out).map_err(|f| f.at(|| format!("[{i}]")))?;
                }
                out.push(']');
            }
            (Type::Set(elem), Value::Array(items)) => {
                let mut encoded = items
                    .iter()
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
            (Type::Enum(names), Value::Number(_)) => {
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
            (Type::Record(fields), Value::Object(map)) => self.record(fields, map, out)?,
            (Type::Sum(alts), Value::Object(map)) => self.sum(alts, map, out)?,
            (Type::Predicate(p), Value::Number(_)) => {
                let fid = self.reference(*p, integer(v)?)?;
                write_ref(out, fid);
            }
            (Type::Predicate(p), Value::Object(_)) => {
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
    fn bytes(&mut self, v: &Value) -> Option<R<Vec<u8>>> {
        match v {
            Value::String(s) => Some(if self.strict {
                base64::check_strict(s).map(|()| base64::decode_lenient(s.as_bytes())).map_err(Fail::new)
            } else {
                Ok(base64::decode_lenient(s.as_bytes()))
            }),
            Value::Array(items) => Some(
                items.iter().enumerate().map(|(i, item)| self.byte(item).map_err(|f| f.at(|| format!("[{i}]")))).collect(),
            ),
            _ => None,
        }
    }

    /// A `byte`: Glean casts any int64 to 8 bits without a range check.
    fn byte(&self, v: &Value) -> R<u8> {
        if !v.is_number() {
            return Err(mismatch(&Type::Byte, v));
        }
        let n = integer(v)?;
        if self.strict && !(0..=255).contains(&n) {
            return Err(Fail::new(format!("byte out of range: {n}")));
        }
        Ok(n as u8)
    }

    fn record(&mut self, fields: &[Field], map: &Map<String, Value>, out: &mut String) -> R<()> {
        if let Some(unknown) = map.keys().find(|k| !fields.iter().any(|f| f.name == **k)) {
            return Err(Fail::new(format!("unknown field \"{unknown}\" (allowed fields: {})", field_names(fields))));
        }
        out.push('{');
        let mut first = true;
        for f in fields {
            let present = map.get(&f.name);
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

    fn sum(&mut self, alts: &[Field], map: &Map<String, Value>, out: &mut String) -> R<()> {
        let mut entries = map.iter();
        let (Some((name, v)), None) = (entries.next(), entries.next()) else {
            return Err(Fail::new(format!(
                "expected exactly one alternative of {{{}}}, got {} fields",
                alt_names(alts),
                map.len()
            )));
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
fn shape(v: &Value) -> R<Shape<'_>> {
    let Value::Object(map) = v else {
        return Err(Fail::new(format!("{FACT_FORM}, got {}", kind(v))));
    };
    // A non-integer "id" makes the object id-less, so the key count no longer matches.
    let id = map.get("id").and_then(Value::as_i64);
    let key = map.get("key");
    let value = map.get("value");
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
fn integer(v: &Value) -> R<i64> {
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
            )))
        }
    }
    Ok(())
}

fn mismatch(ty: &Type, v: &Value) -> Fail {
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

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
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

/// Appends `s` as a JSON string literal.
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

//! Queries: the Angle subset `glean-local query` answers, over one database.
//!
//! A query names one predicate and optionally a pattern over its key (see
//! `parse`). Results print as `glean query` prints them: one compact JSON
//! object per fact, `{"id":N,"key":...}` plus `"value"` for key/value
//! predicates, nested facts as `{"id":N}` unless expanded. A pattern is checked
//! against the predicate's type before any fact is read, so a misspelt field
//! is an error even on an empty database. Queries never write.

mod parse;

pub use parse::{Pattern, Query, SyntaxError};

use crate::batch::{FactId, write_str};
use crate::schema::{Field, Lookup, PredId, Type};
use crate::store::{Database, StoreError};
use serde_json::{Map, Value};

/// Options of `query`.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Stop after this many results.
    pub limit: Option<usize>,
    /// Replace nested fact references by the facts themselves.
    pub expand: bool,
}

/// The results of a query.
#[derive(Debug, Clone, Default)]
pub struct QueryOutput {
    /// One compact JSON object per matching fact, in id order.
    pub results: Vec<String>,
    /// True when `limit` cut the results short.
    pub truncated: bool,
    /// How many facts were looked at.
    pub facts_searched: u64,
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query text does not parse.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// The predicate is not in the database's schema.
    #[error("not in scope: {0}")]
    UnknownPredicate(String),
    /// The pattern cannot match the predicate's type.
    #[error("{0}")]
    Pattern(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored fact is not valid JSON (the database is damaged).
    #[error("stored fact {0} is damaged: {1}")]
    Damaged(FactId, serde_json::Error),
}

type R<T> = Result<T, QueryError>;

impl Database {
    /// Runs `text` and collects the matching facts.
    pub fn query(&self, text: &str, opts: &QueryOptions) -> R<QueryOutput> {
        let q = parse::parse(text)?;
        let pred = self.resolve_predicate(&q.predicate)?;
        let key_ty = self.schema().predicate(pred).key.clone();
        check_pattern(&q.pattern, &key_ty, &|p| self.schema().predicate(p).key.clone())?;
        let mut out = QueryOutput::default();
        if let Some(key) = exact_key(&q.pattern, &key_ty) {
            out.facts_searched = 1;
            if let Some((id, value)) = self.find(pred, &key)? {
                out.results.push(self.render(pred, id, &key, value.as_deref(), opts.expand)?);
            }
            return Ok(out);
        }
        let mut failure = None;
        self.scan(pred, |id, key, value| {
            out.facts_searched += 1;
            let mut step = || -> R<bool> {
                if !self.matches_text(&q.pattern, &key_ty, id, key)? {
                    return Ok(true);
                }
                if opts.limit.is_some_and(|l| out.results.len() >= l) {
                    out.truncated = true;
                    return Ok(false);
                }
                out.results.push(self.render(pred, id, key, value, opts.expand)?);
                Ok(true)
            };
            step().unwrap_or_else(|e| {
                failure = Some(e);
                false
            })
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// `P` (latest version) or `P.N`.
    fn resolve_predicate(&self, name: &str) -> R<PredId> {
        let schema = self.schema();
        if let Some((base, v)) = name.rsplit_once('.')
            && let Ok(version) = v.parse::<u32>()
        {
            return match schema.lookup(base, version) {
                Lookup::Predicate(id) => Ok(id),
                _ => Err(QueryError::UnknownPredicate(name.to_owned())),
            };
        }
        schema.latest(name).ok_or_else(|| QueryError::UnknownPredicate(name.to_owned()))
    }

    fn parse_fact(id: FactId, text: &str) -> R<Value> {
        serde_json::from_str(text).map_err(|e| QueryError::Damaged(id, e))
    }

    fn matches_text(&self, pat: &Pattern, ty: &Type, id: FactId, key: &str) -> R<bool> {
        if *pat == Pattern::Wild {
            return Ok(true);
        }
        self.matches(pat, ty, Some(&Self::parse_fact(id, key)?))
    }

    /// Does `v` (None: an absent `maybe`) match `pat` at type `ty`?
    fn matches(&self, pat: &Pattern, ty: &Type, v: Option<&Value>) -> R<bool> {
        Ok(match (pat, ty) {
            (Pattern::Wild, _) => true,
            (Pattern::Nothing, _) => v.is_none(),
            (Pattern::Fields(f), Type::Maybe(inner)) if f.len() == 1 && f[0].0 == "just" => {
                v.is_some() && self.matches(&f[0].1, inner, v)?
            }
            (_, Type::Maybe(inner)) => v.is_some() && self.matches(pat, inner, v)?,
            (_, _) if v.is_none() => false,
            (Pattern::FactId(n), Type::Predicate(_)) => ref_id(v) == Some(*n),
            (_, Type::Predicate(p)) => match ref_id(v) {
                Some(id) => match self.fact(id)? {
                    Some((_, key, _)) => {
                        let key_ty = &self.schema().predicate(*p).key;
                        self.matches(pat, key_ty, Some(&Self::parse_fact(id, &key)?))?
                    }
                    None => false,
                },
                None => false,
            },
            (Pattern::Str(s), _) => v.and_then(Value::as_str) == Some(s.as_str()),
            (Pattern::Nat(n), _) => v.and_then(Value::as_u64) == Some(*n),
            (Pattern::Bool(b), _) => v.and_then(Value::as_bool) == Some(*b),
            (Pattern::Fields(fields), Type::Record(schema_fields) | Type::Sum(schema_fields)) => {
                let Some(obj) = v.and_then(Value::as_object) else { return Ok(false) };
                for (name, p) in fields {
                    let Some(f) = schema_fields.iter().find(|f| f.name == *name) else { return Ok(false) };
                    if matches!(ty, Type::Sum(_)) && !obj.contains_key(name) {
                        return Ok(false);
                    }
                    if !self.matches(p, &f.ty, obj.get(name))? {
                        return Ok(false);
                    }
                }
                true
            }
            (Pattern::Array(items), Type::Array(elem) | Type::Set(elem)) => match v.and_then(Value::as_array) {
                Some(values) if values.len() == items.len() => {
                    for (p, item) in items.iter().zip(values) {
                        if !self.matches(p, elem, Some(item))? {
                            return Ok(false);
                        }
                    }
                    true
                }
                _ => false,
            },
            _ => false,
        })
    }

    /// `{"id":N,"key":K[,"value":V]}`, expanded if asked.
    fn render(&self, pred: PredId, id: FactId, key: &str, value: Option<&str>, expand: bool) -> R<String> {
        if !expand {
            return Ok(match value {
                Some(v) => format!("{{\"id\":{id},\"key\":{key},\"value\":{v}}}"),
                None => format!("{{\"id\":{id},\"key\":{key}}}"),
            });
        }
        let fact = self.expanded_fact(pred, id, key, value)?;
        serde_json::to_string(&fact).map_err(|e| QueryError::Damaged(id, e))
    }

    fn expanded_fact(&self, pred: PredId, id: FactId, key: &str, value: Option<&str>) -> R<Value> {
        let def = self.schema().predicate(pred);
        let mut obj = Map::new();
        obj.insert("id".into(), id.into());
        obj.insert("key".into(), self.expand(&def.key, Self::parse_fact(id, key)?)?);
        if let Some(v) = value {
            obj.insert("value".into(), self.expand(&def.value, Self::parse_fact(id, v)?)?);
        }
        Ok(Value::Object(obj))
    }

    fn expand(&self, ty: &Type, v: Value) -> R<Value> {
        Ok(match (ty, v) {
            (Type::Predicate(_), v) => match ref_id(Some(&v)) {
                Some(id) => match self.fact(id)? {
                    Some((p, key, value)) => self.expanded_fact(p, id, &key, value.as_deref())?,
                    None => v,
                },
                None => v,
            },
            (Type::Maybe(inner), v) => self.expand(inner, v)?,
            (Type::Array(elem) | Type::Set(elem), Value::Array(items)) => {
                Value::Array(items.into_iter().map(|i| self.expand(elem, i)).collect::<R<_>>()?)
            }
            (Type::Record(fields) | Type::Sum(fields), Value::Object(obj)) => Value::Object(
                obj.into_iter()
                    .map(|(k, v)| match fields.iter().find(|f| f.name == k) {
                        Some(f) => Ok((k, self.expand(&f.ty, v)?)),
                        None => Ok((k, v)),
                    })
                    .collect::<R<_>>()?,
            ),
            (_, v) => v,
        })
    }
}

fn ref_id(v: Option<&Value>) -> Option<FactId> {
    v?.get("id")?.as_u64()
}

/// The canonical key text when the pattern pins a string or nat key exactly.
fn exact_key(pat: &Pattern, ty: &Type) -> Option<String> {
    match (pat, ty) {
        (Pattern::Str(s), Type::String) => {
            let mut out = String::new();
            write_str(&mut out, s);
            Some(out)
        }
        (Pattern::Nat(n), Type::Nat) => Some(n.to_string()),
        _ => None,
    }
}

/// Rejects patterns that can never match their type (a misspelt field, a string for a nat).
fn check_pattern(pat: &Pattern, ty: &Type, key_of: &dyn Fn(PredId) -> Type) -> R<()> {
    let bad = |what: &str| Err(QueryError::Pattern(format!("pattern {what} cannot match a value of type {ty}")));
    match (pat, ty) {
        (Pattern::Wild, _) => Ok(()),
        (Pattern::Nothing, Type::Maybe(_)) => Ok(()),
        (Pattern::Fields(f), Type::Maybe(inner)) if f.len() == 1 && f[0].0 == "just" => check_pattern(&f[0].1, inner, key_of),
        (_, Type::Maybe(inner)) => check_pattern(pat, inner, key_of),
        (Pattern::FactId(_), Type::Predicate(_)) => Ok(()),
        (_, Type::Predicate(p)) => check_pattern(pat, &key_of(*p), key_of),
        (Pattern::Str(_), Type::String) => Ok(()),
        (Pattern::Nat(_), Type::Nat | Type::Byte | Type::Enum(_)) => Ok(()),
        (Pattern::Bool(_), Type::Bool) => Ok(()),
        (Pattern::Fields(fields), Type::Record(schema_fields) | Type::Sum(schema_fields)) => {
            if matches!(ty, Type::Sum(_)) && fields.len() != 1 {
                return Err(QueryError::Pattern(format!("a sum pattern names exactly one alternative of {ty}")));
            }
            for (name, p) in fields {
                let field: &Field = schema_fields.iter().find(|f| f.name == *name).ok_or_else(|| {
                    QueryError::Pattern(format!(
                        "unknown field `{name}` (fields: {})",
                        schema_fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                })?;
                check_pattern(p, &field.ty, key_of)?;
            }
            Ok(())
        }
        (Pattern::Array(items), Type::Array(elem) | Type::Set(elem)) => items.iter().try_for_each(|p| check_pattern(p, elem, key_of)),
        (Pattern::Str(s), _) => bad(&format!("{s:?}")),
        (Pattern::Nat(n), _) => bad(&n.to_string()),
        (Pattern::Bool(b), _) => bad(&b.to_string()),
        (Pattern::FactId(n), _) => bad(&format!("${n}")),
        (Pattern::Nothing, _) => bad("nothing"),
        (Pattern::Fields(_), _) => bad("{...}"),
        (Pattern::Array(_), _) => bad("[...]"),
    }
}

#[cfg(test)]
mod tests;

//! Resolved schema: the types facts are checked against.
//!
//! Named types are expanded away; predicate references stay as `PredId`s so
//! that recursion through predicates is possible. A `Schema` is immutable once
//! resolved and cheap to share.

use std::collections::{HashMap, HashSet};
use std::fmt;

/// Index of a predicate in its `Schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PredId(pub u32);

/// A resolved type.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    /// 8-bit value.
    Byte,
    /// 64-bit natural.
    Nat,
    /// UTF-8 string.
    String,
    /// `true`/`false`.
    Bool,
    /// `[T]`.
    Array(Box<Type>),
    /// `set T`.
    Set(Box<Type>),
    /// `maybe T`.
    Maybe(Box<Type>),
    /// `enum { ... }`: constructor names, indexed from 0.
    Enum(Vec<String>),
    /// `{ f : T, ... }`; the empty record is the unit type.
    Record(Vec<Field>),
    /// `{ f : T | ... }`.
    Sum(Vec<Field>),
    /// A reference to a fact of a predicate.
    Predicate(PredId),
}

impl Type {
    /// The unit type `{}`.
    pub fn unit() -> Type {
        Type::Record(Vec::new())
    }

    /// True for `{}`.
    pub fn is_unit(&self) -> bool {
        matches!(self, Type::Record(f) if f.is_empty())
    }
}

/// A record field or sum alternative.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Field type.
    pub ty: Type,
}

/// A predicate: its full name, version, key and value types.
#[derive(Debug, Clone)]
pub struct PredicateDef {
    /// Qualified name without version, e.g. `agenticAiETH.ETL.Node`.
    pub name: String,
    /// Version, e.g. 1.
    pub version: u32,
    /// Key type.
    pub key: Type,
    /// Value type (`{}` for key-only predicates).
    pub value: Type,
}

impl PredicateDef {
    /// `name.version`, the form used in batches and messages.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.name, self.version)
    }
}

/// What a versioned name denotes in a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A predicate.
    Predicate(PredId),
    /// A type (not writable).
    Type,
    /// Nothing.
    Missing,
}

/// A resolved set of schemas, as stored in a database.
#[derive(Debug, Clone)]
pub struct Schema {
    pub(crate) predicates: Vec<PredicateDef>,
    pub(crate) by_name: HashMap<(String, u32), PredId>,
    pub(crate) type_names: HashSet<(String, u32)>,
    pub(crate) all_version: Option<u32>,
}

impl Schema {
    /// Every predicate, in declaration order.
    pub fn predicates(&self) -> impl Iterator<Item = (PredId, &PredicateDef)> {
        self.predicates.iter().enumerate().map(|(i, p)| (PredId(i as u32), p))
    }

    /// The definition of a predicate.
    pub fn predicate(&self, id: PredId) -> &PredicateDef {
        &self.predicates[id.0 as usize]
    }

    /// Finds `name.version` among predicates and types.
    pub fn lookup(&self, name: &str, version: u32) -> Lookup {
        let key = (name.to_owned(), version);
        if let Some(id) = self.by_name.get(&key) {
            Lookup::Predicate(*id)
        } else if self.type_names.contains(&key) {
            Lookup::Type
        } else {
            Lookup::Missing
        }
    }

    /// Finds a predicate by `name` alone: the highest version present.
    pub fn latest(&self, name: &str) -> Option<PredId> {
        self.by_name.iter().filter(|((n, _), _)| n == name).max_by_key(|((_, v), _)| *v).map(|(_, id)| *id)
    }

    /// The highest version of the `all` schema, needed to create a database.
    pub fn all_version(&self) -> Option<u32> {
        self.all_version
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Byte => f.write_str("byte"),
            Type::Nat => f.write_str("nat"),
            Type::String => f.write_str("string"),
            Type::Bool => f.write_str("bool"),
            Type::Array(t) => write!(f, "[{t}]"),
            Type::Set(t) => write!(f, "set {t}"),
            Type::Maybe(t) => write!(f, "maybe {t}"),
            Type::Enum(names) => write!(f, "enum {{ {} }}", names.join(" | ")),
            Type::Record(fields) => write_fields(f, fields, ", "),
            Type::Sum(fields) => write_fields(f, fields, " | "),
            Type::Predicate(id) => write!(f, "predicate #{}", id.0),
        }
    }
}

fn write_fields(f: &mut fmt::Formatter<'_>, fields: &[Field], sep: &str) -> fmt::Result {
    f.write_str("{ ")?;
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{} : {}", field.name, field.ty)?;
    }
    f.write_str(" }")
}

//! Source-level syntax of Angle schemas, as the parser produces it.
//!
//! Names here are still unresolved (`SrcRef`); the resolver turns them into
//! predicate and type references. Nothing here knows about scopes or versions
//! beyond what was written.

use super::lexer::Pos;
use std::fmt;

/// A name as written: `Node`, `src.File`, `src.File.1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SrcRef {
    /// The name without its version.
    pub name: String,
    /// The explicit version, if one was written.
    pub version: Option<u32>,
}

impl SrcRef {
    /// Splits a dotted name whose last component may be a version number.
    pub fn parse(text: &str) -> SrcRef {
        if let Some((name, last)) = text.rsplit_once('.')
            && !last.is_empty()
            && last.bytes().all(|b| b.is_ascii_digit())
            && let Ok(v) = last.parse()
        {
            return SrcRef { name: name.to_owned(), version: Some(v) };
        }
        SrcRef { name: text.to_owned(), version: None }
    }
}

impl fmt::Display for SrcRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}.{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A whole parsed source (one or more files concatenated).
#[derive(Debug, Clone)]
pub struct SourceSchemas {
    /// The Angle syntax version (`version: N`, default 12).
    pub angle_version: u32,
    /// Every `schema` block, in source order.
    pub schemas: Vec<SchemaDef>,
    /// Every `schema a evolves b` declaration.
    pub evolves: Vec<(SrcRef, SrcRef, Pos)>,
}

/// One `schema name.N : parents { decls }` block.
#[derive(Debug, Clone)]
pub struct SchemaDef {
    /// The schema's name and version.
    pub name: SrcRef,
    /// Inherited schemas.
    pub inherits: Vec<SrcRef>,
    /// The declarations inside the braces.
    pub decls: Vec<Decl>,
    /// Where the block starts.
    pub pos: Pos,
}

/// A declaration inside a schema block.
#[derive(Debug, Clone)]
pub enum Decl {
    /// `import name`.
    Import(SrcRef, Pos),
    /// `type Name = T`.
    Type {
        /// Declared name (may carry an explicit version).
        name: SrcRef,
        /// The definition.
        ty: SrcType,
        /// Where it was declared.
        pos: Pos,
    },
    /// `predicate Name : K [-> V] [deriving]`.
    Predicate {
        /// Declared name (may carry an explicit version).
        name: SrcRef,
        /// Key type.
        key: SrcType,
        /// Value type; `None` means the unit record.
        value: Option<SrcType>,
        /// Where it was declared.
        pos: Pos,
    },
    /// `derive Name query`: only the name is kept.
    Derive(SrcRef, Pos),
}

/// A type as written.
#[derive(Debug, Clone, PartialEq)]
pub enum SrcType {
    /// `byte`.
    Byte,
    /// `nat`.
    Nat,
    /// `string`.
    String,
    /// `bool`.
    Bool,
    /// `[T]`.
    Array(Box<SrcType>),
    /// `set T`.
    Set(Box<SrcType>),
    /// `maybe T`.
    Maybe(Box<SrcType>),
    /// `enum { a | b }`.
    Enum(Vec<String>),
    /// `{ f : T, ... }`.
    Record(Vec<SrcField>),
    /// `{ f : T | ... }`.
    Sum(Vec<SrcField>),
    /// A named type or predicate.
    Named(SrcRef, Pos),
}

/// A record field or sum alternative as written.
#[derive(Debug, Clone, PartialEq)]
pub struct SrcField {
    /// Field name.
    pub name: String,
    /// Field type (`{}` when none was written).
    pub ty: SrcType,
    /// Where the field is.
    pub pos: Pos,
}

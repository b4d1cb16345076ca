//! Name resolution: parsed schemas in, a typed `Schema` out.
//!
//! Applies the resolver rules of GLEAN.md 2.3 that affect typing: schema
//! versions, `import` (qualified names only) versus inheritance (qualified and
//! unqualified, re-exported), unknown and ambiguous names, duplicate
//! definitions and fields, lower-case field names, reserved words, cycles, and
//! non-recursive type aliases. Evolution rules between schema versions and the
//! queries of derived predicates are not checked.

use super::ast::{Decl, SchemaDef, SourceSchemas, SrcField, SrcRef, SrcType};
use super::lexer::Pos;
use super::reserved::is_reserved;
use super::types::{Field, PredId, PredicateDef, Schema, Type};
use std::collections::{BTreeSet, HashMap, HashSet};

/// A name-resolution error, located at the declaration that caused it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct ResolveError {
    /// The declaration (or schema) at fault.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

/// Oldest Angle syntax version Glean still accepts.
const OLDEST_SUPPORTED_ANGLE_VERSION: u32 = 5;

/// Qualified name and version of a predicate or type.
type Key = (String, u32);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Pred(Key),
    Type(Key),
}

impl Target {
    fn show(&self) -> String {
        match self {
            Target::Pred((n, v)) | Target::Type((n, v)) => format!("{n}.{v}"),
        }
    }
}

type Scope = HashMap<SrcRef, BTreeSet<Target>>;

/// A type whose names are resolved but whose aliases are not yet expanded.
#[derive(Debug, Clone)]
enum RType {
    Byte,
    Nat,
    String,
    Bool,
    Array(Box<RType>),
    Set(Box<RType>),
    Maybe(Box<RType>),
    Enum(Vec<String>),
    Record(Vec<(String, RType)>),
    Sum(Vec<(String, RType)>),
    Pred(Key),
    Alias(Key, Pos),
}

/// What each resolved schema exports to the schemas that inherit or import it.
#[derive(Default, Clone)]
struct Exports {
    unqual: Scope,
    qual: Scope,
}

/// Resolves parsed schemas into a `Schema`.
pub fn resolve(src: &SourceSchemas) -> Result<Schema, ResolveError> {
    let mut r = Resolver::default();
    if let Some(first) = src.schemas.first()
        && src.angle_version < OLDEST_SUPPORTED_ANGLE_VERSION
    {
        return Err(err(&first.pos, format!("Angle version {} is not supported", src.angle_version)));
    }
    let keys = schema_keys(src)?;
    let deps = schema_dependencies(src, &keys)?;
    for (old, new, pos) in &src.evolves {
        find_schema(src, &keys, new).map_err(|m| err(pos, m))?;
        find_schema(src, &keys, old).map_err(|m| err(pos, m))?;
    }
    let mut exports: Vec<Option<Exports>> = vec![None; src.schemas.len()];
    for i in topological_order(src, &keys, &deps)? {
        let inherits: Vec<&Exports> = deps[i]
            .inherits
            .iter()
            .map(|&j| exports[j].as_ref())
            .collect::<Option<_>>()
            .ok_or_else(|| err(&src.schemas[i].pos, "internal: schema resolved out of order".into()))?;
        let imports: Vec<&Exports> = deps[i]
            .imports
            .iter()
            .map(|&j| exports[j].as_ref())
            .collect::<Option<_>>()
            .ok_or_else(|| err(&src.schemas[i].pos, "internal: schema resolved out of order".into()))?;
        let schema = &src.schemas[i];
        let (ns, version) = &keys[i];
        let resolved = r
            .resolve_one(schema, ns, *version, &inherits, &imports)
            .map_err(|e| ResolveError { pos: e.pos, message: format!("In {ns}.{version}: {}", e.message) })?;
        exports[i] = Some(resolved);
    }
    r.finish(keys.iter().filter(|(n, _)| n == "all").map(|(_, v)| *v).max())
}

fn err(pos: &Pos, message: String) -> ResolveError {
    ResolveError { pos: pos.clone(), message }
}

/// The versioned key of every schema; a missing version or a duplicate is an error.
fn schema_keys(src: &SourceSchemas) -> Result<Vec<Key>, ResolveError> {
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    for s in &src.schemas {
        let Some(v) = s.name.version else {
            return Err(err(&s.pos, format!("missing version: {}", s.name)));
        };
        if !seen.insert((s.name.name.clone(), v)) {
            return Err(err(&s.pos, format!("multiple definitions of schema {}", s.name)));
        }
        keys.push((s.name.name.clone(), v));
    }
    Ok(keys)
}

/// Index of the schema a reference names (unversioned references need Angle 10+).
fn find_schema(src: &SourceSchemas, keys: &[Key], r: &SrcRef) -> Result<usize, String> {
    let candidates: Vec<usize> = keys
        .iter()
        .enumerate()
        .filter(|(_, (n, v))| *n == r.name && r.version.map_or(src.angle_version >= 10, |want| want == *v))
        .map(|(i, _)| i)
        .collect();
    match candidates.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("unknown schema: {r}")),
        many => Err(format!(
            "ambiguous schema {r}, could be one of {}",
            many.iter().map(|&i| format!("{}.{}", keys[i].0, keys[i].1)).collect::<Vec<_>>().join(", ")
        )),
    }
}

struct Deps {
    inherits: Vec<usize>,
    imports: Vec<usize>,
}

fn schema_dependencies(src: &SourceSchemas, keys: &[Key]) -> Result<Vec<Deps>, ResolveError> {
    src.schemas
        .iter()
        .map(|s| {
            let within = |r: &SrcRef, pos: &Pos| find_schema(src, keys, r).map_err(|m| err(pos, format!("{m} within schema: {}", s.name)));
            let inherits = s.inherits.iter().map(|r| within(r, &s.pos)).collect::<Result<_, _>>()?;
            let imports = s
                .decls
                .iter()
                .filter_map(|d| match d {
                    Decl::Import(r, pos) => Some(within(r, pos)),
                    _ => None,
                })
                .collect::<Result<_, _>>()?;
            Ok(Deps { inherits, imports })
        })
        .collect()
}

/// Dependencies first; a cycle of inheritance or imports is an error.
fn topological_order(src: &SourceSchemas, keys: &[Key], deps: &[Deps]) -> Result<Vec<usize>, ResolveError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(i: usize, deps: &[Deps], marks: &mut [Mark], stack: &mut Vec<usize>, out: &mut Vec<usize>) -> Result<(), Vec<usize>> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let from = stack.iter().position(|&s| s == i).unwrap_or(0);
                return Err(stack[from..].to_vec());
            }
            Mark::New => {}
        }
        marks[i] = Mark::Active;
        stack.push(i);
        for &d in deps[i].inherits.iter().chain(&deps[i].imports) {
            visit(d, deps, marks, stack, out)?;
        }
        stack.pop();
        marks[i] = Mark::Done;
        out.push(i);
        Ok(())
    }
    let mut marks = vec![Mark::New; deps.len()];
    let mut out = Vec::new();
    for i in 0..deps.len() {
        visit(i, deps, &mut marks, &mut Vec::new(), &mut out).map_err(|cycle| {
            let names: Vec<String> = cycle.iter().map(|&c| format!("{}.{}", keys[c].0, keys[c].1)).collect();
            err(&src.schemas[cycle[0]].pos, format!("cycle in schema definitions between: {}", names.join(", ")))
        })?;
    }
    Ok(out)
}

/// Unions scopes, keeping every target of a name (ambiguity is reported on use).
fn union_all<'a>(scopes: impl IntoIterator<Item = &'a Scope>) -> Scope {
    let mut out = Scope::new();
    for s in scopes {
        for (k, v) in s {
            out.entry(k.clone()).or_default().extend(v.iter().cloned());
        }
    }
    out
}

/// `left` wins for names both define (Haskell's left-biased `HashMap.union`).
fn prefer(left: &Scope, right: Scope) -> Scope {
    let mut out = right;
    for (k, v) in left {
        out.insert(k.clone(), v.clone());
    }
    out
}

fn qualify(ns: &str, scope: &Scope) -> Scope {
    scope.iter().map(|(r, t)| (SrcRef { name: format!("{ns}.{}", r.name), version: r.version }, t.clone())).collect()
}

fn check_name(name: &str, pos: &Pos) -> Result<(), ResolveError> {
    if is_reserved(name) { Err(err(pos, format!("{name} is a reserved word, it cannot be used"))) } else { Ok(()) }
}

#[derive(Default)]
struct Resolver {
    /// Every predicate in resolution order, with its unexpanded types.
    preds: Vec<(Key, RType, RType)>,
    /// Every type alias.
    aliases: HashMap<Key, RType>,
}

impl Resolver {
    fn resolve_one(
        &mut self,
        schema: &SchemaDef,
        ns: &str,
        version: u32,
        inherits: &[&Exports],
        imports: &[&Exports],
    ) -> Result<Exports, ResolveError> {
        for part in ns.split('.') {
            check_name(part, &schema.pos)?;
        }
        let mut local = Scope::new();
        let mut seen: HashSet<Key> = HashSet::new();
        let mut declare = |name: &SrcRef, pos: &Pos, make: fn(Key) -> Target| -> Result<Key, ResolveError> {
            let key = (format!("{ns}.{}", name.name), name.version.unwrap_or(version));
            if !seen.insert(key.clone()) {
                return Err(err(pos, format!("multiple definitions for: {}.{}", key.0, key.1)));
            }
            let target = make(key.clone());
            for r in [SrcRef { name: name.name.clone(), version: None }, SrcRef { name: name.name.clone(), version: Some(key.1) }] {
                local.entry(r).or_default().insert(target.clone());
            }
            Ok(key)
        };
        let mut local_types = Vec::new();
        let mut local_preds = Vec::new();
        for d in &schema.decls {
            match d {
                Decl::Type { name, ty, pos } => local_types.push((declare(name, pos, Target::Type)?, name, ty, pos)),
                Decl::Predicate { name, key, value, pos } => local_preds.push((declare(name, pos, Target::Pred)?, name, key, value, pos)),
                Decl::Import(..) | Decl::Derive(..) => {}
            }
        }
        let qual_inherited = union_all(inherits.iter().map(|e| &e.qual));
        let unqual_inherited = union_all(inherits.iter().map(|e| &e.unqual));
        let imported = union_all(imports.iter().map(|e| &e.qual));
        let qual_local = qualify(ns, &local);
        if ns != "all" {
            let mut ambiguous: Vec<_> = unqual_inherited.iter().filter(|(_, t)| t.len() > 1).map(|(r, _)| r.to_string()).collect();
            ambiguous.sort();
            if let Some(name) = ambiguous.first() {
                return Err(err(&schema.pos, format!("inherited schemas give multiple definitions for: {name}")));
            }
        }
        let qualified = union_all([&qual_local, &qual_inherited]);
        let pred_scope = prefer(&local, prefer(&unqual_inherited, qualified.clone()));
        let scope = prefer(&local, prefer(&unqual_inherited, union_all([&qualified, &imported])));

        for (key, name, ty, pos) in local_types {
            check_name(&name.name, pos)?;
            let resolved = resolve_type(ty, &scope, pos)?;
            self.aliases.insert(key, resolved);
        }
        for (key, name, k, v, pos) in local_preds {
            check_name(&name.name, pos)?;
            let key_ty = resolve_type(k, &scope, pos)?;
            let value_ty = match v {
                Some(v) => resolve_type(v, &scope, pos)?,
                None => RType::Record(Vec::new()),
            };
            self.preds.push((key, key_ty, value_ty));
        }
        for d in &schema.decls {
            if let Decl::Derive(name, pos) = d
                && let Target::Type(_) = lookup(&pred_scope, name, pos)?
            {
                return Err(err(pos, format!("{name} is not a predicate")));
            }
        }
        let unqual = prefer(&local, unqual_inherited);
        let qual = if ns == "all" { qual_inherited } else { prefer(&qualify(ns, &unqual), qual_inherited) };
        Ok(Exports { unqual, qual })
    }

    /// Expands aliases and numbers predicates.
    fn finish(self, all_version: Option<u32>) -> Result<Schema, ResolveError> {
        let ids: HashMap<&Key, PredId> = self.preds.iter().enumerate().map(|(i, (k, _, _))| (k, PredId(i as u32))).collect();
        let mut predicates = Vec::with_capacity(self.preds.len());
        for (key, k, v) in &self.preds {
            let expand = |t: &RType| expand(t, &self.aliases, &ids, &mut Vec::new());
            predicates.push(PredicateDef { name: key.0.clone(), version: key.1, key: expand(k)?, value: expand(v)? });
        }
        for (key, alias) in &self.aliases {
            // Unused aliases must still be well-founded, as in Glean.
            expand(alias, &self.aliases, &ids, &mut vec![key.clone()])?;
        }
        Ok(Schema {
            by_name: ids.iter().map(|(k, id)| ((*k).clone(), *id)).collect(),
            type_names: self.aliases.keys().cloned().collect(),
            predicates,
            all_version,
        })
    }
}

fn lookup(scope: &Scope, r: &SrcRef, pos: &Pos) -> Result<Target, ResolveError> {
    match scope.get(r).map(|t| t.iter().collect::<Vec<_>>()).unwrap_or_default().as_slice() {
        [] => Err(err(pos, format!("not in scope: {r}"))),
        [one] => Ok((*one).clone()),
        many => {
            Err(err(pos, format!("{r} is ambiguous. It could refer to: {}", many.iter().map(|t| t.show()).collect::<Vec<_>>().join(", "))))
        }
    }
}

fn resolve_type(t: &SrcType, scope: &Scope, pos: &Pos) -> Result<RType, ResolveError> {
    Ok(match t {
        SrcType::Byte => RType::Byte,
        SrcType::Nat => RType::Nat,
        SrcType::String => RType::String,
        SrcType::Bool => RType::Bool,
        SrcType::Array(t) => RType::Array(Box::new(resolve_type(t, scope, pos)?)),
        SrcType::Set(t) => RType::Set(Box::new(resolve_type(t, scope, pos)?)),
        SrcType::Maybe(t) => RType::Maybe(Box::new(resolve_type(t, scope, pos)?)),
        SrcType::Enum(names) => {
            for n in names {
                check_name(n, pos)?;
            }
            RType::Enum(names.clone())
        }
        SrcType::Record(fields) => RType::Record(resolve_fields(fields, scope)?),
        SrcType::Sum(fields) => RType::Sum(resolve_fields(fields, scope)?),
        SrcType::Named(r, at) => match lookup(scope, r, at)? {
            Target::Pred(k) => RType::Pred(k),
            Target::Type(k) => RType::Alias(k, at.clone()),
        },
    })
}

fn resolve_fields(fields: &[SrcField], scope: &Scope) -> Result<Vec<(String, RType)>, ResolveError> {
    let mut names = HashSet::new();
    fields
        .iter()
        .map(|f| {
            if !names.insert(f.name.as_str()) {
                return Err(err(&f.pos, format!("duplicate field: {}", f.name)));
            }
            check_name(&f.name, &f.pos)?;
            if f.name.starts_with(|c: char| c.is_ascii_uppercase()) {
                return Err(err(&f.pos, format!("field names must begin with a lowercase letter: {}", f.name)));
            }
            Ok((f.name.clone(), resolve_type(&f.ty, scope, &f.pos)?))
        })
        .collect()
}

fn expand(t: &RType, aliases: &HashMap<Key, RType>, ids: &HashMap<&Key, PredId>, stack: &mut Vec<Key>) -> Result<Type, ResolveError> {
    let fields = |fs: &[(String, RType)], stack: &mut Vec<Key>| -> Result<Vec<Field>, ResolveError> {
        fs.iter().map(|(n, t)| Ok(Field { name: n.clone(), ty: expand(t, aliases, ids, stack)? })).collect()
    };
    Ok(match t {
        RType::Byte => Type::Byte,
        RType::Nat => Type::Nat,
        RType::String => Type::String,
        RType::Bool => Type::Bool,
        RType::Array(t) => Type::Array(Box::new(expand(t, aliases, ids, stack)?)),
        RType::Set(t) => Type::Set(Box::new(expand(t, aliases, ids, stack)?)),
        RType::Maybe(t) => Type::Maybe(Box::new(expand(t, aliases, ids, stack)?)),
        RType::Enum(n) => Type::Enum(n.clone()),
        RType::Record(fs) => Type::Record(fields(fs, stack)?),
        RType::Sum(fs) => Type::Sum(fields(fs, stack)?),
        RType::Pred(k) => Type::Predicate(ids[k]),
        RType::Alias(k, pos) => {
            if stack.contains(k) {
                return Err(err(pos, format!("type {}.{} is recursive; recursion must go through a predicate", k.0, k.1)));
            }
            stack.push(k.clone());
            let out = expand(&aliases[k], aliases, ids, stack)?;
            stack.pop();
            out
        }
    })
}

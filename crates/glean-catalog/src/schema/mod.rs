//! Angle schemas: where they come from, and how they become types.
//!
//! A schema source is one or more `.angle` files (`--schema dir:DIR`,
//! `file:FILE`, a bare `DIR`, or the ETL schema compiled into the binaries).
//! `SchemaSource` keeps the texts so that a database can store exactly what it
//! was created with; `SchemaSource::resolve` lexes, parses and resolves them
//! into a `Schema`. Every error names `file:line:col` and what was expected.

mod ast;
mod lexer;
mod parser;
mod reserved;
mod resolve;
mod types;

pub use lexer::Pos;
pub use parser::ParseError;
pub use resolve::ResolveError;
pub use types::{Field, Lookup, PredId, PredicateDef, Schema, Type};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The ETL schema shipped with the project (`glean/schema/source`), compiled in.
pub const BUILTIN_FILES: &[(&str, &str)] = &[
    ("all.angle", include_str!("../../../../glean/schema/source/all.angle")),
    ("etl.angle", include_str!("../../../../glean/schema/source/etl.angle")),
];

/// Why a schema could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A file or directory could not be read.
    #[error("cannot read schema {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `dir:` source holds no `.angle` file.
    #[error("no .angle files under {0}")]
    Empty(PathBuf),
    /// The `--schema` argument is of a kind glean-local does not support.
    #[error("unsupported schema location {0:?}: use dir:DIR, file:FILE or DIR")]
    Unsupported(String),
    /// A syntax error.
    #[error("schema syntax error at {0}")]
    Parse(#[from] ParseError),
    /// A name-resolution error.
    #[error("schema error at {0}")]
    Resolve(#[from] ResolveError),
    /// A database needs an `all` schema.
    #[error("no \"all\" schema: add `schema all.1 : <your schema> {{}}` to the schema sources")]
    NoAll,
}

/// The text of a schema: named files, in the order they are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaSource {
    /// `(file name, contents)` pairs.
    pub files: Vec<(String, String)>,
}

impl SchemaSource {
    /// The built-in ETL schema.
    pub fn builtin() -> SchemaSource {
        SchemaSource { files: BUILTIN_FILES.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect() }
    }

    /// Reads a location as glean's `--schema` takes it: `dir:DIR`, `file:FILE` or `DIR`.
    pub fn from_location(location: &str) -> Result<SchemaSource, SchemaError> {
        if let Some(dir) = location.strip_prefix("dir:") {
            Self::from_dir(Path::new(dir))
        } else if let Some(file) = location.strip_prefix("file:") {
            Self::from_file(Path::new(file))
        } else if location.contains(':') && !Path::new(location).exists() {
            Err(SchemaError::Unsupported(location.to_owned()))
        } else {
            Self::from_path(Path::new(location))
        }
    }

    /// A directory (every `.angle` below it) or a single file.
    pub fn from_path(path: &Path) -> Result<SchemaSource, SchemaError> {
        if path.is_dir() { Self::from_dir(path) } else { Self::from_file(path) }
    }

    /// One `.angle` file.
    pub fn from_file(path: &Path) -> Result<SchemaSource, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Io { path: path.into(), source })?;
        Ok(SchemaSource { files: vec![(path.display().to_string(), text)] })
    }

    /// Every `.angle` file under `dir`, recursively, in path order.
    pub fn from_dir(dir: &Path) -> Result<SchemaSource, SchemaError> {
        let mut paths = Vec::new();
        collect_angle_files(dir, &mut paths)?;
        if paths.is_empty() {
            return Err(SchemaError::Empty(dir.into()));
        }
        paths.sort();
        let files = paths
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).map_err(|source| SchemaError::Io { path: p.clone(), source })?;
                Ok((p.display().to_string(), text))
            })
            .collect::<Result<_, SchemaError>>()?;
        Ok(SchemaSource { files })
    }

    /// Parses and resolves every file together.
    pub fn resolve(&self) -> Result<Schema, SchemaError> {
        let mut all: Option<ast::SourceSchemas> = None;
        for (name, text) in &self.files {
            let parsed = parser::parse(name, text)?;
            all = Some(match all {
                None => parsed,
                Some(mut acc) => {
                    acc.angle_version = acc.angle_version.min(parsed.angle_version);
                    acc.schemas.extend(parsed.schemas);
                    acc.evolves.extend(parsed.evolves);
                    acc
                }
            });
        }
        let all =
            all.unwrap_or(ast::SourceSchemas { angle_version: lexer::LATEST_ANGLE_VERSION, schemas: Vec::new(), evolves: Vec::new() });
        Ok(resolve::resolve(&all)?)
    }

    /// Like `resolve`, and also requires the `all` schema a database needs.
    pub fn resolve_for_database(&self) -> Result<Schema, SchemaError> {
        let schema = self.resolve()?;
        if schema.all_version().is_none() {
            return Err(SchemaError::NoAll);
        }
        Ok(schema)
    }

    /// A stable identifier of the schema text (a BLAKE3 hash, hex).
    pub fn id(&self) -> String {
        let mut h = blake3::Hasher::new();
        for (name, text) in &self.files {
            let base = Path::new(name).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            h.update(base.as_bytes());
            h.update(&[0]);
            h.update(text.as_bytes());
            h.update(&[0]);
        }
        h.finalize().to_hex()[..16].to_owned()
    }
}

fn collect_angle_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SchemaError> {
    let io = |source| SchemaError::Io { path: dir.into(), source };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_angle_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "angle") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! The fact store: Glean-like databases, one SQLite file per NAME/INSTANCE.
//!
//! Layout: `<db-root>/<NAME>/<INSTANCE>/facts.sqlite` (WAL mode). A database
//! is created whole or not at all (built in a hidden directory, then renamed
//! into place), stores the schema it was created with, and is written through
//! `Database::write` under SQLite's single-writer lock, so several processes
//! can write at once and readers only ever see committed batches.
//!
//! Table layout (format version 2; a file of another version is refused as
//! unreadable, naming the version, and has to be created again):
//! ```text
//! meta(key, value)            name, instance, status, created, completed, schema, schema_id
//! properties(name, value)     user properties (`--property K=V`)
//! predicates(pid, name, version, facts, bytes)   counts kept up to date per batch
//! facts(id, pid, key, value)  id is the rowid: facts are appended in id order
//! fact_keys(slot, id)         slot is the rowid: where each fact's key is looked up
//! pred_ranges(pid, first_id, last_id)   runs of consecutive ids of one predicate
//! ownership(unit, fact_id)    the `unit` of each group
//! ```
//! `key`/`value` hold the canonical JSON of the batch checker, so equal facts
//! have equal text. A fact's slot is the first 8 bytes of BLAKE3(key) keyed by
//! its predicate; the rare collision of two different keys is resolved by
//! probing `slot + 1`, ... (`keys`). A write adds the slots of its new facts
//! and its predicate runs when each batch is kept, so a rolled-back batch
//! leaves nothing behind. Fact ids start at 1024 and only grow, without gaps.
//! Queries read one predicate through its runs, in id order.

mod checkpoint;
mod database;
mod keys;
mod pipeline;
mod sql_sink;
mod write;

pub use database::{Database, DbInfo, DbStatus, PredicateStats};
pub use write::{BatchInput, WriteSummary};

use crate::schema::{SchemaError, SchemaSource};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Errors of the fact store, each one a situation glean reports too.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create` on a database that exists.
    #[error("already exists")]
    AlreadyExists(DbRef),
    /// The database does not exist.
    #[error("UnknownDatabase: {0}")]
    Unknown(DbRef),
    /// Writing to a finished database.
    #[error("{0}: can't write to a read only database")]
    ReadOnly(DbRef),
    /// `finish` on a database without facts.
    #[error("finish: Database has no facts. Use --allow-zero-facts to allow this")]
    NoFacts,
    /// A `NAME/INSTANCE` that glean would refuse.
    #[error("{0}")]
    BadRef(String),
    /// A property glean reserves for itself.
    #[error("property {0:?} is reserved: names starting with \"glean.\" belong to Glean")]
    ReservedProperty(String),
    /// The stored or given schema cannot be used.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The database file is damaged or from an unknown version.
    #[error("database {db} is unreadable: {message}")]
    Corrupt {
        /// The database.
        db: DbRef,
        /// What is wrong with it.
        message: String,
    },
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The filesystem failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A database `Catalog::list` found but could not read.
#[derive(Debug)]
pub struct Unreadable {
    /// The database.
    pub db: DbRef,
    /// Why it cannot be read.
    pub error: StoreError,
}

impl Unreadable {
    /// The reason alone, without the database's name.
    pub fn reason(&self) -> String {
        match &self.error {
            StoreError::Corrupt { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// A database name and instance, written `NAME/INSTANCE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DbRef {
    /// The database name.
    pub name: String,
    /// The instance (glean's "hash").
    pub instance: String,
}

impl DbRef {
    /// A reference from its two parts, checked as glean checks them.
    pub fn new(name: &str, instance: &str) -> Result<DbRef, StoreError> {
        if instance.is_empty() || instance.contains(['\\', '/', '.', ' ']) {
            return Err(StoreError::BadRef(format!("DB instance contains illegal character: {instance:?}")));
        }
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) || name.starts_with('.') {
            return Err(StoreError::BadRef(format!("DB name is empty or contains an illegal character: {name:?}")));
        }
        Ok(DbRef { name: name.to_owned(), instance: instance.to_owned() })
    }
}

impl FromStr for DbRef {
    type Err = StoreError;
    /// Splits `NAME/INSTANCE` at the last `/`.
    fn from_str(s: &str) -> Result<DbRef, StoreError> {
        match s.rsplit_once('/') {
            Some((name, instance)) => DbRef::new(name, instance),
            None => Err(StoreError::BadRef(format!("--db takes NAME/INSTANCE, got {s:?}"))),
        }
    }
}

impl fmt::Display for DbRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.instance)
    }
}

/// A directory of databases (glean's `--db-root`).
#[derive(Debug, Clone)]
pub struct Catalog {
    root: PathBuf,
}

/// The file holding one database, inside its instance directory.
const DB_FILE: &str = "facts.sqlite";

impl Catalog {
    /// The catalog rooted at `root` (created on first `create`).
    pub fn new(root: impl Into<PathBuf>) -> Catalog {
        Catalog { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, db: &DbRef) -> PathBuf {
        self.root.join(&db.name).join(&db.instance)
    }

    /// True when the database exists.
    pub fn exists(&self, db: &DbRef) -> bool {
        self.dir(db).join(DB_FILE).is_file()
    }

    /// Creates a database holding `schema`, with `properties`.
    pub fn create(&self, db: &DbRef, schema: &SchemaSource, properties: &[(String, String)]) -> Result<Database, StoreError> {
        if let Some((k, _)) = properties.iter().find(|(k, _)| k.starts_with("glean.")) {
            return Err(StoreError::ReservedProperty(k.clone()));
        }
        let resolved = schema.resolve_for_database()?;
        if self.exists(db) {
            return Err(StoreError::AlreadyExists(db.clone()));
        }
        let parent = self.root.join(&db.name);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let staging = tempfile::Builder::new().prefix(&format!(".{}.creating-", db.instance)).tempdir_in(&parent).map_err(io(&parent))?;
        let staging = staging.keep();
        database::initialize(&staging.join(DB_FILE), db, schema, &resolved, properties)?;
        let target = self.dir(db);
        match std::fs::rename(&staging, &target) {
            Ok(()) => {}
            Err(_) if target.join(DB_FILE).exists() => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(StoreError::AlreadyExists(db.clone()));
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(StoreError::Io { path: target, source: e });
            }
        }
        Database::open_file(&target.join(DB_FILE), db.clone())
    }

    /// Opens an existing database.
    pub fn open(&self, db: &DbRef) -> Result<Database, StoreError> {
        if !self.exists(db) {
            return Err(StoreError::Unknown(db.clone()));
        }
        Database::open_file(&self.dir(db).join(DB_FILE), db.clone())
    }

    /// Every database, sorted by name then instance; fails on one that cannot
    /// be read (see `entries` to list the others anyway).
    pub fn list(&self) -> Result<Vec<DbInfo>, StoreError> {
        self.entries()?.into_iter().map(|entry| entry.map_err(|u| u.error)).collect()
    }

    /// Every database, sorted by name then instance: what `list` shows about
    /// it, or why it cannot be read (which does not keep the others from being listed).
    pub fn entries(&self) -> Result<Vec<Result<DbInfo, Unreadable>>, StoreError> {
        let mut out = Vec::new();
        for name in subdirs(&self.root)? {
            for instance in subdirs(&self.root.join(&name))? {
                let Ok(db) = DbRef::new(&name, &instance) else { continue };
                if self.exists(&db) {
                    let info = self.open(&db).and_then(|d| d.info());
                    out.push(info.map_err(|error| Unreadable { db, error }));
                }
            }
        }
        let db = |entry: &Result<DbInfo, Unreadable>| match entry {
            Ok(info) => info.db.clone(),
            Err(u) => u.db.clone(),
        };
        out.sort_by_key(db);
        Ok(out)
    }

    /// Deletes a database and its files.
    pub fn delete(&self, db: &DbRef) -> Result<(), StoreError> {
        if !self.exists(db) {
            return Err(StoreError::Unknown(db.clone()));
        }
        let dir = self.dir(db);
        std::fs::remove_dir_all(&dir).map_err(|source| StoreError::Io { path: dir, source })
    }
}

/// Names of the visible subdirectories of `dir` (none if it does not exist).
fn subdirs(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StoreError::Io { path: dir.into(), source }),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| StoreError::Io { path: dir.into(), source })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !name.starts_with('.') {
            out.push(name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

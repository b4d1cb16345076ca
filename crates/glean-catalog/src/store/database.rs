//! One open database: its connection, stored schema, state and reads.
//!
//! Opening re-reads the schema stored at creation, so writes are always
//! checked against what the database was created with (as Glean does), never
//! against whatever schema the caller has at hand.

use super::checkpoint::Checkpointer;
use super::{DbRef, StoreError};
use crate::batch::FactId;
use crate::schema::{PredId, Schema, SchemaSource};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Version of the table layout described in the module documentation.
const FORMAT_VERSION: &str = "2";

/// Beside the database file: the lock writers queue on (see `Database::write`).
const WRITERS_LOCK: &str = "writers.lock";

/// How long a writer waits for another writer's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(600);

/// A database's lifecycle state (the two of Glean's that a local store has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DbStatus {
    /// Writable and queryable.
    Incomplete,
    /// Finished: read-only.
    Complete,
}

impl DbStatus {
    fn as_str(self) -> &'static str {
        match self {
            DbStatus::Incomplete => "incomplete",
            DbStatus::Complete => "complete",
        }
    }
}

/// What `list` shows about a database.
#[derive(Debug, Clone, Serialize)]
pub struct DbInfo {
    /// NAME/INSTANCE.
    #[serde(serialize_with = "display")]
    pub db: DbRef,
    /// Lifecycle state.
    pub status: DbStatus,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Completion time, RFC 3339.
    pub completed: Option<String>,
    /// Identifier of the stored schema.
    pub schema_id: String,
    /// User properties.
    pub properties: Vec<(String, String)>,
    /// Number of facts.
    pub facts: u64,
}

fn display<S: serde::Serializer>(v: &DbRef, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Facts and bytes of one predicate (`stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PredicateStats {
    /// `name.version`.
    pub predicate: String,
    /// Number of facts.
    pub count: u64,
    /// Bytes of canonical key and value text.
    pub bytes: u64,
}

/// An open database.
pub struct Database {
    /// Dropped first: waits for a background checkpoint before the connection closes.
    pub(super) checkpointer: Checkpointer,
    pub(super) conn: Connection,
    /// The file writers lock, one after another, before SQLite's write lock (see `write`).
    pub(super) writers_lock: PathBuf,
    pub(super) db: DbRef,
    pub(super) schema: Schema,
}

pub(super) fn text_error(column: usize, e: rusqlite::types::FromSqlError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // A batch reported written must survive a power cut: sync every commit.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -65536)?;
    // The log is checkpointed as it grows (`checkpoint`), not by each process on its way out:
    // a `glean-local write` that closed the last connection copied every page it had written
    // into the database file and synced it, doubling the cost of a small write.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(conn)
}

/// Creates the tables and stores the schema in a new database file.
pub(super) fn initialize(
    path: &Path,
    db: &DbRef,
    source: &SchemaSource,
    schema: &Schema,
    properties: &[(String, String)],
) -> Result<(), StoreError> {
    let mut conn = connect(path)?;
    let tx = conn.transaction()?;
    tx.execute_batch(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE properties (name TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE predicates (pid INTEGER PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL,
                                  facts INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0);
         CREATE TABLE facts (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, key TEXT NOT NULL, value TEXT);
         CREATE TABLE fact_keys (slot INTEGER PRIMARY KEY, id INTEGER NOT NULL);
         CREATE TABLE pred_ranges (pid INTEGER NOT NULL, first_id INTEGER NOT NULL, last_id INTEGER NOT NULL,
                                   PRIMARY KEY (pid, first_id)) WITHOUT ROWID;
         CREATE TABLE ownership (unit TEXT NOT NULL, fact_id INTEGER NOT NULL,
                                 PRIMARY KEY (unit, fact_id)) WITHOUT ROWID;",
    )?;
    let schema_json = serde_json::to_string(source).map_err(|e| StoreError::Corrupt { db: db.clone(), message: e.to_string() })?;
    let meta = [
        ("format_version", FORMAT_VERSION.to_owned()),
        ("name", db.name.clone()),
        ("instance", db.instance.clone()),
        ("status", DbStatus::Incomplete.as_str().to_owned()),
        ("created", now()),
        ("schema", schema_json),
        ("schema_id", source.id()),
    ];
    for (k, v) in meta {
        tx.execute("INSERT INTO meta (key, value) VALUES (?1, ?2)", params![k, v])?;
    }
    for (k, v) in properties {
        tx.execute("INSERT OR REPLACE INTO properties (name, value) VALUES (?1, ?2)", params![k, v])?;
    }
    for (id, p) in schema.predicates() {
        tx.execute("INSERT INTO predicates (pid, name, version) VALUES (?1, ?2, ?3)", params![id.0, p.name, p.version])?;
    }
    tx.commit()?;
    Ok(())
}

impl Database {
    /// Opens the database file at `path`; a file SQLite or this store cannot
    /// read is `Corrupt`, an error that names the database.
    pub(super) fn open_file(path: &Path, db: DbRef) -> Result<Database, StoreError> {
        Self::read_file(path, &db).map_err(|e| match e {
            StoreError::Sqlite(e) => StoreError::Corrupt { db: db.clone(), message: e.to_string() },
            other => other,
        })
    }

    fn read_file(path: &Path, db: &DbRef) -> Result<Database, StoreError> {
        let conn = connect(path)?;
        let corrupt = |message: String| StoreError::Corrupt { db: db.clone(), message };
        let meta = |key: &str| -> Result<Option<String>, StoreError> {
            Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
        };
        match meta("format_version")? {
            Some(v) if v == FORMAT_VERSION => {}
            Some(v) => {
                return Err(corrupt(format!(
                    "store format {v} is not the format {FORMAT_VERSION} this glean-local reads; create the database again"
                )));
            }
            None => return Err(corrupt("no store format recorded: not a glean-local database".into())),
        }
        let source: SchemaSource =
            serde_json::from_str(&meta("schema")?.unwrap_or_default()).map_err(|e| corrupt(format!("stored schema: {e}")))?;
        let schema = source.resolve()?;
        let writers_lock = path.with_file_name(WRITERS_LOCK);
        Ok(Database { checkpointer: Checkpointer::new(path), conn, writers_lock, db: db.clone(), schema })
    }

    /// NAME/INSTANCE.
    pub fn db_ref(&self) -> &DbRef {
        &self.db
    }

    /// The schema stored in the database.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    /// Current lifecycle state.
    pub fn status(&self) -> Result<DbStatus, StoreError> {
        Ok(match self.meta("status")?.as_deref() {
            Some("complete") => DbStatus::Complete,
            _ => DbStatus::Incomplete,
        })
    }

    /// Summary for `list`.
    pub fn info(&self) -> Result<DbInfo, StoreError> {
        self.read_info().map_err(|e| self.damaged(e))
    }

    fn read_info(&self) -> Result<DbInfo, StoreError> {
        let mut stmt = self.conn.prepare("SELECT name, value FROM properties ORDER BY name")?;
        let properties = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(DbInfo {
            db: self.db.clone(),
            status: self.status()?,
            created: self.meta("created")?.unwrap_or_default(),
            completed: self.meta("completed")?,
            schema_id: self.meta("schema_id")?.unwrap_or_default(),
            properties,
            facts: self.stats()?.iter().map(|s| s.count).sum(),
        })
    }

    /// Facts and bytes per predicate, for predicates that have facts.
    pub fn stats(&self) -> Result<Vec<PredicateStats>, StoreError> {
        self.read_stats().map_err(|e| self.damaged(e))
    }

    fn read_stats(&self) -> Result<Vec<PredicateStats>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT pid, facts, bytes FROM predicates WHERE facts > 0 ORDER BY name, version")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u64>(1)?, r.get::<_, u64>(2)?)))?;
        rows.map(|row| {
            let (pid, count, bytes) = row?;
            Ok(PredicateStats { predicate: self.schema.predicate(PredId(pid)).full_name(), count, bytes })
        })
        .collect()
    }

    /// A damaged file found while reading: said as `Corrupt`, naming the database.
    fn damaged(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, message))
                if matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) =>
            {
                let message = message.unwrap_or_else(|| f.to_string());
                StoreError::Corrupt { db: self.db.clone(), message }
            }
            other => other,
        }
    }

    /// Marks the database complete (read-only). Finishing twice is a no-op.
    pub fn finish(&mut self, allow_zero_facts: bool) -> Result<(), StoreError> {
        if self.status()? == DbStatus::Complete {
            return Ok(());
        }
        if !allow_zero_facts && self.stats()?.is_empty() {
            return Err(StoreError::NoFacts);
        }
        let tx = self.conn.transaction()?;
        tx.execute("UPDATE meta SET value = 'complete' WHERE key = 'status'", [])?;
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('completed', ?1)", [now()])?;
        tx.commit()?;
        Ok(())
    }

    /// One fact by id: predicate, key and value text.
    pub fn fact(&self, id: FactId) -> Result<Option<(PredId, String, Option<String>)>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT pid, key, value FROM facts WHERE id = ?1", [id], |r| Ok((PredId(r.get(0)?), r.get(1)?, r.get(2)?)))
            .optional()?)
    }

    /// Visits every fact of `pred` in id order until `visit` returns false.
    pub fn scan(&self, pred: PredId, mut visit: impl FnMut(FactId, &str, Option<&str>) -> bool) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.id, f.key, f.value FROM pred_ranges r JOIN facts f ON f.id BETWEEN r.first_id AND r.last_id
             WHERE r.pid = ?1 ORDER BY r.first_id, f.id",
        )?;
        let mut rows = stmt.query([pred.0])?;
        while let Some(row) = rows.next()? {
            let key: &str = row.get_ref(1)?.as_str().map_err(|e| text_error(1, e))?;
            let value: Option<&str> = row.get_ref(2)?.as_str_or_null().map_err(|e| text_error(2, e))?;
            if !visit(row.get(0)?, key, value) {
                break;
            }
        }
        Ok(())
    }

    /// The fact of `pred` whose canonical key is `key`, if stored.
    pub fn find(&self, pred: PredId, key: &str) -> Result<Option<(FactId, Option<String>)>, StoreError> {
        Ok(super::keys::find(&self.conn, pred, key, |id, value| (id, value.map(str::to_owned)))?)
    }

    /// Checks SQLite's own integrity (`PRAGMA integrity_check`); `Ok(())` when sound.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let result: String = self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if result == "ok" { Ok(()) } else { Err(StoreError::Corrupt { db: self.db.clone(), message: result }) }
    }
}

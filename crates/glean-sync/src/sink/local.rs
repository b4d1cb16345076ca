//! The `local` sink: batch files go into the embedded catalog, in this process.
//!
//! In: a set of batch files already durable on disk. Out: `Ok` once all were
//! committed to the `glean_catalog` database `NAME/INSTANCE` under the db
//! root, or a `SinkError`. It owns one open `Database`, created on first use
//! (one that already exists is just as good), behind a std `Mutex` that is
//! only ever taken inside `spawn_blocking`, so no lock is held across an
//! await and SQLite never blocks the async runtime. All files of a call go
//! into one `Database::write` (one transaction); a file the schema rejects
//! writes nothing, the others of the call are still written, and the first
//! rejected file is reported. It never touches the ledger and never decides
//! about retries (`SinkError::is_retriable` does).

use super::{Sink, SinkConfigError, SinkError, SinkKind, Written, parse_db};
use glean_catalog::batch::BatchError;
use glean_catalog::schema::SchemaSource;
use glean_catalog::store::{BatchInput, Catalog, Database, DbRef, DbStatus, StoreError, WriteSummary};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

/// What the `local` sink needs, and nothing more.
#[derive(Debug, Clone)]
pub struct LocalSinkConfig {
    /// Directory of databases (glean's `--db-root`).
    pub db_root: PathBuf,
    /// The database, `NAME/INSTANCE`.
    pub db: String,
    /// Schema a new database is created with (existing ones keep theirs).
    pub schema: SchemaSource,
    /// Reject what only lenient Glean accepts; off means Glean's own leniency.
    pub strict: bool,
}

/// Writes batch files into the embedded catalog.
pub struct LocalSink {
    /// Shared with the blocking tasks that do the work.
    shared: Arc<Shared>,
}

/// The sink's state, used only on blocking threads.
struct Shared {
    /// The db root.
    catalog: Catalog,
    /// The database written to.
    db: DbRef,
    /// Used only when the database has to be created.
    schema: SchemaSource,
    /// Passed to every `Database::write`.
    strict: bool,
    /// The open database; `None` until first use, and again after a failure that may have left it unusable.
    open: Mutex<Option<Database>>,
    /// Set when the database was created anew (it did not exist), until a successful write reports it.
    fresh: std::sync::atomic::AtomicBool,
}

impl LocalSink {
    /// A sink for `config`; refuses a database that is not `NAME/INSTANCE`. Opens nothing yet.
    pub fn new(config: LocalSinkConfig) -> Result<LocalSink, SinkConfigError> {
        let db = parse_db(&config.db)?;
        let shared = Shared {
            catalog: Catalog::new(config.db_root),
            db,
            schema: config.schema,
            strict: config.strict,
            open: Mutex::new(None),
            fresh: Default::default(),
        };
        Ok(LocalSink { shared: Arc::new(shared) })
    }

    /// Runs `work` on a blocking thread with the shared state.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Shared) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || work(&shared)).await.map_err(|e| SinkError::Other(format!("local catalog task failed: {e}")))?
    }
}

impl Shared {
    /// The database slot; a panic during an earlier write drops the handle it may have left mid-transaction.
    fn lock(&self) -> MutexGuard<'_, Option<Database>> {
        self.open.lock().unwrap_or_else(|poisoned| {
            self.open.clear_poison();
            let mut slot = poisoned.into_inner();
            *slot = None;
            slot
        })
    }

    /// The open database, opening or creating it when needed.
    fn database<'s>(&self, slot: &'s mut Option<Database>) -> Result<&'s mut Database, SinkError> {
        // A handle on a deleted database would write into an unlinked file: drop it and create anew.
        if !self.catalog.exists(&self.db) {
            *slot = None;
        }
        match slot {
            Some(db) => Ok(db),
            None => Ok(slot.insert(self.open_or_create()?)),
        }
    }

    /// Opens the database, creating it first if it does not exist.
    fn open_or_create(&self) -> Result<Database, SinkError> {
        if self.catalog.exists(&self.db) {
            return self.catalog.open(&self.db).map_err(|e| self.store_error(e));
        }
        match self.catalog.create(&self.db, &self.schema, &[]) {
            Ok(db) => {
                tracing::info!(db = %self.db, root = %self.catalog.root().display(), "created local glean database");
                self.fresh.store(true, std::sync::atomic::Ordering::Release);
                Ok(db)
            }
            // Someone else created it between our check and our create.
            Err(StoreError::AlreadyExists(_)) => self.catalog.open(&self.db).map_err(|e| self.store_error(e)),
            Err(e) => Err(self.store_error(e)),
        }
    }

    /// Writes every file in one transaction; see the module doc.
    fn write(&self, files: &[PathBuf]) -> Result<Written, SinkError> {
        let mut slot = self.lock();
        let db = self.database(&mut slot)?;
        let inputs: Vec<BatchInput<'_>> = files.iter().map(|f| BatchInput::File(f)).collect();
        match db.write(&inputs, self.strict) {
            Ok(results) => {
                first_failure(files, results)?;
                Ok(Written { created_database: self.fresh.swap(false, std::sync::atomic::Ordering::AcqRel) })
            }
            Err(e) => {
                let error = self.store_error(e);
                if matches!(error, SinkError::Other(_)) {
                    // Storage trouble: reopen next time rather than trust this connection.
                    *slot = None;
                }
                Err(error)
            }
        }
    }

    /// Opens (or creates) the database and checks that it takes writes.
    fn check(&self) -> Result<(), SinkError> {
        let mut slot = self.lock();
        let db = self.database(&mut slot)?;
        match db.status().map_err(|e| self.store_error(e))? {
            DbStatus::Complete => Err(SinkError::ReadOnly(self.db.to_string())),
            DbStatus::Incomplete => Ok(()),
        }
    }

    /// A store error as the sink reports it.
    fn store_error(&self, e: StoreError) -> SinkError {
        match e {
            StoreError::ReadOnly(db) => SinkError::ReadOnly(format!("{db}: can't write to a read only database")),
            StoreError::Unknown(db) => SinkError::UnknownDatabase(db.to_string()),
            other => SinkError::Other(format!("local catalog {}: {other}", self.db)),
        }
    }
}

/// The first rejected file, else the first file that failed otherwise, else `Ok`.
fn first_failure(files: &[PathBuf], results: Vec<Result<WriteSummary, BatchError>>) -> Result<(), SinkError> {
    let failures: Vec<(&PathBuf, BatchError)> = files.iter().zip(results).filter_map(|(f, r)| r.err().map(|e| (f, e))).collect();
    if let Some((file, e)) = failures.iter().find(|(_, e)| e.is_invalid_batch()) {
        return Err(SinkError::Rejected { file: Some((*file).clone()), reason: e.to_string() });
    }
    match failures.into_iter().next() {
        // Unreadable file or storage trouble: nothing says the batch is bad.
        Some((_, e)) => Err(SinkError::Other(e.to_string())),
        None => Ok(()),
    }
}

#[async_trait::async_trait]
impl Sink for LocalSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Local
    }

    fn describe(&self) -> String {
        format!("local: catalog {} --db {}", self.shared.catalog.root().display(), self.shared.db)
    }

    async fn write_until(&self, files: &[PathBuf], cancel: &CancellationToken) -> Result<Written, SinkError> {
        // A catalog transaction is short and cannot be interrupted; only one not yet begun is stopped.
        if cancel.is_cancelled() {
            return Err(SinkError::Cancelled);
        }
        if files.is_empty() {
            return Ok(Written::default());
        }
        let files = files.to_vec();
        self.blocking(move |shared| shared.write(&files)).await
    }

    async fn check(&self) -> Result<(), SinkError> {
        self.blocking(|shared| shared.check()).await
    }
}

#[cfg(test)]
mod tests;

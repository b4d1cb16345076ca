//! Assembly: a validated `Config` in, a running exporter out.
//!
//! Opens the state directory (taking its lock, so two processes never drive
//! one embedded ledger), the ledger, and in real-time mode the sink (`auto`
//! resolved here, and logged), then starts the exporter. It also prints the
//! original exporter's startup lines. Entry points (CLI, server) call this;
//! nothing else builds components.

use crate::batch::BatchDir;
use crate::config::{Config, GleanConfig, GleanTarget, LedgerLocation, Mode, SchemaConfig};
use crate::exporter::{Exporter, Parts};
use crate::ledger::postgres::PgLedger;
use crate::ledger::sqlite::SqliteLedger;
use crate::ledger::{Ledger, LedgerError};
use crate::sink::cli::{CliSink, CliSinkConfig, Target};
use crate::sink::local::{LocalSink, LocalSinkConfig};
use crate::sink::{Sink, SinkKind};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::info;

/// The ledger owner name of an embedded (single-process) ledger.
pub const LOCAL_OWNER: &str = "local";

/// Why glean-sync could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state directory cannot be used.
    #[error("GLEAN_SYNC_STATE: state directory {path}: {message}")]
    State {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Another process holds the state directory.
    #[error(
        "another glean-sync process is using {0} (only one may drive an embedded ledger; stop it, or point GLEAN_SYNC_STATE elsewhere)"
    )]
    Busy(PathBuf),
    /// The ledger cannot be opened (`var` says where it was configured).
    #[error("{var}: {source}")]
    LedgerOpen {
        /// `GLEAN_SYNC_STATE` or `GLEAN_SYNC_DATABASE_URL`.
        var: &'static str,
        /// Why.
        source: LedgerError,
    },
    /// The ledger failed while the exporter started (recovery, reconciliation).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The glean binary cannot be run.
    #[error("GLEAN_BIN: {0}")]
    GleanBin(crate::sink::SinkError),
    /// The export directory cannot be used.
    #[error("GLEAN_EXPORT_DIR: {0}")]
    ExportDir(#[from] crate::batch::BatchFileError),
    /// The sink's settings cannot work.
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkConfigError),
    /// Real-time mode without a database.
    #[error("GLEAN_DB_NAME is required to write into Glean")]
    NoDatabase,
}

/// A running glean-sync: the exporter and what keeps it valid.
pub struct App {
    /// The exporter.
    pub exporter: Exporter,
    /// The configuration it runs with.
    pub config: Config,
    /// Held for the life of the process: one exporter per state directory.
    _lock: nix::fcntl::Flock<File>,
}

/// Opens the ledger alone (for `status` and `replay`, which may run beside a server).
pub async fn open_ledger(config: &Config) -> Result<Arc<dyn Ledger>, StartError> {
    Ok(match &config.ledger {
        LedgerLocation::Sqlite(path) => {
            Arc::new(SqliteLedger::open(path).await.map_err(|source| StartError::LedgerOpen { var: "GLEAN_SYNC_STATE", source })?)
        }
        LedgerLocation::Postgres { url, schema } => Arc::new(
            PgLedger::connect(url, schema.as_deref())
                .await
                .map_err(|source| StartError::LedgerOpen { var: "GLEAN_SYNC_DATABASE_URL", source })?,
        ),
    })
}

/// This process's name as a ledger owner: on an embedded ledger, which one process drives
/// (the state directory's lock sees to it), everything in flight is its own; on a shared
/// one, its node id.
fn owner(config: &Config) -> String {
    match config.ledger {
        LedgerLocation::Sqlite(_) => LOCAL_OWNER.to_owned(),
        LedgerLocation::Postgres { .. } => config.node_id.clone(),
    }
}

/// Starts the exporter as `config` says; `mode` overrides the configured mode (`drain` delivers even in batch mode).
pub async fn start(config: Config, mode: Mode) -> Result<App, StartError> {
    let lock = lock_state_dir(&config.state_dir)?;
    let ledger = open_ledger(&config).await?;
    let batches = BatchDir::new(&config.export.dir, config.export.compression)?;
    let sink = match mode {
        Mode::Batch => None,
        Mode::Realtime => Some(checked_sink(&config).await?),
    };
    announce(&config, mode, sink.as_deref());
    let exporter = Exporter::start(Parts {
        ledger,
        sink,
        batches,
        predicates: config.export.predicates.clone(),
        config: config.exporter.clone(),
        owner: owner(&config),
        db: config.glean.as_ref().map(|g| g.db.to_string()).unwrap_or_default(),
    })
    .await?;
    Ok(App { exporter, config, _lock: lock })
}

fn lock_state_dir(dir: &Path) -> Result<nix::fcntl::Flock<File>, StartError> {
    let state_err = |message: String| StartError::State { path: dir.to_owned(), message };
    std::fs::create_dir_all(dir).map_err(|e| state_err(e.to_string()))?;
    let file = File::options().create(true).truncate(false).write(true).open(dir.join("lock")).map_err(|e| state_err(e.to_string()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| StartError::Busy(dir.to_owned()))
}

/// The original exporter's startup line, and what mode and sink are in use.
fn announce(config: &Config, mode: Mode, sink: Option<&dyn Sink>) {
    match (mode, sink) {
        (Mode::Realtime, Some(sink)) => info!(
            workers = config.exporter.workers,
            queue_capacity = config.exporter.queue_capacity,
            sink = %sink.describe(),
            export_dir = %config.export.dir.display(),
            "[glean] Real-time Glean export enabled"
        ),
        _ => info!(
            export_dir = %config.export.dir.display(),
            "[glean] Real-time Glean export disabled: batch mode, batch files only. \
             Set GLEAN_REALTIME_ENABLE=true and GLEAN_DB_NAME to enable it, or run `glean-sync drain` to deliver the backlog"
        ),
    }
}

/// The configured sink, checked: a glean binary that cannot run stops startup (it is a setting
/// to fix, and every write would only wait for it); a sink that is down for now is only
/// reported, since saves are taken and delivered when it answers.
async fn checked_sink(config: &Config) -> Result<Arc<dyn Sink>, StartError> {
    let sink = build_sink(config)?;
    match sink.check().await {
        Ok(()) => {}
        Err(e @ crate::sink::SinkError::Spawn { .. }) => return Err(StartError::GleanBin(e)),
        Err(e) => tracing::warn!(sink = %sink.describe(), error = %e, "the sink does not answer yet; saves are kept until it does"),
    }
    Ok(sink)
}

/// The configured sink, `auto` resolved to `cli` when the glean binary is found, else `local`.
pub fn build_sink(config: &Config) -> Result<Arc<dyn Sink>, StartError> {
    let glean = config.glean.as_ref().ok_or(StartError::NoDatabase)?;
    let kind = match glean.sink {
        SinkKind::Auto => match crate::sink::cli::find_program(&glean.program.to_string_lossy()) {
            Some(_) => SinkKind::Cli,
            None => {
                info!(program = %glean.program.display(), "GLEAN_SINK=auto: the glean binary is not found; using the embedded catalog (local sink)");
                SinkKind::Local
            }
        },
        other => other,
    };
    Ok(match kind {
        SinkKind::Local => Arc::new(LocalSink::new(LocalSinkConfig {
            db_root: glean.db_root.clone(),
            db: glean.db.to_string(),
            schema: config.schema.source.clone(),
            strict: false,
        })?),
        _ => Arc::new(CliSink::new(cli_config(glean, &config.schema, &config.state_dir)?)?),
    })
}

fn cli_config(glean: &GleanConfig, schema: &SchemaConfig, state_dir: &Path) -> Result<CliSinkConfig, StartError> {
    let schema_dir = match &schema.dir {
        Some(dir) => dir.clone(),
        None => materialize_schema(schema, &state_dir.join("schema"))
            .map_err(|e| StartError::State { path: state_dir.to_owned(), message: format!("cannot write the schema directory: {e}") })?,
    };
    Ok(CliSinkConfig {
        program: glean.program.clone(),
        db: glean.db.to_string(),
        target: match &glean.target {
            GleanTarget::DbRoot(root) => Target::DbRoot(root.clone()),
            GleanTarget::Service(s) => Target::Service(s.clone()),
        },
        schema_dir,
        timeout: glean.write_timeout,
    })
}

/// Writes the schema where `glean create --schema dir:` can read it.
fn materialize_schema(schema: &SchemaConfig, dir: &Path) -> std::io::Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    for (name, text) in &schema.source.files {
        let base = Path::new(name).file_name().map(|n| n.to_owned()).unwrap_or_else(|| "schema.angle".into());
        std::fs::write(dir.join(base), text)?;
    }
    Ok(dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use glean_catalog::schema::SchemaSource;

    #[test]
    fn the_schema_is_written_where_glean_can_read_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let schema = SchemaConfig { source: SchemaSource::builtin(), dir: None };
        let out = materialize_schema(&schema, &dir.path().join("schema")).expect("written");
        let loaded = SchemaSource::from_location(&format!("dir:{}", out.display())).expect("reads");
        assert_eq!(loaded.resolve_for_database().expect("has all").all_version(), Some(1));
    }

    #[test]
    fn the_state_directory_admits_one_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = lock_state_dir(dir.path()).expect("first lock");
        assert!(matches!(lock_state_dir(dir.path()), Err(StartError::Busy(_))));
        drop(first);
        lock_state_dir(dir.path()).expect("free again");
    }
}

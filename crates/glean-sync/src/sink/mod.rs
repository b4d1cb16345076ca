//! Sinks: where batch files go. The last stage before Glean.
//!
//! A `Sink` writes a set of batch files into one Glean database and says
//! whether it worked. `cli` runs the `glean` command-line tool (or anything
//! with its interface, such as `glean-local`); `local` writes through the
//! embedded catalog in this process. Sinks never touch the ledger and never
//! decide about retries: they describe what went wrong in a `SinkError`, and
//! `SinkError::is_retriable` is the single place that says whether trying
//! again can help.

pub mod cli;
pub mod local;

use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a write did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// The write took longer than the timeout and was killed.
    #[error("glean write timed out after {after:?} and was killed{}", tail(stderr))]
    Timeout {
        /// The timeout.
        after: Duration,
        /// The end of its standard error up to then (often says what it was waiting for).
        stderr: String,
    },
    /// The glean process could not be started.
    #[error("cannot run {program}: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        message: String,
    },
    /// The process died of a signal or exited in a way that says nothing about the batch.
    #[error("glean exited with {status}: {stderr}")]
    Crashed {
        /// How it ended (`exit status 1`, `signal 9`).
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// The Glean server could not be reached.
    #[error("glean server unreachable: {0}")]
    Unreachable(String),
    /// The database does not exist (it will be created before the next try).
    #[error("unknown database {0}")]
    UnknownDatabase(String),
    /// The database is finished (read-only): writing can only work after an operator acts.
    #[error("database is read-only: {0}")]
    ReadOnly(String),
    /// Glean refused a batch: the file (when known) will never be accepted as it is.
    #[error("batch rejected{}: {reason}", file.as_ref().map(|f| format!(" ({})", f.display())).unwrap_or_default())]
    Rejected {
        /// The rejected file, when the sink can tell.
        file: Option<PathBuf>,
        /// Glean's reason.
        reason: String,
    },
    /// Any other failure; assumed transient.
    #[error("{0}")]
    Other(String),
    /// The write was stopped at shutdown (nothing is known of it; it will be done again).
    #[error("the write was cancelled at shutdown")]
    Cancelled,
}

impl SinkError {
    /// Whether the same write could succeed later. The only place that decides it.
    pub fn is_retriable(&self) -> bool {
        match self {
            SinkError::Timeout { .. }
            | SinkError::Crashed { .. }
            | SinkError::Unreachable(_)
            | SinkError::UnknownDatabase(_)
            | SinkError::Spawn { .. }
            | SinkError::Other(_)
            | SinkError::Cancelled => true,
            SinkError::ReadOnly(_) | SinkError::Rejected { .. } => false,
        }
    }

    /// Whether the sink itself is down (not reachable, not runnable): the batch is
    /// not at fault, so the attempt is not counted against it and deliveries pause.
    pub fn is_outage(&self) -> bool {
        matches!(self, SinkError::Unreachable(_) | SinkError::Spawn { .. })
    }

    /// A short, stable name of the cause, for stats and metric labels.
    pub fn cause(&self) -> &'static str {
        match self {
            SinkError::Timeout { .. } => "timeout",
            SinkError::Spawn { .. } => "spawn",
            SinkError::Crashed { .. } => "crash",
            SinkError::Unreachable(_) => "unreachable",
            SinkError::UnknownDatabase(_) => "unknown_database",
            SinkError::ReadOnly(_) => "read_only",
            SinkError::Rejected { .. } => "rejected",
            SinkError::Other(_) => "other",
            SinkError::Cancelled => "cancelled",
        }
    }
}

/// `: STDERR` when there is any, for messages that end with a process's stderr tail.
fn tail(stderr: &str) -> String {
    if stderr.trim().is_empty() { String::new() } else { format!(": {}", stderr.trim_end()) }
}

/// What a successful write did besides writing the files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// The database did not exist and the sink created it since its last successful write:
    /// whatever a database of that name held before (if it ever existed) is gone.
    pub created_database: bool,
}

/// A sink configuration that can never work; found when the sink is built, not at write time.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkConfigError {
    /// The database is not a valid `NAME/INSTANCE` (glean needs the instance).
    #[error("database {db:?}: {reason}")]
    BadDatabase {
        /// The configured database.
        db: String,
        /// Why glean would refuse it.
        reason: String,
    },
    /// `--service` needs `HOST:PORT`.
    #[error("glean service {0:?}: expected HOST:PORT")]
    BadService(String),
}

/// Checks `db` as glean checks `--db NAME/INSTANCE`.
pub(crate) fn parse_db(db: &str) -> Result<glean_catalog::store::DbRef, SinkConfigError> {
    db.parse().map_err(|e: glean_catalog::store::StoreError| SinkConfigError::BadDatabase { db: db.to_owned(), reason: e.to_string() })
}

/// Which sink a deployment uses (`GLEAN_SINK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// The glean CLI (or a compatible binary) as a subprocess.
    Cli,
    /// The embedded catalog, in process.
    Local,
    /// `cli` when the glean binary is found, else `local`.
    Auto,
}

/// Writes batch files into one Glean database.
#[async_trait::async_trait]
pub trait Sink: Send + Sync + 'static {
    /// `cli` or `local`, for logs and stats.
    fn kind(&self) -> SinkKind;

    /// A one-line description: program or catalog, database, root or service.
    fn describe(&self) -> String;

    /// Writes every file, each all-or-nothing. `Ok` only when all were written (saying
    /// whether the database had to be created for it);
    /// files before a failing one may have been written (Glean keeps them),
    /// which is harmless because writing a batch again changes nothing. When
    /// `cancel` fires the write stops (a glean process group is killed and
    /// reaped before this returns) with `SinkError::Cancelled`.
    async fn write_until(&self, files: &[PathBuf], cancel: &CancellationToken) -> Result<Written, SinkError>;

    /// `write_until` without cancellation.
    async fn write(&self, files: &[PathBuf]) -> Result<Written, SinkError> {
        self.write_until(files, &CancellationToken::new()).await
    }

    /// Checks that the sink can take writes (binary runs / catalog opens).
    async fn check(&self) -> Result<(), SinkError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_batch_and_database_faults_are_final() {
        assert!(SinkError::Timeout { after: Duration::from_secs(1), stderr: String::new() }.is_retriable());
        assert!(SinkError::UnknownDatabase("x/0".into()).is_retriable());
        assert!(SinkError::Unreachable("refused".into()).is_retriable());
        assert!(!SinkError::Rejected { file: None, reason: "type error".into() }.is_retriable());
        assert!(!SinkError::ReadOnly("x/0".into()).is_retriable());
    }
}

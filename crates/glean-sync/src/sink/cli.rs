//! The `cli` sink: batch files go into Glean through the `glean` command-line tool.
//!
//! In: a set of batch files already durable on disk. Out: `Ok` once
//! `glean write --db NAME/INSTANCE (--db-root DIR | --service HOST:PORT) FILE...`
//! exited 0, or a `SinkError` naming the cause with glean's stderr tail.
//! It owns the glean invocations: the argv (never a shell string), creating
//! the database before the first write and again when a write finds it
//! missing (`glean create ... --schema dir:DIR`; "already exists" is
//! success), and the timeout, past which the whole process group is killed
//! (`process`). The one reading of glean's messages is in `classify`.
//! It never touches the ledger and never decides about retries
//! (`SinkError::is_retriable` does); the single retry it makes itself is the
//! write that follows re-creating a database that had disappeared.

mod classify;
mod process;
#[cfg(test)]
mod tests;

use super::{Sink, SinkConfigError, SinkError, SinkKind, Written, parse_db};
use process::{Finished, RunError};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long `check` lets `PROGRAM --help` run.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the databases live, as glean's backend options say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A local database directory (`--db-root DIR`).
    DbRoot(PathBuf),
    /// A Glean server (`--service HOST:PORT`).
    Service(String),
}

/// What the `cli` sink needs, and nothing more.
#[derive(Debug, Clone)]
pub struct CliSinkConfig {
    /// The glean binary (or one with its interface, such as `glean-local`).
    pub program: PathBuf,
    /// The database, `NAME/INSTANCE`.
    pub db: String,
    /// Local directory or server.
    pub target: Target,
    /// Schema directory for `glean create --schema dir:DIR`.
    pub schema_dir: PathBuf,
    /// Longest a `write` call may take, creating included; then the process group is killed.
    pub timeout: Duration,
}

/// Writes batch files by running the glean CLI.
#[derive(Debug)]
pub struct CliSink {
    /// Program, database, target, schema and timeout, fixed for the sink's life.
    config: CliSinkConfig,
    /// True once this sink has seen the database exist (created, or "already exists").
    /// Cleared when a write reports it unknown, so the next write creates it first.
    created: AtomicBool,
    /// Set when `glean create` made the database anew (it did not exist); taken by the
    /// next successful write, which reports it (`Written::created_database`).
    fresh: AtomicBool,
}

impl CliSink {
    /// A sink for `config`; refuses a database without an instance or a service without a port.
    pub fn new(config: CliSinkConfig) -> Result<CliSink, SinkConfigError> {
        parse_db(&config.db)?;
        if let Target::Service(service) = &config.target {
            let valid = service.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && !port.is_empty());
            if !valid {
                return Err(SinkConfigError::BadService(service.clone()));
            }
        }
        Ok(CliSink { config, created: AtomicBool::new(false), fresh: AtomicBool::new(false) })
    }

    /// `--db NAME/INSTANCE` and the target options, shared by every verb.
    fn db_args(&self) -> Vec<OsString> {
        let (flag, value) = match &self.config.target {
            Target::DbRoot(dir) => ("--db-root", dir.as_os_str().to_owned()),
            Target::Service(service) => ("--service", OsString::from(service)),
        };
        vec!["--db".into(), self.config.db.clone().into(), flag.into(), value]
    }

    /// `create --db ... --schema dir:DIR`.
    fn create_args(&self) -> Vec<OsString> {
        let mut schema = OsString::from("dir:");
        schema.push(&self.config.schema_dir);
        let mut args = vec![OsString::from("create")];
        args.extend(self.db_args());
        args.extend(["--schema".into(), schema]);
        args
    }

    /// `write --db ... FILE...`.
    fn write_args(&self, files: &[PathBuf]) -> Vec<OsString> {
        let mut args = vec![OsString::from("write")];
        args.extend(self.db_args());
        args.extend(files.iter().map(|f| arg_path(f)));
        args
    }

    /// Runs the program until `deadline`; spawn failures and timeouts become `SinkError`s.
    async fn run(&self, args: &[OsString], deadline: Instant, cancel: &CancellationToken) -> Result<Finished, SinkError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SinkError::Timeout { after: self.config.timeout, stderr: String::new() });
        }
        tracing::debug!(program = %self.config.program.display(), ?args, "running glean");
        process::run(&self.config.program, args, left, cancel).await.map_err(|e| match e {
            RunError::Cancelled => SinkError::Cancelled,
            RunError::Spawn(e) => SinkError::Spawn { program: self.config.program.display().to_string(), message: e.to_string() },
            RunError::Wait(e) => SinkError::Other(format!("{}: {e}", self.config.program.display())),
            RunError::Timeout { stderr } => {
                tracing::warn!(program = %self.config.program.display(), timeout = ?self.config.timeout, %stderr, "glean killed at the timeout");
                SinkError::Timeout { after: self.config.timeout, stderr }
            }
        })
    }

    /// Creates the database; one that already exists is just as good.
    async fn create(&self, deadline: Instant, cancel: &CancellationToken) -> Result<(), SinkError> {
        let finished = self.run(&self.create_args(), deadline, cancel).await?;
        let exists = finished.status.code() == Some(3) && finished.stderr.contains("already exists");
        if !finished.status.success() && !exists {
            return Err(match classify::classify(finished.status, &finished.stderr, &self.config.db, &[]) {
                // No batch is involved in a create: a "parse error" here is the schema, an operator's fix.
                SinkError::Rejected { reason, .. } => SinkError::Other(format!("glean create failed: {reason}")),
                other => other,
            });
        }
        if !exists {
            self.fresh.store(true, Ordering::Release);
        }
        self.created.store(true, Ordering::Release);
        Ok(())
    }

    /// One `glean write` of `files`.
    async fn write_once(&self, files: &[PathBuf], deadline: Instant, cancel: &CancellationToken) -> Result<(), SinkError> {
        let finished = self.run(&self.write_args(files), deadline, cancel).await?;
        tracing::debug!(stdout = %finished.stdout, "glean write finished");
        if finished.status.success() {
            return Ok(());
        }
        Err(classify::classify(finished.status, &finished.stderr, &self.config.db, files))
    }
}

#[async_trait::async_trait]
impl Sink for CliSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Cli
    }

    fn describe(&self) -> String {
        let target = match &self.config.target {
            Target::DbRoot(dir) => format!("--db-root {}", dir.display()),
            Target::Service(service) => format!("--service {service}"),
        };
        format!("cli: {} --db {} {target}", self.config.program.display(), self.config.db)
    }

    async fn write_until(&self, files: &[PathBuf], cancel: &CancellationToken) -> Result<Written, SinkError> {
        if files.is_empty() {
            return Ok(Written::default());
        }
        let deadline = Instant::now() + self.config.timeout;
        if !self.created.load(Ordering::Acquire) {
            self.create(deadline, cancel).await?;
        }
        match self.write_once(files, deadline, cancel).await {
            Err(SinkError::UnknownDatabase(reason)) => {
                // Deleted since we created it (or created elsewhere and gone): create it again, write once more.
                tracing::info!(db = %self.config.db, %reason, "glean database disappeared; creating it again");
                self.created.store(false, Ordering::Release);
                self.create(deadline, cancel).await?;
                self.write_once(files, deadline, cancel).await
            }
            other => other,
        }?;
        Ok(Written { created_database: self.fresh.swap(false, Ordering::AcqRel) })
    }

    async fn check(&self) -> Result<(), SinkError> {
        let deadline = Instant::now() + self.config.timeout.min(CHECK_TIMEOUT);
        let finished = self.run(&["--help".into()], deadline, &CancellationToken::new()).await?;
        if finished.status.success() {
            return Ok(());
        }
        Err(classify::classify(finished.status, &finished.stderr, &self.config.db, &[]))
    }
}

/// A file as an argument: a relative path starting with `-` gets `./` so it is never read as an option.
fn arg_path(path: &Path) -> OsString {
    if path.is_relative() && path.as_os_str().as_encoded_bytes().starts_with(b"-") {
        Path::new(".").join(path).into_os_string()
    } else {
        path.as_os_str().to_owned()
    }
}

/// Finds a program: a bare name through `PATH`, a path (anything with a `/`) as given.
/// Only executable regular files count. Used by `GLEAN_SINK=auto` to pick `cli` or `local`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.is_empty() {
        return None;
    }
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let path_var = std::env::var_os("PATH")?;
    // An empty PATH entry means the current directory; we do not run programs from there by accident.
    std::env::split_paths(&path_var)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// True for a regular file with an execute bit.
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

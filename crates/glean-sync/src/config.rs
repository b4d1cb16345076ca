//! Configuration: environment variables and flags in, typed settings out.
//!
//! `Settings` is what clap parses (every setting is a flag and an environment
//! variable, with the original exporter's names and defaults); `Settings::load`
//! validates it once into a `Config`, whose parts are the small structs each
//! component takes. A bad value stops startup with a message naming the
//! variable and what it accepts. Nothing here starts anything.

use crate::batch::{Compression, Predicates};
use crate::exporter::RetryPolicy;
use crate::sink::SinkKind;
use clap::Args;
use glean_catalog::schema::{Lookup, Schema, SchemaError, SchemaSource};
use glean_catalog::store::DbRef;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The schema file the original exporter points at by default.
pub const DEFAULT_SCHEMA_PATH: &str = "glean/schema/source/etl.angle";

/// Every setting, as flag and environment variable.
#[derive(Args, Debug, Clone)]
pub struct Settings {
    /// Real-time export on (true/false); off is batch mode: batch files only.
    #[arg(long, global = true, env = "GLEAN_REALTIME_ENABLE", value_name = "GLEAN_REALTIME_ENABLE", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub realtime_enable: bool,
    /// Glean database: NAME or NAME/INSTANCE (required when real-time export is on).
    #[arg(long, global = true, env = "GLEAN_DB_NAME", value_name = "GLEAN_DB_NAME")]
    pub db_name: Option<String>,
    /// Instance used when GLEAN_DB_NAME has none.
    #[arg(long, global = true, env = "GLEAN_DB_INSTANCE", value_name = "GLEAN_DB_INSTANCE", default_value = "0")]
    pub db_instance: String,
    /// Number of export workers (1-256).
    #[arg(long, global = true, env = "GLEAN_REALTIME_WORKERS", value_name = "GLEAN_REALTIME_WORKERS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Directory of batch files.
    #[arg(long, global = true, env = "GLEAN_EXPORT_DIR", value_name = "GLEAN_EXPORT_DIR", default_value = "./data/glean/exports")]
    pub export_dir: PathBuf,
    /// Angle schema, a file or a directory (default: glean/schema/source/etl.angle if present, else the built-in schema).
    #[arg(long, global = true, env = "GLEAN_SCHEMA_PATH", value_name = "GLEAN_SCHEMA_PATH")]
    pub schema_path: Option<PathBuf>,
    /// Predicate namespace.
    #[arg(long, global = true, env = "GLEAN_PREDICATE_PREFIX", value_name = "GLEAN_PREDICATE_PREFIX", default_value = "agenticAiETH.ETL")]
    pub predicate_prefix: String,
    /// Slots of the in-memory queue of export ids (1-1000000); a full queue never drops a save.
    #[arg(long, global = true, env = "GLEAN_QUEUE_CAPACITY", value_name = "GLEAN_QUEUE_CAPACITY", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub queue_capacity: u32,
    /// Seconds one sink write may take before its process group is killed (1-86400).
    #[arg(long, global = true, env = "GLEAN_WRITE_TIMEOUT_SECS", value_name = "GLEAN_WRITE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub write_timeout_secs: u64,
    /// Sink: cli (glean binary), local (embedded catalog), or auto (cli when the binary is found).
    #[arg(long, global = true, env = "GLEAN_SINK", value_name = "GLEAN_SINK", value_enum, default_value = "auto")]
    pub sink: SinkKind,
    /// The glean binary for the cli sink.
    #[arg(long, global = true, env = "GLEAN_BIN", value_name = "GLEAN_BIN", default_value = "glean")]
    pub glean_bin: PathBuf,
    /// Local Glean databases (glean --db-root); the local sink keeps its catalog here.
    #[arg(long, global = true, env = "GLEAN_DB_ROOT", value_name = "GLEAN_DB_ROOT", default_value = "./data/glean/db")]
    pub db_root: PathBuf,
    /// A Glean server, HOST:PORT (glean --service); replaces --db-root for the cli sink.
    #[arg(long, global = true, env = "GLEAN_SERVICE", value_name = "GLEAN_SERVICE")]
    pub service: Option<String>,
    /// Batch file compression: none or zstd.
    #[arg(
        long,
        global = true,
        env = "GLEAN_BATCH_COMPRESSION",
        value_name = "GLEAN_BATCH_COMPRESSION",
        value_enum,
        default_value = "none"
    )]
    pub batch_compression: Compression,
    /// The ledger file (default: <export dir>/.glean-sync/ledger.sqlite).
    #[arg(long, global = true, env = "GLEAN_SYNC_STATE", value_name = "GLEAN_SYNC_STATE")]
    pub state: Option<PathBuf>,
    /// First retry backoff in milliseconds (before jitter; doubles per attempt).
    #[arg(long, global = true, env = "GLEAN_RETRY_BASE_MS", value_name = "GLEAN_RETRY_BASE_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub retry_base_ms: u64,
    /// Longest retry backoff in milliseconds.
    #[arg(long, global = true, env = "GLEAN_RETRY_MAX_MS", value_name = "GLEAN_RETRY_MAX_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub retry_max_ms: u64,
    /// Write attempts before an export is dead (1-1000).
    #[arg(long, global = true, env = "GLEAN_MAX_ATTEMPTS", value_name = "GLEAN_MAX_ATTEMPTS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_attempts: u32,
    /// Most batch files one sink call writes (1-1024); 1 turns coalescing off.
    #[arg(long, global = true, env = "GLEAN_WRITE_MAX_FILES", value_name = "GLEAN_WRITE_MAX_FILES", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub write_max_files: u32,
    /// Seconds a claimed export stays owned by its worker before others may take it over.
    #[arg(long, global = true, env = "GLEAN_LEASE_SECS", value_name = "GLEAN_LEASE_SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub lease_secs: u64,
    /// A PostgreSQL ledger shared by several nodes (postgres://...); unset: the embedded SQLite ledger.
    #[arg(long, global = true, env = "GLEAN_SYNC_DATABASE_URL", value_name = "GLEAN_SYNC_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Schema of the shared ledger's tables (created if missing; default: the connection's search_path).
    #[arg(long, global = true, env = "GLEAN_SYNC_DATABASE_SCHEMA", value_name = "GLEAN_SYNC_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
    /// This node's name in a shared ledger (default: host name and export directory).
    #[arg(long, global = true, env = "GLEAN_SYNC_NODE_ID", value_name = "GLEAN_SYNC_NODE_ID")]
    pub node_id: Option<String>,
    /// Seconds a graceful shutdown waits for writes in flight (0-3600).
    #[arg(long, global = true, env = "GLEAN_SHUTDOWN_TIMEOUT_SECS", value_name = "GLEAN_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_timeout_secs: u64,
}

/// The settings of `glean-sync serve` (and the watch directory of `ingest`).
#[derive(Args, Debug, Clone)]
pub struct ServeSettings {
    /// Address the HTTP API listens on (port 0: any free port).
    #[arg(long, env = "GLEAN_SYNC_LISTEN", value_name = "GLEAN_SYNC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "GLEAN_SYNC_MAX_BODY_BYTES", value_name = "GLEAN_SYNC_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=4 * 1024 * 1024 * 1024))]
    pub max_body_bytes: u64,
    /// Bearer token the write routes require (none: no authentication).
    #[arg(long, env = "GLEAN_SYNC_TOKEN", value_name = "GLEAN_SYNC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Also ingest every batch file that appears in this directory.
    #[arg(long, env = "GLEAN_WATCH_DIR", value_name = "GLEAN_WATCH_DIR")]
    pub watch: Option<PathBuf>,
}

impl ServeSettings {
    /// The HTTP layer's settings; an empty token means none.
    pub fn server_config(&self) -> crate::server::ServerConfig {
        crate::server::ServerConfig {
            listen: self.listen,
            token: self.token.clone().filter(|t| !t.is_empty()),
            max_body_bytes: usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// Accepts the usual spellings of a boolean, and says which when it fails.
fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err("accepted values: true, false (also 1/0, yes/no, on/off)".into()),
    }
}

/// A setting that cannot be used, named by its environment variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is missing.
    #[error("{var} is required when {when}: {hint}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// The situation that needs it.
        when: &'static str,
        /// What to set it to.
        hint: &'static str,
    },
    /// A setting has an unusable value.
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why, and what is accepted.
        reason: String,
    },
    /// The schema does not load.
    #[error("GLEAN_SCHEMA_PATH: {0}")]
    Schema(#[from] SchemaError),
}

/// Real-time export, or files only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every save is written into Glean by the workers.
    Realtime,
    /// Batch files (and ledger rows) only; `drain` delivers them later.
    Batch,
}

/// Where the cli sink sends writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GleanTarget {
    /// `--db-root DIR`: local databases.
    DbRoot(PathBuf),
    /// `--service HOST:PORT`: a Glean server.
    Service(String),
}

/// Which Glean database, and how to reach it.
#[derive(Debug, Clone)]
pub struct GleanConfig {
    /// NAME/INSTANCE.
    pub db: DbRef,
    /// The sink asked for (`auto` is resolved at startup).
    pub sink: SinkKind,
    /// The glean binary.
    pub program: PathBuf,
    /// Local root or server for the cli sink.
    pub target: GleanTarget,
    /// The local root (the local sink's catalog).
    pub db_root: PathBuf,
    /// Seconds before a write is killed.
    pub write_timeout: Duration,
}

/// How saves become batch files.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// Directory of batch files.
    pub dir: PathBuf,
    /// File compression.
    pub compression: Compression,
    /// Predicate names.
    pub predicates: Predicates,
}

/// The schema, and a directory `glean create --schema dir:` can read.
#[derive(Debug, Clone)]
pub struct SchemaConfig {
    /// The schema text, with an `all` schema (generated when the sources have none).
    pub source: SchemaSource,
    /// An existing directory that glean can load as it is, if the configured path is (in) one.
    pub dir: Option<PathBuf>,
}

/// Where the ledger lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerLocation {
    /// The embedded SQLite file (one process).
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by several nodes: its URL, and the schema of its tables.
    Postgres {
        /// `postgres://...`.
        url: String,
        /// The schema holding the tables (`None`: the search_path's first).
        schema: Option<String>,
    },
}

/// The queue and the workers.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// Worker tasks.
    pub workers: usize,
    /// Queue slots.
    pub queue_capacity: usize,
    /// Most exports one sink call writes.
    pub max_files: usize,
    /// How long a claim lasts; longer than any write can take, so that only dead owners lose theirs.
    pub lease: Duration,
    /// Retries and giving up.
    pub retry: RetryPolicy,
    /// How long shutdown waits for writes in flight.
    pub shutdown_timeout: Duration,
}

/// Everything, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Real-time or batch.
    pub mode: Mode,
    /// The Glean side; `None` in batch mode without GLEAN_DB_NAME.
    pub glean: Option<GleanConfig>,
    /// Batch files.
    pub export: ExportConfig,
    /// Schema.
    pub schema: SchemaConfig,
    /// The ledger: an SQLite file, or a shared PostgreSQL database.
    pub ledger: LedgerLocation,
    /// The ledger's SQLite file (also when a shared ledger is used, for `status` of old state).
    pub ledger_path: PathBuf,
    /// This node's name as a ledger owner: stable across restarts, unique per deployment.
    pub node_id: String,
    /// The state directory (ledger, lock, generated schema directory).
    pub state_dir: PathBuf,
    /// Queue and workers.
    pub exporter: ExporterConfig,
}

impl Settings {
    /// Validates the settings into a `Config`.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mode = if self.realtime_enable { Mode::Realtime } else { Mode::Batch };
        let glean = match (&self.db_name, mode) {
            (None, Mode::Realtime) => {
                return Err(ConfigError::Missing {
                    var: "GLEAN_DB_NAME",
                    when: "GLEAN_REALTIME_ENABLE=true",
                    hint: "set it to the Glean database, NAME or NAME/INSTANCE",
                });
            }
            (None, Mode::Batch) => None,
            (Some(name), _) => Some(self.glean_config(name)?),
        };
        let predicates = Predicates::new(&self.predicate_prefix);
        let schema = self.schema()?;
        let resolved = schema.source.resolve()?;
        match mode {
            Mode::Realtime => check_schema_declares(&resolved, &self.predicate_prefix)?,
            // Batch files are for a Glean whose schema may live elsewhere; the names must still be valid Angle.
            Mode::Batch => check_prefix(&self.predicate_prefix)?,
        }
        let ledger_path = self.state.clone().unwrap_or_else(|| self.export_dir.join(".glean-sync").join("ledger.sqlite"));
        let ledger = match &self.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                LedgerLocation::Postgres { url: url.clone(), schema: self.database_schema.clone() }
            }
            Some(url) => {
                return Err(ConfigError::Invalid {
                    var: "GLEAN_SYNC_DATABASE_URL",
                    value: url.split('@').next_back().unwrap_or_default().to_owned(),
                    reason: "expected postgres://USER@HOST:PORT/DATABASE".into(),
                });
            }
            None => LedgerLocation::Sqlite(ledger_path.clone()),
        };
        let state_dir = ledger_path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        Ok(Config {
            mode,
            glean,
            export: ExportConfig { dir: self.export_dir.clone(), compression: self.batch_compression, predicates },
            schema,
            ledger,
            ledger_path,
            node_id: self.node_id.clone().unwrap_or_else(|| default_node_id(&self.export_dir)),
            state_dir,
            exporter: ExporterConfig {
                workers: usize::from(self.workers),
                queue_capacity: self.queue_capacity as usize,
                max_files: self.write_max_files as usize,
                lease: self.lease(),
                retry: self.retry()?,
                shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
            },
        })
    }

    /// The retry policy; the longest backoff cannot be shorter than the first.
    fn retry(&self) -> Result<RetryPolicy, ConfigError> {
        if self.retry_max_ms < self.retry_base_ms {
            return Err(ConfigError::Invalid {
                var: "GLEAN_RETRY_MAX_MS",
                value: self.retry_max_ms.to_string(),
                reason: format!("the longest backoff must be at least GLEAN_RETRY_BASE_MS ({})", self.retry_base_ms),
            });
        }
        Ok(RetryPolicy {
            base: Duration::from_millis(self.retry_base_ms),
            max: Duration::from_millis(self.retry_max_ms),
            max_attempts: self.max_attempts,
        })
    }

    /// The lease outlives a write and a retry of it (isolating a poisoned batch may
    /// take longer: then another node may write an export twice, which is harmless).
    fn lease(&self) -> Duration {
        let write = Duration::from_secs(self.write_timeout_secs);
        Duration::from_secs(self.lease_secs).max(write * 2 + Duration::from_secs(1))
    }

    fn glean_config(&self, name: &str) -> Result<GleanConfig, ConfigError> {
        let invalid = |var, value: &str, e: glean_catalog::store::StoreError| ConfigError::Invalid {
            var,
            value: value.to_owned(),
            reason: e.to_string(),
        };
        let db = match name.rsplit_once('/') {
            Some((n, i)) => DbRef::new(n, i).map_err(|e| invalid("GLEAN_DB_NAME", name, e))?,
            None => {
                // Blame the part at fault: the name, else the instance it takes from GLEAN_DB_INSTANCE.
                DbRef::new(name, "0").map_err(|e| invalid("GLEAN_DB_NAME", name, e))?;
                DbRef::new(name, &self.db_instance).map_err(|e| invalid("GLEAN_DB_INSTANCE", &self.db_instance, e))?
            }
        };
        let target = match &self.service {
            Some(s) if valid_host_port(s) => GleanTarget::Service(s.clone()),
            Some(s) => return Err(ConfigError::Invalid { var: "GLEAN_SERVICE", value: s.clone(), reason: "expected HOST:PORT".into() }),
            None => GleanTarget::DbRoot(self.db_root.clone()),
        };
        Ok(GleanConfig {
            db,
            sink: self.sink,
            program: self.glean_bin.clone(),
            target,
            db_root: self.db_root.clone(),
            write_timeout: Duration::from_secs(self.write_timeout_secs),
        })
    }

    /// The configured schema; the default path if it exists; else the built-in one.
    fn schema(&self) -> Result<SchemaConfig, ConfigError> {
        let path = match &self.schema_path {
            Some(p) => p.clone(),
            None if Path::new(DEFAULT_SCHEMA_PATH).is_file() => PathBuf::from(DEFAULT_SCHEMA_PATH),
            None => return Ok(SchemaConfig { source: SchemaSource::builtin(), dir: None }),
        };
        // A file inside a directory that glean can load as a whole (it has an `all`
        // schema, like glean/schema/source) means that directory, as for glean.
        let dir = if path.is_dir() { Some(path.clone()) } else { path.parent().map(Path::to_path_buf) };
        if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
            let whole = SchemaSource::from_dir(&dir);
            if let Ok(source) = whole
                && source.resolve_for_database().is_ok()
                && (path.is_dir() || source.files.iter().any(|(f, _)| Path::new(f) == path))
            {
                return Ok(SchemaConfig { source, dir: Some(dir) });
            }
        }
        let source = with_all_schema(SchemaSource::from_path(&path)?);
        Ok(SchemaConfig { source, dir: None })
    }
}

/// Adds `schema all.1 : <every schema declared> {}` when the sources have no `all`
/// schema, so that a database can be created from a lone schema file.
fn with_all_schema(mut source: SchemaSource) -> SchemaSource {
    if source.resolve_for_database().is_ok() {
        return source;
    }
    let declared: Vec<String> = source
        .files
        .iter()
        .flat_map(|(_, text)| text.lines())
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("schema ")?;
            let name = rest.split(|c: char| c.is_whitespace() || c == ':' || c == '{').next()?;
            (!name.is_empty() && !rest.contains(" evolves ")).then(|| name.to_owned())
        })
        .collect();
    if !declared.is_empty() {
        source.files.push(("all.angle".to_owned(), format!("schema all.1 : {} {{}}\n", declared.join(", "))));
    }
    source
}

/// `<host>:<hash of the export directory>`: the same after a restart, different for two
/// deployments on one host (each has its own export directory).
fn default_node_id(export_dir: &Path) -> String {
    let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "localhost".into());
    // Absolute, not canonical: the same whether or not the directory exists yet (the first
    // run creates it), so a node that crashes on its first run still recovers its claims.
    let dir = std::path::absolute(export_dir).unwrap_or_else(|_| export_dir.to_owned());
    let hash = blake3::hash(dir.to_string_lossy().as_bytes()).to_hex();
    format!("{host}:{}", &hash[..12])
}

fn valid_host_port(s: &str) -> bool {
    let s = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://")).unwrap_or(s);
    matches!(s.rsplit_once(':'), Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok())
}

/// Fails unless the schema declares the three predicates under `prefix` with the fields we write.
pub fn check_schema_declares(schema: &Schema, prefix: &str) -> Result<(), ConfigError> {
    let preds = Predicates::new(prefix);
    let probe = probe_batch(&preds);
    for name in [&preds.node, &preds.edge, &preds.manifest] {
        let (base, _) = name.rsplit_once('.').unwrap_or((name, "1"));
        if schema.lookup(base, 1) == Lookup::Missing {
            return Err(schema_mismatch(prefix, &format!("it does not declare {name}")));
        }
    }
    glean_catalog::batch::validate_bytes("probe", probe.as_bytes(), schema, true)
        .map(|_| ())
        .map_err(|e| schema_mismatch(prefix, &format!("it does not accept the facts glean-sync writes ({e})")))
}

/// Fails unless `prefix` can name an Angle schema (so the predicates written under it are valid names).
fn check_prefix(prefix: &str) -> Result<(), ConfigError> {
    schema_for_prefix(prefix).resolve().map(|_| ()).map_err(|e| ConfigError::Invalid {
        var: "GLEAN_PREDICATE_PREFIX",
        value: prefix.to_owned(),
        reason: format!("not a valid Angle schema name (such as agenticAiETH.ETL): {e}"),
    })
}

fn schema_mismatch(prefix: &str, what: &str) -> ConfigError {
    ConfigError::Invalid {
        var: "GLEAN_SCHEMA_PATH",
        value: String::new(),
        reason: format!(
            "the schema does not match GLEAN_PREDICATE_PREFIX={prefix}: {what}; `glean-sync schema --prefix {prefix}` prints one that does"
        ),
    }
}

/// One fact of each predicate with every field set: what a schema must accept.
fn probe_batch(p: &Predicates) -> String {
    format!(
        r#"[{{"predicate":"{}","facts":[{{"key":{{"id":"n","kind":"k","label":"l","properties_json":"{{}}"}}}}]}},
{{"predicate":"{}","facts":[{{"key":{{"source":"a","target":"b","label":"l","properties_json":"{{}}"}}}}]}},
{{"predicate":"{}","facts":[{{"key":{{"exported_at":"t","node_count":1,"edge_count":1,"export_file":"f","graph_key":"g",
"graph_version":1,"content_hash":"h","project_id":"p","system_id":"s","full_node_count":1,"full_edge_count":1}}}}]}}]"#,
        p.node, p.edge, p.manifest
    )
}

/// The ETL schema for a predicate prefix, as `.angle` files (`schema` command, generated schema dirs).
pub fn schema_for_prefix(prefix: &str) -> SchemaSource {
    let builtin = SchemaSource::builtin();
    let files = builtin.files.into_iter().map(|(name, text)| (name, text.replace("agenticAiETH.ETL.1", &format!("{prefix}.1")))).collect();
    SchemaSource { files }
}

#[cfg(test)]
mod tests;

//! The conformance suite on PostgreSQL, each test in a fresh schema, plus
//! what only a ledger shared by several nodes has: `claims` (nodes claiming
//! at once, lease takeover) and `storage` (migrations at start, stats, plans,
//! stored formats).
//!
//! Tests reach PostgreSQL at `GLEAN_SYNC_TEST_DATABASE_URL` (locally and in
//! CI: `postgres://postgres@127.0.0.1:5432/test`). Each test gets a schema of
//! its own (`glean_sync_test_<unix secs>_<ulid>`), so tests run in parallel,
//! and drops it when its backend is dropped, even when the test panics.
//! Schemas left by a killed run are swept by the next run once they are an
//! hour old. When the variable is unset, every PostgreSQL test says so and
//! returns: never `#[ignore]`, never a silent pass. The checks compare the
//! ledger's timestamps (the server's clock) with the test's: the server must
//! share the test machine's clock, as a local or CI service does.

mod claims;
mod storage;

use super::PgLedger;
use crate::ledger::conformance::{Backend, ledger_conformance};
use crate::ledger::{Ledger, LedgerError, NewExport};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use std::io::Write;
use std::str::FromStr;
use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The variable naming the test database.
const URL_VAR: &str = "GLEAN_SYNC_TEST_DATABASE_URL";

/// Every test schema's name starts with this (and only test schemas' names do).
const SCHEMA_PREFIX: &str = "glean_sync_test_";

/// Test schemas older than this are leftovers of a killed run (no test runs this long).
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Connections per ledger handle in tests: enough to race, few enough for many handles at once.
const TEST_POOL: u32 = 4;

/// A lease no test outlives.
const LEASE: Duration = Duration::from_secs(600);

/// Version `version` of graph `key`.
fn versioned(key: &str, version: i64) -> NewExport {
    NewExport {
        batch_file: format!("{key}-v{version}.json"),
        graph_key: Some(key.to_owned()),
        graph_version: Some(version),
        ..NewExport::default()
    }
}

/// An export without a graph key.
fn keyless(n: i64) -> NewExport {
    NewExport { batch_file: format!("free-{n}.json"), ..NewExport::default() }
}

/// A fresh schema on the test database, dropped with this value.
pub(super) struct PgBackend {
    /// The test database.
    url: String,
    /// This backend's schema.
    schema: String,
}

impl PgBackend {
    /// A backend on a fresh schema, or `None` (saying so) when no test database is configured.
    pub(super) fn from_env() -> Option<Self> {
        match std::env::var(URL_VAR) {
            Ok(url) if !url.trim().is_empty() => Some(PgBackend { url, schema: fresh_schema() }),
            _ => {
                skipped();
                None
            }
        }
    }

    /// A ledger handle on the schema, as a node would open it.
    pub(super) async fn connect(&self) -> PgLedger {
        PgLedger::connect_with(&self.url, Some(&self.schema), TEST_POOL).await.expect("connect the PostgreSQL ledger")
    }

    /// A plain connection with `search_path` on the schema, for tests that look at the tables.
    pub(super) async fn raw(&self) -> PgConnection {
        let options = PgConnectOptions::from_str(&self.url).expect("test URL").options([("search_path", &self.schema)]);
        options.connect().await.expect("connect to the test database")
    }
}

#[async_trait::async_trait]
impl Backend for PgBackend {
    async fn open(&self) -> Arc<dyn Ledger> {
        Arc::new(self.connect().await)
    }

    fn stores_payloads(&self) -> bool {
        true
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime (or while unwinding): the cleanup gets
        // a thread and a runtime of its own, and reports instead of panicking.
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let cleanup = std::thread::spawn(move || drop_schemas(&url, &schema));
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("test schema {} was not dropped: {e}", self.schema),
            Err(_) => eprintln!("test schema {} was not dropped: cleanup panicked", self.schema),
        }
    }
}

ledger_conformance!(optional: PgBackend::from_env());

/// Tells that the PostgreSQL tests are skipped: each test in its own output, and once
/// per run straight on stderr, which the test harness does not capture.
fn skipped() {
    let line = format!("skipped: {URL_VAR} is not set (PostgreSQL ledger tests)");
    println!("{line}");
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(std::io::stderr(), "{line}");
    });
}

/// A schema name no other test (or run) uses.
fn fresh_schema() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{SCHEMA_PREFIX}{secs}_{}", ulid::Ulid::generate().to_string().to_lowercase())
}

/// Drops `schema`, and once per run the test schemas a killed run left behind.
fn drop_schemas(url: &str, schema: &str) -> Result<(), sqlx::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut conn = PgConnection::connect(url).await?;
        // A session of the test still in a transaction (a panic mid-statement) ends when
        // its socket closes; wait for that, but not forever.
        sqlx::query("SET lock_timeout = '30s'").execute(&mut conn).await?;
        drop_schema(&mut conn, schema).await?;
        static SWEEP: Once = Once::new();
        let mut first = false;
        SWEEP.call_once(|| first = true);
        if first {
            sweep_stale(&mut conn).await?;
        }
        conn.close().await
    })
}

async fn drop_schema(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    let statement = sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
    sqlx::query(statement).execute(conn).await.map(|_| ())
}

/// Drops test schemas older than `STALE_AFTER` (their name carries their creation time).
async fn sweep_stale(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
        .bind(SCHEMA_PREFIX)
        .fetch_all(&mut *conn)
        .await?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for name in names {
        let created = name[SCHEMA_PREFIX.len()..].split('_').next().and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|c| now.saturating_sub(c) > STALE_AFTER.as_secs()) {
            drop_schema(conn, &name).await?;
        }
    }
    Ok(())
}

/// An unreachable database is reported with its location and without the password
/// (needs no server: nothing listens on port 1).
#[tokio::test]
async fn unreachable_database_names_the_location_not_the_password() {
    let err = PgLedger::connect("postgres://me:secret@127.0.0.1:1/ledger", Some("s")).await.expect_err("nothing listens");
    assert!(matches!(err, LedgerError::Location { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("postgres://me@127.0.0.1:1/ledger?schema=s"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

/// Dropping a backend drops its schema, tables and all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_leaves_nothing_behind() {
    let Some(backend) = PgBackend::from_env() else { return };
    let ledger = backend.connect().await;
    ledger.insert(&keyless(1)).await.expect("insert");
    ledger.close().await;
    let (url, schema) = (backend.url.clone(), backend.schema.clone());
    drop(backend);
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&schema)
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(left, 0, "schema {schema} is still there");
}

//! The conformance suite on PostgreSQL, each test in a fresh schema, plus
//! what only a ledger shared by several nodes has: `claims` (nodes claiming
//! at once, lease takeover) and `storage` (migrations at start, stats, plans,
//! stored formats).
//!
//! Tests reach PostgreSQL at `GLEAN_SYNC_TEST_DATABASE_URL`, each in a schema
//! of its own (`test_support::PgSchema`), and say so when the variable is
//! unset: never `#[ignore]`, never a silent pass. The checks compare the
//! ledger's timestamps (the server's clock) with the test's: the server must
//! share the test machine's clock, as a local or CI service does.

mod claims;
mod storage;

use super::PgLedger;
use crate::ledger::conformance::{Backend, ledger_conformance};
use crate::ledger::{Ledger, LedgerError, NewExport};
use crate::test_support::PgSchema;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

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
    /// The test database and this backend's schema in it.
    schema: PgSchema,
}

impl PgBackend {
    /// A backend on a fresh schema, or `None` (saying so) when no test database is configured.
    pub(super) fn from_env() -> Option<Self> {
        PgSchema::from_env("PostgreSQL ledger tests").map(|schema| PgBackend { schema })
    }

    /// A ledger handle on the schema, as a node would open it.
    pub(super) async fn connect(&self) -> PgLedger {
        PgLedger::connect_with(&self.schema.url, Some(&self.schema.name), TEST_POOL).await.expect("connect the PostgreSQL ledger")
    }

    /// A plain connection with `search_path` on the schema, for tests that look at the tables.
    pub(super) async fn raw(&self) -> PgConnection {
        let options = PgConnectOptions::from_str(&self.schema.url).expect("test URL").options([("search_path", &self.schema.name)]);
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

ledger_conformance!(optional: PgBackend::from_env());

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
    ledger.insert(keyless(1)).await.expect("insert");
    ledger.close().await;
    let (url, schema) = (backend.schema.url.clone(), backend.schema.name.clone());
    drop(backend);
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    let left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1").bind(&schema).fetch_one(&mut conn).await.expect("query");
    assert_eq!(left, 0, "schema {schema} is still there");
}

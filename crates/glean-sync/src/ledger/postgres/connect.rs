//! Reaching the PostgreSQL ledger: connection options, the schema, and the
//! migrations every node runs at start.
//!
//! Owns the start-up sequence only: parse the URL, point `search_path` at the
//! ledger's schema, create that schema and migrate it on a connection of its
//! own, under locks, so that any number of nodes starting at once migrate
//! exactly once. It never touches export rows. Messages name the database by
//! a URL without its password.

use crate::ledger::LedgerError;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use std::str::FromStr;

/// The schema, embedded at build time (see build.rs for why new files are picked up).
static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// First key of every advisory lock the ledger takes ("glsg"): its two-key locks
/// never meet another application's, nor sqlx's one-key migration lock.
pub(super) const LOCK_CLASS: i32 = 0x676c_7367;

/// Second key of the lock that serializes schema creation (graph locks hash to any other value).
const SCHEMA_LOCK: i32 = 0;

/// Longest schema name PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_SCHEMA_LEN: usize = 63;

/// Where the ledger is: connection options (with `search_path` set) and a printable location.
pub(super) struct Target {
    /// Options every connection of the ledger uses (isolation, and `search_path` when a schema is given).
    pub(super) options: PgConnectOptions,
    /// The schema to create and use, if one was asked for.
    pub(super) schema: Option<String>,
    /// `postgres://user@host:port/db[?schema]`, never the password: for messages.
    pub(super) location: String,
}

impl Target {
    /// Parses `url` and checks `schema` (lower-case letters, digits and `_`, not starting with a digit).
    pub(super) fn new(url: &str, schema: Option<&str>) -> Result<Self, LedgerError> {
        // READ COMMITTED whatever the database's or role's default (startup options win
        // over both): claims rely on its fresh snapshot per statement and on its re-check
        // of rows locked after a concurrent update (see the module doc of `postgres`).
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| location("PostgreSQL URL", &format!("cannot be parsed: {e}")))?
            .application_name("glean-sync")
            .options([("default_transaction_isolation", "read committed")]);
        let mut location = format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        let Some(schema) = schema else {
            return Ok(Target { options, schema: None, location });
        };
        location.push_str(&format!("?schema={schema}"));
        if !valid_schema(schema) {
            let message = "a schema name is 1 to 63 lower-case letters, digits and '_', not starting with a digit";
            return Err(self::location(&location, message));
        }
        let options = options.options([("search_path", schema)]);
        Ok(Target { options, schema: Some(schema.to_owned()), location })
    }

    /// A `Location` error for this target.
    pub(super) fn error(&self, cause: &dyn std::fmt::Display) -> LedgerError {
        location(&self.location, &cause.to_string())
    }

    /// Creates the schema if asked for and runs the pending migrations, on connections of their own.
    pub(super) async fn migrate(&self) -> Result<(), LedgerError> {
        // First contact on a plain connection: an unreachable server is an error at
        // once (a pool would retry it until its acquire timeout).
        let mut first = PgConnection::connect_with(&self.options).await.map_err(|e| self.error(&e))?;
        let created = self.create_schema(&mut first).await;
        let _ = first.close().await;
        created?;
        // A pool of one, closed afterwards: closing ends the session, so its advisory
        // locks go with it even when a migration failed half-way (sqlx's migrator
        // leaves its lock held when it returns an error).
        let pool = PgPoolOptions::new().max_connections(1).connect_with(self.options.clone()).await.map_err(|e| self.error(&e))?;
        // sqlx's Postgres migrator holds a session advisory lock (one per database)
        // while it reads `_sqlx_migrations` and applies what is missing, each
        // migration in its own transaction: a node that waited finds them applied.
        let result = MIGRATOR.run(&pool).await;
        pool.close().await;
        Ok(result?)
    }

    /// Creates the schema asked for, if missing.
    async fn create_schema(&self, conn: &mut PgConnection) -> Result<(), LedgerError> {
        let Some(schema) = &self.schema else { return Ok(()) };
        // Concurrent `CREATE SCHEMA IF NOT EXISTS` can still fail on the catalog's
        // unique index: nodes starting at once take turns under a lock.
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)").bind(LOCK_CLASS).bind(SCHEMA_LOCK).execute(&mut *tx).await?;
        let create = sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""));
        sqlx::query(create).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// How many migrations the ledger has (tests check each ran once).
#[cfg(test)]
pub(super) fn migration_count() -> usize {
    MIGRATOR.iter().filter(|m| !m.migration_type.is_down_migration()).count()
}

/// Whether `schema` is a plain identifier: safe inside double quotes, and spelled as PostgreSQL folds it.
fn valid_schema(schema: &str) -> bool {
    let mut chars = schema.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok && schema.len() <= MAX_SCHEMA_LEN && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn location(path: &str, message: &str) -> LedgerError {
    LedgerError::Location { path: path.to_owned(), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["ledger", "_x", "glean_sync_test_1_abc", &"a".repeat(63)] {
            assert!(valid_schema(good), "{good}");
        }
        for bad in ["", "1abc", "Ledger", "a-b", "a\"b", "a b", "é", &"a".repeat(64)] {
            assert!(!valid_schema(bad), "{bad}");
        }
    }

    #[test]
    fn locations_never_show_the_password() {
        let target = Target::new("postgres://me:secret@db.example:6543/ledger", Some("s1")).expect("target");
        assert_eq!(target.location, "postgres://me@db.example:6543/ledger?schema=s1");
        let err = Target::new("postgres://me:secret@db.example/ledger", Some("Bad-Name")).err().expect("rejected");
        assert!(matches!(err, LedgerError::Location { .. }), "{err:?}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

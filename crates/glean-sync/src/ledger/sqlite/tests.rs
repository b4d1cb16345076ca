//! The conformance suite on fresh SQLite files, plus what only SQLite has.

use super::writer::Durability;
use super::{SqliteLedger, sql};
use crate::ledger::conformance::{Backend, ledger_conformance};
use crate::ledger::{Ledger, LedgerError};
use std::path::PathBuf;
use std::sync::Arc;

/// A ledger file in its own temporary directory, removed with it.
struct SqliteBackend {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteBackend {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("state").join("ledger.sqlite");
        SqliteBackend { _dir: dir, path }
    }
}

#[async_trait::async_trait]
impl Backend for SqliteBackend {
    async fn open(&self) -> Arc<dyn Ledger> {
        Arc::new(SqliteLedger::open(&self.path).await.expect("open the SQLite ledger"))
    }
}

ledger_conformance!(SqliteBackend::new());

/// SQLite's plan for `statement`, one line per step.
async fn plan(ledger: &SqliteLedger, statement: &str) -> Vec<String> {
    let explain = format!("EXPLAIN QUERY PLAN {statement}");
    let steps = ledger.readers.run(move |c| {
        let mut explain = c.prepare(&explain)?;
        // The plan does not depend on the values: every parameter is NULL.
        let nulls = std::iter::repeat_n(rusqlite::types::Null, explain.parameter_count());
        let details = explain.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>("detail"))?;
        Ok(details.collect::<Result<Vec<_>, _>>()?)
    });
    steps.await.expect("plan")
}

/// The hot path stays O(log n + k): no statement of `claim`, `ready` or `finish` walks the
/// whole table; `ready`/`claim` walk only unfinished rows and probe graphs by index.
#[tokio::test]
async fn hot_statements_never_scan_the_table() {
    let backend = SqliteBackend::new();
    let ledger = SqliteLedger::open(&backend.path).await.expect("open");
    for statement in [sql::READY_ALL, sql::CLAIM_ALL, sql::CLAIM_AMONG] {
        let steps = plan(&ledger, statement).await;
        assert!(steps.iter().any(|s| s.contains("USING INDEX exports_graph_unfinished (graph_key=? AND id<?)")), "{steps:?}");
        for step in steps.iter().filter(|s| s.starts_with("SCAN")) {
            assert!(step.contains("USING INDEX exports_unfinished") || step.contains("json_each"), "{steps:?}");
        }
    }
    let finishes = [sql::FINISH_INGESTED, sql::FINISH_RETRY, sql::FINISH_DEAD, sql::FINISH_RELEASED, sql::INGESTED_FACT_SETS];
    for statement in finishes {
        let steps = plan(&ledger, statement).await;
        assert!(steps.iter().any(|s| s.contains("USING INTEGER PRIMARY KEY")), "{steps:?}");
        assert!(steps.iter().filter(|s| s.starts_with("SCAN")).all(|s| s.contains("json_each")), "{steps:?}");
    }
}

/// The file is in WAL mode with full syncs, and the parent directories were created.
#[tokio::test]
async fn open_creates_a_durable_wal_database() {
    let backend = SqliteBackend::new();
    let ledger = SqliteLedger::open(&backend.path).await.expect("open");
    assert!(backend.path.is_file());
    // 2 = FULL: a commit returns only after the log is synced; 1 = NORMAL.
    for (durability, synchronous) in [(Durability::Durable, 2), (Durability::Relaxed, 1)] {
        let mode = ledger.writer.write(durability, |tx| Ok(tx.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))?));
        assert_eq!(mode.expect("pragma"), "wal");
        let setting = ledger.writer.write(durability, |tx| Ok(tx.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))?));
        assert_eq!(setting.expect("pragma"), synchronous, "{durability:?}");
    }
    ledger.close().await;
    SqliteLedger::open(&backend.path).await.expect("reopen runs no migration twice");
}

/// A path that cannot hold a directory is reported with the path.
#[tokio::test]
async fn unusable_location_names_the_path() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").expect("write a plain file");
    let err = SqliteLedger::open(&file.join("ledger.sqlite")).await.expect_err("a file is no directory");
    assert!(matches!(err, LedgerError::Location { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_a_new_ledger_from_several_places_at_once_migrates_it_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state/ledger.sqlite");
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteLedger::open(&path).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.expect("task").expect("every open succeeds");
    }
}

#[tokio::test]
async fn fact_rows_written_before_fact_sets_are_still_learned_at_ingest() {
    use crate::ledger::{NewExport, Outcome};
    let backend = SqliteBackend::new();
    let ledger = SqliteLedger::open(&backend.path).await.expect("open");
    let id = ledger.insert(NewExport { db: "db1".into(), batch_file: "old.json".into(), ..NewExport::default() }).await.expect("insert");
    // A pending export of an earlier version: its facts one row each.
    let old_row = "INSERT INTO export_facts (export_id, hash) VALUES (?1, ?2)";
    ledger.writer.write(Durability::Durable, |tx| Ok(tx.execute(old_row, (id, [9u8; 16]))?)).expect("an old fact row");
    ledger.claim(&[], 10, "w", std::time::Duration::from_secs(60)).await.expect("claim");
    ledger.finish(&[id], "w", &Outcome::Ingested).await.expect("finish");
    assert_eq!(ledger.known_facts("db1", &[[9u8; 16]]).await.expect("known"), [true]);
    assert_eq!(count(&ledger, "export_facts").await, 0, "and then deleted");
}

/// Counts the rows of `table` (a name from this file, never input).
async fn count(ledger: &SqliteLedger, table: &str) -> i64 {
    scalar(ledger, format!("SELECT count(*) FROM {table}")).await
}

/// The first column of the one row `statement` (from this file, never input) selects.
async fn scalar<T: rusqlite::types::FromSql + Send + 'static>(ledger: &SqliteLedger, statement: String) -> T {
    let what = statement.clone();
    ledger.readers.run(move |c| Ok(c.query_row(&statement, [], |r| r.get(0))?)).await.expect(&what)
}

/// A fresh ledger holding one pending export of `db1` that carries `facts`.
async fn ledger_with_export(backend: &SqliteBackend, facts: &[[u8; 16]]) -> (SqliteLedger, i64) {
    use crate::ledger::NewExport;
    let ledger = SqliteLedger::open(&backend.path).await.expect("open");
    let export = NewExport { db: "db1".into(), batch_file: "a.json".into(), facts: facts.to_vec(), ..NewExport::default() };
    let id = ledger.insert(export).await.expect("insert");
    (ledger, id)
}

#[tokio::test]
async fn ingested_facts_are_known_at_once_and_written_to_the_table_by_a_pass() {
    use crate::ledger::Outcome;
    let backend = SqliteBackend::new();
    let facts = [[4u8; 16], [5u8; 16]];
    let (ledger, id) = ledger_with_export(&backend, &facts).await;
    ledger.claim(&[], 10, "w", std::time::Duration::from_secs(60)).await.expect("claim");
    ledger.finish(&[id], "w", &Outcome::Ingested).await.expect("finish");
    assert_eq!(ledger.known_facts("db1", &facts).await.expect("known"), [true, true], "known before any pass");
    ledger.learner.pass().await.expect("a pass");
    assert_eq!(count(&ledger, "known_facts").await, 2);
    assert_eq!(count(&ledger, "export_fact_sets").await, 0, "a learned set is let go");
    assert_eq!(ledger.known_facts("db1", &facts).await.expect("known"), [true, true], "known from the table");
    ledger.close().await;
    let reopened = SqliteLedger::open(&backend.path).await.expect("reopen");
    filled(&reopened).await;
    assert_eq!(reopened.learner.sift("db1", &facts).ask_table, facts, "the filters are filled from the table");
    assert_eq!(reopened.known_facts("db1", &facts).await.expect("known"), [true, true]);
    reopened.close().await;
}

#[tokio::test]
async fn filling_reads_every_known_fact_of_every_database_across_turns() {
    let backend = SqliteBackend::new();
    let ledger = SqliteLedger::open(&backend.path).await.expect("open");
    // Database b's rows take more than one turn.
    let n = 2 * super::learn::FILL_ROWS as u32 + 5;
    let fact = |i: u32| {
        let mut hash = [0u8; 16];
        hash[..4].copy_from_slice(&i.to_be_bytes());
        hash
    };
    let rows = "WITH RECURSIVE s(value) AS (SELECT 0 UNION ALL SELECT value + 1 FROM s WHERE value + 1 < ?1)
                INSERT INTO known_facts (db, hash) SELECT CASE WHEN value % 3 = 0 THEN 'a' ELSE 'b' END,
                unhex(printf('%08x', value) || '000000000000000000000000') FROM s";
    ledger.writer.write(Durability::Durable, |tx| Ok(tx.execute(rows, [n])?)).expect("known facts");
    ledger.close().await;
    let reopened = SqliteLedger::open(&backend.path).await.expect("reopen");
    filled(&reopened).await;
    let (a, b): (Vec<_>, Vec<_>) = (0..n).map(fact).partition(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 3 == 0);
    assert_eq!(reopened.learner.sift("a", &a).ask_table.len(), a.len());
    assert_eq!(reopened.learner.sift("b", &b).ask_table.len(), b.len());
    assert!(reopened.learner.sift("a", &[fact(n)]).ask_table.is_empty(), "a fact that is not there is not asked about");
    reopened.close().await;
}

/// Waits until the ledger's known-fact filters are filled (they are, in the background, at open).
async fn filled(ledger: &SqliteLedger) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ledger.learner.filled() {
        assert!(std::time::Instant::now() < deadline, "the filters were not filled");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn the_table_is_asked_only_about_facts_it_may_hold() {
    use crate::ledger::{Ledger, Outcome};
    let backend = SqliteBackend::new();
    let (learned, new) = ([4u8; 16], [8u8; 16]);
    let (ledger, id) = ledger_with_export(&backend, &[learned]).await;
    filled(&ledger).await;
    ledger.claim(&[], 10, "w", std::time::Duration::from_secs(60)).await.expect("claim");
    ledger.finish(&[id], "w", &Outcome::Ingested).await.expect("finish");
    assert!(ledger.learner.sift("db1", &[learned]).ask_table.is_empty(), "held: known without the table");
    ledger.learner.pass().await.expect("a pass");
    let sifted = ledger.learner.sift("db1", &[new, learned, learned]);
    assert_eq!((sifted.known, sifted.ask_table), (vec![false; 3], vec![learned]), "a fact never written is not asked about");
    assert!(ledger.learner.sift("db2", &[learned]).ask_table.is_empty(), "filters are per database");
    ledger.forget_database("db1").await.expect("forget");
    assert!(ledger.learner.sift("db1", &[learned]).ask_table.is_empty(), "forgotten with the table");
    assert_eq!(ledger.known_facts("db1", &[learned]).await.expect("known"), [false]);
}

#[test]
fn fact_sets_are_stored_sorted_and_unique_and_borrowed_when_given_so() {
    let (a, b) = ([1u8; 16], [2u8; 16]);
    assert!(matches!(super::fact_set(&[a, b]), std::borrow::Cow::Borrowed(_)), "the save path's sorted facts are not copied");
    assert_eq!(super::fact_set(&[b, a, b]).as_ref(), [a, b].concat().as_slice());
}

#[tokio::test]
async fn a_fact_set_larger_than_a_piece_is_stored_whole() {
    // Two pieces and part of a third: written in place, piece by piece.
    let n = 2 * super::FACT_SET_PIECE / 16 + 100;
    let facts: Vec<[u8; 16]> = (0..n as u32)
        .map(|i| {
            let mut hash = [0u8; 16];
            hash[..4].copy_from_slice(&i.to_be_bytes());
            hash[15] = 0xa5;
            hash
        })
        .collect();
    let backend = SqliteBackend::new();
    let (ledger, id) = ledger_with_export(&backend, &facts).await;
    let stored: Vec<u8> = scalar(&ledger, format!("SELECT hashes FROM export_fact_sets WHERE export_id = {id}")).await;
    assert!(stored == facts.concat(), "{} bytes stored for {} facts", stored.len(), facts.len());
}

#[tokio::test]
async fn fact_sets_a_crash_left_unlearned_are_known_after_reopening() {
    let backend = SqliteBackend::new();
    let facts = [[6u8; 16], [7u8; 16]];
    let (ledger, id) = ledger_with_export(&backend, &facts).await;
    // As a crash leaves it: the ingest committed, no pass after it, nothing held in memory.
    let ingested = "UPDATE exports SET state = 'ingested' WHERE id = ?1";
    ledger.writer.write(Durability::Relaxed, |tx| Ok(tx.execute(ingested, [id])?)).expect("ingested");
    assert_eq!(ledger.known_facts("db1", &facts).await.expect("known"), [false, false]);
    let reopened = SqliteLedger::open(&backend.path).await.expect("reopen");
    assert_eq!(reopened.known_facts("db1", &facts).await.expect("known"), [true, true], "taken back at open");
    reopened.close().await;
    assert_eq!(count(&ledger, "known_facts").await, 2, "and written at close");
    assert_eq!(count(&ledger, "export_fact_sets").await, 0);
}

#[tokio::test]
async fn graphs_stored_a_row_per_element_are_migrated_into_parts() {
    use crate::graph::{Edge, Node};
    let backend = SqliteBackend::new();
    std::fs::create_dir_all(backend.path.parent().expect("a parent")).expect("state dir");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&backend.path).create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.expect("connect");
    super::MIGRATOR.run_to(5, &pool).await.expect("the migrations before parts");
    for statement in [
        "INSERT INTO glean_graphs VALUES ('k', 2, 7, 1000), ('bare', 1, 8, 2000)",
        r#"INSERT INTO glean_nodes VALUES ('k', 'b', 't', 'B', NULL, 1000), ('k', 'a', 't', 'A', '{"x":1}', 1000)"#,
        "INSERT INTO glean_edges VALUES ('k', 'b', 'a', 'R', NULL, 1000), ('k', 'a', 'b', 'R', '{}', 1000)",
    ] {
        sqlx::query(statement).execute(&pool).await.expect("a row of the old layout");
    }
    pool.close().await;

    let ledger = SqliteLedger::open(&backend.path).await.expect("open migrates");
    let stored = ledger.graph("k").await.expect("read").expect("stored");
    let node = |id: &str, label: &str, properties: Option<&str>| Node {
        id: id.into(),
        kind: "t".into(),
        label: label.into(),
        properties_json: properties.map(Into::into),
    };
    let edge = |source: &str, target: &str, properties: Option<&str>| Edge {
        source: source.into(),
        target: target.into(),
        label: "R".into(),
        properties_json: properties.map(Into::into),
    };
    assert_eq!((stored.version, stored.export_id), (Some(2), 7));
    assert_eq!(stored.nodes, [node("a", "A", Some(r#"{"x":1}"#)), node("b", "B", None)]);
    assert_eq!(stored.edges, [edge("a", "b", Some("{}")), edge("b", "a", None)]);
    let bare = ledger.graph("bare").await.expect("read").expect("stored");
    assert!(bare.nodes.is_empty() && bare.edges.is_empty());

    // The old tables live on as views, a row per element.
    type NodeRow = (String, String, String, String, Option<String>, i64);
    let rows: Vec<NodeRow> = ledger
        .readers
        .run(|c| {
            let mut view = c.prepare("SELECT graph_key, id, kind, label, properties, updated_at FROM glean_nodes ORDER BY id")?;
            let rows = view.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
        .expect("the nodes view");
    assert_eq!(rows[0], ("k".into(), "a".into(), "t".into(), "A".into(), Some(r#"{"x":1}"#.into()), 1000));
    assert_eq!(rows.len(), 2);
    let edges: i64 = scalar(&ledger, "SELECT count(*) FROM glean_edges WHERE graph_key = 'k'".into()).await;
    assert_eq!(edges, 2);
}

#[tokio::test]
async fn a_large_graph_is_stored_in_bounded_parts_and_read_back_whole() {
    use crate::graph::Graph;
    let backend = SqliteBackend::new();
    let ledger = SqliteLedger::open(&backend.path).await.expect("open");
    let n = super::PART_ELEMENTS * 2 + 3;
    let nodes: Vec<String> = (0..n).map(|i| format!(r#"{{"id":"n{i:06}"}}"#)).collect();
    let edges: Vec<String> = (1..n / 2).map(|i| format!(r#"{{"source":"n{:06}","target":"n{i:06}"}}"#, i - 1)).collect();
    let json = format!(r#"{{"nodes":[{}],"edges":[{}]}}"#, nodes.join(","), edges.join(","));
    let graph = Arc::new(Graph::from_json(json.as_bytes()).expect("graph"));
    let export = crate::ledger::NewExport { snapshot: Some(graph.clone()), ..crate::ledger::conformance::versioned("big", 1) };
    ledger.insert(export).await.expect("insert");
    let parts: i64 = scalar(&ledger, "SELECT count(*) FROM glean_graph_parts WHERE graph_key = 'big'".into()).await;
    assert_eq!(parts, 3);
    let stored = ledger.graph("big").await.expect("read").expect("stored");
    assert_eq!(stored.nodes, graph.nodes, "every node, in id order");
    assert_eq!(stored.edges.len(), graph.edges.len());
}

#[tokio::test]
async fn the_wal_is_copied_into_the_database_file_in_the_background() {
    let backend = SqliteBackend::new();
    let ledger = SqliteLedger::open(&backend.path).await.expect("open");
    let size = || std::fs::metadata(&backend.path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let rows: Vec<_> = (0..2_000).map(crate::ledger::conformance::keyless).collect();
    ledger.insert_many(rows).await.expect("insert");
    // The commit itself leaves its pages in the WAL; the checkpointer copies them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() <= before && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(size() > before, "the database file grew from {before} bytes by a checkpoint");
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_that_fails_in_a_shared_commit_fails_alone() {
    use crate::ledger::NewExport;
    use crate::ledger::conformance::keyless;
    let backend = SqliteBackend::new();
    let ledger = SqliteLedger::open(&backend.path).await.expect("open");
    let reject = "CREATE TRIGGER reject BEFORE INSERT ON exports WHEN NEW.batch_file = 'bad.json'
                  BEGIN SELECT RAISE(ABORT, 'rejected by the test'); END";
    ledger.writer.write(Durability::Durable, |tx| Ok(tx.execute(reject, [])?)).expect("trigger");
    // A write holding the lock, so that the inserts below queue up and share one commit.
    let writer = ledger.writer.clone();
    let hold = tokio::spawn(async move {
        let pause = || std::thread::sleep(std::time::Duration::from_millis(300));
        writer
            .run(Durability::Relaxed, move |_| {
                pause();
                Ok(())
            })
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let inserts: Vec<_> = (0..9)
        .map(|i| if i == 4 { NewExport { batch_file: "bad.json".into(), ..keyless(i) } } else { keyless(i) })
        .map(|export| {
            let ledger = ledger.clone();
            tokio::spawn(async move { ledger.insert(export).await })
        })
        .collect();
    hold.await.expect("task").expect("held");
    let mut results = Vec::new();
    for insert in inserts {
        results.push(insert.await.expect("task"));
    }
    let error = results[4].as_ref().expect_err("the rejected insert fails");
    assert!(error.to_string().contains("rejected by the test"), "{error}");
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 8, "the others are committed: {results:?}");
    assert_eq!(count(&ledger, "exports").await, 8);
}

#[tokio::test]
async fn saves_queued_before_close_are_committed_not_failed() {
    use crate::ledger::conformance::keyless;
    let backend = SqliteBackend::new();
    let ledger = SqliteLedger::open(&backend.path).await.expect("open");
    // `join!` polls in order: the three saves are queued before the close begins.
    let (a, b, c, ()) = tokio::join!(ledger.insert(keyless(1)), ledger.insert(keyless(2)), ledger.insert(keyless(3)), ledger.close());
    for saved in [a, b, c] {
        saved.expect("a save queued before the close is committed");
    }
    let reopened = SqliteLedger::open(&backend.path).await.expect("reopen");
    assert_eq!(count(&reopened, "exports").await, 3);
}

#[tokio::test]
async fn writes_after_close_fail_naming_the_cause() {
    let backend = SqliteBackend::new();
    let ledger = SqliteLedger::open(&backend.path).await.expect("open");
    ledger.close().await;
    let error = ledger.insert(crate::ledger::conformance::keyless(1)).await.expect_err("closed");
    assert!(error.to_string().contains("the ledger is closed"), "{error}");
    let error = ledger.claim(&[], 1, "w", std::time::Duration::from_secs(1)).await.expect_err("closed");
    assert!(error.to_string().contains("the ledger is closed"), "{error}");
}

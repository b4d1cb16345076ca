//! The `local` sink: create on first use, one transaction per call, rejected files isolated, read-only.

use super::*;
use crate::test_support::{bad_batch, node_batch, node_ids};

const DB: &str = "etl/0";

fn sink(dir: &std::path::Path) -> LocalSink {
    let config = LocalSinkConfig { db_root: dir.join("db"), db: DB.into(), schema: SchemaSource::builtin(), strict: false };
    LocalSink::new(config).expect("valid test config")
}

fn db_ref() -> DbRef {
    DB.parse().expect("test database name")
}

#[tokio::test]
async fn creates_the_database_on_first_use_and_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = sink(dir.path());
    assert!(!Catalog::new(dir.path().join("db")).exists(&db_ref()), "nothing is created before use");
    assert!(sink.write(&[node_batch(dir.path(), "a.json", &["n1", "n2"])]).await.expect("write").created_database);
    let again = sink.write(&[node_batch(dir.path(), "b.json", &["n2", "n3"])]).await.expect("second write reuses the open database");
    assert!(!again.created_database, "said once");
    assert_eq!(node_ids(&dir.path().join("db"), DB), ["n1", "n2", "n3"]);
}

#[tokio::test]
async fn an_existing_database_is_opened_not_recreated() {
    let dir = tempfile::tempdir().expect("temp dir");
    sink(dir.path()).write(&[node_batch(dir.path(), "a.json", &["n1"])]).await.expect("first sink");
    let second = sink(dir.path()).write(&[node_batch(dir.path(), "b.json", &["n2"])]).await.expect("second sink");
    assert!(!second.created_database, "opened, not created");
    assert_eq!(node_ids(&dir.path().join("db"), DB), ["n1", "n2"]);
}

#[tokio::test]
async fn a_rejected_file_is_reported_and_the_others_of_the_call_are_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = sink(dir.path());
    let bad = bad_batch(dir.path(), "bad.json");
    let files = [node_batch(dir.path(), "a.json", &["n1"]), bad.clone(), node_batch(dir.path(), "c.json", &["n3"])];
    let err = sink.write(&files).await.expect_err("one file is bad");
    match &err {
        SinkError::Rejected { file, reason } => {
            assert_eq!(file.as_ref(), Some(&bad));
            assert!(reason.contains("agenticAiETH.ETL.Node.1") && reason.contains(".kind"), "{reason}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.is_retriable());
    assert_eq!(node_ids(&dir.path().join("db"), DB), ["n1", "n3"], "the good files around the bad one are written");
}

#[tokio::test]
async fn a_finished_database_is_read_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = sink(dir.path());
    sink.write(&[node_batch(dir.path(), "a.json", &["n1"])]).await.expect("write");
    Catalog::new(dir.path().join("db")).open(&db_ref()).expect("open").finish(false).expect("finish");
    let err = sink.write(&[node_batch(dir.path(), "b.json", &["n2"])]).await.expect_err("finished");
    assert!(matches!(err, SinkError::ReadOnly(_)), "{err:?}");
    assert!(!err.is_retriable());
    assert!(matches!(sink.check().await, Err(SinkError::ReadOnly(_))), "check says so too");
}

#[tokio::test]
async fn a_deleted_database_is_created_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = sink(dir.path());
    sink.write(&[node_batch(dir.path(), "a.json", &["n1"])]).await.expect("write");
    Catalog::new(dir.path().join("db")).delete(&db_ref()).expect("delete");
    let written = sink.write(&[node_batch(dir.path(), "b.json", &["n2"])]).await.expect("write after delete");
    assert!(written.created_database, "the sink says the database is new");
    assert_eq!(node_ids(&dir.path().join("db"), DB), ["n2"], "written into the new database, not the unlinked file");
}

#[tokio::test]
async fn a_missing_file_is_not_a_rejection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = sink(dir.path()).write(&[dir.path().join("gone.json")]).await.expect_err("missing file");
    assert!(matches!(err, SinkError::Other(_)), "{err:?}");
    assert!(err.to_string().contains("gone.json"), "{err}");
}

#[tokio::test]
async fn check_creates_and_describe_names_the_catalog() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = sink(dir.path());
    sink.check().await.expect("check opens or creates");
    assert!(Catalog::new(dir.path().join("db")).exists(&db_ref()));
    assert_eq!(sink.describe(), format!("local: catalog {} --db etl/0", dir.path().join("db").display()));
    assert_eq!(sink.kind(), SinkKind::Local);
}

#[test]
fn a_database_without_instance_is_refused() {
    let config = LocalSinkConfig { db_root: "db".into(), db: "etl".into(), schema: SchemaSource::builtin(), strict: false };
    assert!(matches!(LocalSink::new(config), Err(SinkConfigError::BadDatabase { .. })));
}

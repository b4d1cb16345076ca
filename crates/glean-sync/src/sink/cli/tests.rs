//! The `cli` sink against the real `glean-local` binary, plain and wrapped in fault-injecting scripts.

use super::*;
use crate::test_support::{
    Wrapper, bad_batch, glean_local, group_members, node_batch, node_ids, process_state, read_pids, recorded_argvs, schema_dir,
};
use glean_catalog::store::Catalog;
use std::time::Instant as StdInstant;

const DB: &str = "etl/0";

/// A sink writing to `dir/db` through `program`.
fn sink(dir: &Path, program: PathBuf, timeout: Duration) -> CliSink {
    let config = CliSinkConfig { program, db: DB.into(), target: Target::DbRoot(dir.join("db")), schema_dir: schema_dir(dir), timeout };
    CliSink::new(config).expect("valid test config")
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[tokio::test]
async fn creates_the_database_on_first_use_then_writes() {
    let dir = tempdir();
    let sink = sink(dir.path(), glean_local(), Duration::from_secs(30));
    let file = node_batch(dir.path(), "a.json", &["n1", "n2"]);
    let written = sink.write(&[file]).await.expect("first write creates and writes");
    assert!(written.created_database, "the first write says it created the database");
    assert_eq!(node_ids(&dir.path().join("db"), DB), ["n1", "n2"]);
    let again = sink.write(&[node_batch(dir.path(), "b.json", &["n3"])]).await.expect("second write");
    assert!(!again.created_database, "said once");
}

#[tokio::test]
async fn a_database_that_already_exists_is_fine() {
    let dir = tempdir();
    let first = sink(dir.path(), glean_local(), Duration::from_secs(30));
    first.write(&[node_batch(dir.path(), "a.json", &["n1"])]).await.expect("first sink writes");
    // A fresh sink creates again and gets "DB create failure: already exists", exit 3.
    let second = sink(dir.path(), glean_local(), Duration::from_secs(30));
    let written = second.write(&[node_batch(dir.path(), "b.json", &["n2"])]).await.expect("already exists counts as created");
    assert!(!written.created_database, "an existing database was not created anew");
    assert_eq!(node_ids(&dir.path().join("db"), DB), ["n1", "n2"]);
}

#[tokio::test]
async fn a_deleted_database_is_created_again_and_written() {
    let dir = tempdir();
    let sink = sink(dir.path(), glean_local(), Duration::from_secs(30));
    sink.write(&[node_batch(dir.path(), "a.json", &["n1"])]).await.expect("first write");
    Catalog::new(dir.path().join("db")).delete(&DB.parse().expect("ref")).expect("delete database");
    let written = sink.write(&[node_batch(dir.path(), "b.json", &["n2"])]).await.expect("unknown database: recreate, write again");
    assert!(written.created_database, "the re-created database holds nothing from before, and the sink says so");
    assert_eq!(node_ids(&dir.path().join("db"), DB), ["n2"]);
}

#[tokio::test]
async fn an_unknown_database_is_recreated_and_retried_only_once() {
    let dir = tempdir();
    let log = dir.path().join("argv.log");
    let program = Wrapper::default()
        .only_for("write")
        .log_argv(&log)
        .stderr("DB create failure: UnknownDatabase: etl/0")
        .exit(3)
        .write(dir.path(), "glean");
    let sink = sink(dir.path(), program, Duration::from_secs(30));
    let err = sink.write(&[node_batch(dir.path(), "a.json", &["n1"])]).await.expect_err("write always fails");
    assert!(matches!(err, SinkError::UnknownDatabase(_)), "{err:?}");
    assert!(err.is_retriable());
    let verbs: Vec<String> = recorded_argvs(&log).into_iter().map(|argv| argv[0].clone()).collect();
    assert_eq!(verbs, ["create", "write", "create", "write"]);
}

#[tokio::test]
async fn a_rejected_batch_names_its_file_and_field_and_is_final() {
    let dir = tempdir();
    let sink = sink(dir.path(), glean_local(), Duration::from_secs(30));
    let good = node_batch(dir.path(), "good.json", &["n1"]);
    let bad = bad_batch(dir.path(), "bad.json");
    let err = sink.write(&[good, bad.clone()]).await.expect_err("bad batch");
    match &err {
        SinkError::Rejected { file, reason } => {
            assert_eq!(file.as_ref(), Some(&bad));
            assert!(reason.contains("agenticAiETH.ETL.Node.1") && reason.contains(".kind"), "{reason}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.is_retriable());
}

#[tokio::test]
async fn a_finished_database_is_read_only() {
    let dir = tempdir();
    let sink = sink(dir.path(), glean_local(), Duration::from_secs(30));
    sink.write(&[node_batch(dir.path(), "a.json", &["n1"])]).await.expect("first write");
    let catalog = Catalog::new(dir.path().join("db"));
    catalog.open(&DB.parse().expect("ref")).expect("open").finish(false).expect("finish");
    let err = sink.write(&[node_batch(dir.path(), "b.json", &["n2"])]).await.expect_err("read-only");
    assert!(matches!(err, SinkError::ReadOnly(_)), "{err:?}");
    assert!(!err.is_retriable());
}

#[tokio::test]
async fn a_failure_carries_the_end_of_stderr() {
    let dir = tempdir();
    let noise: Vec<String> = (0..500).map(|i| format!("noise line {i} {}", "x".repeat(40))).collect();
    let stderr = format!("{}\nthe real cause", noise.join("\n"));
    let program = Wrapper::default().only_for("write").stderr(&stderr).exit(2).write(dir.path(), "glean");
    let sink = sink(dir.path(), program, Duration::from_secs(30));
    let err = sink.write(&[node_batch(dir.path(), "a.json", &["n1"])]).await.expect_err("exit 2");
    assert!(matches!(err, SinkError::Crashed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("the real cause") && text.contains("exit status 2"), "{text}");
    assert!(!text.contains("noise line 0 "), "only the tail is kept");
    assert!(text.len() < process::STDERR_TAIL_BYTES + 200, "bounded: {} bytes", text.len());
}

#[tokio::test]
async fn a_hanging_write_is_killed_with_its_whole_process_group() {
    let dir = tempdir();
    let pids = dir.path().join("pids");
    let program = Wrapper::default().only_for("write").hang_with_child(&pids).write(dir.path(), "glean");
    let sink = sink(dir.path(), program, Duration::from_secs(1));
    let file = node_batch(dir.path(), "a.json", &["n1"]);
    // Create outside the timed call, so only the hanging write counts against the 1 s.
    sink.create(Instant::now() + Duration::from_secs(30), &CancellationToken::new()).await.expect("create passes through to glean-local");
    let started = StdInstant::now();
    let err = sink.write(&[file]).await.expect_err("hangs");
    let took = started.elapsed();
    assert!(matches!(err, SinkError::Timeout { .. }), "{err:?}");
    assert!(took < Duration::from_secs(4), "returned {took:?} after a 1 s timeout");
    let (wrapper, child) = read_pids(&pids);
    // Reaped, not merely killed: no zombie either (init here does not reap; we are the subreaper).
    assert_eq!(process_state(child), None, "sleeping child {child} still exists");
    assert_eq!(process_state(wrapper), None, "wrapper {wrapper} still exists");
    assert_eq!(group_members(wrapper), Vec::<i32>::new(), "process group {wrapper} is not empty");
}

#[tokio::test]
async fn a_cancelled_write_still_kills_and_reaps_its_group() {
    let dir = tempdir();
    let pids = dir.path().join("pids");
    let program = Wrapper::default().only_for("write").hang_with_child(&pids).write(dir.path(), "glean");
    let sink = sink(dir.path(), program, Duration::from_secs(60));
    sink.create(Instant::now() + Duration::from_secs(30), &CancellationToken::new()).await.expect("create");
    let file = node_batch(dir.path(), "a.json", &["n1"]);
    // The caller gives up long before the sink's own timeout: the write future is dropped mid-run.
    let cancelled = tokio::time::timeout(Duration::from_millis(500), sink.write(&[file])).await;
    assert!(cancelled.is_err(), "the write was still hanging");
    let (wrapper, child) = read_pids(&pids);
    let deadline = StdInstant::now() + Duration::from_secs(5);
    while !group_members(wrapper).is_empty() && StdInstant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(process_state(child), None, "sleeping child {child} still exists");
    assert_eq!(group_members(wrapper), Vec::<i32>::new(), "process group {wrapper} is not empty");
}

#[tokio::test]
async fn a_successful_write_leaves_no_background_process() {
    let dir = tempdir();
    let pids = dir.path().join("pids");
    let program = Wrapper::default().only_for("write").leave_background_child(&pids).write(dir.path(), "glean");
    let sink = sink(dir.path(), program, Duration::from_secs(30));
    let started = StdInstant::now();
    sink.write(&[node_batch(dir.path(), "a.json", &["n1"])]).await.expect("write works");
    assert!(started.elapsed() < Duration::from_secs(10), "a leftover child holding the pipes must not stall the call");
    let (wrapper, child) = read_pids(&pids);
    assert_eq!(process_state(child), None, "background child {child} still exists");
    assert_eq!(group_members(wrapper), Vec::<i32>::new());
}

#[tokio::test]
async fn a_slow_but_timely_write_succeeds() {
    let dir = tempdir();
    let program = Wrapper::default().only_for("write").delay(Duration::from_millis(300)).write(dir.path(), "glean");
    let sink = sink(dir.path(), program, Duration::from_secs(30));
    sink.write(&[node_batch(dir.path(), "a.json", &["n1"])]).await.expect("slow write");
    assert_eq!(node_ids(&dir.path().join("db"), DB), ["n1"]);
}

#[tokio::test]
async fn file_names_with_spaces_and_quotes_pass_as_they_are() {
    let dir = tempdir();
    let batches = dir.path().join("with space");
    let sink = sink(dir.path(), glean_local(), Duration::from_secs(30));
    let files = [node_batch(&batches, "a b.json", &["n1"]), node_batch(&batches, "it's $HOME; rm.json", &["n2"])];
    sink.write(&files).await.expect("no shell, no splitting");
    assert_eq!(node_ids(&dir.path().join("db"), DB), ["n1", "n2"]);
}

#[tokio::test]
async fn a_service_target_passes_service_host_port() {
    let dir = tempdir();
    let log = dir.path().join("argv.log");
    let program = Wrapper::default().log_argv(&log).exit(0).write(dir.path(), "glean");
    let config = CliSinkConfig {
        program: program.clone(),
        db: DB.into(),
        target: Target::Service("glean.example:25052".into()),
        schema_dir: dir.path().join("schema"),
        timeout: Duration::from_secs(30),
    };
    let sink = CliSink::new(config).expect("valid config");
    let file = dir.path().join("a b.json");
    sink.write(std::slice::from_ref(&file)).await.expect("fake glean exits 0");
    let schema = format!("dir:{}", dir.path().join("schema").display());
    let file = file.display().to_string();
    assert_eq!(
        recorded_argvs(&log),
        [
            vec!["create", "--db", DB, "--service", "glean.example:25052", "--schema", schema.as_str()],
            vec!["write", "--db", DB, "--service", "glean.example:25052", file.as_str()],
        ]
    );
    assert_eq!(sink.describe(), format!("cli: {} --db etl/0 --service glean.example:25052", program.display()));
}

#[tokio::test]
async fn check_runs_the_program_and_reports_one_that_cannot_start() {
    let dir = tempdir();
    sink(dir.path(), glean_local(), Duration::from_secs(30)).check().await.expect("glean-local --help");
    let missing = sink(dir.path(), dir.path().join("no-such-glean"), Duration::from_secs(30));
    let err = missing.check().await.expect_err("missing program");
    assert!(matches!(err, SinkError::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-glean"), "{err}");
}

#[test]
fn describe_names_program_database_and_root() {
    let config = CliSinkConfig {
        program: "/usr/bin/glean".into(),
        db: DB.into(),
        target: Target::DbRoot("./data/glean/db".into()),
        schema_dir: "./schema".into(),
        timeout: Duration::from_secs(60),
    };
    let sink = CliSink::new(config).expect("valid config");
    assert_eq!(sink.describe(), "cli: /usr/bin/glean --db etl/0 --db-root ./data/glean/db");
    assert_eq!(sink.kind(), SinkKind::Cli);
}

#[test]
fn configs_glean_would_refuse_are_refused_up_front() {
    let base = CliSinkConfig {
        program: "glean".into(),
        db: "etl".into(),
        target: Target::DbRoot("db".into()),
        schema_dir: "schema".into(),
        timeout: Duration::from_secs(1),
    };
    assert!(matches!(CliSink::new(base.clone()), Err(SinkConfigError::BadDatabase { .. })), "NAME without /INSTANCE");
    let service = CliSinkConfig { db: DB.into(), target: Target::Service("localhost".into()), ..base };
    assert!(matches!(CliSink::new(service), Err(SinkConfigError::BadService(_))));
}

#[test]
fn a_relative_file_starting_with_a_dash_is_not_an_option() {
    assert_eq!(arg_path(Path::new("-x.json")), OsString::from("./-x.json"));
    assert_eq!(arg_path(Path::new("/tmp/-x.json")), OsString::from("/tmp/-x.json"));
}

#[test]
fn find_program_uses_path_for_bare_names_and_checks_explicit_paths() {
    assert!(find_program("sh").is_some_and(|p| p.is_absolute()), "sh is on PATH");
    let local = glean_local();
    assert_eq!(find_program(&local.display().to_string()), Some(local));
    assert_eq!(find_program("no-such-program-anywhere"), None);
    assert_eq!(find_program(""), None);
    let dir = tempdir();
    let plain = crate::test_support::write_file(dir.path(), "not-executable", "#!/bin/sh\n");
    assert_eq!(find_program(&plain.display().to_string()), None);
    assert_eq!(find_program(&dir.path().display().to_string()), None, "a directory is not a program");
}

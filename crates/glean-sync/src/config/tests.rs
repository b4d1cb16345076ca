//! Settings parsing and validation (flags here; the binary's tests cover the environment).

use super::*;
use clap::Parser;

#[derive(Parser, Debug)]
struct TestCli {
    #[command(flatten)]
    settings: Settings,
}

fn parse(args: &[&str]) -> Result<Settings, String> {
    let mut argv = vec!["glean-sync"];
    argv.extend_from_slice(args);
    TestCli::try_parse_from(argv).map(|c| c.settings).map_err(|e| e.to_string())
}

fn load(args: &[&str]) -> Result<Config, String> {
    parse(args)?.load().map_err(|e| e.to_string())
}

#[test]
fn defaults_are_the_original_exporters() {
    let s = parse(&[]).expect("defaults");
    assert!(!s.realtime_enable);
    assert_eq!(s.workers, 2);
    assert_eq!(s.export_dir, PathBuf::from("./data/glean/exports"));
    assert_eq!(s.predicate_prefix, "agenticAiETH.ETL");
    assert_eq!(s.queue_capacity, 100);
    assert_eq!(s.write_timeout_secs, 60);
    assert_eq!(s.sink, SinkKind::Auto);
    let c = s.load().expect("batch mode needs no database");
    assert_eq!(c.mode, Mode::Batch);
    assert_eq!(c.ledger_path, PathBuf::from("./data/glean/exports/.glean-sync/ledger.sqlite"));
}

#[test]
fn bad_values_name_the_variable_and_what_is_accepted() {
    let e = parse(&["--workers", "4x"]).expect_err("4x");
    assert!(e.contains("GLEAN_REALTIME_WORKERS"), "{e}");
    let e = parse(&["--workers", "0"]).expect_err("0");
    assert!(e.contains("GLEAN_REALTIME_WORKERS") && e.contains("1..=256"), "{e}");
    let e = parse(&["--realtime-enable", "maybe"]).expect_err("maybe");
    assert!(e.contains("GLEAN_REALTIME_ENABLE") && e.contains("accepted values: true, false"), "{e}");
    let e = parse(&["--sink", "nfs"]).expect_err("nfs");
    assert!(e.contains("GLEAN_SINK") && e.contains("cli") && e.contains("local") && e.contains("auto"), "{e}");
    let e = parse(&["--queue-capacity=-1"]).expect_err("-1");
    assert!(e.contains("GLEAN_QUEUE_CAPACITY"), "{e}");
}

#[test]
fn realtime_needs_a_database_name() {
    let e = load(&["--realtime-enable", "true"]).expect_err("no db");
    assert!(e.starts_with("GLEAN_DB_NAME is required when GLEAN_REALTIME_ENABLE=true"), "{e}");
}

#[test]
fn database_name_with_or_without_instance() {
    let c = load(&["--realtime-enable", "true", "--db-name", "etl"]).expect("ok");
    assert_eq!(c.glean.expect("glean").db.to_string(), "etl/0");
    let c = load(&["--realtime-enable", "yes", "--db-name", "etl/7", "--db-instance", "3"]).expect("ok");
    assert_eq!(c.glean.expect("glean").db.to_string(), "etl/7");
    let e = load(&["--realtime-enable", "1", "--db-name", "etl/a.b"]).expect_err("bad instance");
    assert!(e.starts_with("GLEAN_DB_NAME=\"etl/a.b\" is invalid"), "{e}");
    let e = load(&["--realtime-enable", "1", "--db-name", "etl", "--db-instance", "a.b"]).expect_err("bad instance");
    assert!(e.starts_with("GLEAN_DB_INSTANCE=\"a.b\" is invalid"), "the variable at fault is named: {e}");
}

#[test]
fn a_longest_backoff_below_the_first_is_refused() {
    let e = load(&["--retry-base-ms", "5000", "--retry-max-ms", "1000"]).expect_err("max < base");
    assert!(e.starts_with("GLEAN_RETRY_MAX_MS=\"1000\" is invalid") && e.contains("GLEAN_RETRY_BASE_MS (5000)"), "{e}");
    let c = load(&["--retry-base-ms", "1000", "--retry-max-ms", "1000"]).expect("equal is fine");
    assert_eq!(c.exporter.retry.max, Duration::from_secs(1));
}

#[test]
fn the_node_id_does_not_change_when_the_export_dir_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exports = dir.path().join("not-yet");
    let before = default_node_id(&exports);
    std::fs::create_dir(&exports).expect("the first run creates it");
    assert_eq!(default_node_id(&exports), before);
}

#[test]
fn service_or_db_root() {
    let c = load(&["--db-name", "etl", "--service", "localhost:12345"]).expect("ok");
    assert_eq!(c.glean.expect("glean").target, GleanTarget::Service("localhost:12345".into()));
    let e = load(&["--db-name", "etl", "--service", "localhost"]).expect_err("no port");
    assert!(e.starts_with("GLEAN_SERVICE="), "{e}");
}

#[test]
fn a_prefix_the_schema_does_not_declare_stops_realtime_startup() {
    let e = load(&["--realtime-enable", "true", "--db-name", "etl", "--predicate-prefix", "other.NS"]).expect_err("mismatch");
    assert!(e.contains("GLEAN_PREDICATE_PREFIX=other.NS") && e.contains("glean-sync schema --prefix other.NS"), "{e}");
    // Batch mode only writes files (for a Glean whose schema may be elsewhere), so it does not insist...
    load(&["--predicate-prefix", "other.NS"]).expect("batch mode");
    // ...but the names it writes must be valid Angle.
    let e = load(&["--predicate-prefix", "other NS"]).expect_err("not a name");
    assert!(e.starts_with("GLEAN_PREDICATE_PREFIX=\"other NS\" is invalid"), "{e}");
}

#[test]
fn a_schema_for_any_prefix_matches_that_prefix() {
    let schema = schema_for_prefix("acme.Lineage").resolve_for_database().expect("valid schema");
    check_schema_declares(&schema, "acme.Lineage").expect("declares acme.Lineage");
    assert!(check_schema_declares(&schema, "agenticAiETH.ETL").is_err());
}

#[test]
fn a_schema_missing_fields_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = dir.path().join("etl.angle");
    std::fs::write(
        &old,
        "schema agenticAiETH.ETL.1 {\n predicate Node : { id : string, kind : string, label : string }\n \
        predicate Edge : { source : string, target : string, label : string }\n predicate ExportManifest : { exported_at : string }\n}",
    )
    .expect("write");
    let path = old.to_string_lossy().into_owned();
    let e = load(&["--realtime-enable", "true", "--db-name", "etl", "--schema-path", &path]).expect_err("old schema");
    assert!(e.contains("does not accept the facts glean-sync writes"), "{e}");
    let e = load(&["--schema-path", "/nonexistent/etl.angle"]).expect_err("missing file");
    assert!(e.starts_with("GLEAN_SCHEMA_PATH: cannot read schema"), "{e}");
}

#[test]
fn a_lone_schema_file_gets_an_all_schema_and_a_file_in_a_glean_dir_means_the_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etl: String = SchemaSource::builtin().files.into_iter().find(|(n, _)| n == "etl.angle").map(|(_, t)| t).expect("etl.angle");
    let lone = dir.path().join("lone");
    std::fs::create_dir_all(&lone).expect("mkdir");
    std::fs::write(lone.join("etl.angle"), &etl).expect("write");
    let path = lone.join("etl.angle").to_string_lossy().into_owned();
    let c = load(&["--realtime-enable", "true", "--db-name", "etl", "--schema-path", &path]).expect("loads");
    assert!(c.schema.dir.is_none());
    assert_eq!(c.schema.source.resolve_for_database().expect("all added").all_version(), Some(1));

    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../glean/schema/source/etl.angle");
    let path = shipped.to_string_lossy().into_owned();
    let c = load(&["--realtime-enable", "true", "--db-name", "etl", "--schema-path", &path]).expect("loads");
    assert_eq!(c.schema.dir.as_deref(), shipped.parent(), "the directory glean can read as it is");
    assert_eq!(c.schema.source.files.len(), 2);
}

//! The `glean-local` command line: glean's output lines, exit codes, batch semantics, queries and validation.

use crate::util::{Env, NODE, REF_SCHEMA, node_batch, node_key};
use serde_json::Value;

#[test]
fn create_prints_glean_lines_and_one_wrote_line_per_file() {
    let env = Env::new();
    let a = env.node_file("a.json", "a", 0..3);
    let b = env.node_file("b.json", "b", 0..2);
    let run = env.create("etl/1", &[a, b]);
    assert_eq!(run.lines(), ["Creating DB etl/1", "[glean create] ACL: disabled", "Wrote a.json", "Wrote b.json"]);
    assert_eq!(env.fact_count("etl/1"), 5);
}

#[test]
fn create_on_an_existing_database_is_exit_3_and_writes_nothing() {
    let env = Env::new();
    env.create("etl/1", &[]);
    let more = env.node_file("more.json", "m", 0..2);
    env.run(&["create", "--db", "etl/1", more]).code(3).stderr_has("DB create failure: already exists");
    assert_eq!(env.fact_count("etl/1"), 0, "a refused create must not write its files");
}

#[test]
fn write_to_a_missing_database_is_exit_3_and_creates_nothing() {
    let env = Env::new();
    let f = env.node_file("f.json", "n", 0..1);
    env.run(&["write", "--db", "nope/1", f]).code(3).stderr_has("DB create failure: UnknownDatabase");
    let list = env.run(&["list", "--format", "json"]);
    list.ok();
    assert_eq!(serde_json::from_str::<Value>(&list.stdout).expect("list JSON"), serde_json::json!([]));
}

#[test]
fn a_schema_invalid_fact_is_exit_3_naming_file_predicate_index_and_field() {
    let env = Env::new();
    env.create("etl/1", &[]);
    let bad = env.file(
        "bad.json",
        format!(r#"[{{"predicate":"{NODE}","facts":[{{"key":{}}},{{"key":{{"id":"y","kind":5,"label":"l"}}}}]}}]"#, node_key("z", 0)),
    );
    env.run(&["write", "--db", "etl/1", bad]).code(3).stderr_has(&format!("DB create failure: bad.json: {NODE} fact #1 .kind: "));
    assert_eq!(env.fact_count("etl/1"), 0, "the valid fact before the bad one must not be written");
}

#[test]
fn write_keeps_files_before_a_bad_one_and_stops_there() {
    let env = Env::new();
    env.create("etl/1", &[]);
    let good1 = env.node_file("good1.json", "g1_", 0..3);
    let bad =
        env.file("bad.json", format!(r#"[{{"predicate":"{NODE}","facts":[{{"key":{}}},{{"key":{{"id":1}}}}]}}]"#, node_key("bad", 0)));
    let good2 = env.node_file("good2.json", "g2_", 0..4);
    let run = env.run(&["write", "--db", "etl/1", good1, bad, good2]);
    run.code(3).stderr_has("bad.json");
    assert!(run.lines().contains(&"Wrote good1.json"), "{}", run.stdout);
    assert!(!run.stdout.contains("Wrote bad.json") && !run.stdout.contains("Wrote good2.json"), "{}", run.stdout);
    assert_eq!(env.fact_count("etl/1"), 3, "only good1.json is written");
    let expected: Vec<String> = (0..3).map(|i| format!(r#"{{"id":{},"key":{}}}"#, 1024 + i, node_key("g1_", i))).collect();
    assert_eq!(env.query("etl/1", &["agenticAiETH.ETL.Node"]), expected);
}

#[test]
fn writing_the_same_file_twice_changes_no_count() {
    let env = Env::new();
    let f = env.node_file("f.json", "n", 0..10);
    env.create("etl/1", &[f]);
    let before = env.stats("etl/1");
    assert_eq!(before[NODE]["count"], 10, "{before}");
    env.run(&["write", "--db", "etl/1", f]).ok();
    assert_eq!(env.stats("etl/1"), before);
}

#[test]
fn finish_on_an_empty_database_is_exit_6() {
    let env = Env::new();
    env.create("etl/1", &[]);
    env.run(&["finish", "--db", "etl/1"]).code(6).stderr_has("no facts");
    let f = env.node_file("f.json", "n", 0..1);
    env.run(&["write", "--db", "etl/1", f]).ok();
}

#[test]
fn finish_with_allow_zero_facts_completes_an_empty_database() {
    let env = Env::new();
    env.create("etl/1", &[]);
    env.run(&["finish", "--db", "etl/1", "--allow-zero-facts"]).ok();
    let list = env.run(&["list", "--format", "json"]);
    list.ok();
    let dbs: Value = serde_json::from_str(&list.stdout).expect("list JSON");
    assert_eq!(dbs[0]["status"], "complete", "{dbs}");
}

#[test]
fn write_after_finish_is_exit_3_read_only() {
    let env = Env::new();
    let f = env.node_file("f.json", "n", 0..2);
    env.create("etl/1", &[f]);
    env.run(&["finish", "--db", "etl/1"]).ok();
    let g = env.node_file("g.json", "g", 0..2);
    env.run(&["write", "--db", "etl/1", g]).code(3).stderr_has("can't write to a read only database");
    assert_eq!(env.fact_count("etl/1"), 2);
}

#[test]
fn delete_removes_a_database_and_an_unknown_one_is_exit_1() {
    let env = Env::new();
    env.create("etl/1", &[]);
    env.run(&["delete", "--db", "etl/1"]).ok();
    env.run(&["stats", "--db", "etl/1"]).code(1).stderr_has("UnknownDatabase");
    env.run(&["delete", "--db", "etl/1"]).code(1).stderr_has("UnknownDatabase");
}

#[test]
fn an_unknown_flag_is_a_usage_error_exit_1() {
    let env = Env::new();
    env.run(&["write", "--db", "etl/1", "--bogus"]).code(1).stderr_has("--bogus");
}

#[test]
fn service_is_refused_with_a_clear_message() {
    let env = Env::new();
    let run = env.run_raw(&["--service", "host:1", "list"]);
    run.code(1).stderr_has("--service host:1").stderr_has("--db-root");
}

#[test]
fn query_prints_one_compact_json_object_per_fact() {
    let env = Env::new();
    let f = env.node_file("f.json", "n", 0..3);
    env.create("etl/1", &[f]);
    let expected: Vec<String> = (0..3).map(|i| format!(r#"{{"id":{},"key":{}}}"#, 1024 + i, node_key("n", i))).collect();
    assert_eq!(env.query("etl/1", &["agenticAiETH.ETL.Node"]), expected, "latest version by default");
    assert_eq!(env.query("etl/1", &[NODE]), expected, "explicit version");
    assert_eq!(env.query("etl/1", &[r#"agenticAiETH.ETL.Node { id = "n1" }"#]), [expected[1].clone()], "record pattern");
    assert_eq!(env.query("etl/1", &[r#"agenticAiETH.ETL.Node { kind = "view" }"#]), Vec::<String>::new());
    assert_eq!(env.query("etl/1", &["--limit", "2", "agenticAiETH.ETL.Node"]), expected[..2], "--limit");
}

#[test]
fn query_matches_string_keys_and_expand_shows_nested_facts() {
    let env = Env::new();
    env.file("schema/t.angle", REF_SCHEMA);
    let batch = env.file(
        "t.json",
        r#"[{"predicate":"t.Name.1","facts":[{"id":1,"key":"abc"},{"id":2,"key":"def"}]},
            {"predicate":"t.Fn.1","facts":[{"key":{"name":1,"arity":2}},{"key":{"name":{"id":2},"arity":0}}]}]"#,
    );
    env.run(&["--schema", "dir:schema", "create", "--db", "t/1", batch]).ok();
    assert_eq!(env.query("t/1", &[r#"t.Name "abc""#]), [r#"{"id":1024,"key":"abc"}"#]);
    assert_eq!(env.query("t/1", &[r#"t.Name "xyz""#]), Vec::<String>::new());
    assert_eq!(env.query("t/1", &[r#"t.Fn { name = "def" }"#]), [r#"{"id":1027,"key":{"name":{"id":1025},"arity":0}}"#]);
    assert_eq!(env.query("t/1", &["--expand", "t.Fn { arity = 0 }"]), [r#"{"id":1027,"key":{"name":{"id":1025,"key":"def"},"arity":0}}"#]);
}

#[test]
fn list_json_shows_status_and_facts() {
    let env = Env::new();
    let f = env.node_file("f.json", "n", 0..4);
    env.create("etl/1", &[f]);
    env.create("etl/2", &[]);
    env.run(&["finish", "--db", "etl/1"]).ok();
    let list = env.run(&["list", "--format", "json"]);
    list.ok();
    let dbs: Value = serde_json::from_str(&list.stdout).expect("list JSON");
    let dbs = dbs.as_array().expect("list is an array");
    assert_eq!(dbs.len(), 2, "{dbs:?}");
    assert_eq!((&dbs[0]["db"], &dbs[0]["status"], &dbs[0]["facts"]), (&"etl/1".into(), &"complete".into(), &4.into()));
    assert!(dbs[0]["completed"].is_string(), "{}", dbs[0]);
    assert_eq!((&dbs[1]["db"], &dbs[1]["status"], &dbs[1]["facts"]), (&"etl/2".into(), &"incomplete".into(), &0.into()));
    assert!(dbs[1]["completed"].is_null(), "{}", dbs[1]);
}

#[test]
fn zstd_compressed_batches_are_written() {
    let env = Env::new();
    env.create("etl/1", &[]);
    let compressed = zstd::encode_all(node_batch("z", 0..7).as_bytes(), 3).expect("zstd compresses in memory");
    let f = env.file("f.json.zst", compressed);
    let run = env.run(&["write", "--db", "etl/1", f]);
    run.ok();
    assert!(run.lines().contains(&"Wrote f.json.zst"), "{}", run.stdout);
    assert_eq!(env.fact_count("etl/1"), 7);
}

#[test]
fn validate_accepts_good_files_and_names_what_is_wrong_in_bad_ones() {
    let env = Env::new();
    let good = env.node_file("good.json", "n", 0..3);
    env.run(&["validate", good]).ok();
    let bad = env.file(
        "bad.json",
        format!(r#"[{{"predicate":"{NODE}","facts":[{{"key":{{"id":"a","kind":"k"}}}},{{"key":{{"id":"b","label":[]}}}}]}}]"#),
    );
    let run = env.run(&["validate", good, bad]);
    assert_ne!(run.code, 0, "{run:?}");
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains(&format!("bad.json: {NODE} fact #1 .label")), "{all}");
}

#[test]
fn strict_validate_rejects_an_unversioned_predicate_that_lenient_accepts() {
    let env = Env::new();
    let f = env.file("f.json", format!(r#"[{{"predicate":"agenticAiETH.ETL.Node","facts":[{{"key":{}}}]}}]"#, node_key("n", 0)));
    env.run(&["validate", f]).ok();
    let strict = env.run(&["--strict", "validate", f]);
    assert_ne!(strict.code, 0, "{strict:?}");
    assert!(strict.stdout.contains("has no version"), "{strict:?}");
}

#[test]
fn validate_schema_is_exit_55_on_a_bad_schema() {
    let env = Env::new();
    env.file("good/t.angle", REF_SCHEMA);
    env.run(&["validate-schema", "dir:good"]).ok();
    env.file("bad/t.angle", "schema x.1 { predicate P : Missing }\nschema all.1 : x.1 {}\n");
    env.run(&["validate-schema", "dir:bad"]).code(55).stderr_has("Missing");
    env.file("syntax/t.angle", "schema x.1 { predicate P : { a : nat, }\n");
    env.run(&["validate-schema", "dir:syntax"]).code(55).stderr_has("syntax");
}

#[test]
fn global_flags_work_before_and_after_the_subcommand() {
    let env = Env::new();
    let root = env.root();
    let root = root.to_str().expect("temporary paths are UTF-8");
    let a = env.node_file("a.json", "a", 0..2);
    let b = env.node_file("b.json", "b", 0..3);
    env.run_raw(&["--db-root", root, "create", "--db", "etl/1"]).ok();
    env.run_raw(&["--db-root", root, "write", "--db", "etl/1", a]).ok();
    env.run_raw(&["write", "--db", "etl/1", b, "--db-root", root]).ok();
    assert_eq!(env.fact_count("etl/1"), 5, "both writes went to the same db root");
    let unversioned = env.file("u.json", format!(r#"[{{"predicate":"agenticAiETH.ETL.Node","facts":[{{"key":{}}}]}}]"#, node_key("u", 0)));
    env.run_raw(&["validate", unversioned]).ok();
    let strict_after = env.run_raw(&["validate", unversioned, "--strict"]);
    assert_ne!(strict_after.code, 0, "--strict after the subcommand must apply: {strict_after:?}");
}

#[test]
fn a_query_whose_reader_stops_after_one_line_ends_quietly() {
    let env = Env::new();
    // Far more output than a pipe holds, so glean-local is still printing when the reader leaves.
    let f = env.node_file("f.json", "n", 0..5000);
    env.create("etl/1", &[f]);
    let (first, run) = env.run_first_line(&["query", "--db", "etl/1", "agenticAiETH.ETL.Node"]);
    assert_eq!(first, format!(r#"{{"id":1024,"key":{}}}"#, node_key("n", 0)));
    run.ok();
    assert!(!run.stderr.contains("panicked") && !run.stderr.contains("Broken pipe"), "{run:?}");
}

#[test]
fn a_database_that_cannot_be_read_is_listed_by_name_and_named_in_errors() {
    let env = Env::new();
    let f = env.node_file("f.json", "n", 0..2);
    env.create("etl/1", &[f]);
    env.file("db/broken/1/facts.sqlite", "this is not a database. ".repeat(100));
    let list = env.run(&["list"]);
    list.ok();
    assert!(list.lines().contains(&"broken/1 (unreadable: file is not a database)"), "{list:?}");
    assert!(list.lines().contains(&"etl/1 (incomplete)"), "the readable database is still listed: {list:?}");
    let json = env.run(&["list", "--format", "json"]);
    json.ok();
    let dbs: Value = serde_json::from_str(&json.stdout).expect("list JSON");
    assert_eq!((&dbs[0]["db"], &dbs[0]["status"]), (&"broken/1".into(), &"unreadable".into()), "{dbs}");
    assert_eq!(dbs[1]["facts"], 2, "{dbs}");
    env.run(&["stats", "--db", "broken/1"]).code(1).stderr_has("broken/1").stderr_has("file is not a database");
    env.run(&["query", "--db", "broken/1", "agenticAiETH.ETL.Node"]).code(1).stderr_has("broken/1");
    env.run(&["write", "--db", "broken/1", f]).code(3).stderr_has("broken/1");
}

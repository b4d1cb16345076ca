//! Query patterns over a small database.

use super::*;
use crate::schema::SchemaSource;
use crate::store::{BatchInput, Catalog, DbRef};

const SCHEMA: &str = "schema r.1 {\n predicate N : string\n predicate P : { n : N, tag : maybe string, k : { a : nat | b : string } }\n \
                      predicate KV : nat -> string\n}\nschema r.2 { predicate N : nat }\nschema all.1 : r.1 {}";

const FACTS: &str = r#"[
  {"predicate": "r.N.1", "facts": [{"id": 1, "key": "a"}, {"id": 2, "key": "b"}]},
  {"predicate": "r.P.1", "facts": [
    {"key": {"n": 1, "tag": "x", "k": {"a": 5}}},
    {"key": {"n": 2, "k": {"b": "s"}}},
    {"key": {"n": 1, "k": {"a": 6}}}]},
  {"predicate": "r.KV.1", "facts": [{"key": 7, "value": "seven"}]},
  {"predicate": "r.N.2", "facts": [{"key": 3}]}
]"#;

fn db() -> (tempfile::TempDir, crate::store::Database) {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Catalog::new(dir.path());
    let db: DbRef = "q/0".parse().expect("ref");
    let mut d = catalog.create(&db, &SchemaSource { files: vec![("r.angle".into(), SCHEMA.into())] }, &[]).expect("create");
    let r = d.write(&[BatchInput::Bytes { name: "f.json", bytes: FACTS.as_bytes() }], true).expect("store");
    r[0].as_ref().expect("batch ok");
    (dir, d)
}

fn q(d: &crate::store::Database, text: &str) -> Vec<String> {
    d.query(text, &QueryOptions::default()).unwrap_or_else(|e| panic!("{text}: {e}")).results
}

#[test]
fn whole_predicate_prints_like_glean() {
    let (_d, d) = db();
    assert_eq!(q(&d, "r.N.1"), [r#"{"id":1024,"key":"a"}"#, r#"{"id":1025,"key":"b"}"#]);
    assert_eq!(q(&d, "r.KV"), [r#"{"id":1029,"key":7,"value":"seven"}"#]);
}

#[test]
fn unversioned_name_means_the_latest_version() {
    let (_d, d) = db();
    assert_eq!(q(&d, "r.N"), [r#"{"id":1030,"key":3}"#]);
}

#[test]
fn whole_key_patterns() {
    let (_d, d) = db();
    assert_eq!(q(&d, r#"r.N.1 "b""#), [r#"{"id":1025,"key":"b"}"#]);
    assert_eq!(q(&d, "r.KV 7").len(), 1);
    assert!(q(&d, r#"r.N.1 "zz""#).is_empty());
}

#[test]
fn record_sum_maybe_and_reference_patterns() {
    let (_d, d) = db();
    assert_eq!(q(&d, r#"r.P { n = "a" }"#).len(), 2, "matches through the reference");
    assert_eq!(q(&d, r#"r.P { n = $1025 }"#).len(), 1);
    assert_eq!(q(&d, r#"r.P { tag = "x" }"#).len(), 1);
    assert_eq!(q(&d, r#"r.P { tag = { just = "x" } }"#).len(), 1);
    assert_eq!(q(&d, "r.P { tag = nothing }").len(), 2);
    assert_eq!(q(&d, "r.P { k = { a = 6 } }").len(), 1);
    assert_eq!(q(&d, "r.P { k = { a = _ }, n = _ }").len(), 2);
}

#[test]
fn limit_and_expand() {
    let (_d, d) = db();
    let out = d.query("r.P", &QueryOptions { limit: Some(1), expand: false }).expect("query");
    assert_eq!(out.results.len(), 1);
    assert!(out.truncated);
    let out = d.query(r#"r.P { k = { b = "s" } }"#, &QueryOptions { limit: None, expand: true }).expect("query");
    assert_eq!(out.results, [r#"{"id":1027,"key":{"n":{"id":1025,"key":"b"},"k":{"b":"s"}}}"#]);
}

#[test]
fn bad_queries_are_explained() {
    let (_d, d) = db();
    let err = |text: &str| d.query(text, &QueryOptions::default()).expect_err(text).to_string();
    assert_eq!(err("r.Nope"), "not in scope: r.Nope");
    assert!(err("r.P { m = 1 }").contains("unknown field `m` (fields: n, tag, k)"));
    assert!(err("r.N.1 5").contains("cannot match a value of type string"));
    assert!(err("r.P { k = { a = 1, b = \"s\" } }").contains("exactly one alternative"));
    assert!(err("r.P {").contains("syntax error"));
}

//! Batch checking: one test per acceptance and rejection class of GLEAN.md 1.1-1.5.

use super::*;
use crate::schema::{PredId, SchemaSource};

const TEST_SCHEMA: &str = r#"
schema test.1 {
  type Color = enum { red | green | blue }
  predicate Name : string
  predicate Kitchen : {
    b : byte, n : nat, s : string, t : bool,
    bytes : [byte], names : [Name], tags : set string, nums : set nat,
    color : Color, m : maybe nat,
    choice : { num : nat | text : string | none },
    rec : { x : nat, y : maybe string },
  }
  predicate KV : string -> nat
  predicate Pair : { left : Name, right : Name }
  predicate Expr : { lit : nat | add : { l : Expr, r : Expr } }
  predicate NeedsName : { inner : { name : Name }, n : nat }
}
schema all.1 : test.1 {}
"#;

fn schema() -> Schema {
    SchemaSource { files: vec![("test.angle".into(), TEST_SCHEMA.into())] }.resolve().expect("test schema")
}

/// A sink that remembers every stored fact, to look at canonical forms.
#[derive(Default)]
struct Recording {
    inner: MemorySink,
    facts: Vec<(PredId, String, Option<String>)>,
}

impl FactSink for Recording {
    fn define(&mut self, pred: PredId, key: &str, value: Option<&str>) -> Result<FactId, DefineError> {
        let before = self.inner.len();
        let id = self.inner.define(pred, key, value)?;
        if self.inner.len() > before {
            self.facts.push((pred, key.to_owned(), value.map(str::to_owned)));
        }
        Ok(id)
    }
    fn predicate_of(&mut self, id: FactId) -> Result<Option<PredId>, StoreFailure> {
        self.inner.predicate_of(id)
    }
    fn own(&mut self, _: &str, _: &[FactId]) -> Result<(), StoreFailure> {
        Ok(())
    }
}

fn run(json: &str, strict: bool) -> Result<Vec<(String, String, Option<String>)>, BatchError> {
    let schema = schema();
    let mut sink = Recording::default();
    let mut checker = Checker::new(&schema, &mut sink, strict);
    check_reader("b.json", json.as_bytes(), &mut checker)?;
    Ok(sink.facts.into_iter().map(|(p, k, v)| (schema.predicate(p).full_name(), k, v)).collect())
}

fn keys(json: &str) -> Vec<String> {
    run(json, false).unwrap_or_else(|e| panic!("{e}")).into_iter().map(|(_, k, _)| k).collect()
}

fn rejects(json: &str, strict: bool, needle: &str) -> String {
    match run(json, strict) {
        Ok(f) => panic!("accepted {json} ({f:?}), expected {needle:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(needle), "{msg:?} does not contain {needle:?}");
            msg
        }
    }
}

fn group(pred: &str, facts: &str) -> String {
    format!(r#"[{{"predicate": "{pred}", "facts": [{facts}]}}]"#)
}

#[test]
fn etl_batch_with_all_three_predicates_validates() {
    let schema = SchemaSource::builtin().resolve().expect("builtin");
    let batch = r#"[
      {"predicate": "agenticAiETH.ETL.Node.1", "facts": [
        {"key": {"id": "n1", "kind": "table", "label": "customers", "properties_json": "{\"schema\":\"public\"}"}},
        {"key": {"id": "n2", "kind": "column", "label": "customer_id"}}]},
      {"predicate": "agenticAiETH.ETL.Edge.1", "facts": [
        {"key": {"source": "n2", "target": "n1", "label": "BELONGS_TO"}}]},
      {"predicate": "agenticAiETH.ETL.ExportManifest.1", "facts": [
        {"key": {"exported_at": "2026-12-03T00:00:00Z", "node_count": 2, "edge_count": 1,
                 "export_file": "graph_1.json", "graph_key": "p/s", "graph_version": 1}}]}
    ]"#;
    let summary = validate_bytes("graph_1.json", batch.as_bytes(), &schema, true).expect("valid");
    assert_eq!(summary, BatchSummary { groups: 3, facts: 4, schema_id: None });
}

#[test]
fn error_names_file_predicate_index_and_field() {
    let schema = SchemaSource::builtin().resolve().expect("builtin");
    let node = |k: &str| format!(r#"{{"key": {{"id": "n", "kind": {k}, "label": "l"}}}}"#);
    let batch = format!(
        r#"[{{"predicate": "agenticAiETH.ETL.Node.1", "facts": [{}, {}, {}, {}]}}]"#,
        node("\"a\""),
        node("\"b\""),
        node("\"c\""),
        node("7")
    );
    let err = validate_bytes("graph_01.json", batch.as_bytes(), &schema, true).expect_err("rejected");
    assert_eq!(err.to_string(), "graph_01.json: agenticAiETH.ETL.Node.1 fact #3 .kind: expected string, got number");
}

#[test]
fn canonical_form_fills_defaults_in_schema_order() {
    let k = keys(&group("test.Kitchen.1", r#"{"key": {"s": "x", "b": 1}}"#));
    assert_eq!(
        k[0],
        r#"{"b":1,"n":0,"s":"x","t":false,"bytes":"","names":[],"tags":[],"nums":[],"color":0,"choice":{"num":0},"rec":{"x":0}}"#
    );
}

#[test]
fn every_type_encodes() {
    let k = keys(&group(
        "test.Kitchen.1",
        r#"{"key": {"b": 255, "n": 42, "s": "q\"\u0000", "t": true, "bytes": "aGk", "names": [{"key": "a"}, {"key": "b"}],
            "tags": ["z", "a", "z"], "nums": [3, 1, 3], "color": 2, "m": 7, "choice": {"none": {}}, "rec": {"x": 1, "y": "s"}}}"#,
    ));
    assert_eq!(
        k.last().expect("kitchen fact"),
        r#"{"b":255,"n":42,"s":"q\"\u0000","t":true,"bytes":"aGk","names":[{"id":1024},{"id":1025}],"tags":["a","z"],"nums":[1,3],"color":2,"m":7,"choice":{"none":{}},"rec":{"x":1,"y":"s"}}"#
    );
}

#[test]
fn sets_are_order_insensitive_and_bytes_accept_both_forms() {
    let a = keys(&group("test.Kitchen.1", r#"{"key": {"tags": ["b", "a"], "bytes": [104, 105]}}"#));
    let b = keys(&group("test.Kitchen.1", r#"{"key": {"tags": ["a", "b", "a"], "bytes": "aGk"}}"#));
    assert_eq!(a, b);
}

#[test]
fn not_an_array() {
    rejects(r#"{"predicate": "test.Name.1", "facts": []}"#, false, "top level of a batch must be an array");
}

#[test]
fn group_structure() {
    rejects(r#"[{"facts": []}]"#, false, "group #0: missing \"predicate\"");
    rejects(r#"[{"predicate": "test.Name.1"}]"#, false, "missing \"facts\"");
    rejects(r#"[{"predicate": "test.Name.1", "facts": [], "unit": 3}]"#, false, "\"unit\" must be a string");
    rejects(r#"[{"predicate": "test.Name.1", "facts": {}}]"#, false, "an array of facts");
    rejects(r#"[3]"#, false, "a predicate group object");
    assert!(run(r#"[{"predicate": "test.Name.1", "facts": []}]"#, true).expect("empty group").is_empty());
}

#[test]
fn unknown_predicates_and_types() {
    rejects(&group("test.Nope.1", ""), false, "not in scope: test.Nope.1");
    rejects(&group("test.Name.2", ""), false, "not in scope: test.Name.2");
    rejects(&group("test.Color.1", ""), false, "test.Color.1 is a type, not a predicate");
}

#[test]
fn unversioned_names_default_to_1_unless_strict() {
    assert_eq!(keys(&group("test.Name", r#"{"key": "a"}"#)), [r#""a""#]);
    rejects(&group("test.Name", r#"{"key": "a"}"#), true, "has no version");
}

#[test]
fn object_form_predicate_reference() {
    let k = keys(r#"[{"predicate": {"name": "test.Name", "version": 1}, "facts": [{"key": "a"}]}]"#);
    assert_eq!(k, [r#""a""#]);
    rejects(r#"[{"predicate": {"name": "test.Name"}, "facts": []}]"#, false, "needs \"name\" (string) and \"version\"");
}

#[test]
fn extra_group_keys_are_ignored_unless_strict() {
    let json = r#"[{"predicate": "test.Name.1", "facts": [{"key": "a"}], "comment": "x"}]"#;
    assert_eq!(keys(json).len(), 1);
    rejects(json, true, "unknown key \"comment\"");
}

#[test]
fn fact_object_shape() {
    rejects(&group("test.Name.1", r#""a""#), false, "Expecting a fact");
    rejects(&group("test.Name.1", r#"{"key": "a", "extra": 1}"#), false, "Expecting a fact");
    rejects(&group("test.Name.1", r#"{"id": "1", "key": "a"}"#), false, "Expecting a fact");
    rejects(&group("test.Name.1", r#"{"value": 1}"#), false, "Expecting a fact");
}

#[test]
fn ids_and_references() {
    let k = keys(
        r#"[{"predicate": "test.Name.1", "facts": [{"id": 1, "key": "a"}, {"id": 2, "key": "b"}]},
                    {"predicate": "test.Pair.1", "facts": [{"key": {"left": 1, "right": {"id": 2}}}]}]"#,
    );
    assert_eq!(k[2], r#"{"left":{"id":1024},"right":{"id":1025}}"#);
    rejects(&group("test.Name.1", r#"{"id": 4611686018427387904, "key": "a"}"#), false, "id too high: 4611686018427387904");
    keys(&group("test.Name.1", r#"{"id": 4611686018427387903, "key": "a"}"#));
    rejects(&group("test.Pair.1", r#"{"key": {"left": 0, "right": 0}}"#), false, "Cannot use 0 as a fact ID");
    rejects(&group("test.Name.1", r#"{"id": 0}"#), false, "Cannot use 0 as a fact ID");
}

#[test]
fn forward_and_unknown_references_fail() {
    let forward = r#"[{"predicate": "test.Pair.1", "facts": [{"key": {"left": 7, "right": 7}}]},
                      {"predicate": "test.Name.1", "facts": [{"id": 7, "key": "a"}]}]"#;
    let msg = rejects(forward, false, "unknown fact 7, expecting a fact of predicate test.Name.1");
    assert!(msg.contains("test.Pair.1 fact #0 .left"), "{msg}");
    rejects(forward, true, "not defined earlier in this file");
}

#[test]
fn references_must_have_the_right_predicate() {
    let json = r#"[{"predicate": "test.KV.1", "facts": [{"id": 1, "key": "a", "value": 1}]},
                   {"predicate": "test.Pair.1", "facts": [{"key": {"left": 1, "right": 1}}]}]"#;
    rejects(json, false, "invalid reference to fact 1: expected test.Name.1, got test.KV.1");
}

#[test]
fn nested_facts_are_defined_first_and_can_be_referenced() {
    let k = keys(
        r#"[{"predicate": "test.Pair.1", "facts": [{"key": {"left": {"id": 5, "key": "x"}, "right": 5}}]},
                     {"predicate": "test.Pair.1", "facts": [{"key": {"left": 5, "right": {"key": "y"}}}]}]"#,
    );
    assert_eq!(k, [r#""x""#, r#"{"left":{"id":1024},"right":{"id":1024}}"#, r#""y""#, r#"{"left":{"id":1024},"right":{"id":1026}}"#]);
    let expr = keys(&group(
        "test.Expr.1",
        r#"{"key": {"add": {"l": {"key": {"lit": 1}}, "r": {"key": {"add": {"l": {"key": {"lit": 2}}, "r": {"key": {"lit": 3}}}}}}}}"#,
    ));
    assert_eq!(expr.len(), 5);
}

#[test]
fn reused_ids_rebind_unless_strict() {
    let json = r#"[{"predicate": "test.Name.1", "facts": [{"id": 1, "key": "a"}, {"id": 1, "key": "b"}]},
                   {"predicate": "test.Pair.1", "facts": [{"key": {"left": 1, "right": 1}}]}]"#;
    assert_eq!(keys(json)[2], r#"{"left":{"id":1025},"right":{"id":1025}}"#);
    rejects(json, true, "fact id 1 is defined twice");
}

#[test]
fn top_level_reference_writes_nothing() {
    let json = r#"[{"predicate": "test.Name.1", "facts": [{"id": 99}]}]"#;
    assert!(keys(json).is_empty());
    rejects(json, true, "writes nothing");
}

#[test]
fn key_value_facts() {
    let f = run(&group("test.KV.1", r#"{"key": "a", "value": 3}"#), false).expect("ok");
    assert_eq!(f[0].2.as_deref(), Some("3"));
    rejects(&group("test.KV.1", r#"{"key": "a"}"#), false, "\"value\" is missing");
    rejects(&group("test.KV.1", r#"{"key": "a", "value": "x"}"#), false, "fact #0 value: expected nat");
    let f = run(&group("test.Name.1", r#"{"key": "a", "value": {}}"#), false).expect("unit value");
    assert_eq!(f[0].2, None);
    rejects(&group("test.Name.1", r#"{"key": "a", "value": {"x": 1}}"#), false, "unknown field \"x\"");
}

#[test]
fn redefinition_with_another_value_fails_and_equal_facts_dedup() {
    rejects(
        &group("test.KV.1", r#"{"key": "a", "value": 1}, {"key": "a", "value": 2}"#),
        false,
        "invalid fact redefinition of $1024 : test.KV.1",
    );
    assert_eq!(keys(&group("test.KV.1", r#"{"key": "a", "value": 1}, {"key": "a", "value": 1}"#)).len(), 1);
}

#[test]
fn records() {
    rejects(&group("test.Kitchen.1", r#"{"key": {"zz": 1}}"#), false, "unknown field \"zz\" (allowed fields: b, n, s");
    rejects(&group("test.Kitchen.1", r#"{"key": []}"#), false, "expected a record");
    rejects(
        &group("test.NeedsName.1", r#"{"key": {"n": 1}}"#),
        false,
        "fact #0 .inner.name: Field 'name' is missing, but it has a predicate type: test.Name.1",
    );
}

#[test]
fn sums() {
    rejects(&group("test.Kitchen.1", r#"{"key": {"choice": {}}}"#), false, "exactly one alternative");
    rejects(&group("test.Kitchen.1", r#"{"key": {"choice": {"num": 1, "text": "a"}}}"#), false, "exactly one alternative");
    rejects(&group("test.Kitchen.1", r#"{"key": {"choice": {"other": 1}}}"#), false, "unknown alternative \"other\"");
    rejects(&group("test.Kitchen.1", r#"{"key": {"choice": {"none": 1}}}"#), false, ".choice.none: expected a record");
}

#[test]
fn maybe_is_omitted_or_plain_never_null() {
    let k = keys(&group("test.Kitchen.1", r#"{"key": {"m": 5}}"#));
    assert!(k[0].contains(r#""m":5"#));
    rejects(&group("test.Kitchen.1", r#"{"key": {"m": null}}"#), false, ".m: expected nat (a number), got null");
}

#[test]
fn enums_are_zero_based() {
    assert!(keys(&group("test.Kitchen.1", r#"{"key": {"color": 0}}"#))[0].contains(r#""color":0"#));
    rejects(&group("test.Kitchen.1", r#"{"key": {"color": 3}}"#), false, "enum index 3 out of range");
    rejects(&group("test.Kitchen.1", r#"{"key": {"color": "red"}}"#), false, "expected an enum index");
}

#[test]
fn bytes_and_numbers_lenient_and_strict() {
    assert!(keys(&group("test.Kitchen.1", r#"{"key": {"b": 300}}"#))[0].contains(r#""b":44"#));
    rejects(&group("test.Kitchen.1", r#"{"key": {"b": 300}}"#), true, "byte out of range: 300");
    assert!(keys(&group("test.Kitchen.1", r#"{"key": {"n": -1}}"#))[0].contains(r#""n":18446744073709551615"#));
    rejects(&group("test.Kitchen.1", r#"{"key": {"n": -1}}"#), true, "must not be negative");
    rejects(&group("test.Kitchen.1", r#"{"key": {"n": 1.5}}"#), false, "expected an integer, got float");
    rejects(&group("test.Kitchen.1", r#"{"key": {"n": 18446744073709551615}}"#), false, "does not fit in 64 signed bits");
    assert!(keys(&group("test.Kitchen.1", r#"{"key": {"bytes": "aGk="}}"#))[0].contains(r#""bytes":"aGn/""#));
    rejects(&group("test.Kitchen.1", r#"{"key": {"bytes": "aGk="}}"#), true, "padding");
    rejects(&group("test.Kitchen.1", r#"{"key": {"t": 1}}"#), false, ".t: expected bool");
}

#[test]
fn strings_must_be_utf8() {
    let schema = schema();
    let mut bytes = br#"[{"predicate": "test.Name.1", "facts": [{"key": "a"#.to_vec();
    bytes.extend_from_slice(&[0xff, b'"', b'}', b']', b'}', b']']);
    let err = validate_bytes("u.json", &bytes, &schema, false).expect_err("invalid utf-8");
    assert!(matches!(err, BatchError::Json { .. }), "{err}");
}

#[test]
fn nesting_deeper_than_500_is_rejected() {
    let deep = format!(r#"[{{"predicate": "test.Name.1", "facts": [{{"key": "a", "value": {}{}}}]}}]"#, "[".repeat(500), "]".repeat(500));
    rejects(&deep, false, "nested deeper than 500");
}

#[test]
fn duplicate_object_keys_last_wins() {
    assert_eq!(keys(&group("test.Name.1", r#"{"key": "a", "key": "b"}"#)), [r#""b""#]);
}

#[test]
fn facts_before_predicate_and_schema_id_markers() {
    let k = keys(r#"[{"schema_id": "abc"}, {"facts": [{"key": "a"}], "predicate": "test.Name.1"}, {"schema_id": "def"}]"#);
    assert_eq!(k, [r#""a""#]);
    let schema = schema();
    let s = validate_bytes("m.json", br#"[{"schema_id": "abc"}]"#, &schema, true).expect("marker");
    assert_eq!(s.schema_id.as_deref(), Some("abc"));
    // A group that also carries schema_id is a marker: its facts are not written.
    assert!(keys(r#"[{"schema_id": "x", "predicate": "test.Name.1", "facts": [{"key": "a"}]}]"#).is_empty());
}

#[test]
fn zstd_files_are_decompressed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.json.zst");
    let json = group("test.Name.1", r#"{"key": "a"}, {"key": "b"}"#);
    std::fs::write(&path, zstd::encode_all(json.as_bytes(), 3).expect("compress")).expect("write");
    let s = validate_file(&path, &schema(), true).expect("valid zst");
    assert_eq!(s.facts, 2);
    let bad = dir.path().join("bad.json.zst");
    std::fs::write(&bad, b"not zstd at all").expect("write");
    let err = validate_file(&bad, &schema(), true).expect_err("corrupt");
    assert!(matches!(err, BatchError::Decompress { .. }), "{err}");
}

#[test]
fn missing_file_is_an_io_error() {
    let err = validate_file(Path::new("/nonexistent/x.json"), &schema(), false).expect_err("missing");
    assert!(matches!(err, BatchError::Io { .. }) && !err.is_invalid_batch());
}

/// Syntax errors read as they did when serde_json parsed the whole file from
/// a reader (the messages were taken from that implementation).
#[test]
fn syntax_errors_name_the_place_in_the_file() {
    let schema = SchemaSource::builtin().resolve().expect("builtin");
    let cases = [
        (
            "[{\"predicate\":\"agenticAiETH.ETL.Node.1\",\"facts\":[\n  {\"key\":{\"id\":\"a\\q\",\"kind\":\"t\",\"label\":\"l\"}}]}]",
            "b.json: invalid JSON at line 2 column 19: invalid escape at line 2 column 19",
        ),
        (
            "[{\"predicate\":\"agenticAiETH.ETL.Node.1\",\"facts\":[{\"key\":{\"id\":\"a\",\"kind\":tru,\"label\":\"l\"}}]}]",
            "b.json: invalid JSON at line 1 column 77: expected ident at line 1 column 77",
        ),
        (
            "[{\"predicate\":\"agenticAiETH.ETL.Node.1\",\"facts\":{\"key\":{}}}]",
            "b.json: invalid JSON at line 1 column 49: invalid type: map, expected an array of facts at line 1 column 49",
        ),
        ("[{\"predicate\":1x,\"facts\":[]}]", "b.json: group #0: \"predicate\" must be \"name.version\" or {\"name\", \"version\"}, got 1"),
        (
            "[1\n {\"predicate\":\"agenticAiETH.ETL.Node.1\",\"facts\":[]}]",
            "b.json: invalid JSON at line 2 column 0: invalid type: integer `1`, expected a predicate group object {\"predicate\": ..., \"facts\": [...]} at line 2 column 0",
        ),
        (
            "[{\"facts\":{\"key\":{}},\"predicate\":\"agenticAiETH.ETL.Node.1\"}]",
            "b.json: invalid JSON at line 1 column 11: invalid type: map, expected a sequence at line 1 column 11",
        ),
        (
            "[{\"predicate\":\"agenticAiETH.ETL.Node.1\",facts:[]}]",
            "b.json: invalid JSON at line 1 column 41: key must be a string at line 1 column 41",
        ),
        (
            "[{\"predicate\" \"agenticAiETH.ETL.Node.1\",\"facts\":[]}]",
            "b.json: invalid JSON at line 1 column 15: expected `:` at line 1 column 15",
        ),
        (
            "[{\"predicate\":\"agenticAiETH.ETL.Node.1\",\"facts\":[{\"key\":{\"id\":\"a\",\"kind\":\"t\",\"label\":\"l\"}} {\"key\":{}}]}] ",
            "b.json: invalid JSON at line 1 column 92: expected `,` or `]` at line 1 column 92",
        ),
        (
            "{\"predicate\":\"agenticAiETH.ETL.Node.1\",\"facts\":[]}",
            "b.json: invalid JSON at line 1 column 2: invalid type: map, expected a JSON array of predicate groups (the top level of a batch must be an array) at line 1 column 2",
        ),
        (
            "[{\"predicate\":\"agenticAiETH.ETL.Node.1\",\"facts\":[]}] x",
            "b.json: invalid JSON at line 1 column 54: trailing characters at line 1 column 54",
        ),
        (
            "[{\"predicate\":\"agenticAiETH.ETL.Node.1\",\"facts\":[{\"key\":{\"id\":\"a\",\"kind\":\"t\",\"label\":\"l\"}},]}]",
            "b.json: invalid JSON at line 1 column 92: trailing comma at line 1 column 92",
        ),
        (
            "[{\"predicate\":\"agenticAiETH.ETL.Node.1\",\"facts\":[{\"key\":{\"id\":\"a\",\"kind\":\"t\",\"label\":\"l\"}}",
            "b.json: invalid JSON at line 1 column 90: EOF while parsing a list at line 1 column 90",
        ),
    ];
    for (json, expected) in cases {
        let err = validate_bytes("b.json", json.as_bytes(), &schema, false).expect_err(json);
        assert_eq!(err.to_string(), expected, "{json}");
    }
}

//! Fact store: lifecycle, de-duplication, all-or-nothing batches.

use super::*;

const NODE: &str = "agenticAiETH.ETL.Node.1";

fn node_batch(ids: &[&str]) -> String {
    let facts: Vec<String> = ids.iter().map(|id| format!(r#"{{"key": {{"id": "{id}", "kind": "table", "label": "t"}}}}"#)).collect();
    format!(r#"[{{"predicate": "{NODE}", "facts": [{}]}}]"#, facts.join(","))
}

fn setup() -> (tempfile::TempDir, Catalog, DbRef) {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Catalog::new(dir.path().join("db"));
    let db: DbRef = "etl/0".parse().expect("ref");
    catalog.create(&db, &SchemaSource::builtin(), &[("owner".into(), "tests".into())]).expect("create");
    (dir, catalog, db)
}

fn write(db: &mut Database, name: &str, json: &str) -> Result<WriteSummary, crate::batch::BatchError> {
    db.write(&[BatchInput::Bytes { name, bytes: json.as_bytes() }], true).expect("store ok").remove(0)
}

fn count(db: &Database) -> u64 {
    db.stats().expect("stats").iter().map(|s| s.count).sum()
}

#[test]
fn db_refs_are_checked_like_glean() {
    assert!("etl".parse::<DbRef>().is_err());
    assert!("etl/1.2".parse::<DbRef>().is_err());
    assert!("etl/a b".parse::<DbRef>().is_err());
    assert_eq!("a/b/0".parse::<DbRef>().map(|r| r.instance).ok(), None, "names may not contain /");
    assert_eq!("etl/0".parse::<DbRef>().expect("ok").to_string(), "etl/0");
}

#[test]
fn create_twice_is_already_exists_and_open_missing_is_unknown() {
    let (_dir, catalog, db) = setup();
    assert!(matches!(catalog.create(&db, &SchemaSource::builtin(), &[]), Err(StoreError::AlreadyExists(_))));
    let missing: DbRef = "etl/9".parse().expect("ref");
    assert!(matches!(catalog.open(&missing), Err(StoreError::Unknown(_))));
    assert!(matches!(catalog.delete(&missing), Err(StoreError::Unknown(_))));
}

#[test]
fn reserved_properties_and_schemas_without_all_are_refused() {
    let (_dir, catalog, _) = setup();
    let db: DbRef = "x/0".parse().expect("ref");
    assert!(matches!(
        catalog.create(&db, &SchemaSource::builtin(), &[("glean.acl".into(), "x".into())]),
        Err(StoreError::ReservedProperty(_))
    ));
    let no_all = SchemaSource { files: vec![("a.angle".into(), "schema a.1 {}".into())] };
    assert!(matches!(catalog.create(&db, &no_all, &[]), Err(StoreError::Schema(_))));
    assert!(!catalog.exists(&db), "a refused create leaves nothing behind");
}

#[test]
fn facts_get_ids_from_1024_and_equal_facts_are_stored_once() {
    let (_dir, catalog, db) = setup();
    let mut d = catalog.open(&db).expect("open");
    let s = write(&mut d, "a.json", &node_batch(&["n1", "n2"])).expect("written");
    assert_eq!(s, WriteSummary { facts: 2, new_facts: 2, existing_facts: 0 });
    let again = write(&mut d, "a.json", &node_batch(&["n1", "n2"])).expect("written again");
    assert_eq!(again, WriteSummary { facts: 2, new_facts: 0, existing_facts: 2 });
    assert_eq!(count(&d), 2);
    let pred = match d.schema().lookup("agenticAiETH.ETL.Node", 1) {
        crate::schema::Lookup::Predicate(p) => p,
        _ => panic!("Node"),
    };
    let (id, _) = d.find(pred, r#"{"id":"n1","kind":"table","label":"t"}"#).expect("find").expect("stored");
    assert_eq!(id, 1024);
}

#[test]
fn a_rejected_batch_writes_nothing_but_earlier_ones_stay() {
    let (_dir, catalog, db) = setup();
    let mut d = catalog.open(&db).expect("open");
    let bad =
        format!(r#"[{{"predicate": "{NODE}", "facts": [{{"key": {{"id": "n9", "kind": "t", "label": "l"}}}}, {{"key": {{"id": 1}}}}]}}]"#);
    let good = node_batch(&["n1"]);
    let results = d
        .write(
            &[
                BatchInput::Bytes { name: "good.json", bytes: good.as_bytes() },
                BatchInput::Bytes { name: "bad.json", bytes: bad.as_bytes() },
            ],
            true,
        )
        .expect("store ok");
    assert!(results[0].is_ok());
    let err = results[1].as_ref().expect_err("bad batch");
    assert!(err.to_string().starts_with("bad.json: agenticAiETH.ETL.Node.1 fact #1 .id: expected string"), "{err}");
    assert_eq!(count(&d), 1, "only the good batch is stored");
    // The ids of the rolled-back batch are reused: no gaps.
    write(&mut d, "next.json", &node_batch(&["n2"])).expect("written");
    let mut ids = Vec::new();
    d.scan(crate::schema::PredId(0), |id, _, _| {
        ids.push(id);
        true
    })
    .expect("scan");
    assert_eq!(ids, [1024, 1025]);
}

#[test]
fn writing_until_rejected_stops_at_the_bad_batch_as_glean_write_does() {
    let (_dir, catalog, db) = setup();
    let mut d = catalog.open(&db).expect("open");
    let bad = format!(r#"[{{"predicate": "{NODE}", "facts": [{{"key": {{"id": 1}}}}]}}]"#);
    let (first, after) = (node_batch(&["n1"]), node_batch(&["n3"]));
    let inputs = [
        BatchInput::Bytes { name: "first.json", bytes: first.as_bytes() },
        BatchInput::Bytes { name: "bad.json", bytes: bad.as_bytes() },
        BatchInput::Bytes { name: "after.json", bytes: after.as_bytes() },
    ];
    let results = d.write_until_rejected(&inputs, true).expect("store ok");
    assert_eq!(results.len(), 2, "the batch after the rejected one is not tried");
    assert!(results[0].is_ok() && results[1].is_err(), "{results:?}");
    assert_eq!(count(&d), 1, "the batch before it stays written");
    assert_eq!(d.write(&inputs, true).expect("store ok").len(), 3, "`write` goes on past a rejection");
    assert_eq!(count(&d), 2);
}

#[test]
fn same_key_with_another_value_is_a_redefinition_across_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Catalog::new(dir.path());
    let db: DbRef = "kv/0".parse().expect("ref");
    let schema =
        SchemaSource { files: vec![("kv.angle".into(), "schema kv.1 { predicate KV : string -> nat }\nschema all.1 : kv.1 {}".into())] };
    let mut d = catalog.create(&db, &schema, &[]).expect("create");
    write(&mut d, "1.json", r#"[{"predicate": "kv.KV.1", "facts": [{"key": "a", "value": 1}]}]"#).expect("first");
    let err = write(&mut d, "2.json", r#"[{"predicate": "kv.KV.1", "facts": [{"key": "a", "value": 2}]}]"#).expect_err("redefinition");
    assert!(err.to_string().contains("invalid fact redefinition of $1024 : kv.KV.1"), "{err}");
}

#[test]
fn references_to_stored_fact_ids_bind_as_in_glean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Catalog::new(dir.path());
    let db: DbRef = "r/0".parse().expect("ref");
    let schema = SchemaSource {
        files: vec![("r.angle".into(), "schema r.1 { predicate N : string\n predicate P : { n : N } }\nschema all.1 : r.1 {}".into())],
    };
    let mut d = catalog.create(&db, &schema, &[]).expect("create");
    write(&mut d, "1.json", r#"[{"predicate": "r.N.1", "facts": [{"key": "a"}]}]"#).expect("first");
    let lenient = d
        .write(&[BatchInput::Bytes { name: "2.json", bytes: br#"[{"predicate": "r.P.1", "facts": [{"key": {"n": 1024}}]}]"# }], false)
        .expect("store")
        .remove(0);
    assert!(lenient.is_ok(), "{lenient:?}");
    let err = write(&mut d, "3.json", r#"[{"predicate": "r.P.1", "facts": [{"key": {"n": 5}}]}]"#).expect_err("strict");
    assert!(err.to_string().contains("not defined earlier"), "{err}");
}

#[test]
fn finish_makes_read_only_and_needs_facts() {
    let (_dir, catalog, db) = setup();
    let mut d = catalog.open(&db).expect("open");
    assert!(matches!(d.finish(false), Err(StoreError::NoFacts)));
    write(&mut d, "a.json", &node_batch(&["n1"])).expect("written");
    d.finish(false).expect("finish");
    d.finish(false).expect("finishing twice is a no-op");
    let err = d.write(&[BatchInput::Bytes { name: "b", bytes: node_batch(&["n2"]).as_bytes() }], true).expect_err("read only");
    assert_eq!(err.to_string(), "etl/0: can't write to a read only database");
    let info = catalog.open(&db).expect("reopen").info().expect("info");
    assert_eq!(info.status, DbStatus::Complete);
    assert!(info.completed.is_some());
}

#[test]
fn list_and_delete() {
    let (_dir, catalog, db) = setup();
    let other: DbRef = "etl/1".parse().expect("ref");
    catalog.create(&other, &SchemaSource::builtin(), &[]).expect("create");
    let listed: Vec<String> = catalog.list().expect("list").iter().map(|i| i.db.to_string()).collect();
    assert_eq!(listed, ["etl/0", "etl/1"]);
    assert_eq!(catalog.list().expect("list")[0].properties, [("owner".to_owned(), "tests".to_owned())]);
    catalog.delete(&db).expect("delete");
    assert_eq!(catalog.list().expect("list").len(), 1);
}

#[test]
fn units_record_ownership() {
    let (_dir, catalog, db) = setup();
    let mut d = catalog.open(&db).expect("open");
    let json = format!(r#"[{{"predicate": "{NODE}", "unit": "file.py", "facts": [{{"key": {{"id": "n", "kind": "k", "label": "l"}}}}]}}]"#);
    write(&mut d, "u.json", &json).expect("written");
    let owned: u64 = d.conn.query_row("SELECT count(*) FROM ownership WHERE unit = 'file.py'", [], |r| r.get(0)).expect("count");
    assert_eq!(owned, 1);
    d.integrity_check().expect("sound");
}

/// A database whose schema has key/value facts with nested facts in their keys.
fn nested_kv() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Catalog::new(dir.path());
    let text = "schema q.1 { predicate N : string\n predicate Q : { n : N } -> nat }\nschema all.1 : q.1 {}";
    let schema = SchemaSource { files: vec![("q.angle".into(), text.into())] };
    let d = catalog.create(&"q/0".parse().expect("ref"), &schema, &[]).expect("create");
    (dir, d)
}

fn q_fact(name: &str, value: u64) -> String {
    format!(r#"{{"key": {{"n": {{"key": "{name}"}}}}, "value": {value}}}"#)
}

#[test]
fn a_failed_fact_is_the_error_even_when_later_ones_fail_too() {
    let (_dir, mut d) = nested_kv();
    write(&mut d, "1.json", &format!(r#"[{{"predicate": "q.Q.1", "facts": [{}]}}]"#, q_fact("x", 1))).expect("first");
    let before = count(&d);
    // Fact #1 redefines a stored fact; #2 needs the store again (a nested fact); #3 is not JSON.
    let batch = format!(r#"[{{"predicate": "q.Q.1", "facts": [{}, {}, {}, {{"key": ]}}]"#, q_fact("y", 1), q_fact("x", 2), q_fact("z", 1));
    let err = write(&mut d, "2.json", &batch).expect_err("redefinition");
    assert_eq!(err.to_string(), "2.json: q.Q.1 fact #1: invalid fact redefinition of $1025 : q.Q.1");
    let batch = format!(r#"[{{"predicate": "q.Q.1", "facts": [{}, {}, {{"key": ]}}]"#, q_fact("y", 1), q_fact("x", 2));
    let err = write(&mut d, "3.json", &batch).expect_err("redefinition before a syntax error");
    assert_eq!(err.to_string(), "3.json: q.Q.1 fact #1: invalid fact redefinition of $1025 : q.Q.1");
    assert_eq!(count(&d), before, "nothing of the failed batches is stored");
    // The ids the failed batches used are handed out again.
    write(&mut d, "4.json", &format!(r#"[{{"predicate": "q.Q.1", "facts": [{}]}}]"#, q_fact("w", 1))).expect("next");
    assert_eq!(d.fact(1027).expect("fact").map(|(_, k, _)| k), Some(r#"{"n":{"id":1026}}"#.to_owned()));
}

#[test]
fn a_batch_sent_again_finds_its_facts_in_order_and_out_of_order() {
    let (_dir, catalog, db) = setup();
    let mut d = catalog.open(&db).expect("open");
    let ids: Vec<String> = (0..50).map(|i| format!("n{i}")).collect();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    write(&mut d, "a.json", &node_batch(&names)).expect("first");
    let again = write(&mut d, "a.json", &node_batch(&names)).expect("in order");
    assert_eq!((again.new_facts, again.existing_facts), (0, 50));
    let mut shuffled = names.clone();
    shuffled.reverse();
    shuffled.swap(3, 40);
    let mixed = write(&mut d, "b.json", &node_batch(&shuffled)).expect("out of order");
    assert_eq!((mixed.new_facts, mixed.existing_facts), (0, 50));
    let twice = write(&mut d, "c.json", &node_batch(&["m1", "n7", "m1"])).expect("a fact twice in one batch");
    assert_eq!((twice.new_facts, twice.existing_facts), (1, 2));
    assert_eq!(count(&d), 51);
}

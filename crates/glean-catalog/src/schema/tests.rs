//! Schema loading: parser and resolver positives and negatives.

use super::*;

fn load(src: &str) -> Result<Schema, SchemaError> {
    SchemaSource { files: vec![("t.angle".into(), src.into())] }.resolve()
}

fn ok(src: &str) -> Schema {
    load(src).unwrap_or_else(|e| panic!("{e}"))
}

fn fails(src: &str, needle: &str) {
    match load(src) {
        Ok(_) => panic!("schema should be rejected ({needle}):\n{src}"),
        Err(e) => assert!(e.to_string().contains(needle), "error {e:?} does not mention {needle:?}"),
    }
}

fn key_of(s: &Schema, name: &str, version: u32) -> Type {
    match s.lookup(name, version) {
        Lookup::Predicate(id) => s.predicate(id).key.clone(),
        other => panic!("{name}.{version}: {other:?}"),
    }
}

#[test]
fn builtin_etl_schema_declares_the_three_predicates() {
    let s = SchemaSource::builtin().resolve_for_database().expect("builtin schema resolves");
    assert_eq!(s.all_version(), Some(1));
    for p in ["Node", "Edge", "ExportManifest"] {
        let Type::Record(fields) = key_of(&s, &format!("agenticAiETH.ETL.{p}"), 1) else { panic!("record") };
        assert!(fields.iter().any(|f| f.name == "properties_json" || f.name == "export_file"));
    }
    let Type::Record(node) = key_of(&s, "agenticAiETH.ETL.Node", 1) else { panic!() };
    let names: Vec<_> = node.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["id", "kind", "label", "properties_json"]);
    assert_eq!(node[3].ty, Type::Maybe(Box::new(Type::String)));
}

#[test]
fn the_shipped_directory_loads_like_glean_dir() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../glean/schema/source");
    let from_dir = SchemaSource::from_location(&format!("dir:{}", dir.display())).expect("reads dir");
    assert_eq!(from_dir.files.len(), 2);
    from_dir.resolve_for_database().expect("resolves");
    let bare = SchemaSource::from_location(&dir.display().to_string()).expect("reads bare dir");
    assert_eq!(bare, from_dir);
    assert_eq!(from_dir.id(), SchemaSource::builtin().id(), "the compiled-in schema is the shipped one");
}

#[test]
fn import_brings_qualified_names_only() {
    fails("schema b.1 { predicate Name : string }\nschema a.1 { import b.1\n predicate P : Name }", "not in scope: Name");
    let s = ok("schema b.1 { predicate Name : string }\nschema a.1 { import b.1\n predicate P : { n : b.Name, m : b.Name.1 } }");
    let Type::Record(f) = key_of(&s, "a.P", 1) else { panic!() };
    assert!(matches!(f[0].ty, Type::Predicate(_)));
}

#[test]
fn inheritance_brings_unqualified_names_and_reexports() {
    let s = ok("schema a.1 { predicate P : nat }\n\
                schema a.2 : a.1 { predicate Q : P }\n\
                schema c.1 : a.2 {}\n\
                schema d.1 { import c.1\n predicate R : { p : c.P, q : c.Q } }");
    assert!(matches!(key_of(&s, "a.Q", 2), Type::Predicate(_)));
    assert!(matches!(s.lookup("a.P", 1), Lookup::Predicate(_)));
}

#[test]
fn local_definitions_override_inherited_ones() {
    let s = ok("schema a.1 { type T = nat }\nschema a.2 : a.1 { type T = string\n predicate P : T }");
    assert_eq!(key_of(&s, "a.P", 2), Type::String);
}

#[test]
fn unversioned_schema_references() {
    ok("schema b.1 { predicate N : nat }\nschema a.1 { import b\n predicate P : b.N }");
    fails("schema b.1 {}\nschema b.2 {}\nschema a.1 { import b }", "ambiguous schema b");
    fails("version: 9\nschema b.1 {}\nschema a.1 { import b }", "unknown schema: b");
}

#[test]
fn ambiguous_and_unknown_names() {
    fails("schema a.1 { predicate P : nat\n predicate P.2 : string\n predicate Q : P }", "P is ambiguous");
    ok("schema a.1 { predicate P : nat\n predicate P.2 : string\n predicate Q : P.2 }");
    fails("schema a.1 { predicate P : Missing }", "not in scope: Missing");
    fails("schema a.1 : nope.1 {}", "unknown schema: nope.1");
}

#[test]
fn sums_enums_maybe_arrays_sets() {
    let s = ok("schema a.1 { type E = enum { red | Green | blue }\n \
                predicate P : { e : E, s : set nat, a : [byte], m : maybe string, u : { x : nat | y | } } -> [string] }");
    let p = match s.lookup("a.P", 1) {
        Lookup::Predicate(id) => s.predicate(id).clone(),
        _ => panic!(),
    };
    let Type::Record(f) = &p.key else { panic!() };
    assert_eq!(f[0].ty, Type::Enum(vec!["red".into(), "Green".into(), "blue".into()]));
    assert_eq!(f[1].ty, Type::Set(Box::new(Type::Nat)));
    assert_eq!(f[2].ty, Type::Array(Box::new(Type::Byte)));
    assert!(matches!(&f[4].ty, Type::Sum(alts) if alts.len() == 2 && alts[1].ty.is_unit()));
    assert_eq!(p.value, Type::Array(Box::new(Type::String)));
}

#[test]
fn missing_version() {
    fails("schema foo { predicate P : nat }", "missing version: foo");
}

#[test]
fn duplicate_definitions() {
    fails("schema a.1 { predicate P : nat\n predicate P : string }", "multiple definitions for: a.P.1");
    fails("schema a.1 { type P = nat\n predicate P : string }", "multiple definitions for: a.P.1");
    fails("schema a.1 {}\nschema a.1 {}", "multiple definitions of schema a.1");
}

#[test]
fn duplicate_and_upper_case_fields() {
    fails("schema a.1 { predicate P : { x : nat, x : string } }", "duplicate field: x");
    fails("schema a.1 { predicate P : { x : nat | x : string } }", "duplicate field: x");
    fails("schema a.1 { predicate P : { Name : string } }", "field names must begin with a lowercase letter: Name");
}

#[test]
fn reserved_words() {
    fails("schema a.1 { predicate P : { class : nat } }", "class is a reserved word");
    fails("schema a.1 { predicate P : { string : nat } }", "string is a reserved word");
    fails("schema a.1 { predicate Object : nat }", "Object is a reserved word");
    fails("schema a.1 { type E = enum { public | private_ } }", "public is a reserved word");
    fails("schema class.1 {}", "class is a reserved word");
}

#[test]
fn cycles() {
    fails("schema a.1 : b.1 {}\nschema b.1 : a.1 {}", "cycle in schema definitions between");
    fails("schema a.1 { type T = [T] }", "is recursive");
    fails("schema a.1 { type T = { x : U }\n type U = maybe T }", "is recursive");
    ok("schema a.1 { predicate E : { lit : nat | add : { l : E, r : E } } }");
}

#[test]
fn inherited_conflicts_except_in_all() {
    let base = "schema x.1 { predicate P : nat }\nschema y.1 { predicate P : string }\n";
    fails(&format!("{base}schema z.1 : x.1, y.1 {{}}"), "inherited schemas give multiple definitions for: P");
    let s = ok(&format!("{base}schema all.1 : x.1, y.1 {{}}"));
    assert_eq!(s.all_version(), Some(1));
}

#[test]
fn a_database_needs_all() {
    let src = SchemaSource { files: vec![("t.angle".into(), "schema a.1 {}".into())] };
    assert!(matches!(src.resolve_for_database(), Err(SchemaError::NoAll)));
}

#[test]
fn derive_must_name_a_predicate() {
    fails("schema a.1 { type T = nat\n derive T 1 }", "T is not a predicate");
    ok("schema a.1 { predicate P : nat\n derive P 1 }");
}

#[test]
fn errors_are_located() {
    let e = load("schema a.1 {\n  predicate P : {\n    x : Nope,\n  }\n}").expect_err("fails").to_string();
    assert!(e.contains("t.angle:3:9"), "{e}");
    let e = load("schema a.1 {\n  predicate P : { x : nat\n}").expect_err("fails").to_string();
    assert!(e.contains("t.angle:3:2: expected") && e.contains("got end of input"), "{e}");
}

#[test]
fn old_angle_versions_are_refused() {
    fails("version: 4\nschema a.1 {}", "Angle version 4 is not supported");
}

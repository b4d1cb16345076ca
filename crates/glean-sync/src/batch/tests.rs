//! Batch encoding: golden text, strict validity, durable and unique files.

use super::*;
use glean_catalog::schema::SchemaSource;

fn graph(json: &str) -> Graph {
    Graph::from_json(json.as_bytes()).expect("valid graph")
}

fn manifest() -> Manifest {
    Manifest {
        exported_at: DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z").expect("time").with_timezone(&Utc),
        graph_key: Some("p/s".into()),
        graph_version: Some(3),
        content_hash: Some("abc".into()),
        project_id: Some("p".into()),
        system_id: Some("s".into()),
        full_node_count: Some(2),
        full_edge_count: Some(1),
    }
}

fn write(dir: &Path, compression: Compression, g: &Graph) -> (PathBuf, u64) {
    let batches = BatchDir::new(dir, compression).expect("dir");
    let preds = Predicates::new("agenticAiETH.ETL");
    let content =
        BatchContent { predicates: &preds, nodes: g.nodes.iter().collect(), edges: g.edges.iter().collect(), manifest: manifest() };
    let name = batches.next_name();
    let bytes = batches.write(&name, &content).expect("written");
    (dir.join(name), bytes)
}

const SMALL: &str = r#"{"project_id":"p","system_id":"s","nodes":[{"id":"n1","type":"table","label":"orders","props":{"b":1,"a":"x"}},
    {"id":"n2","type":"column","label":"amount \"usd\""}],"edges":[{"source_id":"n2","target_id":"n1","type":"BELONGS_TO"}]}"#;

#[test]
fn golden_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes) = write(dir.path(), Compression::None, &graph(SMALL));
    let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(bytes, text.len() as u64);
    let expected = format!(
        r#"[{{"predicate":"agenticAiETH.ETL.Node.1","facts":[
{{"key":{{"id":"n1","kind":"table","label":"orders","properties_json":"{{\"a\":\"x\",\"b\":1}}"}}}},
{{"key":{{"id":"n2","kind":"column","label":"amount \"usd\""}}}}]}},
{{"predicate":"agenticAiETH.ETL.Edge.1","facts":[
{{"key":{{"source":"n2","target":"n1","label":"BELONGS_TO"}}}}]}},
{{"predicate":"agenticAiETH.ETL.ExportManifest.1","facts":[
{{"key":{{"exported_at":"2026-12-03T10:00:00.000Z","node_count":2,"edge_count":1,"export_file":"{name}","graph_key":"p/s","graph_version":3,"content_hash":"abc","project_id":"p","system_id":"s","full_node_count":2,"full_edge_count":1}}}}]}}]
"#
    );
    assert_eq!(text, expected);
}

#[test]
fn every_batch_passes_strict_validation_plain_and_zstd() {
    let schema = SchemaSource::builtin().resolve().expect("schema");
    let sample =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/knowledge_graph.sample.json")).expect("sample");
    for json in [SMALL, sample.as_str(), "{}"] {
        for compression in [Compression::None, Compression::Zstd] {
            let dir = tempfile::tempdir().expect("tempdir");
            let g = graph(json);
            let (path, _) = write(dir.path(), compression, &g);
            let summary = glean_catalog::batch::validate_file(&path, &schema, true).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(summary.facts as usize, g.nodes.len() + g.edges.len() + 1, "nodes, edges and the manifest");
        }
    }
}

#[test]
fn zstd_files_are_named_and_compressed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = write(dir.path(), Compression::Zstd, &graph(SMALL));
    assert!(path.to_string_lossy().ends_with(".json.zst"));
    let text = zstd::decode_all(File::open(&path).expect("open")).expect("zstd");
    assert!(text.starts_with(b"[{\"predicate\""));
}

#[test]
fn names_are_unique_and_sort_in_creation_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batches = BatchDir::new(dir.path(), Compression::None).expect("dir");
    let names: Vec<String> = (0..2000).map(|_| batches.next_name()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, names);
    assert!(names[0].starts_with("graph_") && names[0].ends_with(".json"));
}

#[test]
fn an_existing_file_is_never_replaced_and_no_temp_file_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batches = BatchDir::new(dir.path(), Compression::None).expect("dir");
    std::fs::write(dir.path().join("graph_x.json"), "keep").expect("seed");
    let preds = Predicates::new("agenticAiETH.ETL");
    let g = graph(SMALL);
    let content = BatchContent { predicates: &preds, nodes: g.nodes.iter().collect(), edges: vec![], manifest: manifest() };
    assert!(batches.write("graph_x.json", &content).is_err());
    assert_eq!(std::fs::read_to_string(dir.path().join("graph_x.json")).expect("read"), "keep");
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(left.len(), 1, "temporary files are removed: {left:?}");
}

#[test]
fn an_unwritable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batches = BatchDir::new(&dir.path().join("sub"), Compression::None).expect("dir");
    std::fs::remove_dir(dir.path().join("sub")).expect("remove");
    let preds = Predicates::new("agenticAiETH.ETL");
    let content = BatchContent { predicates: &preds, nodes: vec![], edges: vec![], manifest: manifest() };
    let err = batches.write(&batches.next_name(), &content).expect_err("no directory");
    assert!(err.to_string().starts_with("cannot write batch file"), "{err}");
}

#[test]
fn fact_hashes_follow_content_not_spelling_or_order() {
    let a = graph(r#"{"nodes":[{"id":"a","type":"t","props":{"x":1,"y":2}},{"id":"b"}],"edges":[{"source":"a","target":"b"}]}"#);
    let b = graph(r#"{"nodes":[{"id":"b"},{"id":"a","kind":"t","properties":{"y":2,"x":1}}],"edges":[{"source_id":"a","target_id":"b"}]}"#);
    let (ah, bh) = (fact_hashes(&a), fact_hashes(&b));
    assert_eq!(ah.len(), 3, "two nodes, then one edge");
    assert_eq!(ah[0], bh[1]);
    assert_eq!(content_hash(&ah), content_hash(&bh));
    let c = graph(r#"{"nodes":[{"id":"a","type":"t","props":{"x":1,"y":3}},{"id":"b"}],"edges":[{"source":"a","target":"b"}]}"#);
    let ch = fact_hashes(&c);
    assert_ne!(content_hash(&ah), content_hash(&ch));
    assert_ne!(ah[0], ch[0]);
}

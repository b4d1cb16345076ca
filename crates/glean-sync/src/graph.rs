//! Knowledge graphs as producers save them: decoding and validation.
//!
//! The first stage of the flow. A graph arrives as JSON (HTTP, `push`, or the
//! Rust API) in either spelling seen in the wild (`type`/`kind`,
//! `properties`/`props`, `source`/`source_id`, `target`/`target_id`, edge
//! `label`/`type`), is decoded straight into owned values (the caller's data
//! is copied, never shared), and validated: a bad graph is rejected with a
//! message naming the element (`nodes[12].id is empty`). Duplicate nodes (same
//! id) and edges (same source, target and label) are dropped, first wins, and
//! counted. Properties are kept as canonical JSON (object keys sorted), so
//! equal properties always give equal facts. Nothing here writes anything.

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufReader, Read, Seek, SeekFrom};

/// Why a graph was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The JSON does not decode (with the path of the bad element).
    #[error("{path}: {message}")]
    Decode {
        /// Where, e.g. `nodes[3].id` (`.` for the top level).
        path: String,
        /// What the decoder said.
        message: String,
    },
    /// A required field is absent.
    #[error("{0} is missing")]
    Missing(String),
    /// A required field is empty.
    #[error("{0} is empty")]
    Empty(String),
}

impl GraphError {
    /// The element at fault, e.g. `nodes[12].id`.
    pub fn field(&self) -> &str {
        match self {
            GraphError::Decode { path, .. } => path,
            GraphError::Missing(f) | GraphError::Empty(f) => f,
        }
    }
}

/// A graph's text: up to 24 bytes (ids, kinds, labels, most properties of small
/// graphs) is kept inline, without an allocation of its own. A million-node graph
/// holds seven million strings, and a heap string costs its 24 bytes plus an
/// allocation of at least 32.
pub type Text = compact_str::CompactString;

/// A node: one fact of `<prefix>.Node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Unique within the graph.
    pub id: Text,
    /// What it is (`table`, `column`, `job`, ...).
    pub kind: Text,
    /// Display name.
    pub label: Text,
    /// Properties as canonical JSON, `None` when there are none.
    pub properties_json: Option<Text>,
}

/// An edge: one fact of `<prefix>.Edge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// Id of the source node.
    pub source: Text,
    /// Id of the target node.
    pub target: Text,
    /// Relationship (`RELATES_TO`, ...).
    pub label: Text,
    /// Properties as canonical JSON, `None` when there are none.
    pub properties_json: Option<Text>,
}

/// A validated graph, ready to be encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// Nodes, duplicates removed, in input order.
    pub nodes: Vec<Node>,
    /// Edges, duplicates removed, in input order.
    pub edges: Vec<Edge>,
    /// The project the graph belongs to.
    pub project_id: Option<String>,
    /// The system the graph describes.
    pub system_id: Option<String>,
    /// An explicit identity for the graph.
    pub graph_id: Option<String>,
    /// Nodes dropped because an earlier node had the same id.
    pub duplicate_nodes: usize,
    /// Edges dropped because an earlier edge had the same source, target and label.
    pub duplicate_edges: usize,
}

#[derive(Deserialize)]
struct RawGraph {
    #[serde(default)]
    nodes: Vec<RawNode>,
    #[serde(default)]
    edges: Vec<RawEdge>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    system_id: Option<String>,
    #[serde(default)]
    graph_id: Option<String>,
}

impl RawGraph {
    fn parse(bytes: &[u8]) -> Result<RawGraph, GraphError> {
        // Tracking the path costs on every value; it is only needed to name what is wrong,
        // so a graph that fails to decode is decoded again with it.
        serde_json::from_slice(bytes).or_else(|_| RawGraph::decode(&mut serde_json::Deserializer::from_slice(bytes)))
    }

    /// Decodes a whole document (nothing may follow it), naming the element at fault.
    fn decode<'de, R: serde_json::de::Read<'de>>(de: &mut serde_json::Deserializer<R>) -> Result<RawGraph, GraphError> {
        let raw = serde_path_to_error::deserialize(&mut *de).map_err(decode_error)?;
        de.end().map_err(|e| json_error(".".into(), &e))?;
        Ok(raw)
    }
}

#[derive(Deserialize)]
struct RawNode {
    #[serde(default)]
    id: Option<Text>,
    #[serde(default, alias = "type")]
    kind: Option<Text>,
    #[serde(default)]
    label: Option<Text>,
    #[serde(default, alias = "props", deserialize_with = "canonical_properties")]
    properties: Option<Text>,
}

#[derive(Deserialize)]
struct RawEdge {
    #[serde(default, alias = "source_id")]
    source: Option<Text>,
    #[serde(default, alias = "target_id")]
    target: Option<Text>,
    #[serde(default, alias = "type")]
    label: Option<Text>,
    #[serde(default, alias = "props", deserialize_with = "canonical_properties")]
    properties: Option<Text>,
}

/// Properties as canonical JSON text: keys sorted at every level; `{}` and null are none.
fn canonical_properties<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Text>, D::Error> {
    canonical(Value::deserialize(d)?).map_err(D::Error::custom)
}

/// The one rule for properties: an object, as JSON text with keys sorted at every level; `{}` and null are none.
fn canonical(value: Value) -> Result<Option<Text>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Object(map) if map.is_empty() => Ok(None),
        mut v @ Value::Object(_) => {
            v.sort_all_objects();
            serde_json::to_string(&v).map(|text| Some(Text::from(text))).map_err(|e| e.to_string())
        }
        other => Err(format!("properties must be an object, got {other}")),
    }
}

/// Properties given as text (the Rust API) in the canonical form; `path` names them in errors.
fn canonical_text(text: Option<Text>, path: impl FnOnce() -> String) -> Result<Option<Text>, GraphError> {
    let Some(text) = text else { return Ok(None) };
    serde_json::from_str(&text)
        .map_err(|e| e.to_string())
        .and_then(canonical)
        .map_err(|message| GraphError::Decode { path: path(), message })
}

impl Graph {
    /// Decodes and validates a graph from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Graph, GraphError> {
        Graph::from_raw(RawGraph::parse(bytes)?)
    }

    /// Decodes and validates a graph from a file, as it is read: the text is never whole in
    /// memory. For a graph of a million nodes and a million edges that text (158 MiB) was a
    /// third of the peak; streaming takes the peak from 3.09 to 2.87 times the text's size.
    /// A graph that fails to decode is read again from where it started, tracking the path,
    /// to name the element at fault. A reader that cannot seek (a pipe) is read whole first.
    pub fn from_reader<R: Read + Seek>(mut reader: R) -> Result<Graph, GraphError> {
        let Ok(start) = reader.stream_position() else {
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).map_err(|e| GraphError::Decode { path: ".".into(), message: format!("cannot read: {e}") })?;
            return Graph::from_json(&bytes);
        };
        let raw = match serde_json::from_reader(BufReader::with_capacity(READ_BUFFER, &mut reader)) {
            Ok(raw) => raw,
            // Without a second reading the error stands as the decoder gave it, without a path.
            Err(e) if reader.seek(SeekFrom::Start(start)).is_err() => return Err(json_error(".".into(), &e)),
            Err(_) => RawGraph::decode(&mut serde_json::Deserializer::from_reader(BufReader::with_capacity(READ_BUFFER, reader)))?,
        };
        Graph::from_raw(raw)
    }

    fn from_raw(raw: RawGraph) -> Result<Graph, GraphError> {
        let nodes = raw.nodes.into_iter().enumerate().map(|(i, n)| n.validate(i)).collect::<Result<Vec<_>, _>>()?;
        let edges = raw.edges.into_iter().enumerate().map(|(i, e)| e.validate(i)).collect::<Result<Vec<_>, _>>()?;
        let mut graph = Graph {
            nodes,
            edges,
            project_id: non_empty(raw.project_id),
            system_id: non_empty(raw.system_id),
            graph_id: non_empty(raw.graph_id),
            duplicate_nodes: 0,
            duplicate_edges: 0,
        };
        graph.drop_duplicates();
        Ok(graph)
    }

    /// Builds a graph from parts (the Rust API), with the same validation and canonical
    /// properties as JSON input: `properties_json` must be a JSON object (or none).
    pub fn new(mut nodes: Vec<Node>, mut edges: Vec<Edge>) -> Result<Graph, GraphError> {
        for (i, n) in nodes.iter_mut().enumerate() {
            require(|| format!("nodes[{i}].id"), Some(&n.id))?;
            n.properties_json = canonical_text(n.properties_json.take(), || format!("nodes[{i}].properties_json"))?;
        }
        for (i, e) in edges.iter_mut().enumerate() {
            require(|| format!("edges[{i}].source"), Some(&e.source))?;
            require(|| format!("edges[{i}].target"), Some(&e.target))?;
            e.properties_json = canonical_text(e.properties_json.take(), || format!("edges[{i}].properties_json"))?;
        }
        let mut graph = Graph { nodes, edges, ..Graph::default() };
        graph.drop_duplicates();
        Ok(graph)
    }

    /// Removes later duplicates of nodes and edges, counting them.
    fn drop_duplicates(&mut self) {
        let keep_nodes = first_occurrences(self.nodes.len(), |i| (self.nodes[i].id.as_str(), "", ""));
        let keep_edges = first_occurrences(self.edges.len(), |i| {
            let e = &self.edges[i];
            (e.source.as_str(), e.target.as_str(), e.label.as_str())
        });
        self.duplicate_nodes = retain_marked(&mut self.nodes, &keep_nodes);
        self.duplicate_edges = retain_marked(&mut self.edges, &keep_edges);
    }

    /// The graph's identity: `graph_id`, else `project_id/system_id`; none when it has neither.
    pub fn key(&self) -> Option<String> {
        if let Some(id) = &self.graph_id {
            return Some(id.clone());
        }
        match (&self.project_id, &self.system_id) {
            (None, None) => None,
            (p, s) => Some(format!("{}/{}", p.as_deref().unwrap_or_default(), s.as_deref().unwrap_or_default())),
        }
    }
}

/// For each of `len` items, whether it is the first with its key (`key(i)`).
fn first_occurrences<'a>(len: usize, key: impl Fn(usize) -> (&'a str, &'a str, &'a str)) -> Vec<bool> {
    use hashbrown::hash_table::{Entry, HashTable};
    use std::hash::BuildHasher;
    // foldhash, seeded per process: SipHash was the largest single cost of decoding a
    // million-node graph, and the seed keeps crafted ids from colliding on purpose. The
    // table holds indices, not keys: 9 bytes a slot instead of 49 (100 MiB for a million).
    let state = foldhash::quality::RandomState::default();
    let mut seen: HashTable<usize> = HashTable::with_capacity(len);
    (0..len)
        .map(|i| {
            let k = key(i);
            match seen.entry(state.hash_one(k), |&j| key(j) == k, |&j| state.hash_one(key(j))) {
                Entry::Occupied(_) => false,
                Entry::Vacant(slot) => {
                    slot.insert(i);
                    true
                }
            }
        })
        .collect()
}

/// Keeps the marked items; returns how many were dropped.
fn retain_marked<T>(items: &mut Vec<T>, keep: &[bool]) -> usize {
    let before = items.len();
    let mut marks = keep.iter();
    items.retain(|_| marks.next().copied().unwrap_or(true));
    before - items.len()
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// A required text is present and not blank; `path` names it, built only for an error
/// (a graph has a path per node and two per edge, nearly always unused).
fn require(path: impl FnOnce() -> String, value: Option<&Text>) -> Result<(), GraphError> {
    match value {
        None => Err(GraphError::Missing(path())),
        Some(v) if v.trim().is_empty() => Err(GraphError::Empty(path())),
        Some(_) => Ok(()),
    }
}

fn decode_error(e: serde_path_to_error::Error<serde_json::Error>) -> GraphError {
    let path = e.path().to_string();
    json_error(path, &e.into_inner())
}

/// A decoder's error at `path`, its position said our way.
fn json_error(path: String, inner: &serde_json::Error) -> GraphError {
    let message = match inner.line() {
        0 => inner.to_string(),
        line => format!("{} (line {line}, column {})", strip_position(&inner.to_string()), inner.column()),
    };
    GraphError::Decode { path, message }
}

/// serde_json appends " at line L column C"; we say it our way.
fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

/// Bytes read at a time by `from_reader`.
const READ_BUFFER: usize = 1 << 20;

impl RawNode {
    fn validate(self, i: usize) -> Result<Node, GraphError> {
        require(|| format!("nodes[{i}].id"), self.id.as_ref())?;
        Ok(Node {
            id: self.id.unwrap_or_default(),
            kind: self.kind.unwrap_or_default(),
            label: self.label.unwrap_or_default(),
            properties_json: self.properties,
        })
    }
}

impl RawEdge {
    fn validate(self, i: usize) -> Result<Edge, GraphError> {
        require(|| format!("edges[{i}].source"), self.source.as_ref())?;
        require(|| format!("edges[{i}].target"), self.target.as_ref())?;
        Ok(Edge {
            source: self.source.unwrap_or_default(),
            target: self.target.unwrap_or_default(),
            label: self.label.unwrap_or_default(),
            properties_json: self.properties,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../examples/knowledge_graph.sample.json");

    fn err(json: &str) -> String {
        Graph::from_json(json.as_bytes()).expect_err("rejected").to_string()
    }

    #[test]
    fn the_real_sample_decodes_in_its_spelling() {
        let g = Graph::from_json(SAMPLE.as_bytes()).expect("sample");
        assert_eq!(g.nodes.len(), 4);
        assert_eq!(g.nodes[0].kind, "table");
        assert_eq!(
            g.nodes[0].properties_json.as_deref(),
            Some(r#"{"agent_id":"test-0x2222","database":"test_db","domain":"test-customer","schema":"public"}"#)
        );
        assert_eq!(g.edges[0].source, "node_2");
        assert_eq!(g.edges[0].label, "RELATES_TO");
    }

    #[test]
    fn both_spellings_give_the_same_graph() {
        let a = r#"{"nodes":[{"id":"a","type":"t","label":"l","props":{"y":1,"x":{"b":2,"a":1}}}],
                    "edges":[{"source_id":"a","target_id":"a","type":"SELF"}]}"#;
        let b = r#"{"nodes":[{"id":"a","kind":"t","label":"l","properties":{"x":{"a":1,"b":2},"y":1}}],
                    "edges":[{"source":"a","target":"a","label":"SELF"}]}"#;
        assert_eq!(Graph::from_json(a.as_bytes()), Graph::from_json(b.as_bytes()));
    }

    #[test]
    fn bad_graphs_name_the_element() {
        assert_eq!(err(r#"{"nodes":[{"id":"a"},{"id":""}]}"#), "nodes[1].id is empty");
        assert_eq!(err(r#"{"nodes":[{"label":"x"}]}"#), "nodes[0].id is missing");
        assert_eq!(
            err(r#"{"edges":[{"source":"a"},{"source":"a","target":"b"},{"source":"a","target":"b"},{"source":"a"}]}"#),
            "edges[0].target is missing"
        );
        assert!(err(r#"{"nodes":[{"id":3}]}"#).starts_with("nodes[0].id: invalid type: integer `3`, expected a string"));
        assert!(err(r#"{"nodes":[{"id":"a","props":[1]}]}"#).starts_with("nodes[0].props: properties must be an object"));
        assert!(err(r#"{"nodes": 3}"#).starts_with("nodes: invalid type"));
        assert!(err("{").contains("EOF"));
    }

    #[test]
    fn a_reader_decodes_as_bytes_do_errors_included() {
        let inputs =
            [SAMPLE, r#"{"nodes":[{"id":"a"},{"id":""}]}"#, r#"{"nodes":[{"id":3}]}"#, r#"{"nodes": 3}"#, "{", "{\"nodes\":[]}\n x"];
        for input in inputs {
            // The same graph, or an error naming the same element (columns may differ by one).
            match (Graph::from_reader(std::io::Cursor::new(input)), Graph::from_json(input.as_bytes())) {
                (Ok(read), Ok(parsed)) => assert_eq!(read, parsed, "{input}"),
                (Err(read), Err(parsed)) => assert_eq!(read.field(), parsed.field(), "{input}: {read} / {parsed}"),
                (read, parsed) => panic!("{input}: {read:?} against {parsed:?}"),
            }
        }
        assert_eq!(err("{\"nodes\":[]}\n x"), ".: trailing characters (line 2, column 2)");
        // Read again from where the graph starts, not from the start of the file.
        let mut shifted = std::io::Cursor::new(r#"{"x":1}{"nodes":[{"id":3}]}"#);
        shifted.set_position(7);
        assert_eq!(Graph::from_reader(shifted).expect_err("rejected").field(), "nodes[0].id");
    }

    #[test]
    fn a_pipe_is_read_whole_then_decoded() {
        for (input, expected) in [(SAMPLE, Ok(4)), (r#"{"nodes":[{"id":3}]}"#, Err("nodes[0].id"))] {
            let (read, mut write) = std::io::pipe().expect("pipe");
            std::io::Write::write_all(&mut write, input.as_bytes()).expect("write");
            drop(write);
            // A File that cannot seek, as `push /dev/stdin` gets from a shell pipe.
            let file = std::fs::File::from(std::os::fd::OwnedFd::from(read));
            let got = Graph::from_reader(file);
            assert_eq!(got.as_ref().map(|g| g.nodes.len()).map_err(GraphError::field), expected, "{input}");
        }
    }

    #[test]
    fn duplicates_are_dropped_first_wins_and_counted() {
        let g = Graph::from_json(
            br#"{"nodes":[{"id":"a","label":"first"},{"id":"b"},{"id":"a","label":"second"}],
                 "edges":[{"source":"a","target":"b","label":"R"},{"source":"a","target":"b","label":"R","props":{"w":1}},{"source":"a","target":"b","label":"S"}]}"#,
        )
        .expect("valid");
        assert_eq!((g.nodes.len(), g.duplicate_nodes), (2, 1));
        assert_eq!(g.nodes[0].label, "first");
        assert_eq!((g.edges.len(), g.duplicate_edges), (2, 1));
        assert_eq!(g.edges[0].properties_json, None);
    }

    #[test]
    fn graph_key() {
        let key = |json: &str| Graph::from_json(json.as_bytes()).expect("valid").key();
        assert_eq!(key(r#"{"graph_id":"g","project_id":"p"}"#), Some("g".into()));
        assert_eq!(key(r#"{"project_id":"p","system_id":"s"}"#), Some("p/s".into()));
        assert_eq!(key(r#"{"project_id":"p"}"#), Some("p/".into()));
        assert_eq!(key(r#"{"graph_id":""}"#), None);
    }

    #[test]
    fn empty_properties_are_none() {
        let g = Graph::from_json(br#"{"nodes":[{"id":"a","props":{}},{"id":"b","properties":null}]}"#).expect("valid");
        assert!(g.nodes.iter().all(|n| n.properties_json.is_none()));
    }

    #[test]
    fn rust_api_validates_too() {
        let node = |id: &str| Node { id: id.into(), kind: "t".into(), label: "l".into(), properties_json: None };
        assert_eq!(Graph::new(vec![node("a"), node(" ")], vec![]).expect_err("empty id").to_string(), "nodes[1].id is empty");
        assert_eq!(Graph::new(vec![node("a"), node("a")], vec![]).expect("ok").duplicate_nodes, 1);
    }

    #[test]
    fn rust_api_properties_are_canonical_json_objects() {
        let with = |props: &str| Node { id: "a".into(), kind: "t".into(), label: "l".into(), properties_json: Some(props.into()) };
        let g = Graph::new(vec![with(r#"{"b":1,"a":{"d":2,"c":3}}"#)], vec![]).expect("ok");
        assert_eq!(g.nodes[0].properties_json.as_deref(), Some(r#"{"a":{"c":3,"d":2},"b":1}"#), "sorted like JSON input");
        assert_eq!(Graph::new(vec![with("{}")], vec![]).expect("ok").nodes[0].properties_json, None);
        let e = Graph::new(vec![with("not json")], vec![]).expect_err("not JSON");
        assert_eq!(e.field(), "nodes[0].properties_json");
        let e = Graph::new(vec![with("[1]")], vec![]).expect_err("not an object");
        assert!(e.to_string().starts_with("nodes[0].properties_json: properties must be an object"), "{e}");
    }
}

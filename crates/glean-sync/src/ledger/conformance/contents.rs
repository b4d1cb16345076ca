//! Conformance of what the ledger keeps besides states: batch payloads (where
//! the ledger carries them) and the properties of stored graphs.

use super::{Backend, keyless, versioned};
use crate::graph::Graph;
use crate::ledger::NewExport;
use std::sync::Arc;

/// A ledger that carries payloads returns each exactly as given (empty included), and
/// nothing for an export without one; a ledger that does not carry them returns nothing.
pub(crate) async fn payloads_round_trip_where_carried(backend: &dyn Backend) {
    let ledger = backend.open().await;
    // Large and repetitive (as batches are), so it is stored compressed where that applies.
    let large: Vec<u8> = (0..300_000u32).flat_map(|i| format!("{{\"id\":\"n{}\"}}", i % 977).into_bytes()).collect();
    let with_payload = |n: i64, bytes: &[u8]| NewExport { payload: Some(bytes.to_vec()), ..keyless(n) };
    let one = ledger.insert(with_payload(1, &large)).await.expect("insert");
    let many = ledger
        .insert_many(vec![with_payload(2, b"small"), keyless(3), with_payload(4, b""), with_payload(5, &[0, 255, 7])])
        .await
        .expect("insert_many");

    let carried = |bytes: &[u8]| backend.stores_payloads().then(|| bytes.to_vec());
    assert_eq!(ledger.payload(one).await.expect("payload"), carried(&large));
    assert_eq!(ledger.payload(many[0]).await.expect("payload"), carried(b"small"));
    assert_eq!(ledger.payload(many[1]).await.expect("payload"), None, "no payload given");
    assert_eq!(ledger.payload(many[2]).await.expect("payload"), carried(b""));
    assert_eq!(ledger.payload(many[3]).await.expect("payload"), carried(&[0, 255, 7]));
    assert_eq!(ledger.payload(many[3] + 1000).await.expect("payload"), None, "unknown export");
    let claimed = ledger.claim(&[one], 1, "w", super::LEASE).await.expect("claim");
    assert_eq!(claimed[0].bytes, keyless(1).bytes, "the row is what it was, payload or not");
}

/// Stored properties read back as the canonical JSON `Graph` holds: keys sorted at
/// every level, compact, numbers and strings as given.
pub(crate) async fn stored_properties_read_back_canonical(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let json = r#"{"nodes":[{"id":"n","props":{"bb":1,"a":{"zz":[1.5,{"d":"é\n","c":null}],"y":-3},"ccc":true}}],
                   "edges":[{"source":"n","target":"n","type":"SELF","props":{"w":10000000000,"v":"x"}}]}"#;
    let graph = Arc::new(Graph::from_json(json.as_bytes()).expect("graph"));
    let expected = graph.clone();
    ledger.insert(NewExport { snapshot: Some(graph), ..versioned("props", 1) }).await.expect("insert");
    let stored = ledger.graph("props").await.expect("graph").expect("stored");
    assert_eq!(stored.nodes, expected.nodes);
    assert_eq!(stored.edges, expected.edges);
}

//! Conformance of what the ledger records: rows, ids, lists, counts, and that
//! they outlive the handle that wrote them.

use super::{Backend, insert_keyless, keyless, now_ms, row, versioned};
use crate::ledger::{ExportState, NewExport, Outcome, Selection};
use chrono::Duration as TimeDelta;
use std::time::Duration;

/// Every field of a new export reads back as written, with the defaults of a new row.
pub(crate) async fn insert_then_get_returns_every_field(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let full = versioned("graph-a", 7);
    let before = now_ms();
    let id = ledger.insert(full.clone()).await.expect("insert");
    let minimal = keyless(0);
    let minimal_id = ledger.insert(minimal.clone()).await.expect("insert");
    let after = now_ms();

    let got = row(&*ledger, id).await;
    assert_eq!(got.id, id);
    assert_eq!(got.state, ExportState::Pending);
    assert_eq!(got.batch_file, full.batch_file);
    assert_eq!(got.graph_key, full.graph_key);
    assert_eq!(got.graph_version, full.graph_version);
    assert_eq!(got.content_hash, full.content_hash);
    assert_eq!((got.node_count, got.edge_count, got.bytes), (full.node_count, full.edge_count, full.bytes));
    assert_eq!(got.attempts, 0);
    assert!(before <= got.created_at && got.created_at <= after, "created_at {} is now", got.created_at);
    assert_eq!(got.updated_at, got.created_at);
    assert_eq!((got.next_attempt_at, got.ingested_at, got.last_error), (None, None, None));

    let got = row(&*ledger, minimal_id).await;
    assert_eq!((got.graph_key, got.graph_version, got.content_hash), (None, None, None));
    assert_eq!(got.batch_file, minimal.batch_file);
    assert_eq!(ledger.get(minimal_id + 1000).await.expect("get"), None);
}

/// Ids grow with every insert, single or many; `insert_many` answers in input order.
pub(crate) async fn ids_grow(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let mut ids = insert_keyless(&*ledger, 3).await;
    let batch: Vec<_> = (10..15).map(keyless).collect();
    let many = ledger.insert_many(batch.clone()).await.expect("insert_many");
    assert_eq!(many.len(), batch.len());
    for (id, new) in many.iter().zip(&batch) {
        assert_eq!(row(&*ledger, *id).await.batch_file, new.batch_file);
    }
    ids.extend(many);
    ids.push(ledger.insert(keyless(20)).await.expect("insert"));
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    assert_eq!(ledger.insert_many(vec![]).await.expect("insert nothing"), Vec::<i64>::new());
}

/// `list` filters by state, id and creation time, oldest first, up to a limit.
pub(crate) async fn list_selects_by_state_id_since_and_limit(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let ids = insert_keyless(&*ledger, 4).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let since = now_ms();
    let late = ledger.insert(keyless(9)).await.expect("insert");
    let claimed = ledger.claim(&[ids[1]], 1, "w", super::LEASE).await.expect("claim");
    assert_eq!(claimed.len(), 1);

    let all = ledger.list(&Selection::default()).await.expect("list");
    let mut expected = ids.clone();
    expected.push(late);
    assert_eq!(super::ids(&all), expected);

    let by = |selection: Selection| {
        let ledger = ledger.clone();
        async move { super::ids(&ledger.list(&selection).await.expect("list")) }
    };
    assert_eq!(by(Selection { states: vec![ExportState::InFlight], ..Selection::default() }).await, vec![ids[1]]);
    let pending_or_flying = vec![ExportState::Pending, ExportState::InFlight];
    assert_eq!(by(Selection { states: pending_or_flying, limit: Some(3), ..Selection::default() }).await, ids[..3]);
    assert_eq!(by(Selection { id: Some(ids[2]), ..Selection::default() }).await, vec![ids[2]]);
    assert_eq!(by(Selection { since: Some(since), ..Selection::default() }).await, vec![late]);
    let dead = Selection { states: vec![ExportState::Dead], ..Selection::default() };
    assert!(by(dead).await.is_empty());
}

/// Counts per state, and the creation time of the oldest row still to deliver.
pub(crate) async fn counts_per_state_and_oldest_unfinished(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let empty = ledger.counts().await.expect("counts");
    assert_eq!(empty, Default::default());

    let ids = insert_keyless(&*ledger, 6).await;
    let claimed = super::claim_all(&*ledger, "w").await;
    assert_eq!(claimed, ids);
    // Due at once, so it can be delivered below; it still counts as failed until then.
    let retry_at = now_ms() - TimeDelta::hours(1);
    ledger.finish(&ids[0..2], "w", &Outcome::Ingested).await.expect("finish");
    ledger.finish(&ids[2..3], "w", &Outcome::Retry { error: "e".into(), retry_at }).await.expect("finish");
    ledger.finish(&ids[3..4], "w", &Outcome::Dead { error: "e".into() }).await.expect("finish");
    ledger.finish(&ids[4..5], "w", &Outcome::Released).await.expect("finish");

    let counts = ledger.counts().await.expect("counts");
    assert_eq!((counts.pending, counts.in_flight, counts.ingested, counts.failed, counts.dead), (1, 1, 2, 1, 1));
    // ids[0..2] are ingested: the oldest unfinished row is ids[2], failed.
    assert_eq!(counts.oldest_unfinished, Some(row(&*ledger, ids[2]).await.created_at));

    ledger.finish(&ids[5..], "w", &Outcome::Ingested).await.expect("finish");
    let claimed = super::claim_all(&*ledger, "w").await;
    assert_eq!(claimed, vec![ids[2], ids[4]]);
    ledger.finish(&claimed, "w", &Outcome::Ingested).await.expect("finish");
    let done = ledger.counts().await.expect("counts");
    assert_eq!((done.ingested, done.dead, done.oldest_unfinished), (5, 1, None));
}

/// A committed row is still there after its handle is gone and the ledger is reopened.
pub(crate) async fn rows_survive_reopening(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let id = ledger.insert(versioned("kept", 1)).await.expect("insert");
    let written = row(&*ledger, id).await;
    drop(ledger);

    let reopened = backend.open().await;
    assert_eq!(row(&*reopened, id).await, written);
    assert_eq!(super::claim_all(&*reopened, "after-restart").await, vec![id]);
}

/// A row is found by its batch file, and `newest` is the last row inserted.
pub(crate) async fn rows_by_file_and_newest(backend: &dyn Backend) {
    let ledger = backend.open().await;
    assert!(ledger.newest().await.expect("newest").is_none(), "an empty ledger has no newest row");
    let ids = ledger.insert_many(vec![super::keyless(1), super::keyless(2), super::keyless(3)]).await.expect("insert");
    let second = ledger.by_file("batch-2.json").await.expect("by_file").expect("found");
    assert_eq!(second.id, ids[1]);
    assert!(ledger.by_file("nope.json").await.expect("by_file").is_none());
    assert_eq!(ledger.newest().await.expect("newest").map(|e| e.id), Some(ids[2]));
}

/// Versions count up per graph and database, and a re-save of the latest content
/// is recognised, unless that export died or its save never finished.
pub(crate) async fn versions_count_up_and_unchanged_content_is_recognised(backend: &dyn Backend) {
    use crate::ledger::VersionSlot::{New, Unchanged};
    let ledger = backend.open().await;
    assert_eq!(ledger.begin_version("db1", "g", "h1").await.expect("begin"), New { version: 1 });
    // Version 1's save never finished (no row): the same content is written again.
    assert_eq!(ledger.begin_version("db1", "g", "h1").await.expect("begin"), New { version: 2 });
    let v2 = NewExport { db: "db1".into(), graph_version: Some(2), ..super::versioned("g", 2) };
    let id = ledger.insert(v2).await.expect("insert");
    assert_eq!(ledger.begin_version("db1", "g", "h1").await.expect("begin"), Unchanged { export_id: id, version: 2 });
    assert_eq!(ledger.begin_version("db2", "g", "h1").await.expect("begin"), New { version: 1 }, "another database starts from nothing");
    assert_eq!(ledger.begin_version("db1", "g", "h2").await.expect("begin"), New { version: 3 });
    let v3 = NewExport { db: "db1".into(), ..super::versioned("g", 3) };
    let id3 = ledger.insert(v3).await.expect("insert");
    // v2 must end before v3 may be claimed.
    ledger.claim(&[], 10, "w", super::LEASE).await.expect("claim");
    ledger.finish(&[id], "w", &Outcome::Ingested).await.expect("finish");
    assert_eq!(ledger.claim(&[], 10, "w", super::LEASE).await.expect("claim").len(), 1);
    ledger.finish(&[id3], "w", &Outcome::Dead { error: "rejected".into() }).await.expect("finish");
    assert_eq!(ledger.begin_version("db1", "g", "h2").await.expect("begin"), New { version: 4 }, "a dead export was never exported");
}

/// `begin_save` answers as `begin_version` and then `known_facts` would: the known facts of a
/// new version, none for unchanged content.
pub(crate) async fn a_save_begins_with_its_version_and_known_facts(backend: &dyn Backend) {
    use crate::ledger::VersionSlot::{New, Unchanged};
    let ledger = backend.open().await;
    let (a, b) = ([5u8; 16], [6u8; 16]);
    let carrier = ledger.insert(NewExport { db: "db1".into(), facts: vec![a], ..super::keyless(1) }).await.expect("insert");
    ledger.claim(&[], 10, "w", super::LEASE).await.expect("claim");
    ledger.finish(&[carrier], "w", &Outcome::Ingested).await.expect("finish");
    let first = ledger.begin_save("db1", "g", "h1", &[b, a]).await.expect("begin");
    assert_eq!(first, (New { version: 1 }, vec![false, true]));
    let id = ledger.insert(NewExport { db: "db1".into(), ..super::versioned("g", 1) }).await.expect("insert");
    let again = ledger.begin_save("db1", "g", "h1", &[b, a]).await.expect("begin");
    assert_eq!(again, (Unchanged { export_id: id, version: 1 }, vec![]), "unchanged: nothing looked up");
    assert_eq!(ledger.begin_save("db2", "g", "h1", &[a]).await.expect("begin"), (New { version: 1 }, vec![false]), "per database");
}

/// Saves of one graph racing each other get distinct versions, and the graph's latest is the
/// highest version whatever order their rows commit in.
pub(crate) async fn racing_saves_of_a_graph_get_distinct_versions(backend: &dyn Backend) {
    use crate::ledger::VersionSlot::{New, Unchanged};
    let ledger = backend.open().await;
    let saves: Vec<_> = (0..12)
        .map(|i| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let content = format!("content-{i}");
                let New { version } = ledger.begin_version("db1", "g", &content).await.expect("begin") else {
                    panic!("new content is never unchanged")
                };
                // Later versions sometimes commit first.
                tokio::time::sleep(Duration::from_millis(((12 - i) % 4) * 5)).await;
                let export = NewExport { db: "db1".into(), content_hash: Some(content.clone()), ..versioned("g", version) };
                ledger.insert(export).await.expect("insert");
                (version, content)
            })
        })
        .collect();
    let mut done = Vec::new();
    for save in saves {
        done.push(save.await.expect("save"));
    }
    done.sort();
    let versions: Vec<i64> = done.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, (1..=12).collect::<Vec<_>>(), "one version each, none skipped, none shared");
    let (last, content) = done.last().cloned().expect("twelve saves");
    assert!(matches!(ledger.begin_version("db1", "g", &content).await.expect("begin"), Unchanged { version, .. } if version == last));
}

/// Facts become known for a database when an export carrying them is ingested, not before.
pub(crate) async fn facts_become_known_when_ingested(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let (a, b, c) = ([1u8; 16], [2u8; 16], [3u8; 16]);
    assert_eq!(ledger.known_facts("db1", &[a, b]).await.expect("known"), [false, false]);
    let first = ledger.insert(NewExport { db: "db1".into(), facts: vec![a, b], ..super::keyless(1) }).await.expect("insert");
    let second = ledger.insert(NewExport { db: "db1".into(), facts: vec![c], ..super::keyless(2) }).await.expect("insert");
    assert_eq!(ledger.known_facts("db1", &[a]).await.expect("known"), [false], "pending exports teach nothing");
    ledger.claim(&[], 10, "w", super::LEASE).await.expect("claim");
    ledger.finish(&[first], "w", &Outcome::Ingested).await.expect("finish");
    ledger.finish(&[second], "w", &Outcome::Dead { error: "x".into() }).await.expect("finish");
    assert_eq!(ledger.known_facts("db1", &[a, b, c]).await.expect("known"), [true, true, false]);
    assert_eq!(ledger.known_facts("db2", &[a]).await.expect("known"), [false], "per database");
    let mut many: Vec<[u8; 16]> = (0..25_000u32)
        .map(|i| {
            let mut h = [0u8; 16];
            h[..4].copy_from_slice(&i.to_le_bytes());
            h[15] = 9;
            h
        })
        .collect();
    // Known facts far apart in a lookup larger than one statement takes, one of them twice.
    (many[3], many[24_000], many[24_001]) = (b, a, b);
    let known = ledger.known_facts("db1", &many).await.expect("known");
    let found: Vec<usize> = known.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i).collect();
    assert_eq!(found, [3, 24_000, 24_001], "large lookups are chunked and answer in the order asked");
    assert!(ledger.known_facts("db2", &many).await.expect("known").iter().all(|k| !k), "nothing is known in db2");
}

/// A database created anew is known to hold nothing, and no re-save of a graph is unchanged
/// for it; versions keep counting, and other databases keep what they know. Created for the
/// first time (nothing known yet), its graphs' content stays known: nothing was sent as a delta.
pub(crate) async fn forgetting_a_database_forgets_its_facts_and_content(backend: &dyn Backend) {
    use crate::ledger::VersionSlot::{New, Unchanged};
    let ledger = backend.open().await;
    let a = [7u8; 16];
    for db in ["db1", "db2"] {
        assert_eq!(ledger.begin_version(db, "g", "h1").await.expect("begin"), New { version: 1 });
        ledger.forget_database(db).await.expect("the first creation forgets nothing");
        let v1 = NewExport { db: db.into(), facts: vec![a], ..super::versioned("g", 1) };
        let id = ledger.insert(v1).await.expect("insert");
        ledger.claim(&[], 10, "w", super::LEASE).await.expect("claim");
        ledger.finish(&[id], "w", &Outcome::Ingested).await.expect("finish");
        assert!(matches!(ledger.begin_version(db, "g", "h1").await.expect("begin"), Unchanged { version: 1, .. }));
    }
    ledger.forget_database("db1").await.expect("forget");
    assert_eq!(ledger.known_facts("db1", &[a]).await.expect("known"), [false]);
    assert_eq!(ledger.begin_version("db1", "g", "h1").await.expect("begin"), New { version: 2 }, "same content, sent again");
    assert_eq!(ledger.known_facts("db2", &[a]).await.expect("known"), [true], "other databases keep theirs");
    assert!(matches!(ledger.begin_version("db2", "g", "h1").await.expect("begin"), Unchanged { version: 1, .. }));
}

/// An export can be recorded dead at once, with its reason.
pub(crate) async fn an_export_can_be_recorded_dead(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let id = ledger.insert(NewExport { dead: Some("invalid JSON at line 3".into()), ..super::keyless(1) }).await.expect("insert");
    let row = row(&*ledger, id).await;
    assert_eq!((row.state, row.last_error.as_deref()), (ExportState::Dead, Some("invalid JSON at line 3")));
    assert!(ledger.claim(&[], 10, "w", super::LEASE).await.expect("claim").is_empty(), "dead rows are not claimed");
}

/// A keyed graph is stored with its save, replaced by a newer version, never by an older one.
pub(crate) async fn graphs_are_stored_by_key_and_only_newer_versions_replace_them(backend: &dyn Backend) {
    use crate::graph::Graph;
    use std::sync::Arc;
    let ledger = backend.open().await;
    let graph = |json: &str| Some(Arc::new(Graph::from_json(json.as_bytes()).expect("graph")));
    let v1 = graph(r#"{"nodes":[{"id":"a","type":"t","props":{"x":1}},{"id":"b"}],"edges":[{"source":"a","target":"b","type":"R"}]}"#);
    let id1 = ledger.insert(NewExport { snapshot: v1, ..super::versioned("k/1", 1) }).await.expect("insert");
    let stored = ledger.graph("k/1").await.expect("graph").expect("stored");
    assert_eq!((stored.version, stored.export_id, stored.nodes.len(), stored.edges.len()), (Some(1), id1, 2, 1));
    assert_eq!(stored.nodes[0].properties_json.as_deref(), Some(r#"{"x":1}"#));
    assert_eq!(stored.edges[0].label, "R");

    let v3 = graph(r#"{"nodes":[{"id":"c"}]}"#);
    ledger.insert(NewExport { snapshot: v3, ..super::versioned("k/1", 3) }).await.expect("insert");
    let late_v2 = graph(r#"{"nodes":[{"id":"old"}]}"#);
    ledger.insert(NewExport { snapshot: late_v2, ..super::versioned("k/1", 2) }).await.expect("insert");
    let stored = ledger.graph("k/1").await.expect("graph").expect("stored");
    assert_eq!(stored.version, Some(3), "a late older version does not replace a newer one");
    assert_eq!(stored.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["c"]);
    assert!(stored.edges.is_empty());
    assert!(ledger.graph("nope").await.expect("graph").is_none());
}

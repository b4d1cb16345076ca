//! The save path on PostgreSQL: reserving a graph's next version and
//! recording new exports (rows, facts, graph links, payloads, snapshots),
//! each in one transaction under the per-graph locks.
//!
//! Every node saves into the same tables, so two nodes may save versions of
//! one graph at once. Both steps first take a transaction-scoped advisory lock
//! per graph key (see the module doc of `postgres`): reservations of one graph
//! take turns, and so do inserts, which makes ids of one graph follow the
//! order in which their rows commit. Rows are written in bulk (`unnest`),
//! never one statement per row. Nothing here claims or finishes exports.

use super::connect::LOCK_CLASS;
use super::{graphs, row, sql};
use crate::ledger::{ExportId, ExportState, FactHash, LedgerError, NewExport, VersionSlot};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::BTreeMap;
use std::ops::Range;

/// Rows per insert statement: bounded statements, whatever a directory scan registers.
const ROWS_PER_STATEMENT: usize = 1000;

/// Compressed payload bytes per insert statement (PostgreSQL caps a message at 1 GiB).
const PAYLOAD_BYTES_PER_STATEMENT: usize = 32 << 20;

/// Fact hashes per statement.
const FACTS_PER_STATEMENT: usize = 50_000;

/// `Ledger::begin_version`: compare with the latest version and reserve the next, under the graph's lock.
pub(super) async fn begin_version(
    pool: &PgPool,
    schema: &str,
    db: &str,
    graph_key: &str,
    content_hash: &str,
) -> Result<VersionSlot, LedgerError> {
    let mut tx = pool.begin().await?;
    lock_graphs(&mut tx, schema, [graph_key]).await?;
    let latest: Option<(i64, String, Option<i64>, Option<String>)> =
        sqlx::query_as(sql::GRAPH_LATEST).bind(db).bind(graph_key).fetch_optional(&mut *tx).await?;
    let slot = match latest {
        Some((version, hash, Some(export_id), Some(state))) if hash == content_hash && state != ExportState::Dead.as_str() => {
            VersionSlot::Unchanged { export_id, version }
        }
        latest => {
            let version = latest.map_or(1, |(v, ..)| v + 1);
            sqlx::query(sql::GRAPH_RESERVE).bind(db).bind(graph_key).bind(version).bind(content_hash).execute(&mut *tx).await?;
            VersionSlot::New { version }
        }
    };
    tx.commit().await?;
    Ok(slot)
}

/// `Ledger::insert_many`: every row, its facts, graph link and snapshot in one commit.
pub(super) async fn insert_many(pool: &PgPool, schema: &str, exports: &[NewExport]) -> Result<Vec<ExportId>, LedgerError> {
    if exports.is_empty() {
        return Ok(Vec::new());
    }
    // Compressed before the transaction opens, so locks are never held across that work.
    let payloads = row::compress(exports.iter().map(|e| e.payload.clone()).collect()).await?;
    let mut tx = pool.begin().await?;
    let ids = record(&mut tx, schema, exports, &payloads).await?;
    tx.commit().await?;
    Ok(ids)
}

/// Writes exports (with their compressed payloads) in `tx`, which holds their graphs'
/// locks from here until it ends.
pub(super) async fn record(
    tx: &mut Transaction<'_, Postgres>,
    schema: &str,
    exports: &[NewExport],
    payloads: &[Option<Vec<u8>>],
) -> Result<Vec<ExportId>, LedgerError> {
    lock_graphs(tx, schema, exports.iter().filter_map(|e| e.graph_key.as_deref())).await?;
    let mut ids = Vec::with_capacity(exports.len());
    for range in statements(payloads) {
        ids.extend(insert_rows(tx, &exports[range.clone()], &payloads[range]).await?);
    }
    record_facts(tx, &ids, exports).await?;
    link_graphs(tx, &ids, exports).await?;
    for (id, export) in ids.iter().zip(exports) {
        if let (Some(key), Some(graph)) = (&export.graph_key, &export.snapshot) {
            graphs::store(tx, key, export.graph_version, *id, graph).await?;
        }
    }
    Ok(ids)
}

/// Takes the advisory lock of each graph key, in one order for every transaction.
async fn lock_graphs<'k>(
    tx: &mut Transaction<'_, Postgres>,
    schema: &str,
    keys: impl IntoIterator<Item = &'k str>,
) -> Result<(), LedgerError> {
    let mut locks: Vec<i32> = keys.into_iter().map(|key| graph_lock(schema, key)).collect();
    if locks.is_empty() {
        return Ok(());
    }
    locks.sort_unstable();
    locks.dedup();
    sqlx::query(sql::LOCK_GRAPHS).bind(LOCK_CLASS).bind(locks).execute(&mut **tx).await?;
    Ok(())
}

/// The lock of a graph key in the ledger's schema. Two keys sharing a value only take turns needlessly.
pub(super) fn graph_lock(schema: &str, key: &str) -> i32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(schema.as_bytes()).update(&[0]).update(key.as_bytes());
    let bytes = hasher.finalize();
    let [a, b, c, d, ..] = *bytes.as_bytes();
    i32::from_le_bytes([a, b, c, d])
}

/// Ranges of rows, each inserted by one statement.
fn statements(payloads: &[Option<Vec<u8>>]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, payload) in payloads.iter().enumerate() {
        let size = payload.as_ref().map_or(0, Vec::len);
        if i > start && (i - start == ROWS_PER_STATEMENT || bytes + size > PAYLOAD_BYTES_PER_STATEMENT) {
            ranges.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    ranges.push(start..payloads.len());
    ranges
}

/// Inserts rows with one statement; their ids come back in input order.
async fn insert_rows(
    tx: &mut Transaction<'_, Postgres>,
    exports: &[NewExport],
    payloads: &[Option<Vec<u8>>],
) -> Result<Vec<ExportId>, LedgerError> {
    let column = |f: fn(&NewExport) -> Option<&str>| exports.iter().map(f).collect::<Vec<_>>();
    let number = |f: fn(&NewExport) -> i64| exports.iter().map(f).collect::<Vec<_>>();
    let mut ids: Vec<ExportId> = sqlx::query_scalar(sql::INSERT)
        .bind(column(|e| Some(e.batch_file.as_str())))
        .bind(column(|e| e.graph_key.as_deref()))
        .bind(exports.iter().map(|e| e.graph_version).collect::<Vec<_>>())
        .bind(column(|e| e.content_hash.as_deref()))
        .bind(number(|e| e.node_count))
        .bind(number(|e| e.edge_count))
        .bind(number(|e| e.bytes))
        .bind(column(|e| Some(e.db.as_str())))
        .bind(column(|e| e.dead.as_deref()))
        .bind(payloads.iter().map(Option::as_deref).collect::<Vec<_>>())
        .fetch_all(&mut **tx)
        .await?;
    // Ids are drawn in the statement's row order, so ascending ids are input order.
    ids.sort_unstable();
    Ok(ids)
}

/// Records the facts each export carries, to become known when it is ingested.
async fn record_facts(tx: &mut Transaction<'_, Postgres>, ids: &[ExportId], exports: &[NewExport]) -> Result<(), LedgerError> {
    let pairs: Vec<(ExportId, &FactHash)> = ids.iter().zip(exports).flat_map(|(id, e)| e.facts.iter().map(move |h| (*id, h))).collect();
    for chunk in pairs.chunks(FACTS_PER_STATEMENT) {
        let (owners, hashes): (Vec<ExportId>, Vec<&[u8]>) = chunk.iter().map(|(id, h)| (*id, h.as_slice())).unzip();
        sqlx::query(sql::INSERT_EXPORT_FACTS).bind(owners).bind(hashes).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Each export carrying its graph's reserved version becomes that graph's latest (the last one given wins).
async fn link_graphs(tx: &mut Transaction<'_, Postgres>, ids: &[ExportId], exports: &[NewExport]) -> Result<(), LedgerError> {
    let mut links = BTreeMap::new();
    for (id, e) in ids.iter().zip(exports) {
        if let (Some(key), Some(version)) = (e.graph_key.as_deref(), e.graph_version) {
            links.insert((e.db.as_str(), key), (*id, version));
        }
    }
    if links.is_empty() {
        return Ok(());
    }
    let (keys, values): (Vec<_>, Vec<_>) = links.into_iter().unzip();
    let (dbs, graph_keys): (Vec<&str>, Vec<&str>) = keys.into_iter().unzip();
    let (link_ids, versions): (Vec<ExportId>, Vec<i64>) = values.into_iter().unzip();
    sqlx::query(sql::LINK_GRAPHS).bind(link_ids).bind(dbs).bind(graph_keys).bind(versions).execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_by_rows_and_payload_bytes() {
        assert_eq!(statements(&vec![None; 2500]), vec![0..1000, 1000..2000, 2000..2500]);
        let big = Some(vec![0u8; PAYLOAD_BYTES_PER_STATEMENT / 2 + 1]);
        assert_eq!(statements(&[big.clone(), big.clone(), None, big]), vec![0..1, 1..3, 3..4]);
        assert_eq!(statements(&[Some(vec![0u8; PAYLOAD_BYTES_PER_STATEMENT * 2])]), vec![0..1], "one row always fits");
    }

    #[test]
    fn graph_locks_depend_on_schema_and_key() {
        assert_eq!(graph_lock("s", "g"), graph_lock("s", "g"));
        assert_ne!(graph_lock("s", "g"), graph_lock("t", "g"));
        assert_ne!(graph_lock("s", "g1"), graph_lock("s", "g2"));
    }
}

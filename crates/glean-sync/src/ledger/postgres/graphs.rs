//! Graph persistence on PostgreSQL: each keyed graph's current nodes and
//! edges in `glean_graphs`, `glean_nodes`, `glean_edges`, properties as JSONB.
//!
//! A snapshot is replaced inside the transaction of the insert that carries
//! it, unless a newer version is stored already; the insert holds the graph's
//! advisory lock, so two nodes never replace one graph at once. Reading back
//! turns JSONB (which reorders keys and respaces) into the canonical JSON text
//! `Graph` holds (keys sorted, compact), so both ledgers return equal graphs.
//! Nothing here touches export rows.

use super::sql;
use crate::graph::{Edge, Graph, Node, Text};
use crate::ledger::{ExportId, LedgerError, StoredGraph};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};

/// Replaces the stored nodes and edges of `key`, unless a newer version is stored already.
pub(super) async fn store(
    tx: &mut Transaction<'_, Postgres>,
    key: &str,
    version: Option<i64>,
    export_id: ExportId,
    graph: &Graph,
) -> Result<(), LedgerError> {
    let stored: Option<Option<i64>> = sqlx::query_scalar(sql::STORED_VERSION).bind(key).fetch_optional(&mut **tx).await?;
    if let (Some(Some(stored)), Some(version)) = (stored, version)
        && stored > version
    {
        return Ok(());
    }
    sqlx::query(sql::DELETE_NODES).bind(key).execute(&mut **tx).await?;
    sqlx::query(sql::DELETE_EDGES).bind(key).execute(&mut **tx).await?;
    sqlx::query(sql::INSERT_NODES).bind(key).bind(Json(&graph.nodes)).execute(&mut **tx).await?;
    sqlx::query(sql::INSERT_EDGES).bind(key).bind(Json(&graph.edges)).execute(&mut **tx).await?;
    sqlx::query(sql::UPSERT_GRAPH).bind(key).bind(version).bind(export_id).execute(&mut **tx).await?;
    Ok(())
}

/// The graph stored under `key`, if any.
pub(super) async fn load(pool: &PgPool, key: &str) -> Result<Option<StoredGraph>, LedgerError> {
    let Some((version, export_id, updated_at)): Option<(Option<i64>, i64, DateTime<Utc>)> =
        sqlx::query_as(sql::STORED_GRAPH).bind(key).fetch_optional(pool).await?
    else {
        return Ok(None);
    };
    let nodes: Vec<(String, String, String, Option<String>)> = sqlx::query_as(sql::STORED_NODES).bind(key).fetch_all(pool).await?;
    let edges: Vec<(String, String, String, Option<String>)> = sqlx::query_as(sql::STORED_EDGES).bind(key).fetch_all(pool).await?;
    let canonical = |json: Option<String>| json.map(|j| canonical(export_id, &j)).transpose();
    Ok(Some(StoredGraph {
        graph_key: key.to_owned(),
        version,
        export_id,
        updated_at,
        nodes: nodes
            .into_iter()
            .map(|(id, kind, label, p)| Ok(Node { id: id.into(), kind: kind.into(), label: label.into(), properties_json: canonical(p)? }))
            .collect::<Result<_, LedgerError>>()?,
        edges: edges
            .into_iter()
            .map(|(source, target, label, p)| {
                Ok(Edge { source: source.into(), target: target.into(), label: label.into(), properties_json: canonical(p)? })
            })
            .collect::<Result<_, LedgerError>>()?,
    }))
}

/// JSONB text as canonical JSON: keys sorted at every level, no spaces.
fn canonical(export_id: ExportId, jsonb: &str) -> Result<Text, LedgerError> {
    let corrupt = |e: serde_json::Error| LedgerError::Corrupt { id: export_id, message: format!("stored properties: {e}") };
    let mut value: serde_json::Value = serde_json::from_str(jsonb).map_err(corrupt)?;
    value.sort_all_objects();
    serde_json::to_string(&value).map(Text::from).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn jsonb_text_reads_back_canonical() {
        let jsonb = r#"{"b": 1, "aa": {"z": [1, {"d": 2, "c": 3}], "y": "t"}}"#;
        assert_eq!(canonical(1, jsonb).expect("json"), r#"{"aa":{"y":"t","z":[1,{"c":3,"d":2}]},"b":1}"#);
        assert!(canonical(1, "{not json").is_err());
    }
}

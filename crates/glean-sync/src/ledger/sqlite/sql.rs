//! The statements the SQLite ledger runs, one constant each, with its binds.
//!
//! Every statement here is static text with bind parameters; lists of ids
//! travel as one JSON array bind read back with `json_each`, so no statement
//! is ever assembled from data. (`list` and `replay` filters, which vary in
//! shape, are built with `QueryBuilder` in `super::selection`.) `ready` and
//! `claim` name their indexes with `INDEXED BY`: if a schema change ever made
//! SQLite unable to use them, preparing the statement fails loudly instead of
//! silently turning the hot path into a scan of the whole table.

/// The columns of `Export`, named as `ExportRow`'s fields.
macro_rules! columns {
    () => {
        "id, state, batch_file, graph_key, graph_version, content_hash, node_count, edge_count, \
         bytes, attempts, created_at, updated_at, next_attempt_at, ingested_at, last_error"
    };
}

/// The states in which an export still has to reach Glean (the partial indexes' condition,
/// spelled identically so SQLite can match them).
macro_rules! unfinished {
    () => {
        "('pending', 'in_flight', 'failed')"
    };
}

/// Row `e` is ready and its graph has no earlier unfinished export (`?1` = now, ms).
///
/// Only the oldest unfinished export of a graph can pass, so a set of ready
/// rows never holds two of one graph. A `failed` row without a retry time or
/// an `in_flight` row without a lease (neither is ever written) counts as due.
macro_rules! ready_and_unblocked {
    () => {
        concat!(
            "e.state IN ",
            unfinished!(),
            "
             AND (e.state = 'pending'
                  OR (e.state = 'failed' AND IFNULL(e.next_attempt_at, 0) <= ?1)
                  OR (e.state = 'in_flight' AND IFNULL(e.lease_until, 0) < ?1))
             AND (e.graph_key IS NULL OR NOT EXISTS (
                  SELECT 1 FROM exports AS p INDEXED BY exports_graph_unfinished
                  WHERE p.graph_key = e.graph_key AND p.id < e.id
                    AND p.state IN ",
            unfinished!(),
            "))"
        )
    };
}

/// Ready ids among all rows, walking unfinished rows in id order. Binds: now, limit.
macro_rules! ready_all {
    () => {
        concat!("SELECT e.id FROM exports AS e INDEXED BY exports_unfinished WHERE ", ready_and_unblocked!(), " ORDER BY e.id LIMIT ?2")
    };
}

/// Ready ids among candidates (`?5`, a JSON array), found by primary key. Binds: now, limit.
macro_rules! ready_among {
    () => {
        concat!(
            "SELECT e.id FROM exports AS e
             WHERE e.id IN (SELECT value FROM json_each(?5)) AND ",
            ready_and_unblocked!(),
            " ORDER BY e.id LIMIT ?2"
        )
    };
}

/// Makes rows `in_flight` for an owner (`?3`) until `?4`, counting the attempt.
macro_rules! take {
    () => {
        "UPDATE exports
         SET state = 'in_flight', owner = ?3, lease_until = ?4, attempts = attempts + 1,
             updated_at = ?1, next_attempt_at = NULL
         WHERE id IN "
    };
}

/// `ready` over all rows. Binds: now, limit.
pub(super) const READY_ALL: &str = ready_all!();

/// `claim` over all rows. Binds: now, limit, owner, lease_until.
pub(super) const CLAIM_ALL: &str = concat!(take!(), "(", ready_all!(), ") RETURNING ", columns!());

/// `claim` among candidates. Binds: now, limit, owner, lease_until, ids (JSON).
pub(super) const CLAIM_AMONG: &str = concat!(take!(), "(", ready_among!(), ") RETURNING ", columns!());

/// A new row, pending (or dead with a reason). Binds: batch_file, graph_key, graph_version,
/// content_hash, node_count, edge_count, bytes, now, db, dead reason.
pub(super) const INSERT: &str = "
    INSERT INTO exports (state, batch_file, graph_key, graph_version, content_hash,
                         node_count, edge_count, bytes, attempts, created_at, updated_at, db, last_error)
    VALUES (CASE WHEN ?10 IS NULL THEN 'pending' ELSE 'dead' END, ?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?8, ?9, ?10)
    RETURNING id";

/// A new export becomes its graph's latest, unless a later version was committed first.
/// Binds: db, graph_key, version, content_hash, export id.
pub(super) const LINK_GRAPH: &str = "
    INSERT INTO graphs (db, graph_key, version, content_hash, export_id) VALUES (?1, ?2, ?3, ?4, ?5)
    ON CONFLICT (db, graph_key) DO UPDATE SET version = excluded.version,
        content_hash = excluded.content_hash, export_id = excluded.export_id
    WHERE excluded.version >= graphs.version";

/// A graph's latest version, and the state of its export. Binds: db, graph_key.
pub(super) const GRAPH_LATEST: &str = "
    SELECT g.version, g.content_hash, g.export_id, e.state
    FROM graphs AS g LEFT JOIN exports AS e ON e.id = g.export_id
    WHERE g.db = ?1 AND g.graph_key = ?2";

/// Which of some hashes a database holds. Binds: db, hashes (JSON array of hex).
pub(super) const KNOWN_FACTS: &str = "
    SELECT unhex(j.value) FROM json_each(?2) AS j
    WHERE EXISTS (SELECT 1 FROM known_facts AS k WHERE k.db = ?1 AND k.hash = unhex(j.value))";

/// Whether any fact is known for a database. Binds: db.
pub(super) const ANY_KNOWN_FACT: &str = "SELECT 1 FROM known_facts WHERE db = ?1 LIMIT 1";

/// Every known fact: database, hash (the learner's filters are filled from it at open).
pub(super) const ALL_KNOWN_FACTS: &str = "SELECT db, hash FROM known_facts";

/// The facts an export carries, as one blob of sorted hashes. Binds: export id, hashes.
pub(super) const INSERT_FACT_SET: &str = "INSERT INTO export_fact_sets (export_id, hashes) VALUES (?1, ?2)";

/// Ingested exports' fact sets (not yet learned, as learned ones are deleted): export id,
/// database, hashes.
macro_rules! ingested_fact_sets {
    () => {
        "SELECT s.export_id, e.db, s.hashes FROM export_fact_sets AS s JOIN exports AS e ON e.id = s.export_id
         WHERE e.state = 'ingested'"
    };
}

/// `ingested_fact_sets` among some exports. Binds: ids (JSON).
pub(super) const INGESTED_FACT_SETS: &str = concat!(ingested_fact_sets!(), " AND s.export_id IN (SELECT value FROM json_each(?1))");

/// `ingested_fact_sets`, all of them (taken back at open).
pub(super) const UNLEARNED_FACT_SETS: &str = ingested_fact_sets!();

/// Some facts become known for a database. Binds: db, hashes (JSON array of hex).
pub(super) const LEARN_HASHES: &str = "
    INSERT OR IGNORE INTO known_facts (db, hash) SELECT ?1, unhex(value) FROM json_each(?2)";

/// Fact sets whose facts are learned (or forgotten with their database). Binds: ids (JSON).
pub(super) const FORGET_FACT_SETS: &str = "DELETE FROM export_fact_sets WHERE export_id IN (SELECT value FROM json_each(?1))";

/// Ingested exports' facts (rows written before fact sets) become known; returns those new
/// to the table (database, hash). Binds: ids (JSON).
pub(super) const LEARN_FACTS: &str = "
    INSERT OR IGNORE INTO known_facts (db, hash)
    SELECT e.db, f.hash FROM export_facts AS f JOIN exports AS e ON e.id = f.export_id
    WHERE f.export_id IN (SELECT value FROM json_each(?1)) AND e.state = 'ingested'
    RETURNING db, hash";

/// Facts of ingested exports are no longer needed per export. Binds: ids (JSON).
pub(super) const FORGET_EXPORT_FACTS: &str = "
    DELETE FROM export_facts WHERE export_id IN (
        SELECT e.id FROM exports AS e WHERE e.id IN (SELECT value FROM json_each(?1)) AND e.state = 'ingested')";

/// The columns of `Export`, for statements built elsewhere.
pub(super) const COLUMNS: &str = columns!();

/// One row. Binds: id.
pub(super) const GET: &str = concat!("SELECT ", columns!(), " FROM exports WHERE id = ?1");

/// The rows of `finish`: ids (`?1`, JSON) that `?2` holds in flight. The statements
/// say `NOT INDEXED` so the few ids are found by primary key, never by walking
/// every in-flight row through `exports_state`, which SQLite would otherwise pick.
macro_rules! held {
    () => {
        " WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'in_flight' AND owner = ?2"
    };
}

/// The hold ends with every outcome.
macro_rules! release_hold {
    () => {
        "owner = NULL, lease_until = NULL, updated_at = ?3"
    };
}

/// `finish` with `Ingested`. Binds: ids, owner, now.
pub(super) const FINISH_INGESTED: &str =
    concat!("UPDATE exports NOT INDEXED SET state = 'ingested', ingested_at = ?3, next_attempt_at = NULL, ", release_hold!(), held!());

/// `finish` with `Retry`. Binds: ids, owner, now, retry_at, error.
pub(super) const FINISH_RETRY: &str =
    concat!("UPDATE exports NOT INDEXED SET state = 'failed', next_attempt_at = ?4, last_error = ?5, ", release_hold!(), held!());

/// `finish` with `Dead`. Binds: ids, owner, now, error.
pub(super) const FINISH_DEAD: &str =
    concat!("UPDATE exports NOT INDEXED SET state = 'dead', next_attempt_at = NULL, last_error = ?4, ", release_hold!(), held!());

/// `finish` with `Released`: the attempt `claim` counted is taken back. Binds: ids, owner, now.
pub(super) const FINISH_RELEASED: &str =
    concat!("UPDATE exports NOT INDEXED SET state = 'pending', attempts = MAX(attempts - 1, 0), ", release_hold!(), held!());

/// `finish` with `Postponed`: pending again, the attempt not counted, the reason kept.
/// Binds: ids, owner, now, error.
pub(super) const FINISH_POSTPONED: &str = concat!(
    "UPDATE exports NOT INDEXED SET state = 'pending', attempts = MAX(attempts - 1, 0), last_error = ?4, ",
    release_hold!(),
    held!()
);

/// `renew`: the owner's hold on its in-flight rows lasts until a new time. Binds: ids, owner, now, lease_until.
pub(super) const RENEW: &str = concat!("UPDATE exports NOT INDEXED SET lease_until = ?4, updated_at = ?3", held!());

/// `forget_database`: nothing is known to be held by a database created anew. Binds: db.
pub(super) const FORGET_KNOWN_FACTS: &str = "DELETE FROM known_facts WHERE db = ?1";

/// `forget_database`: no graph's content is known to be there either, so no re-save is
/// skipped as unchanged (versions keep counting); run only when facts were forgotten. Binds: db.
pub(super) const FORGET_CONTENT: &str = "UPDATE graphs SET content_hash = '' WHERE db = ?1";

/// The row of a batch file. Binds: batch_file.
pub(super) const BY_FILE: &str = concat!("SELECT ", columns!(), " FROM exports WHERE batch_file = ?1");

/// The row with the highest id.
pub(super) const NEWEST: &str = concat!("SELECT ", columns!(), " FROM exports ORDER BY id DESC LIMIT 1");

/// `recover`: an owner's in-flight rows back to pending, attempts kept. Binds: owner, now.
pub(super) const RECOVER: &str = "
    UPDATE exports SET state = 'pending', owner = NULL, lease_until = NULL, updated_at = ?2
    WHERE state = 'in_flight' AND owner = ?1";

/// `counts`: one pass over the `exports_state` index alone (it covers both columns).
pub(super) const COUNTS: &str = "SELECT state, COUNT(*), MIN(created_at) FROM exports GROUP BY state";

/// The stored version of a graph. Binds: graph_key.
pub(super) const STORED_VERSION: &str = "SELECT version FROM glean_graphs WHERE graph_key = ?1";

/// Forgets a graph's stored parts, before storing its new ones. Binds: graph_key.
pub(super) const DELETE_PARTS: &str = "DELETE FROM glean_graph_parts WHERE graph_key = ?1";

/// Stores one part of a graph. Binds: graph_key, part, nodes (JSON array of `Node`), edges (of `Edge`).
pub(super) const INSERT_PART: &str = "INSERT INTO glean_graph_parts (graph_key, part, nodes, edges) VALUES (?1, ?2, ?3, ?4)";

/// Records which version of a graph is stored. Binds: graph_key, version, export id, now.
pub(super) const UPSERT_GRAPH: &str = "
    INSERT INTO glean_graphs (graph_key, version, export_id, updated_at) VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (graph_key) DO UPDATE SET version = excluded.version, export_id = excluded.export_id,
        updated_at = excluded.updated_at";

/// A stored graph's header. Binds: graph_key.
pub(super) const STORED_GRAPH: &str = "SELECT version, export_id, updated_at FROM glean_graphs WHERE graph_key = ?1";

/// A stored graph's parts, in order. Binds: graph_key.
pub(super) const STORED_PARTS: &str = "SELECT nodes, edges FROM glean_graph_parts WHERE graph_key = ?1 ORDER BY part";

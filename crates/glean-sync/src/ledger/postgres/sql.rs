//! The statements the PostgreSQL ledger runs, one constant each, with its binds.
//!
//! Every statement here is static text with bind parameters; lists travel as
//! one array bind each (`= ANY($n)`, `unnest(...)`), so no statement is ever
//! assembled from data. (`list` and `replay` filters, which vary in shape, are
//! built with `QueryBuilder` in `super::selection`.) Every time a statement
//! stamps comes from the database server's clock (`now!`), so all nodes of a
//! cluster agree on when a lease or a retry time has passed.

/// The server's clock at the start of the transaction, at the millisecond precision every ledger keeps.
macro_rules! now {
    () => {
        "date_trunc('milliseconds', now())"
    };
}

/// The columns of `Export`, in `ExportRow` order (never the payload: it is read alone).
macro_rules! columns {
    () => {
        "id, state, batch_file, graph_key, graph_version, content_hash, node_count, edge_count, \
         bytes, attempts, created_at, updated_at, next_attempt_at, ingested_at, last_error"
    };
}

/// The states in which an export still has to reach Glean (the partial indexes' condition,
/// spelled identically so the planner matches them).
macro_rules! unfinished {
    () => {
        "('pending', 'in_flight', 'failed')"
    };
}

/// Row `e` is ready and its graph has no earlier unfinished export.
///
/// Only the oldest unfinished export of a graph can pass, so the ready rows of
/// one snapshot never hold two of one graph. A `failed` row without a retry
/// time or an `in_flight` row without a lease (neither is ever written) counts as due.
macro_rules! ready_and_unblocked {
    () => {
        concat!(
            "e.state IN ",
            unfinished!(),
            "
             AND (e.state = 'pending'
                  OR (e.state = 'failed' AND COALESCE(e.next_attempt_at, '-infinity') <= ",
            now!(),
            ")
                  OR (e.state = 'in_flight' AND COALESCE(e.lease_until, '-infinity') < ",
            now!(),
            "))
             AND (e.graph_key IS NULL OR NOT EXISTS (
                  SELECT 1 FROM exports AS p
                  WHERE p.graph_key = e.graph_key AND p.id < e.id AND p.state IN ",
            unfinished!(),
            "))"
        )
    };
}

/// Locks the ready rows it picks, skipping rows another transaction holds.
/// `$1` = limit; `$extra` narrows the rows (the candidates).
macro_rules! pick {
    ($extra:expr) => {
        concat!(
            "WITH picked AS MATERIALIZED (
                SELECT e.id FROM exports AS e WHERE ",
            ready_and_unblocked!(),
            $extra,
            " ORDER BY e.id LIMIT $1 FOR UPDATE OF e SKIP LOCKED) "
        )
    };
}

/// Makes the picked rows `in_flight` for an owner (`$2`) for `$3` milliseconds, counting the attempt.
/// The picked ids go in as one array, so the rows are found by primary key: an `IN (SELECT ...)`
/// may be planned as a hash join over the whole table.
macro_rules! take {
    () => {
        concat!(
            "UPDATE exports
             SET state = 'in_flight', owner = $2, lease_until = ",
            now!(),
            " + $3 * interval '1 millisecond',
                 attempts = attempts + 1, updated_at = ",
            now!(),
            ", next_attempt_at = NULL
             WHERE id = ANY(ARRAY(SELECT id FROM picked)) RETURNING ",
            columns!()
        )
    };
}

/// `ready` over all rows. Binds: limit.
pub(super) const READY_ALL: &str = concat!("SELECT e.id FROM exports AS e WHERE ", ready_and_unblocked!(), " ORDER BY e.id LIMIT $1");

/// `claim` over all rows. Binds: limit, owner, lease (ms).
pub(super) const CLAIM_ALL: &str = concat!(pick!(""), take!());

/// `claim` among candidates. Binds: limit, owner, lease (ms), ids.
pub(super) const CLAIM_AMONG: &str = concat!(pick!(" AND e.id = ANY($4)"), take!());

/// Takes the per-graph locks of an insert or a version reservation, in the order given
/// (sorted by the caller, so two transactions never wait on each other in a cycle).
/// Binds: lock class, keys (int4[]).
pub(super) const LOCK_GRAPHS: &str = "SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int4[]) AS k";

/// New rows, pending (or dead with a reason), ids drawn in input order. Binds, one array
/// each: batch_file, graph_key, graph_version, content_hash, node_count, edge_count,
/// bytes, db, dead reason, payload.
pub(super) const INSERT: &str = concat!(
    "INSERT INTO exports (state, batch_file, graph_key, graph_version, content_hash, node_count,
                          edge_count, bytes, db, last_error, payload, attempts, created_at, updated_at)
     SELECT CASE WHEN r.dead IS NULL THEN 'pending' ELSE 'dead' END, r.batch_file, r.graph_key,
            r.graph_version, r.content_hash, r.node_count, r.edge_count, r.bytes, r.db, r.dead,
            r.payload, 0, ",
    now!(),
    ", ",
    now!(),
    "
     FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::int8[], $7::int8[],
                 $8::text[], $9::text[], $10::bytea[])
          WITH ORDINALITY AS r(batch_file, graph_key, graph_version, content_hash, node_count,
                               edge_count, bytes, db, dead, payload, n)
     ORDER BY r.n
     RETURNING id"
);

/// The facts new exports carry. Binds: export ids, hashes (parallel arrays).
pub(super) const INSERT_EXPORT_FACTS: &str = "
    INSERT INTO export_facts (export_id, hash)
    SELECT * FROM unnest($1::int8[], $2::bytea[])
    ON CONFLICT DO NOTHING";

/// New exports become their graphs' latest when they carry the reserved version.
/// Binds: export ids, dbs, graph keys, versions (parallel arrays, no (db, key) twice).
pub(super) const LINK_GRAPHS: &str = "
    UPDATE graphs AS g SET export_id = u.id
    FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[]) AS u(id, db, graph_key, version)
    WHERE g.db = u.db AND g.graph_key = u.graph_key AND g.version = u.version";

/// A graph's latest version, and the state of its export. Binds: db, graph_key.
pub(super) const GRAPH_LATEST: &str = "
    SELECT g.version, g.content_hash, g.export_id, e.state
    FROM graphs AS g LEFT JOIN exports AS e ON e.id = g.export_id
    WHERE g.db = $1 AND g.graph_key = $2";

/// Reserves a graph's next version for new content. Binds: db, graph_key, version, content_hash.
pub(super) const GRAPH_RESERVE: &str = "
    INSERT INTO graphs (db, graph_key, version, content_hash, export_id) VALUES ($1, $2, $3, $4, NULL)
    ON CONFLICT (db, graph_key) DO UPDATE SET version = excluded.version,
        content_hash = excluded.content_hash, export_id = NULL";

/// Which of some hashes a database holds. Binds: db, hashes.
pub(super) const KNOWN_FACTS: &str = "SELECT hash FROM known_facts WHERE db = $1 AND hash = ANY($2::bytea[])";

/// Ingested exports' facts become known for their database. Inserted in key order, so two
/// nodes learning overlapping facts at once queue behind each other instead of deadlocking.
/// Binds: ids.
pub(super) const LEARN_FACTS: &str = "
    INSERT INTO known_facts (db, hash)
    SELECT e.db, f.hash FROM export_facts AS f JOIN exports AS e ON e.id = f.export_id
    WHERE f.export_id = ANY($1) AND e.state = 'ingested'
    ORDER BY e.db, f.hash
    ON CONFLICT DO NOTHING";

/// Facts of ingested exports are no longer needed per export. Binds: ids.
pub(super) const FORGET_EXPORT_FACTS: &str = "
    DELETE FROM export_facts AS f USING exports AS e
    WHERE f.export_id = ANY($1) AND e.id = f.export_id AND e.state = 'ingested'";

/// The columns of `Export`, for statements built elsewhere.
pub(super) const COLUMNS: &str = columns!();

/// The server clock expression, for statements built elsewhere.
pub(super) const NOW: &str = now!();

/// One row. Binds: id.
pub(super) const GET: &str = concat!("SELECT ", columns!(), " FROM exports WHERE id = $1");

/// An export's stored payload. Binds: id.
pub(super) const PAYLOAD: &str = "SELECT payload FROM exports WHERE id = $1";

/// The rows of `finish`: ids (`$1`) that `$2` holds in flight. Single-table conditions, so a
/// row changed by a concurrent transaction is checked again on its new version.
macro_rules! held {
    () => {
        " WHERE id = ANY($1) AND state = 'in_flight' AND owner = $2"
    };
}

/// The hold ends with every outcome.
macro_rules! release_hold {
    () => {
        concat!("owner = NULL, lease_until = NULL, updated_at = ", now!())
    };
}

/// `finish` with `Ingested`. Binds: ids, owner.
pub(super) const FINISH_INGESTED: &str =
    concat!("UPDATE exports SET state = 'ingested', ingested_at = ", now!(), ", next_attempt_at = NULL, ", release_hold!(), held!());

/// `finish` with `Retry`. Binds: ids, owner, retry_at, error.
pub(super) const FINISH_RETRY: &str =
    concat!("UPDATE exports SET state = 'failed', next_attempt_at = $3, last_error = $4, ", release_hold!(), held!());

/// `finish` with `Dead`. Binds: ids, owner, error.
pub(super) const FINISH_DEAD: &str =
    concat!("UPDATE exports SET state = 'dead', next_attempt_at = NULL, last_error = $3, ", release_hold!(), held!());

/// `finish` with `Released`: the attempt `claim` counted is taken back. Binds: ids, owner.
pub(super) const FINISH_RELEASED: &str =
    concat!("UPDATE exports SET state = 'pending', attempts = GREATEST(attempts - 1, 0), ", release_hold!(), held!());

/// `finish` with `Postponed`: pending again, the attempt not counted, the reason kept.
/// Binds: ids, owner, error.
pub(super) const FINISH_POSTPONED: &str =
    concat!("UPDATE exports SET state = 'pending', attempts = GREATEST(attempts - 1, 0), last_error = $3, ", release_hold!(), held!());

/// `renew`: the owner's hold on its in-flight rows lasts `lease` from now. Binds: ids, owner, lease (ms).
pub(super) const RENEW: &str =
    concat!("UPDATE exports SET lease_until = ", now!(), " + $3 * interval '1 millisecond', updated_at = ", now!(), held!());

/// `forget_database`: nothing is known to be held by a database created anew. Binds: db.
pub(super) const FORGET_KNOWN_FACTS: &str = "DELETE FROM known_facts WHERE db = $1";

/// `forget_database`: no graph's content is known to be there either, so no re-save is
/// skipped as unchanged (versions keep counting); run only when facts were forgotten. Binds: db.
pub(super) const FORGET_CONTENT: &str = "UPDATE graphs SET content_hash = '' WHERE db = $1";

/// The row of a batch file. Binds: batch_file.
pub(super) const BY_FILE: &str = concat!("SELECT ", columns!(), " FROM exports WHERE batch_file = $1 ORDER BY id LIMIT 1");

/// The row with the highest id.
pub(super) const NEWEST: &str = concat!("SELECT ", columns!(), " FROM exports ORDER BY id DESC LIMIT 1");

/// `recover`: an owner's in-flight rows back to pending, attempts kept. Binds: owner.
pub(super) const RECOVER: &str = concat!(
    "UPDATE exports SET state = 'pending', owner = NULL, lease_until = NULL, updated_at = ",
    now!(),
    " WHERE state = 'in_flight' AND owner = $1"
);

/// `counts`: every node's rows, so the numbers are the cluster's.
pub(super) const COUNTS: &str = "SELECT state, COUNT(*), MIN(created_at) FROM exports GROUP BY state";

/// The stored version of a graph. Binds: graph_key.
pub(super) const STORED_VERSION: &str = "SELECT version FROM glean_graphs WHERE graph_key = $1";

/// Forgets a graph's nodes, before storing its new ones. Binds: graph_key.
pub(super) const DELETE_NODES: &str = "DELETE FROM glean_nodes WHERE graph_key = $1";

/// Forgets a graph's edges. Binds: graph_key.
pub(super) const DELETE_EDGES: &str = "DELETE FROM glean_edges WHERE graph_key = $1";

/// Stores a graph's nodes (first of an id wins, as in `Graph`). Binds: graph_key, nodes (JSONB array of `Node`).
pub(super) const INSERT_NODES: &str = concat!(
    "INSERT INTO glean_nodes (graph_key, id, kind, label, properties, updated_at)
     SELECT $1, n.id, n.kind, n.label, n.properties_json::jsonb, ",
    now!(),
    "
     FROM jsonb_to_recordset($2) AS n(id text, kind text, label text, properties_json text)
     ON CONFLICT DO NOTHING"
);

/// Stores a graph's edges. Binds: graph_key, edges (JSONB array of `Edge`).
pub(super) const INSERT_EDGES: &str = concat!(
    "INSERT INTO glean_edges (graph_key, source, target, label, properties, updated_at)
     SELECT $1, n.source, n.target, n.label, n.properties_json::jsonb, ",
    now!(),
    "
     FROM jsonb_to_recordset($2) AS n(source text, target text, label text, properties_json text)
     ON CONFLICT DO NOTHING"
);

/// Records which version of a graph is stored. Binds: graph_key, version, export id.
pub(super) const UPSERT_GRAPH: &str = concat!(
    "INSERT INTO glean_graphs (graph_key, version, export_id, updated_at) VALUES ($1, $2, $3, ",
    now!(),
    ")
     ON CONFLICT (graph_key) DO UPDATE SET version = excluded.version, export_id = excluded.export_id,
         updated_at = excluded.updated_at"
);

/// A stored graph's header. Binds: graph_key.
pub(super) const STORED_GRAPH: &str = "SELECT version, export_id, updated_at FROM glean_graphs WHERE graph_key = $1";

/// A stored graph's nodes, in byte order of their ids (as SQLite sorts). Binds: graph_key.
pub(super) const STORED_NODES: &str =
    "SELECT id, kind, label, properties::text FROM glean_nodes WHERE graph_key = $1 ORDER BY id COLLATE \"C\"";

/// A stored graph's edges, in byte order. Binds: graph_key.
pub(super) const STORED_EDGES: &str = "
    SELECT source, target, label, properties::text FROM glean_edges WHERE graph_key = $1
    ORDER BY source COLLATE \"C\", target COLLATE \"C\", label COLLATE \"C\"";

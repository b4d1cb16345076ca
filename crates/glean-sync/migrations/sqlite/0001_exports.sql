-- The export ledger: one row per export. The layout, and why each index
-- exists, is documented in src/ledger/sqlite.rs. A shipped migration is never
-- edited (sqlx checks its checksum at open): change the layout in a new file.
--
-- Times are INTEGER unix milliseconds (UTC). `state` holds ExportState::as_str.

CREATE TABLE exports (
    id              INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: ids never reused, so they grow with time
    state           TEXT    NOT NULL
                    CHECK (state IN ('pending', 'in_flight', 'ingested', 'failed', 'dead')),
    batch_file      TEXT    NOT NULL,
    graph_key       TEXT,
    graph_version   INTEGER,
    content_hash    TEXT,
    node_count      INTEGER NOT NULL,
    edge_count      INTEGER NOT NULL,
    bytes           INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    owner           TEXT,    -- the claimer holding an in_flight row; NULL in every other state
    lease_until     INTEGER, -- when that hold expires and the row is claimable again
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    next_attempt_at INTEGER, -- failed rows only: when they are claimable again
    ingested_at     INTEGER,
    last_error      TEXT
) STRICT;

-- Unfinished rows in id order: `ready` and `claim` walk this, never the
-- ingested and dead history that makes up most of the table.
CREATE INDEX exports_unfinished ON exports (id)
    WHERE state IN ('pending', 'in_flight', 'failed');

-- Unfinished rows per graph: "does this graph have an earlier unfinished
-- export?" is one index probe.
CREATE INDEX exports_graph_unfinished ON exports (graph_key, id)
    WHERE state IN ('pending', 'in_flight', 'failed') AND graph_key IS NOT NULL;

-- Rows by state: `counts` reads only this index, `list`/`replay` by state seek in it.
CREATE INDEX exports_state ON exports (state, created_at);

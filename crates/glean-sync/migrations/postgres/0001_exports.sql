-- The export ledger shared by every glean-sync node: one row per export. The
-- layout, why each index exists, and how claims stay correct under
-- concurrency are documented in src/ledger/postgres.rs. A shipped migration
-- is never edited (sqlx checks its checksum at start): change the layout in a
-- new file.
--
-- Times are TIMESTAMPTZ, stamped by the database server's clock at millisecond
-- precision. `state` holds ExportState::as_str.

CREATE TABLE exports (
    -- An identity with the default CACHE 1: values are handed out in call
    -- order across sessions, so ids grow with time (and, per graph, with the
    -- order of commits: see the per-graph insert lock).
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state           TEXT   NOT NULL
                    CHECK (state IN ('pending', 'in_flight', 'ingested', 'failed', 'dead')),
    db              TEXT   NOT NULL DEFAULT '',
    batch_file      TEXT   NOT NULL,
    graph_key       TEXT,
    graph_version   BIGINT,
    content_hash    TEXT,
    node_count      BIGINT NOT NULL,
    edge_count      BIGINT NOT NULL,
    bytes           BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    owner           TEXT,        -- the claimer holding an in_flight row; NULL in every other state
    lease_until     TIMESTAMPTZ, -- when that hold expires and the row is claimable again
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ, -- failed rows only: when they are claimable again
    ingested_at     TIMESTAMPTZ,
    last_error      TEXT,
    payload         BYTEA        -- the batch file's bytes, zstd-compressed; NULL when none was given
);

-- The payload is compressed already: TOAST keeps it out of line but does not
-- compress it a second time.
ALTER TABLE exports ALTER COLUMN payload SET STORAGE EXTERNAL;

-- Unfinished rows in id order: `ready` and `claim` walk this, never the
-- ingested and dead history that makes up most of the table.
CREATE INDEX exports_unfinished ON exports (id)
    WHERE state IN ('pending', 'in_flight', 'failed');

-- Unfinished rows per graph: "does this graph have an earlier unfinished
-- export?" is one index probe.
CREATE INDEX exports_graph_unfinished ON exports (graph_key, id)
    WHERE state IN ('pending', 'in_flight', 'failed') AND graph_key IS NOT NULL;

-- Rows by state: `counts`, and `list`/`replay` by state.
CREATE INDEX exports_state ON exports (state, created_at);

-- The row of a batch file (startup reconciliation).
CREATE INDEX exports_file ON exports (batch_file);

-- In-flight rows per owner: `recover` after a restart.
CREATE INDEX exports_owner ON exports (owner) WHERE state = 'in_flight';

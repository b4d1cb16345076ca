-- Incremental tracking: graph versions and the facts each database holds.

-- The latest version of each graph, per database: its content hash and, once
-- its row exists, its export. A re-save with the same content is skipped.
CREATE TABLE graphs (
    db           TEXT   NOT NULL,
    graph_key    TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    content_hash TEXT   NOT NULL,
    export_id    BIGINT, -- NULL while the save of `version` is under way (or if it failed)
    PRIMARY KEY (db, graph_key)
);

-- Facts an export carries that its database was not known to hold; moved to
-- known_facts when the export is ingested.
CREATE TABLE export_facts (
    export_id BIGINT NOT NULL,
    hash      BYTEA  NOT NULL,
    PRIMARY KEY (export_id, hash)
);

-- Facts each database holds (16-byte hashes of their canonical text): a
-- changed graph's batch carries only the facts not in here.
CREATE TABLE known_facts (
    db   TEXT  NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (db, hash)
);

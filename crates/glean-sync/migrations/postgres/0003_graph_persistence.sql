-- Graph persistence: each keyed graph's current nodes and edges, replaced in the
-- same transaction as the save that carries a newer version (the original
-- architecture's glean_nodes / glean_edges tables).

CREATE TABLE glean_graphs (
    graph_key  TEXT        PRIMARY KEY,
    version    BIGINT,
    export_id  BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE glean_nodes (
    graph_key  TEXT        NOT NULL,
    id         TEXT        NOT NULL,
    kind       TEXT        NOT NULL,
    label      TEXT        NOT NULL,
    properties JSONB,                -- NULL when none
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (graph_key, id)
);

CREATE TABLE glean_edges (
    graph_key  TEXT        NOT NULL,
    source     TEXT        NOT NULL,
    target     TEXT        NOT NULL,
    label      TEXT        NOT NULL,
    properties JSONB,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (graph_key, source, target, label)
);

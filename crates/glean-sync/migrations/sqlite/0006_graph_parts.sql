-- A stored graph's nodes and edges as JSON arrays, in parts of a bounded number of
-- elements, instead of a row per node and per edge. Measured on 50-node graphs, the
-- rows made graph persistence more than half of a save's SQLite work (a B-tree
-- insert per element, and a delete per element on every re-save); a part is one row.
-- `glean_nodes` and `glean_edges` stay queryable with their columns, as views.

CREATE TABLE glean_graph_parts (
    graph_key TEXT    NOT NULL,
    part      INTEGER NOT NULL, -- 0, 1, ...: the graph's elements, in its order, across parts
    nodes     TEXT    NOT NULL, -- JSON array of [id, kind, label, properties]
    edges     TEXT    NOT NULL, -- JSON array of [source, target, label, properties]
    PRIMARY KEY (graph_key, part)
) STRICT, WITHOUT ROWID;

INSERT INTO glean_graph_parts (graph_key, part, nodes, edges)
SELECT g.graph_key, 0,
    (SELECT json_group_array(json_array(n.id, n.kind, n.label, n.properties) ORDER BY n.id)
     FROM glean_nodes AS n WHERE n.graph_key = g.graph_key),
    (SELECT json_group_array(json_array(e.source, e.target, e.label, e.properties) ORDER BY e.source, e.target, e.label)
     FROM glean_edges AS e WHERE e.graph_key = g.graph_key)
FROM glean_graphs AS g;

DROP TABLE glean_nodes;
DROP TABLE glean_edges;

CREATE VIEW glean_nodes AS
SELECT p.graph_key, n.value ->> 0 AS id, n.value ->> 1 AS kind, n.value ->> 2 AS label,
       n.value ->> 3 AS properties, g.updated_at
FROM glean_graph_parts AS p JOIN glean_graphs AS g ON g.graph_key = p.graph_key, json_each(p.nodes) AS n;

CREATE VIEW glean_edges AS
SELECT p.graph_key, e.value ->> 0 AS source, e.value ->> 1 AS target, e.value ->> 2 AS label,
       e.value ->> 3 AS properties, g.updated_at
FROM glean_graph_parts AS p JOIN glean_graphs AS g ON g.graph_key = p.graph_key, json_each(p.edges) AS e;

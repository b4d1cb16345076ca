-- Each export's fact hashes as one blob (sorted 16-byte hashes) instead of one row per
-- fact: a save writes one row and an ingest reads and deletes one, instead of a B-tree
-- operation per fact each time. Rows left in `export_facts` by earlier versions are
-- still learned and deleted when their export is ingested.
CREATE TABLE export_fact_sets (
    export_id INTEGER PRIMARY KEY,
    hashes    BLOB    NOT NULL
) STRICT;

//! glean-catalog: an embedded, Glean-compatible fact catalog.
//!
//! It accepts exactly the JSON batches real Glean accepts and rejects what it
//! rejects, so that (a) users without a Glean server get a working, queryable
//! catalog, (b) every batch glean-sync writes is checked against Glean's rules
//! before it reaches a real Glean, and (c) tests can run `glean write` against
//! a real process (`glean-local`). Stages: `schema` (Angle text to types),
//! `batch` (JSON facts checked against those types), `store` (facts in SQLite,
//! one database per NAME/INSTANCE), `query` (the Angle subset glean-local
//! answers). It knows nothing of graphs or exporting.

pub mod batch;
pub mod query;
pub mod schema;
pub mod store;

//! Integration tests of glean-sync: the real `glean-sync` binary, with
//! `glean-local` (or a fault-injecting wrapper around it) as glean.

#[path = "../../src/test_support.rs"]
mod test_support;

mod cluster;
mod faults;
mod incremental;
mod realtime;
mod service;

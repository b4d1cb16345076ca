//! `glean-sync` command-line entry point (being written).
fn main() {}

//! Integration tests of `glean-local`: the real binary, driven as a user (or glean-sync) drives it.
//!
//! One test binary with a module per area (`cli`, `concurrency`) and the shared helpers in `util`.

mod cli;
mod concurrency;
mod util;

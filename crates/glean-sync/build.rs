//! Build script: rebuild when a migration is added.
//!
//! `sqlx::migrate!` embeds the migration files at compile time but, on stable
//! Rust, cannot tell cargo to watch the directory; without this a new
//! migration file would silently be left out of the binary.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

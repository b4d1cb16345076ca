//! `glean-local`: the embedded catalog behind glean's command-line interface.
//!
//! Thin entry point; the verbs live in `cli`, the catalog in `glean_catalog`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

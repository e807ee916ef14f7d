//! The certification command for this driver: the `session-kit-conformance` command line with
//! this crate's driver registered.
//!
//! `cargo run -p session-example-driver --example certify -- --driver btree --json report.json`

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut registry = session_kit_core::Registry::new();
    session_example_driver::register(&mut registry);
    session_kit_conformance::cli::main(registry)
}

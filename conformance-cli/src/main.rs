//! `session-kit-conformance --driver <config-string> [--json <path>] [--slow] [--check <name>]...`
//!
//! Certifies any driver built into `session-kit`, picked by config string, and exits 0 only
//! when every applicable check passes. A third-party driver gets the same command from
//! `session_kit_conformance::cli::main` with its own registry.

use std::process::ExitCode;

fn main() -> ExitCode {
    session_kit_conformance::cli::main(session_kit::registry())
}

//! The `session-kit-conformance` command line, over any [`Registry`]: certify a driver by config
//! string, print the report, write it as JSON, exit 0 only when every applicable check passed.
//!
//! ```text
//! session-kit-conformance --driver <config-string> [--json <report.json>] [--slow] [--check <name>]...
//! session-kit-conformance --list
//! ```
//!
//! A third-party driver crate gets the same command by registering its driver and calling
//! [`main`] from a binary or an example (see the [crate documentation](crate)).

use std::{collections::BTreeSet, path::PathBuf, process::ExitCode};

use session_kit_core::Registry;

use crate::{Options, checks, run_checks};

const USAGE: &str = "usage: session-kit-conformance --driver <config-string> [--json <report.json>] [--slow] [--check <name>]...\n\
                     \x20      session-kit-conformance --list\n\
                     \n\
                     \x20 --driver <config>  a registered driver name or URL (\"memory\", \"fs:///tmp/s\", ...)\n\
                     \x20 --json <path>      also write the report as JSON\n\
                     \x20 --slow             run checks that wait longer than 5 s (a driver with a long minimum TTL)\n\
                     \x20 --check <name>     run only this check (repeatable)\n\
                     \x20 --list             print every check and what it asserts";

/// Runs the command with the process's arguments. Call it from your `main`:
/// `session_kit_conformance::cli::main(registry)`.
pub fn main(registry: Registry) -> ExitCode {
    run(&registry, std::env::args().skip(1))
}

/// Runs the command with the given arguments (without the program name).
pub fn run(registry: &Registry, args: impl IntoIterator<Item = String>) -> ExitCode {
    let mut args = args.into_iter();
    let (mut driver, mut json, mut options) = (None, None::<PathBuf>, Options::default());
    let mut only = BTreeSet::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--driver" => driver = args.next(),
            "--json" => json = args.next().map(PathBuf::from),
            "--slow" => options.slow = true,
            "--check" => {
                let Some(name) = args.next() else {
                    return usage_error("--check needs a check name");
                };
                if !checks::ALL.iter().any(|c| c.name == name) {
                    return usage_error(&format!("no check named {name:?} (see --list)"));
                }
                only.insert(name);
            }
            "--list" => {
                for check in checks::ALL {
                    println!("{:<42} {}", check.name, check.description);
                }
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage_error(&format!("unknown argument {other:?}")),
        }
    }
    let Some(driver) = driver else {
        return usage_error("--driver is required");
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let opened = match registry.open(&driver).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!(
                    "cannot open driver: {e} (registered drivers: {})",
                    registry.names().join(", ")
                );
                return ExitCode::FAILURE;
            }
        };
        let report = run_checks(opened, &options, |c| {
            only.is_empty() || only.contains(c.name)
        })
        .await;
        print!("{}", report.to_text());
        if let Some(path) = json {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(parent);
            }
            if let Err(e) = std::fs::write(&path, report.to_json()) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("JSON report written to {}", path.display());
        }
        if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("{message}\n{USAGE}");
    ExitCode::from(2)
}

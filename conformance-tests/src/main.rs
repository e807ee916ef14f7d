//! `session-conformance --driver <config-string> [--json <path>] [--slow]`
//!
//! Certifies a driver compiled into `session-kit`, picked by config string, and exits 0 only
//! when every applicable check passes.

use std::{path::PathBuf, process::ExitCode};

use session_conformance::{Options, run_all};

const USAGE: &str = "usage: session-conformance --driver <config-string> [--json <report.json>] [--slow]\n\
                     \x20      session-conformance --list";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut driver, mut json, mut options) = (None, None::<PathBuf>, Options::default());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--driver" => driver = args.next(),
            "--json" => json = args.next().map(PathBuf::from),
            "--slow" => options.slow = true,
            "--list" => {
                for check in session_conformance::checks() {
                    println!("{:<42} {}", check.name, check.description);
                }
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(driver) = driver else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let opened = match session_kit::open(&driver).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("cannot open driver: {e}");
                return ExitCode::FAILURE;
            }
        };
        let report = run_all(opened, &options).await;
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

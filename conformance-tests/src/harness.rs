//! The test harness behind [`conformance_tests!`](crate::conformance_tests): every check as a
//! test of a `cargo test` target with `harness = false`, through `libtest-mimic` (the same
//! command line and output as Rust's own harness).

use std::{future::Future, process::ExitCode, sync::Arc};

use libtest_mimic::{Arguments, Failed, Trial};
use session_kit_core::{Capabilities, Driver, DriverError};

use crate::{Options, Outcome, checks, run_check};

/// Runs every check as a test against a fresh driver from `make` and returns the process's
/// exit code: the `main` of a test target with `harness = false`.
///
/// The driver's capabilities (read from one driver made up front) decide which checks apply:
/// the others are shown as ignored, with the reason printed before the run. Checks ignored only
/// because they are slow run with `--include-ignored` or `--ignored` (or with
/// `SESSION_CONFORMANCE_SLOW=1`, which runs them without asking). Each check runs on its own
/// two-thread Tokio runtime, in parallel with the others like ordinary tests.
///
/// ```no_run
/// use std::sync::Arc;
/// use session_kit_core::Driver;
/// # use session_kit_memory::MemoryDriver as MyDriver;
///
/// fn main() -> std::process::ExitCode {
///     session_kit_conformance::test_main(
///         || async { Ok(Arc::new(MyDriver::new()) as Arc<dyn Driver>) },
///         session_kit_conformance::Options::default(),
///     )
/// }
/// ```
pub fn test_main<F, Fut>(make: F, options: Options) -> ExitCode
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Arc<dyn Driver>, DriverError>>,
{
    let args = Arguments::from_args();
    let make = Arc::new(make);
    let caps = match capabilities(make.as_ref()) {
        Ok(caps) => caps,
        Err(message) => {
            // Every check fails with the reason, rather than the binary failing before it
            // printed anything a reader could act on.
            let trials = checks::ALL
                .iter()
                .map(|check| {
                    let message = message.clone();
                    Trial::test(check.name, move || Err(Failed::from(message)))
                })
                .collect();
            return libtest_mimic::run(&args, trials).exit_code();
        }
    };
    let forced = args.ignored || args.include_ignored;
    let slow = Options {
        slow: true,
        ..options.clone()
    };
    let mut trials = Vec::with_capacity(checks::ALL.len());
    for check in checks::ALL {
        let skip = check.skip_reason(&caps, &options);
        let runs_when_slow = check.skip_reason(&caps, &slow).is_none();
        if let Some(reason) = &skip
            && !args.list
        {
            eprintln!("conformance: {} ignored: {reason}", check.name);
        }
        let run_options = if forced && runs_when_slow {
            slow.clone()
        } else {
            options.clone()
        };
        let make = Arc::clone(&make);
        let trial = Trial::test(check.name, move || {
            run_one(check, make.as_ref(), run_options)
        });
        trials.push(trial.with_ignored_flag(skip.is_some()));
    }
    libtest_mimic::run(&args, trials).exit_code()
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a Tokio runtime: {e}"))
}

fn capabilities<F, Fut>(make: &F) -> Result<Capabilities, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Arc<dyn Driver>, DriverError>>,
{
    runtime()?.block_on(async {
        make()
            .await
            .map(|driver| driver.capabilities().clone())
            .map_err(|e| format!("could not create the driver under test: {e}"))
    })
}

fn run_one<F, Fut>(check: &'static crate::Check, make: &F, options: Options) -> Result<(), Failed>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Arc<dyn Driver>, DriverError>>,
{
    let result = runtime()?.block_on(async {
        let driver = make()
            .await
            .map_err(|e| format!("could not create the driver under test: {e}"))?;
        Ok::<_, String>(run_check(check, driver, &options).await)
    })?;
    match result.outcome {
        Outcome::Passed => Ok(()),
        // Forced with --ignored but not applicable to these capabilities.
        Outcome::Skipped(reason) => {
            println!("conformance check {} does not apply: {reason}", check.name);
            Ok(())
        }
        Outcome::Failed(message) => Err(Failed::from(message)),
    }
}

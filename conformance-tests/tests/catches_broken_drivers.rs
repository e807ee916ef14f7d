//! The suite must fail drivers that get the contract wrong and pass drivers that get it right.
//! Each flaw of the [`model`] driver is one a real backend, emulator or driver has had; each
//! must be caught by the named checks, and the correct model (also with short keys and with
//! reads that never yield) must pass everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model;

use std::{process::ExitCode, sync::Arc, time::Duration};

use model::{Flaw, Model};
use session_kit_conformance::{Options, Outcome, cli, run_all, run_checks};
use session_kit_core::{Driver, Registry};
use session_kit_memory::MemoryDriver;

/// Runs `checks` against a driver with `flaw` and returns those that did not fail.
async fn not_caught(flaw: Flaw, checks: &[&str]) -> Vec<String> {
    let driver = Arc::new(Model::flawed(flaw));
    let report = run_checks(driver, &Options::default(), |c| checks.contains(&c.name)).await;
    assert_eq!(
        report.results.len(),
        checks.len(),
        "unknown check names in {checks:?}"
    );
    report
        .results
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Failed(_)))
        .map(|r| format!("{} ({:?})", r.name, r.outcome))
        .collect()
}

async fn assert_caught(flaw: Flaw, by: &[&str]) {
    let missed = not_caught(flaw, by).await;
    assert!(missed.is_empty(), "{flaw:?} was not caught by: {missed:?}");
}

/// Asserts a timing-dependent defect is caught in `runs` runs out of `runs`.
async fn assert_always_caught(flaw: Flaw, check: &str, runs: usize) {
    let mut missed = 0;
    for _ in 0..runs {
        if !not_caught(flaw, &[check]).await.is_empty() {
            missed += 1;
        }
    }
    assert_eq!(
        missed, 0,
        "{flaw:?} escaped {check} in {missed} of {runs} runs"
    );
}

macro_rules! caught {
    ($($test:ident: $flaw:ident by [$($check:literal),+ $(,)?];)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                assert_caught(Flaw::$flaw, &[$($check),+]).await;
            }
        )*
    };
}

caught! {
    ignoring_create_only: IgnoresCreateOnly by ["create_only", "create_only_race"];
    ignoring_versions: IgnoresVersion by [
        "compare_and_swap",
        "compare_and_swap_race",
        "session_overlapping_commits",
        "session_destroy_beats_concurrent_commit",
    ];
    ignoring_ttl: IgnoresTtl by ["ttl_expires", "expired_entries_are_not_listed", "expired_entries_are_absent"];
    expiring_early: ExpiresEarly by ["ttl_expires", "conditional_writes_expire"];
    coarser_ttl_than_declared: RoundsTtlToSeconds by ["ttl_expires"];
    overflowing_long_ttls: TtlOverflows by ["long_ttls_are_kept", "session_remember_me"];
    conditional_writes_dropping_the_ttl: ConditionalWritesDropTtl by ["conditional_writes_expire"];
    misreporting_the_expiry: MisreportsExpiry by ["ttl_expires", "long_ttls_are_kept"];
    expired_entries_blocking_create_only: ExpiredBlocksCreateOnly by ["expired_entries_are_absent"];
    expired_entries_accepting_conditional_writes: ExpiredAcceptsConditionalWrites by ["expired_entries_are_absent"];
    touch_reviving_expired_entries: TouchRevivesExpired by ["expired_entries_are_absent"];
    lossy_touch: TouchIsLossy by ["touch_extends_expiry"];
    touch_that_only_extends: TouchOnlyExtends by ["touch_shortens_expiry"];
    touch_that_does_nothing: TouchDoesNothing by ["touch_extends_expiry", "session_sliding_expiry"];
    reused_versions: ReusesVersions by ["versions_are_never_reused"];
    truncating_keys_at_nul: TruncatesAtNul by ["control_character_keys"];
    normalising_keys: NormalisesKeys by ["similar_keys_are_distinct"];
    trimming_keys: TrimsKeys by ["keys_are_not_normalised"];
    unicode_normalised_keys: NormalisesUnicode by ["keys_are_not_normalised"];
    stripping_trailing_slashes: StripsTrailingSlash by ["keys_are_not_normalised"];
    dropping_url_suffixes: DropsUrlSuffix by ["keys_are_not_normalised"];
    truncating_long_keys: TruncatesLongKeys by ["long_keys_differ_at_the_end"];
    hashing_a_key_prefix: HashesKeyPrefix by ["long_keys_differ_at_the_end"];
    rejecting_incompressible_keys: RejectsIncompressibleKeys by ["random_keys_at_max_length"];
    corrupting_values: LosesLastByte by ["put_get_round_trip", "binary_values_round_trip", "large_values"];
    trimming_values: TrimsValues by ["values_are_stored_verbatim"];
    normalising_json_values: NormalisesJson by ["values_are_stored_verbatim"];
    scrambling_large_values: ScramblesLargeValues by ["large_values"];
    stale_reads_after_delete: StaleReplicaAfterDelete by ["deletes_are_final", "session_logout_replay"];
    deletes_that_expire: SoftDeleteExpires by ["deletes_are_final", "session_logout_replay"];
    listing_by_substring: ListContains by ["list_by_prefix"];
    later_pages_forgetting_the_prefix: ListLaterPagesForgetPrefix by ["list_pages"];
    clear_ignoring_the_separator: ClearIgnoresSeparator by ["prefixes_end_where_they_say"];
    like_wildcards_in_prefixes: LikePrefix by ["wildcards_in_prefixes_are_literal"];
    glob_wildcards_in_prefixes: GlobPrefix by ["wildcards_in_prefixes_are_literal"];
    update_only_missing_the_read_cache: UpdateOnlyMissesReadCache by ["random_operations_match_a_model"];
    compare_and_swap_that_always_conflicts: CompareAndSwapAlwaysConflicts by ["compare_and_swap", "compare_and_swap_race"];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_path_that_misses_the_read_cache_is_caught_every_time() {
    let check = "random_operations_match_a_model";
    assert_always_caught(Flaw::UpdateOnlyMissesReadCache, check, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_then_write_create_only_is_caught_every_time() {
    assert_always_caught(Flaw::CheckThenWriteCreateOnly, "create_only_race", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_then_write_compare_and_swap_is_caught_every_time() {
    assert_always_caught(
        Flaw::CheckThenWriteCompareAndSwap,
        "compare_and_swap_race",
        20,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_writes_are_caught_every_time() {
    assert_always_caught(Flaw::TornWrites, "reads_never_see_torn_writes", 20).await;
}

/// Also on one thread, where only the suite's own yields let readers and writers interleave.
#[tokio::test(flavor = "current_thread")]
async fn races_are_caught_on_one_thread() {
    assert_always_caught(Flaw::CheckThenWriteCreateOnly, "create_only_race", 5).await;
    assert_always_caught(Flaw::TornWrites, "reads_never_see_torn_writes", 5).await;
}

/// A raw driver that answers an operation it does not declare is harmless as users get it:
/// the validate layer refuses the operation before it reaches the driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_operation_is_refused_by_the_validate_layer() {
    let report = run_checks(
        Arc::new(Model::flawed(Flaw::PretendsToTouch)),
        &Options::default(),
        |c| c.name == "touch_unsupported_is_rejected",
    )
    .await;
    assert!(report.passed(), "{}", report.to_text());
    assert_eq!(report.layers, ["trace", "validate"]);
}

async fn certified(driver: Model) {
    let report = run_all(Arc::new(driver), &Options::default()).await;
    assert!(report.passed(), "{}", report.to_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correct_model_is_certified() {
    certified(Model::correct()).await;
}

/// Session keys under the default namespace are 72 bytes: a driver that holds exactly those
/// must pass every check, session checks included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_with_72_byte_keys_is_certified() {
    certified(Model::correct().max_key_len(72)).await;
}

/// A correct driver whose first reads stall past the checks' 450 ms TTL (a loaded CI
/// machine) is certified: each check whose key expired before the step that needed it
/// retries with a doubled TTL instead of failing (CI once failed PostgreSQL so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_driver_whose_first_reads_stall_past_the_ttl_is_certified() {
    for check in [
        "conditional_writes_expire",
        "touch_extends_expiry",
        "ttl_expires",
        "touch_shortens_expiry",
    ] {
        // One stalled read per concurrent run of the check (one per write mode).
        let driver = Model::correct().stalls_first_reads(4, Duration::from_millis(600));
        let report = run_checks(Arc::new(driver), &Options::default(), |c| c.name == check).await;
        assert_eq!(report.results.len(), 1, "{check}");
        assert!(report.passed(), "{check}: {}", report.to_text());
    }
}

/// The suite spawned inside a task of a two-thread runtime, against a driver whose operations
/// never yield: loops that spin on such reads would hold both threads forever.
#[test]
fn a_driver_whose_reads_never_yield_is_certified_without_hanging() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(async {
        let task = tokio::spawn(async {
            run_all(
                Arc::new(Model::correct().yields(false)),
                &Options::default(),
            )
            .await
        });
        tokio::time::timeout(Duration::from_secs(300), task)
            .await
            .expect("the suite hung")
            .unwrap()
    });
    assert!(report.passed(), "{}", report.to_text());
}

#[tokio::test]
async fn the_report_lists_every_check_with_text_and_json() {
    let report = run_all(Arc::new(MemoryDriver::new()), &Options::default()).await;
    assert!(report.passed(), "{}", report.to_text());
    let text = report.to_text();
    assert!(text.contains("Conformance report for driver `memory`"));
    let (passed, failed, skipped) = report.counts();
    assert_eq!(
        passed + failed + skipped,
        session_kit_conformance::check_names().len()
    );
    assert!(
        text.lines()
            .any(|l| l == format!("conformance: {passed} passed, 0 failed, {skipped} skipped"))
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["driver"], "memory");
    assert_eq!(json["capabilities"]["compare_and_swap"], true);
    assert_eq!(
        json["results"].as_array().unwrap().len(),
        session_kit_conformance::check_names().len()
    );
    // A driver without the capability sees the check skipped, with the reason.
    let skipped_reason = json["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "touch_unsupported_is_rejected")
        .unwrap();
    assert_eq!(skipped_reason["status"], "skipped");
    assert!(
        skipped_reason["detail"]
            .as_str()
            .unwrap()
            .contains("declares touch")
    );
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register("model", |_| async {
        Ok(Arc::new(Model::correct()) as Arc<dyn Driver>)
    });
    registry.register("model-reusing-versions", |_| async {
        Ok(Arc::new(Model::flawed(Flaw::ReusesVersions)) as Arc<dyn Driver>)
    });
    registry
}

fn cli(args: &[&str]) -> ExitCode {
    // The command starts its own runtime: run it off the test's.
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    std::thread::spawn(move || cli::run(&registry(), args))
        .join()
        .unwrap()
}

#[test]
fn the_command_line_certifies_a_driver_from_any_registry() {
    let dir = std::env::temp_dir().join(format!("conformance-cli-{}", std::process::id()));
    let json = dir.join("report.json");
    let json_arg = json.to_str().unwrap();
    assert_eq!(
        cli(&["--driver", "model", "--json", json_arg]),
        ExitCode::SUCCESS
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["driver"], "model");
    assert_eq!(
        report["results"].as_array().unwrap().len(),
        session_kit_conformance::check_names().len()
    );
    // One check, against a flawed driver: the exit code says it failed.
    assert_eq!(
        cli(&[
            "--driver",
            "model-reusing-versions",
            "--check",
            "versions_are_never_reused"
        ]),
        ExitCode::FAILURE
    );
    assert_eq!(
        cli(&["--driver", "model", "--check", "versions_are_never_reused"]),
        ExitCode::SUCCESS
    );
    // Usage errors exit 2; an unknown driver is a failure that names the registered ones.
    assert_eq!(
        cli(&["--driver", "model", "--check", "no_such_check"]),
        ExitCode::from(2)
    );
    assert_eq!(cli(&["--frobnicate"]), ExitCode::from(2));
    assert_eq!(cli(&[]), ExitCode::from(2));
    assert_eq!(cli(&["--driver", "nope://x"]), ExitCode::FAILURE);
    assert_eq!(cli(&["--list"]), ExitCode::SUCCESS);
    let _ = std::fs::remove_dir_all(dir);
}

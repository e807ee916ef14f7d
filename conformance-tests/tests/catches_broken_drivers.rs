//! The suite must fail drivers that lie about what they do: each flaw below is one a real
//! backend or emulator has had, and each must be caught by the named checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use session_conformance::{Options, run_all};
use session_core::{
    Capabilities, Driver, DriverError, Entry, ListPage, PutOptions, Version, WriteMode,
    async_trait, bytes::Bytes,
};
use session_driver_memory::MemoryDriver;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Flaw {
    /// Declares create-only, writes anyway (s3rver and `If-None-Match`).
    IgnoresCreateOnly,
    /// Declares compare-and-swap, ignores the version.
    IgnoresVersion,
    /// Declares TTL, drops it (unstorage drivers that ignore `ttl`).
    IgnoresTtl,
    /// Cuts keys at the first NUL (C strings).
    TruncatesAtNul,
    /// Normalises keys (unstorage turns `/` into `:`).
    NormalisesKeys,
    /// Declares no touch but answers it with success.
    PretendsToTouch,
    /// Returns a value with a trailing byte dropped.
    LosesLastByte,
}

struct Flawed {
    inner: MemoryDriver,
    flaw: Flaw,
    caps: Capabilities,
}

impl Flawed {
    fn new(flaw: Flaw) -> Self {
        let inner = MemoryDriver::new();
        let mut caps = inner.capabilities().clone();
        if flaw == Flaw::PretendsToTouch {
            caps.touch = false;
        }
        Self { inner, flaw, caps }
    }

    fn key(&self, key: &str) -> String {
        match self.flaw {
            Flaw::TruncatesAtNul => key.split('\0').next().unwrap_or_default().to_owned(),
            Flaw::NormalisesKeys => key.replace('/', ":").to_lowercase(),
            _ => key.to_owned(),
        }
    }
}

#[async_trait]
impl Driver for Flawed {
    fn name(&self) -> &str {
        "flawed"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let mut entry = self.inner.get(&self.key(key)).await?;
        if let (Flaw::LosesLastByte, Some(e)) = (self.flaw, entry.as_mut())
            && e.value.len() > 1
        {
            e.value = e.value.slice(..e.value.len() - 1);
        }
        Ok(entry)
    }
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        mut options: PutOptions,
    ) -> Result<Version, DriverError> {
        match (self.flaw, &options.mode) {
            (Flaw::IgnoresCreateOnly, WriteMode::CreateOnly)
            | (Flaw::IgnoresVersion, WriteMode::IfVersion(_)) => {
                options.mode = WriteMode::Overwrite;
            }
            _ => {}
        }
        if self.flaw == Flaw::IgnoresTtl {
            options.ttl = None;
        }
        self.inner.put(&self.key(key), value, options).await
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.inner.delete(&self.key(key)).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        self.inner.touch(&self.key(key), ttl).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        self.inner.list(&self.key(prefix), cursor).await
    }
}

async fn failures(flaw: Flaw) -> Vec<&'static str> {
    let report = run_all(Arc::new(Flawed::new(flaw)), &Options::default()).await;
    assert!(!report.passed(), "{flaw:?} passed:\n{}", report.to_text());
    report.failed()
}

async fn assert_caught(flaw: Flaw, by: &[&str]) {
    let failed = failures(flaw).await;
    for check in by {
        assert!(
            failed.contains(check),
            "{flaw:?} was not caught by {check}; failed: {failed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_create_only_is_caught() {
    assert_caught(
        Flaw::IgnoresCreateOnly,
        &["create_only", "create_only_race"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_versions_is_caught() {
    assert_caught(
        Flaw::IgnoresVersion,
        &[
            "compare_and_swap",
            "compare_and_swap_race",
            "session_overlapping_commits",
            "session_destroy_beats_concurrent_commit",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_ttl_is_caught() {
    assert_caught(
        Flaw::IgnoresTtl,
        &["ttl_expires", "expired_entries_are_not_listed"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncating_keys_is_caught() {
    assert_caught(Flaw::TruncatesAtNul, &["control_character_keys"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normalising_keys_is_caught() {
    assert_caught(Flaw::NormalisesKeys, &["similar_keys_are_distinct"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_an_undeclared_operation_is_caught() {
    assert_caught(Flaw::PretendsToTouch, &["touch_unsupported_is_rejected"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupting_values_is_caught() {
    assert_caught(
        Flaw::LosesLastByte,
        &[
            "put_get_round_trip",
            "binary_values_round_trip",
            "large_values",
        ],
    )
    .await;
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
        session_conformance::check_names().len()
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
        session_conformance::check_names().len()
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

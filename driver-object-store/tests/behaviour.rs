//! What the object_store driver does beyond the conformance suite: stores without some put
//! modes, sweeping, expired objects under create-only, and a server that ignores conditions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use object_store::{ObjectStore, aws::AmazonS3Builder, local::LocalFileSystem, memory::InMemory};
use session_kit_conformance::{Options, Outcome, run_all};
use session_kit_core::{
    Driver, ErrorKind, PutOptions, WriteMode, bytes::Bytes, layers::with_defaults,
};
use session_kit_object_store::{ConditionalWrites, ObjectStoreDriver};
use session_test_support::{HttpProxy, ProxyMode, moto};

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// The driver as users get it: in its layers (expiry, sweeping, timeouts).
fn layered(driver: ObjectStoreDriver) -> Arc<dyn Driver> {
    with_defaults(Arc::new(driver))
}

#[tokio::test]
async fn a_store_without_update_answers_unsupported_not_an_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    // Declared (wrongly) as supporting compare-and-swap: the store's NotImplemented surfaces.
    let driver = layered(ObjectStoreDriver::builder(Arc::new(store)).build());
    let v = driver.put("k", b("one"), PutOptions::new()).await.unwrap();
    let e = driver
        .put(
            "k",
            b("two"),
            PutOptions::new().mode(WriteMode::IfVersion(v)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_eq!(driver.get("k").await.unwrap().unwrap().value, "one");
    // Create-only works on local files.
    let create = PutOptions::new().mode(WriteMode::CreateOnly);
    let e = driver
        .put("k", b("three"), create.clone())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    driver.put("new", b("x"), create).await.unwrap();
}

#[tokio::test]
async fn declared_create_only_stores_skip_cas_with_a_reason() {
    let driver = layered(
        ObjectStoreDriver::builder(Arc::new(InMemory::new()))
            .conditional_writes(ConditionalWrites::CreateOnly)
            .build(),
    );
    assert!(driver.capabilities().last_write_wins());
    let report = run_all(driver, &Options::default()).await;
    assert!(report.passed(), "{}", report.to_text());
    let cas = report
        .results
        .iter()
        .find(|r| r.name == "compare_and_swap")
        .unwrap();
    assert!(
        matches!(&cas.outcome, Outcome::Skipped(reason) if reason.contains("compare-and-swap")),
        "{:?}",
        cas.outcome
    );
}

#[tokio::test]
async fn sweep_deletes_expired_objects_only() {
    let store = Arc::new(InMemory::new());
    let driver = layered(ObjectStoreDriver::builder(store.clone()).build());
    assert_eq!(
        driver.layers(),
        ["trace", "validate", "expiry", "timeout"],
        "what users get"
    );
    // Long enough that the 1,500 puts below finish before the first of them
    // expires, even in a debug build on a loaded two-core CI machine.
    let ttl = Duration::from_secs(3);
    let short = PutOptions::new().ttl(ttl);
    let started = Instant::now();
    for i in 0..1500 {
        driver
            .put(&format!("old/{i}"), b("x"), short.clone())
            .await
            .unwrap();
    }
    let last_short_put = Instant::now();
    for i in 0..5 {
        driver
            .put(&format!("keep/{i}"), b("y"), PutOptions::new())
            .await
            .unwrap();
    }
    assert_eq!(
        driver.sweep().await.unwrap(),
        0,
        "nothing has expired yet ({:?} after the first put)",
        started.elapsed()
    );
    tokio::time::sleep_until((last_short_put + ttl + Duration::from_millis(50)).into()).await;
    assert!(driver.list("old/", None).await.unwrap().keys.is_empty());
    assert_eq!(driver.sweep().await.unwrap(), 1500, "more than one page");
    assert_eq!(driver.sweep().await.unwrap(), 0);
    let left = store.list(None).collect::<Vec<_>>().await;
    assert_eq!(left.len(), 5);
}

#[tokio::test]
async fn the_builder_s_sweep_interval_sweeps_in_the_background() {
    let store = Arc::new(InMemory::new());
    let driver = layered(
        ObjectStoreDriver::builder(store.clone())
            .sweep_interval(Duration::from_millis(40))
            .build(),
    );
    assert!(driver.layers().contains(&"sweep"), "{:?}", driver.layers());
    let short = PutOptions::new().ttl(Duration::from_millis(10));
    driver.put("gone", b("x"), short).await.unwrap();
    driver.put("kept", b("y"), PutOptions::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left: Vec<_> = store.list(None).collect().await;
    assert_eq!(
        left.len(),
        1,
        "the expired object is deleted, the other kept"
    );
}

#[tokio::test]
async fn expired_objects_do_not_block_create_only() {
    for conditional in [
        ConditionalWrites::CreateAndUpdate,
        ConditionalWrites::CreateOnly,
    ] {
        let driver = layered(
            ObjectStoreDriver::builder(Arc::new(InMemory::new()))
                .conditional_writes(conditional)
                .build(),
        );
        driver
            .put(
                "k",
                b("old"),
                PutOptions::new().ttl(Duration::from_millis(50)),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        let create = PutOptions::new().mode(WriteMode::CreateOnly);
        driver.put("k", b("new"), create.clone()).await.unwrap();
        assert_eq!(driver.get("k").await.unwrap().unwrap().value, "new");
        let e = driver.put("k", b("again"), create).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{conditional:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_server_that_ignores_conditions_fails_certification() {
    let moto = moto();
    let proxy = HttpProxy::start(moto.port);
    let store = AmazonS3Builder::new()
        .with_bucket_name(moto.bucket())
        .with_endpoint(format!("http://127.0.0.1:{}", proxy.port))
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let driver = ObjectStoreDriver::builder(Arc::new(store)).build();
    proxy.set_mode(ProxyMode::StripConditions);
    let report = run_all(Arc::new(driver), &Options::default()).await;
    let failed = report.failed();
    for check in [
        "create_only",
        "create_only_race",
        "compare_and_swap",
        "compare_and_swap_race",
    ] {
        assert!(
            failed.contains(&check),
            "{check} passed; failed: {failed:?}"
        );
    }
}

#[tokio::test]
async fn debug_names_the_store_not_its_credentials() {
    let store = AmazonS3Builder::new()
        .with_bucket_name("b")
        .with_region("us-east-1")
        .with_access_key_id("AKIDEXAMPLE")
        .with_secret_access_key("wJalrXUtnFEMIsecret")
        .build()
        .unwrap();
    let driver = ObjectStoreDriver::builder(Arc::new(store)).build();
    let shown = format!("{driver:?}");
    assert!(shown.contains("AmazonS3"), "{shown}");
    assert!(!shown.contains("wJalrXUtnFEMIsecret"), "{shown}");
}

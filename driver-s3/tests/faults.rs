//! The S3 driver against a broken or misconfigured server: errors come back typed, bounded in
//! time and with the right retry hint, and the conformance suite catches a server that
//! ignores conditional writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use session_kit_conformance::{Options, run_all};
use session_kit_core::{
    Driver, DriverConfig, ErrorKind, PutOptions, Registry, WriteMode, bytes::Bytes,
};
use session_kit_s3::{S3Config, S3Driver};
use session_test_support::{HttpProxy, ProxyMode, free_port};

/// A driver that reaches moto through a proxy the test controls.
async fn proxied(max_attempts: u64) -> (S3Driver, HttpProxy) {
    let moto = common::moto();
    let proxy = HttpProxy::start(moto.port);
    let mut config = common::config();
    config.endpoint = Some(format!("http://127.0.0.1:{}", proxy.port));
    config.max_attempts = Some(max_attempts);
    (S3Driver::connect(config).await.unwrap(), proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_conditions_fails_certification() {
    let (driver, proxy) = proxied(3).await;
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
            "{check} passed against a server that ignores If-None-Match/If-Match; failed: {failed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_then_retryable() {
    let (driver, proxy) = proxied(3).await;
    // Retries are the retry layer's, which the driver asks for.
    let driver = session_kit_core::layers::with_defaults(Arc::new(driver));
    driver
        .put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();

    proxy.set_mode(ProxyMode::Respond(503));
    let before = proxy.requests();
    let e = driver.get("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable(), "{e}");
    assert_eq!(proxy.requests() - before, 3, "max_attempts = 3");
    assert!(e.to_string().contains("503"), "{e}");

    // A conditional write is never sent twice: the first may have been applied.
    let before = proxy.requests();
    let e = driver
        .put(
            "k",
            Bytes::from_static(b"w"),
            PutOptions::new().mode(WriteMode::CreateOnly),
        )
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(proxy.requests() - before, 1, "create-only is not retried");

    proxy.set_mode(ProxyMode::Respond(403));
    let before = proxy.requests();
    let e = driver.get("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(!e.is_retryable());
    assert_eq!(proxy.requests() - before, 1, "a 403 is not retried");

    proxy.set_mode(ProxyMode::Respond(412));
    let e = driver
        .put(
            "k",
            Bytes::from_static(b"w"),
            PutOptions::new().mode(WriteMode::IfVersion(session_kit_core::Version::new(
                "\"x\"",
            ))),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");

    proxy.set_mode(ProxyMode::Forward);
    assert_eq!(driver.get("k").await.unwrap().unwrap().value, "v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_fast_and_retryable() {
    let mut config = common::config();
    config.endpoint = Some(format!("http://127.0.0.1:{}", free_port()));
    config.operation_timeout = Some(Duration::from_secs(2));
    let started = Instant::now();
    let e = S3Driver::connect(config).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    // The cause is kept for the logs: what the connection attempt met.
    let mut chain = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        chain.push_str(&format!(": {c}"));
        cause = c.source();
    }
    assert!(chain.to_lowercase().contains("refused"), "{chain}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_a_config_error() {
    let mut config = common::config();
    config.bucket = "no-such-bucket-here".into();
    let e = S3Driver::connect(config).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");

    // Missing credentials (with the environment's fallbacks) are unit-tested in the crate.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_deletes_expired_objects_only() {
    let driver = S3Driver::connect(common::config()).await.unwrap();
    // Long enough that the 36 puts below (tens of milliseconds each on a loaded
    // two-core CI machine) finish well before the first of them expires.
    let ttl = Duration::from_secs(5);
    let short = PutOptions::new().ttl(ttl);
    let started = Instant::now();
    for i in 0..30 {
        driver
            .put(&format!("old/{i}"), Bytes::from_static(b"x"), short.clone())
            .await
            .unwrap();
    }
    let last_short_put = Instant::now();
    for i in 0..5 {
        driver
            .put(
                &format!("keep/{i}"),
                Bytes::from_static(b"y"),
                PutOptions::new(),
            )
            .await
            .unwrap();
    }
    driver
        .put(
            "long",
            Bytes::from_static(b"z"),
            PutOptions::new().ttl(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    assert_eq!(
        driver.sweep().await.unwrap(),
        0,
        "nothing has expired yet ({:?} after the first put)",
        started.elapsed()
    );
    tokio::time::sleep_until((last_short_put + ttl + Duration::from_millis(100)).into()).await;
    assert_eq!(
        driver.list("old/", None).await.unwrap().keys.len(),
        0,
        "expired keys are not listed"
    );
    assert_eq!(driver.sweep().await.unwrap(), 30);
    assert_eq!(driver.sweep().await.unwrap(), 0);
    assert_eq!(driver.list("", None).await.unwrap().keys.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_objects_do_not_block_create_only() {
    let driver = S3Driver::connect(common::config()).await.unwrap();
    let short = PutOptions::new().ttl(Duration::from_millis(200));
    driver
        .put("k", Bytes::from_static(b"old"), short)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let create = PutOptions::new().mode(WriteMode::CreateOnly);
    driver
        .put("k", Bytes::from_static(b"new"), create.clone())
        .await
        .unwrap();
    assert_eq!(driver.get("k").await.unwrap().unwrap().value, "new");
    let e = driver
        .put("k", Bytes::from_static(b"again"), create)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectable_by_config_string() {
    let moto = common::moto();
    let bucket = moto.bucket();
    let mut registry = Registry::new();
    session_kit_s3::register(&mut registry);
    let url = format!(
        "s3://{bucket}/app/sessions/?endpoint={}&region=eu-west-1&access_key_id=test&secret_access_key=s3cr3t-value",
        moto.endpoint()
    );
    let config = DriverConfig::parse(&url).unwrap();
    assert!(!config.redacted().contains("s3cr3t-value"));
    let driver = registry.open(&url).await.unwrap();
    assert_eq!(driver.name(), "s3");
    driver
        .put("a", Bytes::from_static(b"1"), PutOptions::new())
        .await
        .unwrap();
    // The object sits under the prefix from the URL.
    let (status, body) = session_test_support::http_request(
        moto.port,
        "GET",
        &format!("/{bucket}?list-type=2&prefix=app/sessions/"),
        b"",
    );
    assert_eq!(status, 200);
    assert!(body.contains("<Key>app/sessions/a</Key>"), "{body}");
    let config = S3Config::from_driver_config(&config).unwrap();
    assert!(!format!("{config:?}").contains("s3cr3t-value"));
}

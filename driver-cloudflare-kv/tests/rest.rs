//! The REST driver against the KV API Worker on Miniflare: configuration errors, outages,
//! retries, and the expiry KV itself reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use session_kit_cloudflare_kv::{CloudflareKvDriver, MIN_TTL};
use session_kit_core::{Driver, ErrorKind, PutOptions, Registry, bytes::Bytes, layers::Stack};
use session_test_support::{HttpProxy, ProxyMode, free_port, http_exchange};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn kv_reports_the_rounded_up_expiry() {
    let mf = common::miniflare_rest();
    let mut config = mf.config();
    config.prefix = format!("expiry-{}:", rand_suffix());
    // As users get it (its retries included): the validate layer rounds the short TTL up to
    // KV's minimum.
    let driver = CloudflareKvDriver::connect(config.clone()).await.unwrap();
    let driver = Stack::from_options(&driver.layer_defaults())
        .unwrap()
        .apply(Arc::new(driver));
    let before = now_secs();
    driver
        .put(
            "short",
            Bytes::from_static(b"v"),
            PutOptions::new().ttl(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    driver
        .put(
            "hour",
            Bytes::from_static(b"v"),
            PutOptions::new().ttl(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    driver
        .put("forever", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();

    // What KV itself says, through the REST listing.
    let response = http_exchange(
        mf.port,
        "GET",
        &format!(
            "/client/v4/accounts/{}/storage/kv/namespaces/{}/keys?prefix=expiry",
            common::ACCOUNT,
            common::NAMESPACE
        ),
        &[("authorization", &format!("Bearer {}", common::TOKEN))],
        b"",
    );
    let listing: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    let expiration = |suffix: &str| {
        listing["result"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"].as_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} not listed: {listing}"))["expiration"]
            .as_u64()
    };
    let short = expiration("short").expect("a TTL reaches KV");
    assert!(
        short >= before + MIN_TTL.as_secs() && short <= now_secs() + MIN_TTL.as_secs() + 1,
        "5 s is rounded up to KV's 60 s minimum: expires at {short}, wrote at {before}"
    );
    let hour = expiration("hour").unwrap();
    assert!(hour >= before + 3600 && hour <= now_secs() + 3601, "{hour}");
    assert_eq!(expiration("forever"), None);

    // The driver reports the same deadline it enforces.
    let entry = driver.get("short").await.unwrap().unwrap();
    let at = entry
        .expires_at
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(at >= before + 60 && at <= short, "{at} vs KV's {short}");
}

#[tokio::test]
async fn wrong_token_or_namespace_is_a_config_error() {
    let mf = common::miniflare_rest();
    let mut config = mf.config();
    config.api_token = Some("wrong-token-value".into());
    let e = CloudflareKvDriver::connect(config).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("10000"), "{e}");
    assert!(!e.to_string().contains("wrong-token-value"), "{e}");

    let mut config = mf.config();
    config.namespace_id = "no-such-namespace".into();
    let e = CloudflareKvDriver::connect(config).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    // A missing token (and its environment fallback) is unit-tested in the crate.
}

#[tokio::test]
async fn outages_are_retried_then_retryable() {
    let mf = common::miniflare_rest();
    let proxy = HttpProxy::start(mf.port);
    let mut config = mf.config();
    config.base_url = Some(format!("http://127.0.0.1:{}/client/v4", proxy.port));
    config.max_attempts = Some(3);
    let driver = CloudflareKvDriver::connect(config).await.unwrap();
    // The retries are a layer the driver asks for: as SessionStorage and the registry apply it.
    assert_eq!(driver.layer_defaults().retries, Some(2));
    let driver = Stack::from_options(&driver.layer_defaults())
        .unwrap()
        .apply(Arc::new(driver));
    assert_eq!(driver.layers(), ["trace", "validate", "retry"]);
    driver
        .put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();

    proxy.set_mode(ProxyMode::Respond(503));
    let before = proxy.requests();
    let e = driver.get("k").await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(proxy.requests() - before, 3, "max_attempts = 3");

    // Throttled with a Retry-After longer than the retry layer waits: no retry, and the wait
    // goes back to the caller (a 503's Retry-After in the integrations).
    proxy.set_mode(ProxyMode::Throttle(7));
    let before = proxy.requests();
    let e = driver.get("k").await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)), "{e}");
    assert_eq!(
        proxy.requests() - before,
        1,
        "not retried sooner than asked"
    );

    proxy.set_mode(ProxyMode::Forward);
    assert_eq!(driver.get("k").await.unwrap().unwrap().value, "v");

    // Nothing listening at all: fails fast, retryable.
    let mut config = mf.config();
    config.base_url = Some(format!("http://127.0.0.1:{}/client/v4", free_port()));
    let started = Instant::now();
    let e = CloudflareKvDriver::connect(config).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn selectable_by_config_string() {
    let mf = common::miniflare_rest();
    let mut registry = Registry::new();
    session_kit_cloudflare_kv::register(&mut registry);
    let url = format!(
        "cloudflare-kv://{}/{}?api_token={}&base_url={}&prefix=app:",
        common::ACCOUNT,
        common::NAMESPACE,
        common::TOKEN,
        mf.base_url()
    );
    let driver = registry.open(&url).await.unwrap();
    assert_eq!(driver.name(), "cloudflare-kv");
    let caps = driver.capabilities();
    assert!(caps.last_write_wins() && !caps.create_only && !caps.touch);
    driver
        .put("x", Bytes::from_static(b"1"), PutOptions::new())
        .await
        .unwrap();
    assert_eq!(driver.list("", None).await.unwrap().keys, ["x"]);
}

fn rand_suffix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

//! Listing pages through `SCAN` cursors: a keyspace larger than a page comes back over several
//! bounded pages, each key once, on one server and on a cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use session_kit_core::{Driver, PutOptions, bytes::Bytes};
use session_kit_redis::{RedisConfig, RedisDriver};

const KEYS: usize = 2500;

async fn pages_are_bounded(driver: RedisDriver) {
    let prefix = format!("listing-{}/", rand_suffix());
    for i in 0..KEYS {
        driver
            .put(&format!("{prefix}{i:05}"), Bytes::new(), PutOptions::new())
            .await
            .unwrap();
    }
    let (mut seen, mut pages, mut largest) = (HashSet::new(), 0, 0);
    let mut cursor: Option<String> = None;
    loop {
        let page = driver.list(&prefix, cursor.as_deref()).await.unwrap();
        pages += 1;
        largest = largest.max(page.keys.len());
        for key in page.keys {
            assert!(key.starts_with(&prefix), "{key}");
            seen.insert(key);
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), KEYS);
    // One page is one stretch of SCAN steps of COUNT 1000: never the whole keyspace.
    assert!(pages >= 2, "{KEYS} keys in {pages} page");
    assert!(largest < 2000, "a page of {largest} keys");
    // A cursor this driver did not hand out is refused, not treated as the start.
    assert!(driver.list(&prefix, Some("not a cursor")).await.is_err());
    driver.clear(&prefix).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_listing_comes_back_in_bounded_pages() {
    let driver = RedisDriver::connect(RedisConfig::new(common::shared().url()))
        .await
        .unwrap();
    pages_are_bounded(driver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_cluster_listing_comes_back_in_bounded_pages_node_by_node() {
    let mut config = RedisConfig::new(common::shared_cluster().url());
    config.cluster = true;
    pages_are_bounded(RedisDriver::connect(config).await.unwrap()).await;
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

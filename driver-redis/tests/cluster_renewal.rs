//! How often the driver renews a Redis Cluster connection while the whole cluster is down: at
//! most one attempt per `RENEW_EVERY` (1 s), however many commands fail meanwhile.
//!
//! Its own test binary: it installs a process-wide `tracing` subscriber that counts the
//! renewal's events, which a test running beside it on another cluster would add to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use session_kit_core::Driver;
use session_kit_redis::{RedisConfig, RedisDriver};
use tracing::field::{Field, Visit};
use tracing_subscriber::{Layer, layer::Context, prelude::*};

/// Counts the events whose message starts with one of the renewal's outcomes.
#[derive(Clone, Default)]
struct Renewals {
    failed: Arc<AtomicUsize>,
    succeeded: Arc<AtomicUsize>,
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Renewals {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        if message.0.starts_with("Redis Cluster still unreachable") {
            self.failed.fetch_add(1, Ordering::Relaxed);
        } else if message
            .0
            .starts_with("the Redis Cluster client had no reachable node")
        {
            self.succeeded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_stays_down_is_tried_once_a_second() {
    let renewals = Renewals::default();
    tracing_subscriber::registry()
        .with(renewals.clone())
        .try_init()
        .expect("the only subscriber of this test binary");
    let mut cluster = session_test_support::redis::RedisCluster::start_persistent(3);
    let driver = Arc::new(
        RedisDriver::connect(RedisConfig::new(cluster.url()))
            .await
            .unwrap(),
    );
    driver.get("k").await.unwrap();
    cluster = tokio::task::spawn_blocking(move || {
        cluster.kill();
        cluster
    })
    .await
    .unwrap();

    // Eight tasks send commands as fast as the down cluster refuses them, for 3.5 s.
    const DOWN_FOR: Duration = Duration::from_millis(3500);
    let started = Instant::now();
    let refused = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (driver, refused) = (driver.clone(), refused.clone());
            tokio::spawn(async move {
                while started.elapsed() < DOWN_FOR {
                    if driver.get("k").await.is_err_and(|e| e.is_retryable()) {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let (failed, succeeded) = (
        renewals.failed.load(Ordering::Relaxed),
        renewals.succeeded.load(Ordering::Relaxed),
    );
    let refused = refused.load(Ordering::Relaxed);
    assert!(
        refused > 100,
        "the down cluster refused only {refused} commands"
    );
    assert_eq!(
        succeeded, 0,
        "a renewal succeeded while the cluster was down"
    );
    // One attempt at the first `ClusterConnectionNotFound`, then one per second: 4 in 3.5 s,
    // 5 if an attempt started just before the test's clock (the last may still be running).
    assert!(
        (1..=5).contains(&failed),
        "{failed} renewal attempts in {DOWN_FOR:?} while {refused} commands were refused: \
         expected one per second"
    );

    // And the next renewal after the cluster is back reaches it.
    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.restart();
        cluster
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while driver.get("k").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the cluster was not reached again within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

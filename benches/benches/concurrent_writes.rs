//! Load test: 32 concurrent writers, each committing a change to its own 1 KiB session
//! (load + compare-and-swap commit) as fast as it can for a few seconds, per driver.
//! Prints session writes per second and latency percentiles.
//!
//! `cargo bench -p session-benches --bench concurrent_writes` (needs `redis-server` on PATH).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use session_kit_core::{Driver, DynamicData, Keyring, SessionStorage};
use session_kit_fs::FsDriver;
use session_kit_memory::MemoryDriver;
use session_kit_redis::{RedisConfig, RedisDriver};
use session_kit_sqlite::SqliteDriver;
use session_test_support::redis_server;

const WRITERS: usize = 32;
const RUN: Duration = Duration::from_secs(4);
const WARMUP: Duration = Duration::from_millis(500);

async fn measure(name: &str, driver: Arc<dyn Driver>) {
    let storage: SessionStorage<DynamicData> = SessionStorage::builder(driver)
        .keyring(Keyring::from_secrets(["benchmark secret of at least 32 bytes"]).unwrap())
        .build()
        .unwrap();
    let mut cookies = Vec::new();
    for _ in 0..WRITERS {
        let s = storage.get_session(None);
        s.insert("payload", "x".repeat(1024)).await.unwrap();
        s.insert("count", 0u64).await.unwrap();
        let set = storage.commit_session(&s).await.unwrap().unwrap();
        cookies.push(set.as_str().split(';').next().unwrap().to_owned());
    }
    let start = Instant::now();
    let tasks: Vec<_> = cookies
        .into_iter()
        .map(|cookie| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let began = Instant::now();
                    if began - start > WARMUP + RUN {
                        return latencies;
                    }
                    let s = storage.get_session(Some(&cookie));
                    let n: u64 = s.get("count").await.unwrap().unwrap_or(0);
                    s.insert("count", n + 1).await.unwrap();
                    storage.commit_session(&s).await.unwrap();
                    if began - start >= WARMUP {
                        latencies.push(began.elapsed());
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
        all.len() as f64 / RUN.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // nothing for `cargo bench -- --list`
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Under target/tmp: the fs and SQLite files on a disk, never a RAM-disk /tmp.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    rt.block_on(async {
        println!("| driver | session writes/s ({WRITERS} writers) | p50 | p99 |");
        println!("|---|---:|---:|---:|");
        measure("memory", Arc::new(MemoryDriver::new())).await;
        measure(
            "fs",
            Arc::new(FsDriver::builder(dir.path().join("fs")).build().unwrap()),
        )
        .await;
        measure(
            "sqlite",
            Arc::new(
                SqliteDriver::builder(dir.path().join("s.db"))
                    .build()
                    .unwrap(),
            ),
        )
        .await;
        let (_redis, port) = redis_server(dir.path());
        let redis = RedisDriver::connect(RedisConfig::new(format!("redis://127.0.0.1:{port}")))
            .await
            .unwrap();
        measure("redis", Arc::new(redis)).await;
    });
}

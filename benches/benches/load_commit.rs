//! One request's session work: load a 1 KiB session from its cookie, then commit.
//!
//! * `read`: a read-only request (one driver get, no write).
//! * `update`: a request that changes one key (one get, one compare-and-swap put).
//! * `new`: a new visitor whose first request writes a session (one create-only put).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{hint::black_box, sync::Arc};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use session_core::{Driver, DynamicData, Keyring, SessionStorage};
use session_driver_fs::FsDriver;
use session_driver_memory::MemoryDriver;
use session_driver_redis::{RedisConfig, RedisDriver};
use session_driver_sqlite::SqliteDriver;
use session_test_support::{Tied, free_port, wait_for_port};

const PAYLOAD: usize = 1024;

fn storage(driver: Arc<dyn Driver>) -> SessionStorage<DynamicData> {
    SessionStorage::builder(driver)
        .keyring(Keyring::from_secrets(["benchmark secret of at least 32 bytes"]).unwrap())
        .build()
        .unwrap()
}

fn bench_driver(c: &mut Criterion, name: &str, driver: Arc<dyn Driver>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let storage = storage(driver);
    let cookie = rt.block_on(async {
        let s = storage.get_session(None);
        s.insert("payload", "x".repeat(PAYLOAD)).await.unwrap();
        s.insert("count", 0u64).await.unwrap();
        let set = storage.commit_session(&s).await.unwrap().unwrap();
        set.as_str().split(';').next().unwrap().to_owned()
    });
    let mut group = c.benchmark_group("load_commit_1KiB");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("read", name), |b| {
        b.to_async(&rt).iter(|| async {
            let s = storage.get_session(Some(&cookie));
            let n: Option<u64> = s.get("count").await.unwrap();
            black_box(n);
            black_box(storage.commit_session(&s).await.unwrap());
        })
    });
    group.bench_function(BenchmarkId::new("update", name), |b| {
        b.to_async(&rt).iter(|| async {
            let s = storage.get_session(Some(&cookie));
            let n: u64 = s.get("count").await.unwrap().unwrap_or(0);
            s.insert("count", n + 1).await.unwrap();
            black_box(storage.commit_session(&s).await.unwrap());
        })
    });
    group.bench_function(BenchmarkId::new("new", name), |b| {
        b.to_async(&rt).iter(|| async {
            let s = storage.get_session(None);
            s.insert("payload", "x".repeat(PAYLOAD)).await.unwrap();
            black_box(storage.commit_session(&s).await.unwrap());
        })
    });
    group.finish();
}

fn load_commit(c: &mut Criterion) {
    bench_driver(c, "memory", Arc::new(MemoryDriver::new()));
    let dir = tempfile::tempdir().unwrap();
    bench_driver(
        c,
        "fs",
        Arc::new(FsDriver::builder(dir.path().join("plain")).build().unwrap()),
    );
    bench_driver(
        c,
        "fs-durable",
        Arc::new(
            FsDriver::builder(dir.path().join("durable"))
                .durable(true)
                .build()
                .unwrap(),
        ),
    );
    bench_driver(
        c,
        "sqlite",
        Arc::new(
            SqliteDriver::builder(dir.path().join("s.db"))
                .build()
                .unwrap(),
        ),
    );
    let (_redis, url) = redis_server(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let redis = rt
        .block_on(RedisDriver::connect(RedisConfig::new(url)))
        .unwrap();
    bench_driver(c, "redis", Arc::new(redis));
}

/// A redis-server on a free loopback port, for as long as the returned handle lives.
fn redis_server(dir: &std::path::Path) -> (Tied, String) {
    let port = free_port();
    let args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = Tied::spawn(std::path::Path::new("redis-server"), &args, &[]);
    wait_for_port(port, "redis-server", std::time::Duration::from_secs(10));
    (server, format!("redis://127.0.0.1:{port}"))
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = load_commit
}
criterion_main!(benches);

//! One request's session work, per driver and session size (100 B, 1 KiB, 16 KiB):
//!
//! * `read`: load from the cookie, read a key, commit (nothing to write);
//! * `update`: load, change a key, commit (one get, one compare-and-swap put);
//! * `new`: a new visitor's first write (one create-only put). The sessions it creates are
//!   deleted between samples (untimed): otherwise they pile up by the hundred thousand, and
//!   the memory driver's figure measured a heap and a map growing by that much (8.7 µs per
//!   1 KiB session instead of 2.5 µs). The `scale` benchmark measures the cost at a given
//!   number of stored sessions. Except on fs: deleting thousands of files whose data was
//!   written makes this machine's disk busy for a few seconds, during which creating a file
//!   is 10-30× slower (plain `open(O_CREAT)` from Python too, with or without the `discard`
//!   mount option), which would measure the disk rather than the driver.
//!
//! Plus the cookie work alone: verifying a signed cookie, and sealing/opening a cookie-only
//! session (16 KiB cannot fit a browser cookie: that size measures the refusal).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use session_kit_core::{Driver, DynamicData, Keyring, SessionError, SessionStorage};
use session_kit_fs::FsDriver;
use session_kit_memory::MemoryDriver;
use session_kit_redis::{RedisConfig, RedisDriver};
use session_kit_sqlite::SqliteDriver;
use session_test_support::redis_server;

/// The namespace of the sessions `new` creates, emptied between samples.
const NEW_NAMESPACE: &str = "bench-new:";

const SIZES: &[(usize, &str)] = &[(100, "100B"), (1024, "1KiB"), (16 * 1024, "16KiB")];

fn keyring() -> Keyring {
    Keyring::from_secrets(["benchmark secret of at least 32 bytes"]).unwrap()
}

fn storage(driver: Arc<dyn Driver>, namespace: &str) -> SessionStorage<DynamicData> {
    SessionStorage::builder(driver)
        .keyring(keyring())
        .namespace(namespace)
        .build()
        .unwrap()
}

fn pair(set: &session_kit_core::SetCookie) -> String {
    set.as_str().split(';').next().unwrap().to_owned()
}

fn bench_driver(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    driver: Arc<dyn Driver>,
) {
    let fresh = storage(Arc::clone(&driver), NEW_NAMESPACE);
    // See the module documentation: the file system is the one backend left to fill up.
    let empty_between_samples = driver.name() != session_kit_fs::NAME;
    let storage = storage(driver, "session:");
    let mut group = c.benchmark_group(format!("load_commit/{name}"));
    group.throughput(Throughput::Elements(1));
    for &(size, label) in SIZES {
        let cookie = rt.block_on(async {
            let s = storage.get_session(None);
            s.insert("payload", "x".repeat(size)).await.unwrap();
            s.insert("count", 0u64).await.unwrap();
            pair(&storage.commit_session(&s).await.unwrap().unwrap())
        });
        group.bench_function(BenchmarkId::new("read", label), |b| {
            b.to_async(rt).iter(|| async {
                let s = storage.get_session(Some(&cookie));
                let n: Option<u64> = s.get("count").await.unwrap();
                black_box(n);
                black_box(storage.commit_session(&s).await.unwrap());
            })
        });
        group.bench_function(BenchmarkId::new("update", label), |b| {
            b.to_async(rt).iter(|| async {
                let s = storage.get_session(Some(&cookie));
                let n: u64 = s.get("count").await.unwrap().unwrap_or(0);
                s.insert("count", n + 1).await.unwrap();
                black_box(storage.commit_session(&s).await.unwrap());
            })
        });
        let payload = "x".repeat(size);
        group.bench_function(BenchmarkId::new("new", label), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (fresh, payload) = (&fresh, &payload);
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let s = fresh.get_session(None);
                        s.insert("payload", payload).await.unwrap();
                        black_box(fresh.commit_session(&s).await.unwrap());
                    }
                    let elapsed = start.elapsed();
                    // Untimed (see the module documentation).
                    if let Some(driver) = fresh.driver().filter(|_| empty_between_samples) {
                        driver.clear(NEW_NAMESPACE).await.unwrap();
                    }
                    elapsed
                }
            })
        });
    }
    group.finish();
}

fn cookies(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("cookie");
    let signed = storage(Arc::new(MemoryDriver::new()), "session:");
    let cookie = rt.block_on(async {
        let s = signed.get_session(None);
        s.insert("count", 1u64).await.unwrap();
        pair(&signed.commit_session(&s).await.unwrap().unwrap())
    });
    group.bench_function("verify_signed", |b| {
        b.iter(|| black_box(signed.get_session(Some(black_box(&cookie)))))
    });

    let sealed = SessionStorage::<DynamicData>::cookie_only()
        .keyring(keyring())
        .build()
        .unwrap();
    for &(size, label) in SIZES {
        let payload = "x".repeat(size);
        group.bench_function(BenchmarkId::new("seal", label), |b| {
            b.to_async(&rt).iter(|| async {
                let s = sealed.get_session(None);
                s.insert("payload", &payload).await.unwrap();
                match sealed.commit_session(&s).await {
                    Ok(set) => black_box(set.map(|c| c.as_str().len())),
                    Err(SessionError::CookieTooLarge { size, .. }) => black_box(Some(size)),
                    Err(e) => panic!("{e}"),
                };
            })
        });
        let opened = rt.block_on(async {
            let s = sealed.get_session(None);
            s.insert("payload", &payload).await.unwrap();
            sealed
                .commit_session(&s)
                .await
                .ok()
                .flatten()
                .map(|set| pair(&set))
        });
        if let Some(cookie) = opened {
            group.bench_function(BenchmarkId::new("open", label), |b| {
                b.to_async(&rt).iter(|| async {
                    let s = sealed.get_session(Some(&cookie));
                    black_box(s.get::<String>("payload").await.unwrap().map(|p| p.len()));
                })
            });
        }
    }
    group.finish();
}

fn drivers(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Under target/tmp: the fs and SQLite files on a disk, never a RAM-disk /tmp.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    bench_driver(c, &rt, "memory", Arc::new(MemoryDriver::new()));
    bench_driver(
        c,
        &rt,
        "fs",
        Arc::new(FsDriver::builder(dir.path().join("plain")).build().unwrap()),
    );
    bench_driver(
        c,
        &rt,
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
        &rt,
        "sqlite",
        Arc::new(
            SqliteDriver::builder(dir.path().join("s.db"))
                .build()
                .unwrap(),
        ),
    );
    let (_redis, port) = redis_server(dir.path());
    let url = format!("redis://127.0.0.1:{port}");
    let redis = rt
        .block_on(RedisDriver::connect(RedisConfig::new(url)))
        .unwrap();
    bench_driver(c, &rt, "redis", Arc::new(redis));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    targets = cookies, drivers
}
criterion_main!(benches);

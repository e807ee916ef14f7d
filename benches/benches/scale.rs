//! How the cost of a request grows with the number of stored sessions, and what one stored
//! session costs in memory or on disk. Fills each driver with N sessions of ~100 bytes of data
//! (1k, 100k, 1M; for fs a million files, ~4 GB of 4 KiB blocks under `target/tmp`),
//! then times 2,000 read+update requests on random sessions. Prints a Markdown table.
//!
//! `cargo bench -p session-benches --bench scale` (needs `redis-server` and `redis-cli`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use session_kit_core::{Driver, DynamicData, Keyring, SessionStorage};
use session_kit_fs::FsDriver;
use session_kit_memory::MemoryDriver;
use session_kit_redis::{RedisConfig, RedisDriver};
use session_kit_sqlite::SqliteDriver;
use session_test_support::redis_server;

const SAMPLES: usize = 2000;

fn storage(driver: Arc<dyn Driver>) -> SessionStorage<DynamicData> {
    SessionStorage::builder(driver)
        .keyring(Keyring::from_secrets(["benchmark secret of at least 32 bytes"]).unwrap())
        .build()
        .unwrap()
}

async fn fill(storage: &SessionStorage<DynamicData>, n: usize, cookies: &mut Vec<String>) {
    let created: Vec<String> = futures::stream::iter(cookies.len()..n)
        .map(|i| {
            let storage = storage.clone();
            async move {
                let s = storage.get_session(None);
                s.insert("user", format!("user-{i:08}@example.com"))
                    .await
                    .unwrap();
                s.insert("cart", vec!["apple", "pear", "fig"])
                    .await
                    .unwrap();
                s.insert("count", 0u64).await.unwrap();
                let set = storage.commit_session(&s).await.unwrap().unwrap();
                set.as_str().split(';').next().unwrap().to_owned()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    cookies.extend(created);
}

async fn request_cost(
    storage: &SessionStorage<DynamicData>,
    cookies: &[String],
) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(SAMPLES);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..SAMPLES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let cookie = &cookies[(state % cookies.len() as u64) as usize];
        let began = Instant::now();
        let s = storage.get_session(Some(cookie));
        let n: u64 = s.get("count").await.unwrap().unwrap_or(0);
        s.insert("count", n + 1).await.unwrap();
        storage.commit_session(&s).await.unwrap();
        times.push(began.elapsed());
    }
    times.sort();
    (times[SAMPLES / 2], times[SAMPLES * 99 / 100])
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap() * 1024)
        })
        .unwrap()
}

fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| disk_bytes(&e.unwrap().path()))
            .sum()
    } else {
        meta.blocks() * 512
    }
}

fn redis_used_memory(port: u16) -> u64 {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", "memory"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("used_memory:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap()
}

enum Footprint<'a> {
    Process,
    Disk(&'a Path),
    Redis(u16),
}

impl Footprint<'_> {
    fn bytes(&self) -> u64 {
        match self {
            Self::Process => rss_bytes(),
            Self::Disk(p) => disk_bytes(p),
            Self::Redis(port) => redis_used_memory(*port),
        }
    }
}

async fn scale(name: &str, driver: Arc<dyn Driver>, sizes: &[usize], footprint: Footprint<'_>) {
    let storage = storage(driver);
    let before = footprint.bytes();
    let mut cookies = Vec::new();
    for &n in sizes {
        let started = Instant::now();
        fill(&storage, n, &mut cookies).await;
        let filled = started.elapsed();
        let (p50, p99) = request_cost(&storage, &cookies).await;
        let per_session = footprint.bytes().saturating_sub(before) as f64 / n as f64;
        println!(
            "| {name} | {n} | {:.0} µs | {:.0} µs | {per_session:.0} B | {:.1} s |",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            filled.as_secs_f64()
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Under target/tmp, on the disk the build uses: /tmp can be a RAM disk, too small for a
    // million fs sessions and not what a file store runs on.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    println!(
        "| driver | stored sessions | read+update p50 | p99 | bytes per stored session | time to fill |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    rt.block_on(async {
        let all = [1_000, 100_000, 1_000_000];
        scale(
            "memory",
            Arc::new(MemoryDriver::new()),
            &all,
            Footprint::Process,
        )
        .await;
        let fs = dir.path().join("fs");
        scale(
            "fs",
            Arc::new(FsDriver::builder(&fs).build().unwrap()),
            &all,
            Footprint::Disk(&fs),
        )
        .await;
        let sqlite = dir.path().join("sqlite");
        std::fs::create_dir_all(&sqlite).unwrap();
        let driver = SqliteDriver::builder(sqlite.join("s.db")).build().unwrap();
        scale("sqlite", Arc::new(driver), &all, Footprint::Disk(&sqlite)).await;
        let (_redis, port) = redis_server(dir.path());
        let redis = RedisDriver::connect(RedisConfig::new(format!("redis://127.0.0.1:{port}")))
            .await
            .unwrap();
        scale("redis", Arc::new(redis), &all, Footprint::Redis(port)).await;
    });
}

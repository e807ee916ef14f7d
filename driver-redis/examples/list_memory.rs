//! Lists every key under a prefix through the driver, page by page, and reports how many keys
//! came back, how many pages, and this process's peak resident memory before and after (Linux).
//!
//! ```sh
//! redis-server --port 6390 --save '' --enable-debug-command yes &
//! redis-cli -p 6390 DEBUG POPULATE 1000000 session:k 10   # a million keys, quickly
//! cargo run --release -p session-kit-redis --example list_memory -- redis://127.0.0.1:6390 k
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use session_kit_core::Driver;
use session_kit_redis::{RedisConfig, RedisDriver};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: list_memory <redis-url> [prefix]");
    let prefix = args.next().unwrap_or_default();
    let driver = RedisDriver::connect(RedisConfig::new(url)).await.unwrap();
    let before = peak_rss_kib();
    let started = std::time::Instant::now();
    let (mut keys, mut pages, mut largest) = (0usize, 0usize, 0usize);
    let mut cursor: Option<String> = None;
    loop {
        let page = driver.list(&prefix, cursor.as_deref()).await.unwrap();
        pages += 1;
        keys += page.keys.len();
        largest = largest.max(page.keys.len());
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    println!(
        "listed {keys} keys in {pages} pages (largest {largest}) in {:?}; peak RSS {} MiB before, {} MiB after",
        started.elapsed(),
        before / 1024,
        peak_rss_kib() / 1024
    );
}

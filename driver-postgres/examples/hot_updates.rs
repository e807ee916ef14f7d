//! Measures what an index on `expires_at` costs session writes: how many updates PostgreSQL
//! can make HOT (in place, no new index entries) and how long a write load takes, for the
//! table without the index (the default) and with it, at fill factors 90 and 100.
//!
//! `cargo run --release -p session-kit-postgres --example hot_updates` (starts its own
//! throwaway server; needs PostgreSQL's binaries, see `scripts/test`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use session_kit_core::{Driver, PutOptions, bytes::Bytes};
use session_kit_postgres::{PostgresConfig, PostgresDriver};
use session_test_support::sql::PostgresServer;

const KEYS: usize = 2_000;
const ROUNDS: usize = 20;
const WORKERS: usize = 16;

#[tokio::main]
async fn main() {
    let server = PostgresServer::start();
    println!(
        "{KEYS} sessions of ~300 B, each written {ROUNDS} times with a new deadline \
         ({WORKERS} concurrent writers); then one sweep\n"
    );
    println!("| table | writes/s | HOT updates | table + index size | sweep of {KEYS} live rows |");
    println!("|---|---:|---:|---:|---:|");
    for (name, index, fillfactor) in [
        ("no expiry index, fillfactor 90 (default)", false, 90),
        ("no expiry index, fillfactor 100", false, 100),
        ("expiry index, fillfactor 90", true, 90),
        ("expiry index, fillfactor 100", true, 100),
    ] {
        let table = format!("hot_{}_{fillfactor}", u8::from(index));
        let mut config = PostgresConfig::new(server.url());
        config.table = table.clone();
        config.expiry_index = index;
        config.fillfactor = Some(fillfactor);
        config.pool_size = Some(WORKERS as u64);
        let driver = Arc::new(PostgresDriver::connect(config).await.unwrap());
        let value = Bytes::from(vec![b'x'; 300]);
        for k in 0..KEYS {
            driver
                .put(
                    &format!("session:{k:064}"),
                    value.clone(),
                    PutOptions::new().ttl(Duration::from_secs(7200)),
                )
                .await
                .unwrap();
        }
        let started = Instant::now();
        let tasks: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (driver, value) = (driver.clone(), value.clone());
                tokio::spawn(async move {
                    for round in 0..ROUNDS {
                        for k in (w..KEYS).step_by(WORKERS) {
                            driver
                                .put(
                                    &format!("session:{k:064}"),
                                    value.clone(),
                                    PutOptions::new().ttl(Duration::from_secs(7200 + round as u64)),
                                )
                                .await
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = started.elapsed();
        let writes = (KEYS * ROUNDS) as f64;
        // Table statistics reach pg_stat_user_tables within a second of the transactions.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let stats = server.psql(&format!(
            "SELECT n_tup_upd, n_tup_hot_upd, pg_size_pretty(pg_total_relation_size(relid)) \
             FROM pg_stat_user_tables WHERE relname = '{table}'"
        ));
        let fields: Vec<&str> = stats.trim().split('|').collect();
        let (updates, hot): (f64, f64) = (fields[0].parse().unwrap(), fields[1].parse().unwrap());
        let sweep_started = Instant::now();
        driver.sweep().await.unwrap();
        let sweep = sweep_started.elapsed();
        println!(
            "| {name} | {:.0} | {:.0}% | {} | {:.1} ms |",
            writes / elapsed.as_secs_f64(),
            100.0 * hot / updates.max(1.0),
            fields[2],
            sweep.as_secs_f64() * 1000.0
        );
    }
}

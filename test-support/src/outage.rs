//! A store stopped and restarted under load: what the load saw.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use session_kit_core::{Driver, PutOptions, bytes::Bytes};

/// What [`load_through_outage`] measured.
#[derive(Debug, Clone, Copy)]
pub struct OutageReport {
    /// Operations that succeeded, over the whole run.
    pub succeeded: u64,
    /// Operations that failed (each with a retryable error) while the store was down.
    pub failed: u64,
    /// The longest any one operation took.
    pub slowest: Duration,
}

/// Runs 8 workers of writes and reads on `driver` (as users get it: wrap it in its layers
/// first), stops the store with `stop` after half a second, starts it again with `start` two
/// seconds later, and returns once 200 more operations have succeeded. Panics if an operation
/// fails with an error that is not retryable, if the outage goes unnoticed, or if the driver
/// does not recover within 20 seconds. Returns the server with the report.
pub async fn load_through_outage<S: Send + 'static>(
    driver: Arc<dyn Driver>,
    server: S,
    stop: fn(&mut S),
    start: fn(&mut S),
) -> (S, OutageReport) {
    let done = Arc::new(AtomicBool::new(false));
    let (ok, failed, slowest) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (driver, done, ok, failed, slowest) = (
                driver.clone(),
                done.clone(),
                ok.clone(),
                failed.clone(),
                slowest.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let key = format!("outage/{w}/{}", i % 50);
                    let started = Instant::now();
                    let result = if i.is_multiple_of(2) {
                        let value = Bytes::from(i.to_string());
                        driver.put(&key, value, PutOptions::new()).await.map(|_| ())
                    } else {
                        driver.get(&key).await.map(|_| ())
                    };
                    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    slowest.fetch_max(ms, Ordering::Relaxed);
                    match result {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            assert!(e.is_retryable(), "while the store was down: {e}");
                            failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        ok.load(Ordering::Relaxed) > 0,
        "no operation succeeded before the stop"
    );
    let server = tokio::task::spawn_blocking(move || {
        let mut server = server;
        stop(&mut server);
        std::thread::sleep(Duration::from_secs(2));
        server
    })
    .await
    .unwrap();
    assert!(
        failed.load(Ordering::Relaxed) > 0,
        "the outage was not noticed"
    );
    let server = tokio::task::spawn_blocking(move || {
        let mut server = server;
        start(&mut server);
        server
    })
    .await
    .unwrap();
    let before = ok.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while ok.load(Ordering::Relaxed) < before + 200 {
        assert!(
            Instant::now() < deadline,
            "the driver did not recover after the store came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let report = OutageReport {
        succeeded: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        slowest: Duration::from_millis(slowest.load(Ordering::Relaxed)),
    };
    println!(
        "outage: {} operations succeeded, {} failed (retryable), slowest {:?}",
        report.succeeded, report.failed, report.slowest
    );
    (server, report)
}

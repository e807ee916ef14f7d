//! Redis going away and coming back, for real: the server process is killed and restarted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use session_kit_core::{Driver, DriverError, PutOptions, WriteMode, bytes::Bytes};
use session_kit_redis::{RedisConfig, RedisDriver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_gives_fast_retryable_errors_and_the_driver_recovers() {
    let mut server = common::RedisServer::start();
    let mut config = RedisConfig::new(server.url());
    config.command_timeout = Some(Duration::from_millis(500));
    config.connect_timeout = Some(Duration::from_millis(500));
    // As users get it: in the layers it asks for (the timeout layer bounds each call).
    let driver = session_kit_core::layers::with_defaults(std::sync::Arc::new(
        RedisDriver::connect(config).await.unwrap(),
    ));
    assert!(
        driver.layers().contains(&"timeout"),
        "{:?}",
        driver.layers()
    );
    driver
        .put("k", Bytes::from_static(b"before"), PutOptions::new())
        .await
        .unwrap();

    server.kill();
    for _ in 0..5 {
        let started = Instant::now();
        let result = driver.get("k").await;
        let elapsed = started.elapsed();
        match result {
            Err(e @ DriverError::Unavailable { .. }) => assert!(e.is_retryable(), "{e}"),
            other => {
                panic!("expected a retryable Unavailable error while Redis is down, got {other:?}")
            }
        }
        assert!(
            elapsed < Duration::from_secs(2),
            "an operation took {elapsed:?} while Redis was down"
        );
        let put = driver
            .put("k", Bytes::from_static(b"x"), PutOptions::new())
            .await;
        assert!(
            put.as_ref().is_err_and(DriverError::is_retryable),
            "{put:?}"
        );
    }

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match driver
            .put("k", Bytes::from_static(b"after"), PutOptions::new())
            .await
        {
            Ok(_) => break,
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                assert!(
                    Instant::now() < deadline,
                    "the driver did not recover after Redis came back: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(
        driver.get("k").await.unwrap().unwrap().value,
        "after",
        "the same driver instance works again"
    );
}

/// The layer options of a config string, against a killed server: `timeout` bounds every
/// call, `retries` tries reads again (within the bound times the attempts), a conditional
/// write is tried once, and the driver recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_string_timeouts_and_retries_hold_while_the_server_is_down() {
    let mut server = common::RedisServer::start();
    let mut registry = session_kit_core::Registry::new();
    session_kit_redis::register(&mut registry);
    let url = format!(
        "{}?command_timeout=5s&timeout=300ms&retries=2",
        server.url()
    );
    let driver = registry.open(&url).await.unwrap();
    assert_eq!(
        driver.layers(),
        ["trace", "validate", "cache", "retry", "timeout"],
        "the config's timeout replaces the driver's default; a cache hit needs neither"
    );
    driver
        .put("k", Bytes::from_static(b"before"), PutOptions::new())
        .await
        .unwrap();
    server.kill();
    let started = Instant::now();
    let read = driver.get("k").await;
    let elapsed = started.elapsed();
    assert!(
        read.as_ref().is_err_and(DriverError::is_retryable),
        "{read:?}"
    );
    // Three attempts of at most 300 ms each, plus backoff; never the 5 s command timeout.
    assert!(elapsed < Duration::from_secs(2), "a read took {elapsed:?}");
    let started = Instant::now();
    let create = PutOptions::new().mode(session_kit_core::WriteMode::CreateOnly);
    let put = driver.put("new", Bytes::from_static(b"x"), create).await;
    assert!(
        put.as_ref().is_err_and(DriverError::is_retryable),
        "{put:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "one attempt only"
    );

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) = driver.get("k").await {
        assert!(e.is_retryable(), "{e}");
        assert!(Instant::now() < deadline, "no recovery: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A whole Redis Cluster stopped and started again, five times, under load from two drivers:
/// each time, every writer gets through again. (The `redis` crate's cluster client alone
/// sometimes never does: it keeps refreshing its slots from an empty table of nodes; the
/// driver then connects again from the URL's node. Without that, this test fails about one run
/// in four.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_cluster_is_reached_again_every_time() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };
    const WRITERS: usize = 8;
    let mut cluster = session_test_support::redis::RedisCluster::start_persistent(3);
    // Two drivers (two processes, say), each with its own cluster connection; the URL's
    // `redis+cluster://` is enough to make it one.
    let mut drivers = Vec::new();
    for _ in 0..2 {
        let config = RedisConfig::new(cluster.url());
        drivers.push(session_kit_core::layers::with_defaults(Arc::new(
            RedisDriver::connect(config).await.unwrap(),
        )));
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Successes per writer.
    let successes: Arc<Vec<AtomicUsize>> =
        Arc::new((0..WRITERS).map(|_| AtomicUsize::new(0)).collect());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let driver = drivers[w % drivers.len()].clone();
            let (stop, successes) = (stop.clone(), successes.clone());
            tokio::spawn(async move {
                // As one session is changed by concurrent requests: a read, then a
                // compare-and-swap (a script, which Redis forgets when it restarts).
                let key = String::from("shared");
                let change = || async {
                    let options = match driver.get(&key).await? {
                        Some(entry) => PutOptions::new().mode(WriteMode::IfVersion(entry.version)),
                        None => PutOptions::new(),
                    };
                    driver.put(&key, Bytes::from_static(b"x"), options).await
                };
                while !stop.load(Ordering::Relaxed) {
                    match change().await {
                        Ok(_) => {
                            successes[w].fetch_add(1, Ordering::Relaxed);
                        }
                        // Another writer's change came first.
                        Err(DriverError::Conflict) => {}
                        Err(e) if e.is_retryable() => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            })
        })
        .collect();
    let all_succeed_again = || async {
        let before: Vec<usize> = successes
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let stuck: Vec<usize> = (0..WRITERS)
                .filter(|&w| successes[w].load(Ordering::Relaxed) == before[w])
                .collect();
            if stuck.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(stuck);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    all_succeed_again()
        .await
        .expect("writers succeed on the fresh cluster");
    for round in 1..=5 {
        // Off the runtime's threads, which the drivers keep to themselves: under load for
        // half a second, down for one.
        cluster = tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(500));
            cluster.kill();
            std::thread::sleep(Duration::from_secs(1));
            cluster.restart();
            cluster
        })
        .await
        .unwrap();
        if let Err(stuck) = all_succeed_again().await {
            panic!(
                "restart {round}: writers {stuck:?} got no success within 20 s of the cluster's restart"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap().expect("only retryable errors");
    }
}

#[tokio::test]
async fn connecting_to_nothing_fails_fast_and_retryably() {
    let port = session_test_support::free_port();
    let mut config = RedisConfig::new(format!("redis://127.0.0.1:{port}"));
    config.connect_timeout = Some(Duration::from_millis(300));
    let started = Instant::now();
    let err = RedisDriver::connect(config).await.err().unwrap();
    assert!(err.is_retryable(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn prefixes_isolate_apps_and_values_stay_binary() {
    let server = common::shared();
    let mut a = RedisConfig::new(server.url());
    a.prefix = "app-a:".into();
    let mut b = RedisConfig::new(server.url());
    b.prefix = "app-b:".into();
    let (a, b) = (
        RedisDriver::connect(a).await.unwrap(),
        RedisDriver::connect(b).await.unwrap(),
    );
    a.put("k", Bytes::from_static(b"\x00\xff a"), PutOptions::new())
        .await
        .unwrap();
    b.put("k", Bytes::from_static(b"b"), PutOptions::new())
        .await
        .unwrap();
    assert_eq!(a.get("k").await.unwrap().unwrap().value, &b"\x00\xff a"[..]);
    assert_eq!(a.list("", None).await.unwrap().keys, ["k"]);
    assert!(
        server.cli(&["EXISTS", "app-a:k"]).trim() == "1",
        "stored under the prefix"
    );
    a.clear("").await.unwrap();
    assert_eq!(b.get("k").await.unwrap().unwrap().value, "b");
}

#[tokio::test]
async fn selectable_by_config_string() {
    let server = common::shared();
    let mut registry = session_kit_core::Registry::new();
    session_kit_redis::register(&mut registry);
    let d = registry
        .open(&format!("{}?prefix=cfg:", server.url()))
        .await
        .unwrap();
    d.put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    assert!(server.cli(&["EXISTS", "cfg:k"]).trim() == "1");
    let err = registry
        .open("redis://127.0.0.1:1?prefix=x&colour=red")
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("colour"), "{err}");
}

/// A server that refuses a write says why, in Redis's words, without the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_says_why_without_the_value() {
    let server = common::RedisServer::start();
    let driver = RedisDriver::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    server.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    let secret = "a value that must never reach a log line";
    let err = driver
        .put("k", Bytes::from(secret), PutOptions::new())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("OOM") && text.contains("maxmemory"), "{text}");
    assert!(!text.contains(secret), "{text}");
    assert!(matches!(err, DriverError::Unavailable { .. }), "{err:?}");
}

/// TLS (feature `tls`, on in the workspace's test run through http-tests' `redis-tls`): a
/// server whose certificate a throwaway authority signed is trusted through `tls_ca_file`
/// (from a config string too), refused without it (the Web PKI roots do not know that
/// authority), and its TLS port does not answer plain Redis.
#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_server_certificate() {
    let server = common::RedisServer::start_tls();
    let ca = server.ca_file().display().to_string();

    let mut registry = session_kit_core::Registry::new();
    session_kit_redis::register(&mut registry);
    let driver = registry
        .open(&format!(
            "{}?tls_ca_file={ca}&prefix=tls:",
            server.tls_url()
        ))
        .await
        .unwrap();
    driver
        .put("k", Bytes::from_static(b"over tls"), PutOptions::new())
        .await
        .unwrap();
    assert_eq!(driver.get("k").await.unwrap().unwrap().value, "over tls");
    assert!(server.cli(&["GET", "tls:k"]).contains("over tls"));

    let mut quick = RedisConfig::new(server.tls_url());
    quick.connect_timeout = Some(Duration::from_secs(2));
    let untrusted = RedisDriver::connect(quick).await;
    assert!(
        untrusted.is_err(),
        "a certificate of an unknown authority is refused"
    );

    let plain = server.tls_url().replacen("rediss://", "redis://", 1);
    let mut plain = RedisConfig::new(plain);
    plain.connect_timeout = Some(Duration::from_secs(2));
    assert!(RedisDriver::connect(plain).await.is_err());

    let mut wrong = RedisConfig::new(server.url());
    wrong.tls_ca_file = Some(server.ca_file());
    let err = RedisDriver::connect(wrong).await.unwrap_err();
    assert!(err.to_string().contains("rediss://"), "{err}");
}

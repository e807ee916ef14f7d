//! The local cache against real Redis servers: what it saves (commands counted by Redis
//! itself) and that it never serves what another client changed, a flushed or restarted
//! server, or lets an update be lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use session_kit_core::{Driver, DriverError, PutOptions, Version, WriteMode, bytes::Bytes};
use session_kit_redis::{RedisConfig, RedisDriver};

use common::RedisServer;

/// A driver as users get it: in its layers, the read cache among them.
async fn connect(config: RedisConfig) -> Arc<dyn Driver> {
    session_kit_core::layers::with_defaults(Arc::new(RedisDriver::connect(config).await.unwrap()))
}

async fn driver(server: &RedisServer, prefix: &str) -> Arc<dyn Driver> {
    let mut config = RedisConfig::new(server.url());
    config.prefix = prefix.into();
    connect(config).await
}

/// How many times Redis ran `command` (from `INFO commandstats`).
fn calls(server: &RedisServer, command: &str) -> u64 {
    let info = server.cli(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .unwrap_or(0)
}

/// Two drivers on one Redis (two app servers), `key` written with `value` by the first.
async fn two_app_servers(
    server: &RedisServer,
    key: &str,
    value: &'static str,
) -> [Arc<dyn Driver>; 2] {
    let drivers = [driver(server, "s:").await, driver(server, "s:").await];
    drivers[0]
        .put(key, Bytes::from_static(value.as_bytes()), PutOptions::new())
        .await
        .unwrap();
    drivers
}

/// Waits until `driver` reads `expected` for `key` (invalidations arrive asynchronously).
async fn eventually_reads(driver: &dyn Driver, key: &str, expected: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let value = driver.get(key).await.unwrap().map(|e| e.value);
        if value.as_deref() == expected.map(str::as_bytes) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key}: still read {value:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_own_writes_are_served_locally() {
    let server = RedisServer::start();
    let a = driver(&server, "app:").await;
    assert!(a.get("k").await.unwrap().is_none());
    a.put("k", Bytes::from_static(b"v1"), PutOptions::new())
        .await
        .unwrap();
    // A plain write ends Redis's tracking of the key for this connection; its pipelined
    // read of the version tracks it again, so what it wrote is read locally.
    assert_eq!(calls(&server, "getrange"), 1);
    let gets = calls(&server, "get");
    for _ in 0..10 {
        assert_eq!(a.get("k").await.unwrap().unwrap().value, "v1");
    }
    assert_eq!(calls(&server, "get"), gets, "answered from the local cache");

    // So is an update-only write, in one round trip of two commands.
    a.put(
        "k",
        Bytes::from_static(b"v1b"),
        PutOptions::new().mode(WriteMode::UpdateOnly),
    )
    .await
    .unwrap();
    assert_eq!(a.get("k").await.unwrap().unwrap().value, "v1b");
    assert_eq!(calls(&server, "get"), gets);
    assert_eq!((calls(&server, "set"), calls(&server, "getrange")), (2, 2));
    // One that finds no session writes nothing and keeps nothing.
    let missing = a
        .put(
            "gone",
            Bytes::from_static(b"x"),
            PutOptions::new().mode(WriteMode::UpdateOnly),
        )
        .await;
    assert!(matches!(missing, Err(DriverError::Conflict)), "{missing:?}");
    assert!(a.get("gone").await.unwrap().is_none());
    // A new key (create-only: most new sessions are never read again) is not read back.
    a.put(
        "new",
        Bytes::from_static(b"n"),
        PutOptions::new().mode(WriteMode::CreateOnly),
    )
    .await
    .unwrap();
    assert_eq!(calls(&server, "getrange"), 3);
    let gets = calls(&server, "get");

    // A compare-and-swap commit is one command; the record it wrote is then read locally.
    let version = a.get("k").await.unwrap().unwrap().version;
    let written = a
        .put(
            "k",
            Bytes::from_static(b"v2"),
            PutOptions::new().mode(WriteMode::IfVersion(version)),
        )
        .await
        .unwrap();
    let entry = a.get("k").await.unwrap().unwrap();
    assert_eq!((entry.value, entry.version), (Bytes::from("v2"), written));
    assert_eq!(calls(&server, "get"), gets);

    // Off: every read goes to Redis.
    let mut config = RedisConfig::new(server.url());
    config.prefix = "app:".into();
    config.local_cache = Some(0);
    let uncached = connect(config).await;
    assert!(
        !uncached.layers().contains(&"cache"),
        "{:?}",
        uncached.layers()
    );
    for _ in 0..3 {
        assert_eq!(uncached.get("k").await.unwrap().unwrap().value, "v2");
    }
    assert_eq!(calls(&server, "get"), gets + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_by_other_clients_invalidate_the_local_copy() {
    let server = RedisServer::start();
    let (a, b) = (driver(&server, "app:").await, driver(&server, "app:").await);
    a.put("k", Bytes::from_static(b"from a"), PutOptions::new())
        .await
        .unwrap();
    let stale = a.get("k").await.unwrap().unwrap().version;

    b.put("k", Bytes::from_static(b"from b"), PutOptions::new())
        .await
        .unwrap();
    eventually_reads(&a, "k", Some("from b")).await;
    // A record a wrote by compare-and-swap (kept locally) is still tracked.
    let current = a.get("k").await.unwrap().unwrap().version;
    a.put(
        "k",
        Bytes::from_static(b"cas by a"),
        PutOptions::new().mode(WriteMode::IfVersion(current)),
    )
    .await
    .unwrap();
    assert_eq!(a.get("k").await.unwrap().unwrap().value, "cas by a");
    b.put("k", Bytes::from_static(b"from b"), PutOptions::new())
        .await
        .unwrap();
    eventually_reads(&a, "k", Some("from b")).await;
    // A commit against the version a had read conflicts: Redis checks every write.
    let conflict = a
        .put(
            "k",
            Bytes::from_static(b"lost?"),
            PutOptions::new().mode(WriteMode::IfVersion(stale)),
        )
        .await;
    assert!(
        matches!(conflict, Err(DriverError::Conflict)),
        "{conflict:?}"
    );

    // Deleted elsewhere, changed outside the driver, expired, flushed.
    b.delete("k").await.unwrap();
    eventually_reads(&a, "k", None).await;
    a.put("raw", Bytes::from_static(b"x"), PutOptions::new())
        .await
        .unwrap();
    assert!(a.get("raw").await.unwrap().is_some());
    server.cli(&["SET", "app:raw", "not a session"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.get("raw").await.is_ok() {
        assert!(Instant::now() < deadline, "the outside change was not seen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.put(
        "short",
        Bytes::from_static(b"x"),
        PutOptions::new().ttl(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    assert!(a.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(a.get("short").await.unwrap().is_none(), "expired");
    a.put("f", Bytes::from_static(b"x"), PutOptions::new())
        .await
        .unwrap();
    assert!(a.get("f").await.unwrap().is_some());
    server.cli(&["FLUSHALL"]);
    eventually_reads(&a, "f", None).await;

    // Another app's prefix is another key.
    let other = driver(&server, "other:").await;
    other
        .put("k", Bytes::from_static(b"elsewhere"), PutOptions::new())
        .await
        .unwrap();
    assert!(a.get("k").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_compare_and_swap_from_two_servers_loses_no_update() {
    let server = RedisServer::start();
    let drivers = two_app_servers(&server, "n", "0").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let d = drivers[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            for _ in 0..100 {
                loop {
                    let entry = d.get("n").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&entry.value).unwrap().parse().unwrap();
                    let next = Bytes::from((n + 1).to_string());
                    match d
                        .put(
                            "n",
                            next,
                            PutOptions::new().mode(WriteMode::IfVersion(entry.version)),
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(DriverError::Conflict) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 800);
    let stored = server.cli(&["GETRANGE", "s:n", "16", "-1"]);
    assert_eq!(stored.trim(), "800", "every increment is in Redis");
    for d in &drivers {
        eventually_reads(d, "n", Some("800")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_plain_writes_from_two_servers_leave_no_stale_local_copy() {
    // Last-write-wins updates: a driver keeps what it wrote because the pipelined read of the
    // version tracks the key again, so a later write by the other server invalidates it.
    // (The version check covers a write landing between the two commands, which one Redis
    // does not do to a pipeline; without the read-back, this test fails.)
    let server = RedisServer::start();
    let drivers = two_app_servers(&server, "k", "start").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let d = drivers[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..200 {
                let mode = if n % 2 == 0 {
                    WriteMode::Overwrite
                } else {
                    WriteMode::UpdateOnly
                };
                let value = Bytes::from(format!("task {i} write {n}"));
                d.put("k", value, PutOptions::new().mode(mode))
                    .await
                    .unwrap();
                d.get("k").await.unwrap().unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stored = server.cli(&["GETRANGE", "s:k", "16", "-1"]);
    let stored = stored.trim();
    assert!(stored.starts_with("task "), "{stored}");
    for d in &drivers {
        eventually_reads(d, "k", Some(stored)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_not_answered_from_the_old_cache() {
    let mut server = RedisServer::start();
    let mut config = RedisConfig::new(server.url());
    config.command_timeout = Some(Duration::from_millis(500));
    config.connect_timeout = Some(Duration::from_millis(500));
    let a = connect(config).await;
    assert!(a.get("k").await.unwrap().is_none());
    a.put("k", Bytes::from_static(b"before"), PutOptions::new())
        .await
        .unwrap();
    assert_eq!(a.get("k").await.unwrap().unwrap().value, "before");

    // The restarted server has no data (no persistence): "k" must read as missing.
    server.kill();
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match a.get("k").await {
            Ok(None) => break,
            Ok(Some(e)) => panic!("served {:?} from before the restart", e.value),
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                assert!(Instant::now() < deadline, "no recovery: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // And caching works again on the new connection, with tracking turned back on.
    a.put("k", Bytes::from_static(b"after"), PutOptions::new())
        .await
        .unwrap();
    let other = driver(&server, "").await;
    other
        .put("k", Bytes::from_static(b"changed"), PutOptions::new())
        .await
        .unwrap();
    eventually_reads(&a, "k", Some("changed")).await;
    let gets = calls(&server, "get");
    for _ in 0..5 {
        assert_eq!(a.get("k").await.unwrap().unwrap().value, "changed");
    }
    assert_eq!(calls(&server, "get"), gets, "cached again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_tracking_leaves_the_driver_uncached_and_working() {
    let tmp = tempfile::tempdir().unwrap();
    let server = RedisServer::start_in(
        session_test_support::free_port(),
        tmp.path(),
        [
            "--user",
            "default",
            "on",
            "nopass",
            "~*",
            "&*",
            "+@all",
            "-client|tracking",
        ]
        .map(String::from)
        .to_vec(),
    );
    let a = driver(&server, "").await;
    let v: Version = a
        .put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    let gets = calls(&server, "get");
    for _ in 0..3 {
        assert_eq!(a.get("k").await.unwrap().unwrap().version, v);
    }
    assert_eq!(calls(&server, "get"), gets + 3, "every read went to Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_latest_reads_redis_even_when_the_key_is_cached() {
    let server = RedisServer::start();
    let [a, b] = two_app_servers(&server, "k", "v1").await;
    // Cached on `a`: a plain get is served locally.
    eventually_reads(&a, "k", Some("v1")).await;
    let gets = calls(&server, "get");
    assert_eq!(a.get("k").await.unwrap().unwrap().value, "v1");
    assert_eq!(calls(&server, "get"), gets, "served from the local cache");
    // `get_latest` asks Redis every time, and sees another server's write at once (no wait
    // for the invalidation).
    for round in 0..20u32 {
        let value = Bytes::from(format!("v{}", round + 2));
        b.put("k", value.clone(), PutOptions::new()).await.unwrap();
        assert_eq!(a.get_latest("k").await.unwrap().unwrap().value, value);
    }
    assert!(calls(&server, "get") >= gets + 20);
}

/// The scripts run by `EVALSHA`; a Redis that forgot them (`SCRIPT FLUSH`, as after a restart)
/// answers `NOSCRIPT`, and the driver loads the script and runs it again: compare-and-swap and
/// touch keep working, and still check the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_that_redis_forgot_are_loaded_again() {
    let server = RedisServer::start();
    let a = driver(&server, "app:").await;
    let first = a
        .put("k", Bytes::from_static(b"one"), PutOptions::new())
        .await
        .unwrap();
    let second = a
        .put(
            "k",
            Bytes::from_static(b"two"),
            PutOptions::new().mode(WriteMode::IfVersion(first.clone())),
        )
        .await
        .unwrap();
    server.cli(&["SCRIPT", "FLUSH"]);
    let stale = a
        .put(
            "k",
            Bytes::from_static(b"lost?"),
            PutOptions::new().mode(WriteMode::IfVersion(first)),
        )
        .await;
    assert!(matches!(stale, Err(DriverError::Conflict)), "{stale:?}");
    server.cli(&["SCRIPT", "FLUSH"]);
    a.put(
        "k",
        Bytes::from_static(b"three"),
        PutOptions::new().mode(WriteMode::IfVersion(second)),
    )
    .await
    .unwrap();
    server.cli(&["SCRIPT", "FLUSH"]);
    assert!(a.touch("k", Duration::from_secs(60)).await.unwrap());
    assert_eq!(a.get("k").await.unwrap().unwrap().value, "three");
    assert!(
        calls(&server, "script|load") >= 2,
        "the scripts were loaded again"
    );
}

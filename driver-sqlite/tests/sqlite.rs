//! Behaviour specific to the SQLite driver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use session_kit_core::{Driver, PutOptions, Registry, bytes::Bytes};
use session_kit_sqlite::SqliteDriver;

#[test]
fn processes_sharing_one_database_never_lose_an_update() {
    let dir = tempfile::tempdir().unwrap();
    session_kit_conformance::cross_process_check(
        "processes_sharing_one_database_never_lose_an_update",
        &dir.path().join("shared.db").display().to_string(),
        4,
        |db| async move { Ok(Arc::new(SqliteDriver::builder(db).build()?) as Arc<dyn Driver>) },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_writers_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let d = Arc::new(
        SqliteDriver::builder(dir.path().join("db"))
            .build()
            .unwrap(),
    );
    let tasks: Vec<_> = (0..32)
        .map(|w| {
            let d = d.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    d.put(
                        &format!("w{w}/{i}"),
                        Bytes::from(vec![b'x'; 1024]),
                        PutOptions::new().ttl(Duration::from_secs(60)),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut n = 0;
    let mut cursor = None;
    loop {
        let page = d.list("w", cursor.as_deref()).await.unwrap();
        n += page.keys.len();
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(n, 32 * 50);
}

#[tokio::test]
async fn sweep_deletes_expired_rows_and_the_sweeper_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = SqliteDriver::builder(dir.path().join("db"))
        .build()
        .unwrap();
    for i in 0..10 {
        d.put(
            &format!("dies{i}"),
            Bytes::new(),
            PutOptions::new().ttl(Duration::from_millis(1)),
        )
        .await
        .unwrap();
    }
    d.put("lives", Bytes::new(), PutOptions::new())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(d.sweep().await.unwrap(), 10);
    assert_eq!(d.sweep().await.unwrap(), 0);
    assert!(d.get("lives").await.unwrap().is_some());

    let d = session_kit_core::layers::with_defaults(std::sync::Arc::new(
        SqliteDriver::builder(dir.path().join("db2"))
            .sweep_interval(Duration::from_millis(30))
            .build()
            .unwrap(),
    ));
    d.put(
        "dies",
        Bytes::new(),
        PutOptions::new().ttl(Duration::from_millis(1)),
    )
    .await
    .unwrap();
    let conn = rusqlite_count(&dir.path().join("db2"));
    assert_eq!(conn, 1);
    for _ in 0..100 {
        if rusqlite_count(&dir.path().join("db2")) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the background sweeper did not delete the expired row");
}

/// Rows in the table, expired or not, read with the sqlite3 C library directly.
fn rusqlite_count(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn selectable_by_config_string() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::new();
    session_kit_sqlite::register(&mut registry);
    let url = format!(
        "sqlite://{}/s.db?synchronous=full&table=my_sessions&sweep_interval=0",
        dir.path().display()
    );
    let d = registry.open(&url).await.unwrap();
    assert!(!d.layers().contains(&"sweep"), "{:?}", d.layers());
    d.put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM my_sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);

    let json = format!(
        r#"{{"driver":"sqlite","path":"{}/s.db","table":"my_sessions"}}"#,
        dir.path().display()
    );
    assert_eq!(
        registry
            .open(&json)
            .await
            .unwrap()
            .get("k")
            .await
            .unwrap()
            .unwrap()
            .value,
        "v"
    );

    for (config, option) in [
        ("sqlite", "path"),
        ("sqlite:///tmp/x.db?table=drop%20table", "table"),
        ("sqlite:///tmp/x.db?synchronous=sometimes", "synchronous"),
        ("sqlite://host/x.db", "driver"),
    ] {
        let err = registry.open(config).await.err().unwrap();
        assert!(err.to_string().contains(option), "{config}: {err}");
    }
}

#[tokio::test]
async fn an_injected_clock_sets_and_checks_expiry() {
    use session_kit_core::ManualClock;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let d = SqliteDriver::builder(dir.path().join("clock.db"))
        .clock(clock.clone())
        .build()
        .unwrap();
    let hour = Duration::from_secs(3600);
    d.put("k", Bytes::from_static(b"v"), PutOptions::new().ttl(hour))
        .await
        .unwrap();
    assert!(d.get("k").await.unwrap().is_some());
    assert_eq!(d.list("", None).await.unwrap().keys, ["k"]);
    // An hour passes on the injected clock, none on the wall clock.
    clock.advance(hour);
    assert!(d.get("k").await.unwrap().is_none());
    assert!(d.list("", None).await.unwrap().keys.is_empty());
    assert_eq!(d.sweep().await.unwrap(), 1);
}

//! Behaviour specific to the PostgreSQL driver, against real servers started by this test
//! binary: processes sharing one table, the schema, byte-exact prefixes, errors, and a server
//! stopped and restarted under load.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use session_kit_core::{Driver, DriverError, ErrorKind, PutOptions, Registry, bytes::Bytes};
use session_kit_postgres::{PostgresConfig, PostgresDriver};
use session_test_support::sql::{PostgresServer, fresh_table, shared_postgres};

async fn driver_on(url: String, table: &str) -> PostgresDriver {
    let mut config = PostgresConfig::new(url);
    config.table = table.to_owned();
    PostgresDriver::connect(config).await.unwrap()
}

#[test]
fn processes_sharing_one_table_never_lose_an_update() {
    // The children find the server and the table in the location string.
    let location = match std::env::var("SESSION_CONFORMANCE_CHILD_LOCATION") {
        Ok(location) => location,
        Err(_) => format!("{}?table={}", shared_postgres().url(), fresh_table("procs")),
    };
    session_kit_conformance::cross_process_check(
        "processes_sharing_one_table_never_lose_an_update",
        &location,
        4,
        |location| async move {
            let mut registry = Registry::new();
            session_kit_postgres::register(&mut registry);
            registry.open(&location).await
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drivers_starting_together_create_the_table_once() {
    let table = fresh_table("race");
    let url = shared_postgres().url();
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let (url, table) = (url.clone(), table.clone());
            let mut config = PostgresConfig::new(url);
            config.table = table;
            config.schema = "race_schema".into();
            config.expiry_index = true;
            tokio::spawn(PostgresDriver::connect(config))
        })
        .collect();
    for start in starts {
        start.await.unwrap().unwrap();
    }
    let columns = shared_postgres().psql(&format!(
        "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position) \
         FROM information_schema.columns WHERE table_schema = 'race_schema' AND table_name = '{table}'"
    ));
    assert_eq!(
        columns.trim(),
        "key:bytea,value:bytea,version:bigint,expires_at:timestamp with time zone"
    );
    let index = shared_postgres().psql(&format!(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'race_schema' AND indexname = '{table}_expires_at'"
    ));
    assert_eq!(index.trim(), "1");
}

#[tokio::test]
async fn without_auto_migrate_the_table_comes_from_migrate() {
    let table = fresh_table("manual");
    let mut config = PostgresConfig::new(shared_postgres().url());
    config.table = table.clone();
    config.auto_migrate = false;
    config.unlogged = true;
    let driver = PostgresDriver::connect(config).await.unwrap();
    let missing = driver.get("k").await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Config, "{missing}");
    driver.migrate().await.unwrap();
    driver.migrate().await.unwrap();
    driver
        .put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    // A read cache needs the notification triggers, which this table lacks.
    let mut cached = PostgresConfig::new(shared_postgres().url());
    cached.table = table.clone();
    cached.auto_migrate = false;
    cached.local_cache = Some(1 << 20);
    let err = PostgresDriver::connect(cached).await.unwrap_err();
    assert!(err.to_string().contains("local_cache"), "{err}");
    let persistence = shared_postgres().psql(&format!(
        "SELECT relpersistence FROM pg_class WHERE relname = '{table}'"
    ));
    assert_eq!(persistence.trim(), "u", "an UNLOGGED table");
}

#[tokio::test]
async fn like_wildcards_in_keys_match_only_themselves() {
    let driver = driver_on(shared_postgres().url(), &fresh_table("wild")).await;
    for key in ["a%", "a_b", "abb", "a%c", "a\\x", "ab"] {
        driver
            .put(key, Bytes::from_static(b"v"), PutOptions::new())
            .await
            .unwrap();
    }
    assert_eq!(driver.list("a%", None).await.unwrap().keys, ["a%", "a%c"]);
    assert_eq!(driver.list("a_", None).await.unwrap().keys, ["a_b"]);
    assert_eq!(driver.clear("a%").await.unwrap(), 2);
    assert_eq!(
        driver.list("a", None).await.unwrap().keys,
        ["a\\x", "a_b", "ab", "abb"]
    );
}

#[tokio::test]
async fn versions_are_never_reused_after_a_delete() {
    let driver = driver_on(shared_postgres().url(), &fresh_table("versions")).await;
    let first = driver
        .put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    driver.delete("k").await.unwrap();
    let again = driver
        .put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    assert_ne!(first, again);
}

#[tokio::test]
async fn expiry_follows_the_database_clock_and_sweep_removes_rows() {
    let table = fresh_table("sweep");
    let driver = driver_on(shared_postgres().url(), &table).await;
    driver
        .put(
            "short",
            Bytes::from_static(b"v"),
            PutOptions::new().ttl(Duration::from_millis(50)),
        )
        .await
        .unwrap();
    driver
        .put(
            "long",
            Bytes::from_static(b"v"),
            PutOptions::new().ttl(Duration::from_secs(400 * 24 * 3600)),
        )
        .await
        .unwrap();
    let long = driver.get("long").await.unwrap().unwrap();
    let left = long
        .expires_at
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(399 * 24 * 3600), "{left:?}");
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(driver.get("short").await.unwrap().is_none());
    assert_eq!(driver.sweep().await.unwrap(), 1);
    let rows = shared_postgres().psql(&format!("SELECT count(*) FROM \"{table}\""));
    assert_eq!(rows.trim(), "1");
    assert_eq!(driver.count().await.unwrap(), 1);
}

#[tokio::test]
async fn bad_credentials_and_names_are_configuration_errors_without_secrets() {
    let server = shared_postgres();
    let wrong = format!(
        "postgres://sessions:not-the-password-xyz@127.0.0.1:{}/sessions",
        server.port
    );
    let err = PostgresDriver::connect(PostgresConfig::new(wrong))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("not-the-password-xyz"), "{text}");

    let mut bad_table = PostgresConfig::new(server.url());
    bad_table.table = "x; DROP TABLE y".into();
    let err = PostgresDriver::connect(bad_table).await.unwrap_err();
    assert!(err.to_string().contains("option `table`"), "{err}");

    let driver = driver_on(server.url(), &fresh_table("debug")).await;
    let dbg = format!("{driver:?}");
    assert!(!dbg.contains(session_test_support::sql::PASSWORD), "{dbg}");
}

#[tokio::test]
async fn a_server_that_is_down_fails_within_the_connect_timeout() {
    let port = session_test_support::free_port();
    let started = Instant::now();
    let err = PostgresDriver::connect(PostgresConfig::new(format!(
        "postgres://u:p@127.0.0.1:{port}/db?connect_timeout=1"
    )))
    .await
    .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

/// The database stopped and restarted under load: bounded, retryable errors while it is down,
/// then the same driver works again without a restart of the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_gives_bounded_retryable_errors_then_recovers() {
    let server = PostgresServer::start();
    let mut config = PostgresConfig::new(server.url());
    config.operation_timeout = Some(Duration::from_secs(1));
    config.pool_size = Some(4);
    let driver: Arc<dyn Driver> = session_kit_core::layers::with_defaults(Arc::new(
        PostgresDriver::connect(config).await.unwrap(),
    ));
    assert!(
        driver.layers().contains(&"timeout"),
        "{:?}",
        driver.layers()
    );

    let (server, report) = session_test_support::load_through_outage(
        driver,
        server,
        PostgresServer::kill,
        PostgresServer::restart,
    )
    .await;
    // Each attempt is bounded by the 1 s operation timeout; the retry layer tries an
    // idempotent operation three times with backoff.
    assert!(report.slowest < Duration::from_secs(5), "{report:?}");
    drop(server);
}

#[tokio::test]
async fn errors_map_to_kinds() {
    let driver = driver_on(shared_postgres().url(), &fresh_table("kinds")).await;
    driver
        .put(
            "k",
            Bytes::from_static(b"v"),
            PutOptions::new().mode(session_kit_core::WriteMode::CreateOnly),
        )
        .await
        .unwrap();
    let again = driver
        .put(
            "k",
            Bytes::from_static(b"v"),
            PutOptions::new().mode(session_kit_core::WriteMode::CreateOnly),
        )
        .await;
    assert!(
        matches!(again, Err(DriverError::AlreadyExists)),
        "{again:?}"
    );
}

/// TLS (feature `tls`): a server whose certificate a throwaway authority signed is trusted
/// through `tls_ca_file`, refused without it, and `sslmode=require` really encrypts.
#[cfg(feature = "tls")]
#[tokio::test]
async fn tls_verifies_the_server_certificate() {
    let server = PostgresServer::start_tls();
    let url = |query: &str| format!("{}?sslmode=require{query}", server.url());
    let ca = server.ca_file().display().to_string();
    let mut config = PostgresConfig::from_driver_config(&session_kit_core::DriverConfig::new(url(
        &format!("&tls_ca_file={ca}"),
    )))
    .unwrap();
    config.table = fresh_table("tls");
    let driver = PostgresDriver::connect(config).await.unwrap();
    driver
        .put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    let ssl = server.psql(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE ssl AND application_name = 'session-kit-postgres'",
    );
    assert_ne!(ssl.trim(), "0", "the driver's connections use TLS");
    let untrusted = PostgresDriver::connect(PostgresConfig::new(url(""))).await;
    assert!(
        untrusted.is_err(),
        "a certificate of an unknown authority is refused"
    );
}

/// The read cache (`local_cache`) of one process sees the writes and deletes of another
/// through the table's notifications, and goes back to the database while its listening
/// connection is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_cache_follows_other_processes_writes() {
    let table = fresh_table("cached");
    let open = || async {
        let mut config = PostgresConfig::new(shared_postgres().url());
        config.table = table.clone();
        config.local_cache = Some(1 << 20);
        session_kit_core::layers::with_defaults(Arc::new(
            PostgresDriver::connect(config).await.unwrap(),
        ))
    };
    let (a, b) = (open().await, open().await);
    assert!(b.layers().contains(&"cache"), "{:?}", b.layers());
    let eventually = |want: Option<&'static str>| {
        let b = b.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let got = b.get("k").await.unwrap().map(|e| e.value);
                if got.as_deref() == want.map(str::as_bytes) {
                    return;
                }
                assert!(Instant::now() < deadline, "still {got:?}, want {want:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    a.put("k", Bytes::from_static(b"v1"), PutOptions::new())
        .await
        .unwrap();
    eventually(Some("v1")).await;
    // b now answers from its cache; a's change reaches it.
    a.put("k", Bytes::from_static(b"v2"), PutOptions::new())
        .await
        .unwrap();
    eventually(Some("v2")).await;
    // Proof that b answers from its cache: a change made without the trigger is not seen...
    let psql = |sql: String| shared_postgres().psql(&sql);
    psql(format!(
        "ALTER TABLE \"{table}\" DISABLE TRIGGER USER; \
         UPDATE \"{table}\" SET value = 'hidden' WHERE key = 'k'; \
         ALTER TABLE \"{table}\" ENABLE TRIGGER USER"
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        b.get("k").await.unwrap().unwrap().value,
        "v2",
        "served from the cache"
    );
    // ...while any other writer's change, plain SQL included, is.
    psql(format!(
        "UPDATE \"{table}\" SET value = 'sql' WHERE key = 'k'"
    ));
    eventually(Some("sql")).await;
    a.delete("k").await.unwrap();
    eventually(None).await;

    // Cut every listening connection: b empties its cache and reads the database until its
    // listener is back.
    a.put("k", Bytes::from_static(b"v3"), PutOptions::new())
        .await
        .unwrap();
    eventually(Some("v3")).await;
    shared_postgres()
        .psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'");
    a.put("k", Bytes::from_static(b"v4"), PutOptions::new())
        .await
        .unwrap();
    eventually(Some("v4")).await;
    a.put("k", Bytes::from_static(b"v5"), PutOptions::new())
        .await
        .unwrap();
    eventually(Some("v5")).await;
}

//! Behaviour specific to the MySQL/MariaDB driver, against real MariaDB servers started by
//! this test binary: processes sharing one table, the schema, byte-exact prefixes, errors,
//! and a server stopped and restarted under load.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use session_kit_core::{
    Driver, DriverError, ErrorKind, PutOptions, Registry, WriteMode, bytes::Bytes,
};
use session_kit_mysql::{MysqlConfig, MysqlDriver};
use session_test_support::sql::{MariaDbServer, fresh_table, shared_mariadb};

async fn driver_on(url: String, table: &str) -> MysqlDriver {
    let mut config = MysqlConfig::new(url);
    config.table = table.to_owned();
    MysqlDriver::connect(config).await.unwrap()
}

#[test]
fn processes_sharing_one_table_never_lose_an_update() {
    let location = match std::env::var("SESSION_CONFORMANCE_CHILD_LOCATION") {
        Ok(location) => location,
        Err(_) => format!("{}?table={}", shared_mariadb().url(), fresh_table("procs")),
    };
    session_kit_conformance::cross_process_check(
        "processes_sharing_one_table_never_lose_an_update",
        &location,
        4,
        |location| async move {
            let mut registry = Registry::new();
            session_kit_mysql::register(&mut registry);
            registry.open(&location).await
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drivers_starting_together_create_the_table_once() {
    let table = fresh_table("race");
    let url = shared_mariadb().url();
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let mut config = MysqlConfig::new(url.clone());
            config.table = table.clone();
            config.expiry_index = true;
            tokio::spawn(MysqlDriver::connect(config))
        })
        .collect();
    let mut drivers = Vec::new();
    for start in starts {
        drivers.push(start.await.unwrap().unwrap());
    }
    drivers[0]
        .put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    assert_eq!(drivers[7].get("k").await.unwrap().unwrap().value, "v");
}

#[tokio::test]
async fn without_auto_migrate_the_table_comes_from_migrate() {
    let mut config = MysqlConfig::new(shared_mariadb().url());
    config.table = fresh_table("manual");
    config.auto_migrate = false;
    let driver = MysqlDriver::connect(config).await.unwrap();
    let missing = driver.get("k").await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Config, "{missing}");
    driver.migrate().await.unwrap();
    driver.migrate().await.unwrap();
    driver
        .put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_table_may_live_in_another_database() {
    let table = fresh_table("elsewhere");
    let config = MysqlConfig::from_driver_config(&session_kit_core::DriverConfig::new(format!(
        "{}?schema=sessions_other&table={table}",
        shared_mariadb().url()
    )))
    .unwrap();
    let driver = MysqlDriver::connect(config).await.unwrap();
    driver
        .put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    assert_eq!(driver.get("k").await.unwrap().unwrap().value, "v");
    // Not in the URL's database.
    let same_name = driver_on(shared_mariadb().url(), &table).await;
    assert!(same_name.get("k").await.unwrap().is_none());
}

#[tokio::test]
async fn like_wildcards_in_keys_match_only_themselves() {
    let driver = driver_on(shared_mariadb().url(), &fresh_table("wild")).await;
    for key in ["a%", "a_b", "abb", "a%c", "a\\x", "ab", "A%"] {
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
        ["a\\x", "a_b", "ab", "abb"],
        "byte order, case kept (no collation)"
    );
}

#[tokio::test]
async fn touch_to_the_same_deadline_still_answers_true() {
    let driver = driver_on(shared_mariadb().url(), &fresh_table("touch")).await;
    driver
        .put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    // A key without expiry touched twice in one go, and a missing key.
    assert!(driver.touch("k", Duration::from_secs(60)).await.unwrap());
    assert!(driver.touch("k", Duration::from_secs(60)).await.unwrap());
    assert!(
        !driver
            .touch("missing", Duration::from_secs(60))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn expiry_follows_the_database_clock_and_sweep_removes_rows() {
    let driver = driver_on(shared_mariadb().url(), &fresh_table("sweep")).await;
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
    let left = driver
        .get("long")
        .await
        .unwrap()
        .unwrap()
        .expires_at
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(399 * 24 * 3600), "{left:?}");
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(driver.get("short").await.unwrap().is_none());
    // Create-only over the expired row replaces it.
    driver
        .put(
            "short",
            Bytes::from_static(b"again"),
            PutOptions::new()
                .mode(WriteMode::CreateOnly)
                .ttl(Duration::from_millis(50)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(driver.sweep().await.unwrap(), 1);
    assert_eq!(driver.count().await.unwrap(), 1);
}

#[tokio::test]
async fn bad_credentials_and_names_are_configuration_errors_without_secrets() {
    let server = shared_mariadb();
    let wrong = format!(
        "mysql://sessions:not-the-password-xyz@127.0.0.1:{}/sessions",
        server.port
    );
    let err = MysqlDriver::connect(MysqlConfig::new(wrong))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("not-the-password-xyz"), "{text}");

    let mut bad_table = MysqlConfig::new(server.url());
    bad_table.table = "x; DROP TABLE y".into();
    let err = MysqlDriver::connect(bad_table).await.unwrap_err();
    assert!(err.to_string().contains("option `table`"), "{err}");

    let typo = MysqlDriver::connect(MysqlConfig::new(format!(
        "{}?requre_ssl=true",
        server.url()
    )))
    .await
    .unwrap_err();
    assert_eq!(typo.kind(), ErrorKind::Config, "{typo}");
    assert!(typo.to_string().contains("requre_ssl"), "{typo}");
    assert!(
        !typo
            .to_string()
            .contains(session_test_support::sql::PASSWORD),
        "{typo}"
    );
}

#[tokio::test]
async fn a_server_that_is_down_fails_within_the_operation_timeout() {
    let port = session_test_support::free_port();
    let mut config = MysqlConfig::new(format!("mysql://u:p@127.0.0.1:{port}/db"));
    config.operation_timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let err = MysqlDriver::connect(config).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// The database stopped and restarted under load: bounded, retryable errors while it is down,
/// then the same driver works again without a restart of the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_gives_bounded_retryable_errors_then_recovers() {
    let server = MariaDbServer::start();
    let mut config = MysqlConfig::new(server.url());
    config.operation_timeout = Some(Duration::from_secs(1));
    config.pool_size = Some(4);
    let driver: Arc<dyn Driver> = session_kit_core::layers::with_defaults(Arc::new(
        MysqlDriver::connect(config).await.unwrap(),
    ));
    let (server, report) = session_test_support::load_through_outage(
        driver,
        server,
        MariaDbServer::kill,
        MariaDbServer::restart,
    )
    .await;
    // Each attempt is bounded by the 1 s operation timeout; the retry layer tries an
    // idempotent operation three times with backoff.
    assert!(report.slowest < Duration::from_secs(5), "{report:?}");
    drop(server);
}

#[tokio::test]
async fn the_longest_names_migrate() {
    // 48-byte names: the schema lock's name is cut to MySQL's 64 characters.
    let table = format!("t{}", "x".repeat(47));
    let mut config = MysqlConfig::new(shared_mariadb().url());
    config.table = table;
    config.schema = Some("sessions_other".into());
    let driver = MysqlDriver::connect(config).await.unwrap();
    driver.migrate().await.unwrap();
}

#[tokio::test]
async fn create_only_refuses_a_live_key() {
    let driver = driver_on(shared_mariadb().url(), &fresh_table("kinds")).await;
    let create = || {
        driver.put(
            "k",
            Bytes::from_static(b"v"),
            PutOptions::new().mode(WriteMode::CreateOnly),
        )
    };
    create().await.unwrap();
    assert!(matches!(create().await, Err(DriverError::AlreadyExists)));
}

/// TLS (feature `tls`): a server whose certificate a throwaway authority signed is trusted
/// through `tls_ca_file`, refused without it, and the connection really is encrypted.
#[cfg(feature = "tls")]
#[tokio::test]
async fn tls_verifies_the_server_certificate() {
    use session_kit_mysql::mysql_async::prelude::Queryable;

    let server = MariaDbServer::start_tls();
    let ca = server.ca_file().display().to_string();
    let mut config = MysqlConfig::from_driver_config(&session_kit_core::DriverConfig::new(
        format!("{}?require_ssl=true&tls_ca_file={ca}", server.url()),
    ))
    .unwrap();
    config.table = fresh_table("tls");
    let driver = MysqlDriver::connect(config).await.unwrap();
    driver
        .put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    // The same settings, asked directly: the session's cipher is not empty.
    let opts = session_kit_mysql::mysql_async::OptsBuilder::from_opts(
        session_kit_mysql::mysql_async::Opts::from_url(&format!(
            "{}?require_ssl=true",
            server.url()
        ))
        .unwrap(),
    )
    .ssl_opts(
        session_kit_mysql::mysql_async::SslOpts::default()
            .with_root_certs(vec![std::path::PathBuf::from(&ca).into()]),
    );
    let mut conn = session_kit_mysql::mysql_async::Conn::new(opts)
        .await
        .unwrap();
    let cipher: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .unwrap();
    assert!(!cipher.unwrap().1.is_empty(), "an encrypted connection");
    let untrusted = MysqlDriver::connect(MysqlConfig::new(format!(
        "{}?require_ssl=true",
        server.url()
    )))
    .await;
    assert!(
        untrusted.is_err(),
        "a certificate of an unknown authority is refused"
    );
}

//! A MySQL and MariaDB session driver: sessions in a table of the database the app already
//! runs (MySQL 8 and MariaDB 10.5 or later).
//!
//! * **One statement per operation**, its condition inside it: create-only is an
//!   `INSERT ... ON DUPLICATE KEY UPDATE` whose assignments take effect only on an expired row
//!   (the affected-row count tells an insert, a replacement and a refusal apart), update-only
//!   and compare-and-swap are `UPDATE ... WHERE` on liveness (and the version), touch updates
//!   the expiry column only. InnoDB locks the row for the statement, so two racing writes
//!   never both succeed. Two exceptions, both documented below: `touch` asks again in the rare
//!   case the new deadline equals the old one, and `clear` is two statements.
//! * **Versions** are random 63-bit numbers made by the driver (MySQL has no sequences, and no
//!   `RETURNING` to read one back): the chance that a key ever sees a version again is 2^-63
//!   per write.
//! * **Expiry** is checked against the database's clock (`UTC_TIMESTAMP(6)`, independent of
//!   the session's time zone) by every statement; `expires_at` is reported on the
//!   application's clock (its now plus the time the database says is left). Expired rows are
//!   deleted by [`MysqlDriver::sweep`], every 10 minutes by default through the sweep layer.
//! * **Keys** are stored byte-exact (`VARBINARY`), listed in byte order a page at a time; a
//!   prefix is a key range, never `LIKE`.
//! * **Schema**: the table is created when the driver starts, under a named lock
//!   (`GET_LOCK`) so that servers starting together do not race, or by
//!   [`MysqlDriver::migrate`] with `auto_migrate=false`.
//!
//! # Why `mysql_async`
//!
//! It is the maintained asynchronous MySQL client for Tokio, speaks both MySQL 8 and MariaDB
//! (their authentication plugins included), prepares statements once per connection and
//! keeps its own pool. `sqlx` would serve too, with a second query layer for a handful of
//! fixed statements.
//!
//! ```no_run
//! use session_kit_core::{Driver, PutOptions, bytes::Bytes};
//! use session_kit_mysql::{MysqlConfig, MysqlDriver};
//!
//! # async fn run() -> Result<(), session_kit_core::DriverError> {
//! let driver = MysqlDriver::connect(MysqlConfig::new("mysql://app:secret@127.0.0.1:3306/app")).await?;
//! driver.put("k", Bytes::from_static(b"v"), PutOptions::new()).await?;
//! assert_eq!(driver.get("k").await?.unwrap().value, "v");
//! # Ok(()) }
//! ```
#![doc = include_str!("../docs.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
mod sql;

use std::{fmt, sync::Arc, time::Duration};

use mysql_async::{
    Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row, Value, prelude::Queryable,
};
use session_kit_core::driver::{
    check_identifier, from_unix_millis, prefix_upper_bound, unix_millis,
};
use session_kit_core::{
    Capabilities, Clock, Driver, DriverError, Entry, LayerOptions, ListPage, PutOptions,
    SystemClock, TtlSupport, Version, WriteMode, async_trait, bytes::Bytes,
};

pub use config::{
    DEFAULT_OPERATION_TIMEOUT, DEFAULT_SWEEP_INTERVAL, MysqlConfig, OPTION_NAMES, register,
};
/// The client crate this driver uses, for [`MysqlDriver::from_pool`].
pub use mysql_async;

use crate::{config::redact, error::mysql_error, sql::Statements};

/// The registry name of this driver.
pub const NAME: &str = "mysql";
/// URL schemes this driver registers.
pub const SCHEMES: &[&str] = &["mysql", "mariadb"];
/// Largest key accepted, in bytes (InnoDB indexes keys up to 3072 bytes).
pub const MAX_KEY_LEN: usize = 2048;
/// Largest value accepted, in bytes: a value travels in one packet, and MariaDB's default
/// `max_allowed_packet` is 16 MiB.
pub const MAX_VALUE_SIZE: usize = 8 * 1024 * 1024;
/// Keys per page of [`Driver::list`].
const PAGE: u64 = 1000;
/// TTLs are sent in microseconds; longer than 100 years is kept at 100 years.
const MAX_TTL_MICROS: i64 = 100 * 366 * 24 * 3600 * 1_000_000;

/// The MySQL/MariaDB driver. See the crate documentation.
pub struct MysqlDriver {
    pool: Pool,
    sql: Statements,
    schema: Option<String>,
    table: String,
    expiry_index: bool,
    operation_timeout: Duration,
    caps: Capabilities,
    layers: LayerOptions,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MysqlDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlDriver")
            .field("table", &self.sql.table)
            .finish_non_exhaustive()
    }
}

/// Builds a [`MysqlDriver`] on a pool: [`MysqlDriver::connect`] makes one from a config,
/// [`MysqlDriver::from_pool`] takes the app's.
pub struct MysqlDriverBuilder {
    pool: Pool,
    schema: Option<String>,
    table: String,
    auto_migrate: bool,
    expiry_index: bool,
    operation_timeout: Duration,
    sweep_interval: Option<Duration>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MysqlDriverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlDriverBuilder")
            .field("table", &self.table)
            .field("auto_migrate", &self.auto_migrate)
            .finish_non_exhaustive()
    }
}

impl MysqlDriverBuilder {
    /// The database of the table (default: the connection's, from the URL).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The table (default `sessions`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Whether [`build`](Self::build) creates a missing table (default `true`).
    pub fn auto_migrate(mut self, on: bool) -> Self {
        self.auto_migrate = on;
        self
    }

    /// Creates an index on `expires_at` (see [`MysqlConfig::expiry_index`]).
    pub fn expiry_index(mut self, on: bool) -> Self {
        self.expiry_index = on;
        self
    }

    /// The time limit of every operation, connection included, that the layers apply
    /// (default 5 s).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Deletes expired rows in the background at this interval through the sweep layer
    /// (zero: never; default never when built in code, 10 minutes when opened by config).
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval);
        self
    }

    /// The clock `Entry::expires_at` is reported by (the system clock by default). Expiry
    /// itself is the database's.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the table name, creates the table (unless `auto_migrate` is off) and returns
    /// the driver.
    pub async fn build(self) -> Result<MysqlDriver, DriverError> {
        check_identifier("table", &self.table, 48)?;
        if let Some(schema) = &self.schema {
            check_identifier("schema", schema, 48)?;
        }
        let driver = MysqlDriver {
            sql: Statements::new(self.schema.as_deref(), &self.table),
            schema: self.schema,
            pool: self.pool,
            table: self.table,
            expiry_index: self.expiry_index,
            operation_timeout: self.operation_timeout,
            caps: Capabilities::new(MAX_KEY_LEN, MAX_VALUE_SIZE)
                .with_ttl(TtlSupport::exact(Duration::from_millis(1)))
                .with_create_only()
                .with_update_only()
                .with_compare_and_swap()
                .with_touch()
                .with_list(),
            layers: LayerOptions::new()
                .with_timeout(self.operation_timeout)
                .with_retries(2)
                .with_sweep_interval_opt(self.sweep_interval),
            clock: self.clock,
        };
        if self.auto_migrate {
            driver.migrate().await?;
        } else {
            // Nothing has connected yet: fail now, not on the first request.
            drop(driver.conn().await?);
        }
        Ok(driver)
    }
}

impl MysqlDriver {
    /// Connects a pool from `config` and builds the driver (creating the table unless
    /// `auto_migrate` is off). Fails within `operation_timeout` when the server is down.
    pub async fn connect(config: MysqlConfig) -> Result<Self, DriverError> {
        let url = config.url.as_deref().ok_or_else(|| {
            DriverError::config("option `url`: write mysql://user:password@host:port/database")
        })?;
        let opts = Opts::from_url(url)
            .map_err(|e| DriverError::config(format!("option `url` ({}): {e}", redact(url))))?;
        let timeout = config.operation_timeout();
        let size = usize::try_from(config.pool_size.unwrap_or(16).max(1)).unwrap_or(16);
        let constraints = PoolConstraints::new(0, size)
            .ok_or_else(|| DriverError::config("option `pool_size`: must be at least 1"))?;
        #[cfg(feature = "tls")]
        if opts.ssl_opts().is_some() || config.tls_ca_file.is_some() {
            // mysql_async's rustls uses the process's default crypto provider, which rustls
            // cannot choose when both of its providers are compiled in (a panic on the first
            // connection): install ring's, unless the app installed one.
            if rustls::crypto::CryptoProvider::get_default().is_none() {
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
        }
        #[cfg(feature = "tls")]
        let ssl = match &config.tls_ca_file {
            // The CA file implies TLS; other TLS settings come from the URL (`require_ssl`,
            // `verify_ca`, `verify_identity`, `built_in_roots`).
            Some(path) => Some(
                opts.ssl_opts()
                    .cloned()
                    .unwrap_or_default()
                    .with_root_certs(vec![std::path::PathBuf::from(path).into()]),
            ),
            None => opts.ssl_opts().cloned(),
        };
        #[cfg(not(feature = "tls"))]
        if config.tls_ca_file.is_some() || opts.ssl_opts().is_some() {
            return Err(DriverError::config(
                "option `tls_ca_file`/`require_ssl`: TLS needs the `tls` feature of \
                 session-kit-mysql",
            ));
        }
        #[allow(unused_mut)]
        let mut builder = OptsBuilder::from_opts(opts)
            // The affected-row counts must tell "changed" from "found": create-only reads them.
            .client_found_rows(false)
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(constraints)
                    // Keep up to `pool_size` idle connections, closing them after a minute
                    // unused (with no idle time, every returned connection above `min` is
                    // closed at once: a new connection per operation).
                    .with_inactive_connection_ttl(Duration::from_secs(60))
                    // Our statements leave no session state behind: no reset round trip.
                    .with_reset_connection(false),
            )
            .init(vec![format!(
                "SET SESSION innodb_lock_wait_timeout = {}",
                timeout.as_secs().max(1)
            )]);
        #[cfg(feature = "tls")]
        {
            builder = builder.ssl_opts(ssl);
        }
        let pool = Pool::new(builder);
        let mut build = Self::from_pool(pool).table(config.table);
        if let Some(schema) = config.schema {
            build = build.schema(schema);
        }
        let build = build
            .auto_migrate(config.auto_migrate)
            .expiry_index(config.expiry_index)
            .operation_timeout(timeout)
            .sweep_interval(DEFAULT_SWEEP_INTERVAL)
            .build();
        tokio::time::timeout(timeout, build)
            .await
            .map_err(|_| DriverError::timeout("mysql connect", timeout))?
    }

    /// A builder on the app's own pool (build it with `client_found_rows` off, the default:
    /// create-only reads the affected-row count).
    pub fn from_pool(pool: Pool) -> MysqlDriverBuilder {
        MysqlDriverBuilder {
            pool,
            schema: None,
            table: "sessions".into(),
            auto_migrate: true,
            expiry_index: false,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            sweep_interval: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Creates the table (and the expiry index, if asked for) under a named lock so that
    /// processes starting together do not race. Idempotent.
    pub async fn migrate(&self) -> Result<(), DriverError> {
        let mut conn = self.conn().await?;
        // MySQL limits lock names to 64 characters; two long names sharing a lock only
        // serialize their migrations.
        let mut lock = format!("session-kit-mysql:{}", self.sql.table);
        lock.truncate(64);
        let seconds = self.operation_timeout.as_secs().max(1);
        let got: Option<Option<i64>> = conn
            .exec_first("SELECT GET_LOCK(?, ?)", (&lock, seconds))
            .await
            .map_err(mysql_error)?;
        if got.flatten() != Some(1) {
            return Err(DriverError::transient(
                "mysql: another process holds the schema lock",
                std::io::Error::other("GET_LOCK timed out"),
            ));
        }
        let result = self.create_schema(&mut conn).await;
        let released = conn
            .exec_drop("SELECT RELEASE_LOCK(?)", (&lock,))
            .await
            .map_err(mysql_error);
        result?;
        released?;
        tracing::debug!(table = %self.sql.table, "mysql session table ready");
        Ok(())
    }

    async fn create_schema(&self, conn: &mut Conn) -> Result<(), DriverError> {
        let statements = self.sql.schema(&self.table, self.expiry_index);
        conn.query_drop(&statements[0]).await.map_err(mysql_error)?;
        if let Some(index) = statements.get(1) {
            let exists: Option<i64> = conn
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.statistics \
                     WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? \
                     AND index_name = ?",
                    (
                        self.schema.as_deref(),
                        &self.table,
                        format!("{}_expires_at", self.table),
                    ),
                )
                .await
                .map_err(mysql_error)?;
            if exists.unwrap_or(0) == 0 {
                conn.query_drop(index).await.map_err(mysql_error)?;
            }
        }
        Ok(())
    }

    /// Deletes every expired row now and answers how many.
    pub async fn sweep(&self) -> Result<u64, DriverError> {
        self.execute(&self.sql.sweep, ()).await
    }

    /// How many live rows the table holds.
    pub async fn count(&self) -> Result<u64, DriverError> {
        let mut conn = self.conn().await?;
        let n: Option<u64> = conn
            .exec_first(&self.sql.count, ())
            .await
            .map_err(mysql_error)?;
        Ok(n.unwrap_or(0))
    }

    async fn conn(&self) -> Result<Conn, DriverError> {
        self.pool.get_conn().await.map_err(mysql_error)
    }

    /// Runs a statement and answers the affected-row count.
    async fn execute(
        &self,
        sql: &str,
        params: impl Into<mysql_async::Params> + Send,
    ) -> Result<u64, DriverError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(sql, params).await.map_err(mysql_error)?;
        Ok(conn.affected_rows())
    }
}

/// A TTL in whole microseconds, rounded up (a key never expires early).
fn micros(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_nanos().div_ceil(1000))
        .unwrap_or(i64::MAX)
        .min(MAX_TTL_MICROS)
}

/// A new version: random, positive, never issued by a sequence that could restart.
fn new_version() -> i64 {
    (rand::random::<u64>() >> 1) as i64
}

#[async_trait]
impl Driver for MysqlDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn layer_defaults(&self) -> LayerOptions {
        self.layers.clone()
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let mut conn = self.conn().await?;
        let row: Option<(Vec<u8>, i64, Option<i64>)> = conn
            .exec_first(&self.sql.get, (key.as_bytes(),))
            .await
            .map_err(mysql_error)?;
        drop(conn);
        let Some((value, version, left_micros)) = row else {
            return Ok(None);
        };
        let now = unix_millis(self.clock.now());
        Ok(Some(Entry {
            value: Bytes::from(value),
            version: Version::from_u64(version as u64),
            expires_at: left_micros
                .map(|us| from_unix_millis(now.saturating_add((us.max(0) as u64).div_ceil(1000)))),
        }))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        let version = new_version();
        let ttl = Value::from(options.ttl.map(micros));
        let (key, value) = (Value::from(key.as_bytes()), Value::from(&value[..]));
        let changed = match &options.mode {
            WriteMode::Overwrite => {
                self.execute(&self.sql.overwrite, (key, value, version, ttl))
                    .await?;
                1
            }
            WriteMode::CreateOnly => {
                // 1: inserted; 2: an expired row replaced; 0: a live row left alone.
                match self
                    .execute(&self.sql.create, (key, value, version, ttl))
                    .await?
                {
                    0 => return Err(DriverError::AlreadyExists),
                    _ => 1,
                }
            }
            WriteMode::UpdateOnly => {
                self.execute(&self.sql.update, (value, version, ttl, key))
                    .await?
            }
            WriteMode::IfVersion(expected) => {
                // A version this driver never issued matches no row.
                let Ok(expected) = expected.as_str().parse::<i64>() else {
                    return Err(DriverError::Conflict);
                };
                self.execute(
                    &self.sql.compare_and_swap,
                    (value, version, ttl, key, expected),
                )
                .await?
            }
        };
        if changed == 0 {
            return Err(DriverError::Conflict);
        }
        Ok(Version::from_u64(version as u64))
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.execute(&self.sql.delete, (key.as_bytes(),)).await?;
        Ok(())
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(&self.sql.touch, (micros(ttl), key.as_bytes()))
            .await
            .map_err(mysql_error)?;
        if conn.affected_rows() > 0 {
            return Ok(true);
        }
        // Zero rows changed: the key is missing, or its deadline already was the new one
        // (MySQL counts only rows whose values change).
        let live: Option<i64> = conn
            .exec_first(&self.sql.is_live, (key.as_bytes(),))
            .await
            .map_err(mysql_error)?;
        Ok(live.is_some())
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let after = cursor.unwrap_or_default().as_bytes();
        let mut conn = self.conn().await?;
        let rows: Vec<Row> = match prefix_upper_bound(prefix.as_bytes()) {
            Some(end) => conn
                .exec(&self.sql.list_range, (after, prefix.as_bytes(), end, PAGE))
                .await
                .map_err(mysql_error)?,
            None => conn
                .exec(&self.sql.list_all, (after, PAGE))
                .await
                .map_err(mysql_error)?,
        };
        drop(conn);
        let keys = rows
            .into_iter()
            .map(|row| {
                let key: Option<Vec<u8>> = row.get(0);
                key.and_then(|k| String::from_utf8(k).ok())
                    .ok_or_else(|| DriverError::corrupt("mysql: a stored key is not UTF-8"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cursor = (keys.len() == PAGE as usize)
            .then(|| keys.last().cloned())
            .flatten();
        Ok(ListPage { keys, cursor })
    }

    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        let mut conn = self.conn().await?;
        match prefix_upper_bound(prefix.as_bytes()) {
            Some(end) => {
                let range = (prefix.as_bytes(), end);
                conn.exec_drop(&self.sql.clear_expired_range, range.clone())
                    .await
                    .map_err(mysql_error)?;
                conn.exec_drop(&self.sql.clear_range, range)
                    .await
                    .map_err(mysql_error)?;
            }
            None => {
                conn.exec_drop(&self.sql.clear_expired_all, ())
                    .await
                    .map_err(mysql_error)?;
                conn.exec_drop(&self.sql.clear_all, ())
                    .await
                    .map_err(mysql_error)?;
            }
        }
        Ok(conn.affected_rows())
    }

    async fn sweep(&self) -> Result<u64, DriverError> {
        MysqlDriver::sweep(self).await
    }
}

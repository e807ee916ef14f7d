//! A PostgreSQL session driver: sessions in a table of the database the app already runs.
//!
//! * **One statement per operation**, its condition inside it: create-only is an
//!   `INSERT ... ON CONFLICT DO UPDATE ... WHERE` that replaces only an expired row,
//!   update-only and compare-and-swap are `UPDATE ... WHERE` on liveness (and the version),
//!   touch updates the expiry column only. Under PostgreSQL's default `READ COMMITTED`, a
//!   conditional update that waited for a concurrent one re-checks its condition on the row
//!   that one left, so two racing writes never both succeed.
//! * **Versions** come from a sequence (`<table>_version`): never reused, also after a key is
//!   deleted and written again.
//! * **Expiry** is checked against the database's clock (`now()`) by every statement, so
//!   application servers whose clocks disagree still agree on what has expired; `expires_at`
//!   is reported on the application's clock (its now plus the time the database says is
//!   left). Expired rows are deleted by [`PostgresDriver::sweep`], every 10 minutes by
//!   default through the sweep layer.
//! * **Keys** are stored byte-exact (`bytea`), listed in byte order a page at a time; a prefix
//!   is a key range (`key >= prefix AND key < successor`), never `LIKE`, so `%` and `_` in a key
//!   match only themselves.
//! * **Schema**: the table, its sequence and (optionally) its schema are created when the
//!   driver starts, under an advisory lock so that servers starting together do not race, or by
//!   [`PostgresDriver::migrate`] from a deploy step with `auto_migrate=false`.
//! * **A read cache**, off by default (`local_cache`): session-kit-core's read-cache layer kept
//!   correct by `LISTEN`/`NOTIFY`, at a cost to every write (see below).
//!
//! # Why `tokio-postgres` and `deadpool-postgres`
//!
//! `tokio-postgres` is the asynchronous client under most of the Rust PostgreSQL ecosystem
//! (sqlx aside): it prepares each statement once per connection and keeps the binary protocol,
//! so an operation is one round trip with no SQL parsing; `deadpool-postgres` is a small,
//! well-kept pool around it that can hand out connections of the app's own pool
//! ([`PostgresDriver::from_pool`]). `sqlx` would serve too, but it adds a second query layer
//! (and its compile-time machinery) for eleven fixed statements.
//!
//! ```no_run
//! use session_kit_core::{Driver, PutOptions, bytes::Bytes};
//! use session_kit_postgres::{PostgresConfig, PostgresDriver};
//!
//! # async fn run() -> Result<(), session_kit_core::DriverError> {
//! let driver = PostgresDriver::connect(PostgresConfig::new(
//!     "postgres://app:secret@127.0.0.1:5432/app?sslmode=disable",
//! ))
//! .await?;
//! driver.put("k", Bytes::from_static(b"v"), PutOptions::new()).await?;
//! assert_eq!(driver.get("k").await?.unwrap().value, "v");
//! # Ok(()) }
//! ```
#![doc = include_str!("../docs.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
mod listen;
mod sql;
#[cfg(feature = "tls")]
mod tls;

use std::{fmt, sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use session_kit_core::driver::{
    check_identifier, from_unix_millis, prefix_upper_bound, unix_millis,
};
use session_kit_core::{
    Capabilities, Clock, Driver, DriverError, Entry, LayerOptions, ListPage, PutOptions,
    SystemClock, TtlSupport, Version, WriteMode, async_trait,
    bytes::Bytes,
    layers::{CacheLayer, ReadCache},
};
use tokio_postgres::types::ToSql;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_OPERATION_TIMEOUT, DEFAULT_SWEEP_INTERVAL, OPTION_NAMES,
    PostgresConfig, register,
};
/// The pool crate this driver uses, for [`PostgresDriver::from_pool`].
pub use deadpool_postgres;
/// The client crate this driver uses.
pub use tokio_postgres;

use crate::{
    error::{pg_error, pool_error},
    listen::{Connector, Listener},
    sql::{SchemaOptions, Statements},
};

/// The registry name of this driver.
pub const NAME: &str = "postgres";
/// URL schemes this driver registers.
pub const SCHEMES: &[&str] = &["postgres", "postgresql"];
/// Largest key accepted, in bytes (a B-tree entry must fit a third of a page).
pub const MAX_KEY_LEN: usize = 2048;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_SIZE: usize = 16 * 1024 * 1024;
/// Keys per page of [`Driver::list`].
const PAGE: i64 = 1000;
/// TTLs are sent in microseconds; longer than 100 years is kept at 100 years.
const MAX_TTL_MICROS: i64 = 100 * 366 * 24 * 3600 * 1_000_000;

/// The PostgreSQL driver. See the crate documentation.
pub struct PostgresDriver {
    pool: Pool,
    sql: Statements,
    schema: String,
    table: String,
    schema_options: SchemaOptions,
    caps: Capabilities,
    layers: LayerOptions,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for PostgresDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresDriver")
            .field("table", &self.sql.table)
            .field("pool_size", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}

/// Builds a [`PostgresDriver`] on a pool: [`PostgresDriver::connect`] makes one from a
/// config, [`PostgresDriver::from_pool`] takes the app's.
pub struct PostgresDriverBuilder {
    pool: Pool,
    schema: String,
    table: String,
    auto_migrate: bool,
    schema_options: SchemaOptions,
    operation_timeout: Duration,
    sweep_interval: Option<Duration>,
    clock: Arc<dyn Clock>,
    read_cache: Option<CacheLayer>,
}

impl fmt::Debug for PostgresDriverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresDriverBuilder")
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("auto_migrate", &self.auto_migrate)
            .finish_non_exhaustive()
    }
}

impl PostgresDriverBuilder {
    /// The schema of the table (default `public`).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The table (default `sessions`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Whether [`build`](Self::build) creates missing schema objects (default `true`).
    pub fn auto_migrate(mut self, on: bool) -> Self {
        self.auto_migrate = on;
        self
    }

    /// Creates the table `UNLOGGED` (see [`PostgresConfig::unlogged`]).
    pub fn unlogged(mut self, on: bool) -> Self {
        self.schema_options.unlogged = on;
        self
    }

    /// Creates an index on `expires_at` (see [`PostgresConfig::expiry_index`]).
    pub fn expiry_index(mut self, on: bool) -> Self {
        self.schema_options.expiry_index = on;
        self
    }

    /// The table's fill factor (10 to 100, default 90).
    pub fn fillfactor(mut self, percent: u8) -> Self {
        self.schema_options.fillfactor = percent.clamp(10, 100);
        self
    }

    /// The time limit of every operation the layers apply (default 5 s). With
    /// [`PostgresDriver::from_pool`], also set the server's `statement_timeout` on the pool's
    /// connections.
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

    /// Checks the names, creates the schema objects (unless `auto_migrate` is off) and
    /// returns the driver.
    pub async fn build(self) -> Result<PostgresDriver, DriverError> {
        // PostgreSQL cuts names at 63 bytes; the sequence and index names add a suffix.
        check_identifier("schema", &self.schema, 48)?;
        check_identifier("table", &self.table, 48)?;
        let driver = PostgresDriver {
            sql: Statements::new(&self.schema, &self.table),
            pool: self.pool,
            schema: self.schema,
            table: self.table,
            schema_options: self.schema_options,
            caps: Capabilities::new(MAX_KEY_LEN, MAX_VALUE_SIZE)
                .with_ttl(TtlSupport::exact(Duration::from_millis(1)))
                .with_create_only()
                .with_update_only()
                .with_compare_and_swap()
                .with_touch()
                .with_list(),
            layers: {
                let layers = LayerOptions::new()
                    .with_timeout(self.operation_timeout)
                    .with_retries(2)
                    .with_sweep_interval_opt(self.sweep_interval);
                match self.read_cache {
                    Some(cache) => layers.with_read_cache(cache),
                    None => layers,
                }
            },
            clock: self.clock,
        };
        if self.auto_migrate {
            driver.migrate().await?;
        } else if driver.schema_options.notify {
            // A cache without the notification triggers would never learn of other writers.
            let client = driver.client().await?;
            let row = client
                .query_one(&driver.sql.triggers, &[])
                .await
                .map_err(pg_error)?;
            if row.try_get::<_, i64>(0).map_err(pg_error)? != 2 {
                return Err(DriverError::config(format!(
                    "option `local_cache`: {} has no notification triggers; run \
                     PostgresDriver::migrate with local_cache on (or turn auto_migrate on)",
                    driver.sql.table
                )));
            }
        }
        Ok(driver)
    }
}

impl PostgresDriver {
    /// Connects a pool from `config` and builds the driver (creating the table unless
    /// `auto_migrate` is off). Fails within the connect timeout when the server is down.
    pub async fn connect(config: PostgresConfig) -> Result<Self, DriverError> {
        let writer = format!("{:016x}", rand::random::<u64>());
        let connection = config.connection(&writer)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        #[cfg(feature = "tls")]
        let connector: Connector = tls::connector(config.tls_ca_file.as_deref())?;
        #[cfg(not(feature = "tls"))]
        let connector: Connector = {
            if config.tls_ca_file.is_some() {
                return Err(DriverError::config(
                    "option `tls_ca_file`: TLS needs the `tls` feature of session-kit-postgres",
                ));
            }
            tokio_postgres::NoTls
        };
        // `NoTls` is `Copy`, the TLS connector is not: one clone for both builds.
        #[allow(clippy::clone_on_copy)]
        let manager = Manager::from_config(connection.clone(), connector.clone(), manager_config);
        let timeout = config.operation_timeout();
        let size = usize::try_from(config.pool_size.unwrap_or(16).max(1)).unwrap_or(16);
        let pool = Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| DriverError::config(format!("postgres pool: {e}")))?;
        let mut builder = Self::from_pool(pool)
            .schema(config.schema)
            .table(config.table)
            .auto_migrate(config.auto_migrate)
            .unlogged(config.unlogged)
            .expiry_index(config.expiry_index)
            .operation_timeout(timeout)
            .sweep_interval(DEFAULT_SWEEP_INTERVAL);
        if let Some(ff) = config.fillfactor {
            builder = builder.fillfactor(u8::try_from(ff.min(100)).unwrap_or(100));
        }
        let budget = config.local_cache.unwrap_or(0);
        if budget > 0 {
            builder.schema_options.notify = true;
            let cache = Arc::new(ReadCache::new(
                usize::try_from(budget).unwrap_or(usize::MAX),
            ));
            let channel = sql::channel(&builder.schema, &builder.table);
            let source = Listener::new(connection, connector, &channel, writer, Arc::clone(&cache));
            builder.read_cache = Some(CacheLayer::new(cache, Arc::new(source)));
        }
        let driver = builder.build().await?;
        // Without auto_migrate nothing has connected yet: fail now, not on the first request.
        if !config.auto_migrate {
            drop(driver.client().await?);
        }
        Ok(driver)
    }

    /// A builder on the app's own pool (its connections' settings are the app's: set
    /// `statement_timeout` there).
    pub fn from_pool(pool: Pool) -> PostgresDriverBuilder {
        PostgresDriverBuilder {
            pool,
            schema: "public".into(),
            table: "sessions".into(),
            auto_migrate: true,
            schema_options: SchemaOptions {
                unlogged: false,
                notify: false,
                expiry_index: false,
                fillfactor: 90,
            },
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            sweep_interval: None,
            clock: Arc::new(SystemClock),
            read_cache: None,
        }
    }

    /// Creates the schema (if missing), the version sequence and the table (and the expiry
    /// index, if asked for), under a transaction-scoped advisory lock so that processes
    /// starting together do not race. Idempotent.
    pub async fn migrate(&self) -> Result<(), DriverError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let lock_name = format!("session-kit-postgres:{}", self.sql.table);
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_name])
            .await
            .map_err(pg_error)?;
        let has_schema = tx
            .query_opt(
                "SELECT 1 FROM pg_namespace WHERE nspname = $1",
                &[&self.schema],
            )
            .await
            .map_err(pg_error)?
            .is_some();
        if !has_schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", self.schema))
                .await
                .map_err(pg_error)?;
        }
        for statement in self
            .sql
            .schema(&self.schema, &self.table, &self.schema_options)
        {
            tx.batch_execute(&statement).await.map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        tracing::debug!(table = %self.sql.table, "postgres session table ready");
        Ok(())
    }

    /// Deletes every expired row now and answers how many.
    pub async fn sweep(&self) -> Result<u64, DriverError> {
        self.execute(&self.sql.sweep, &[]).await
    }

    /// How many live rows the table holds.
    pub async fn count(&self) -> Result<u64, DriverError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.count)
            .await
            .map_err(pg_error)?;
        let row = client.query_one(&statement, &[]).await.map_err(pg_error)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn client(&self) -> Result<Object, DriverError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, DriverError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.execute(&statement, params).await.map_err(pg_error)
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, DriverError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query_opt(&statement, params).await.map_err(pg_error)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, DriverError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query(&statement, params).await.map_err(pg_error)
    }
}

/// A TTL in whole microseconds, rounded up (a key never expires early).
fn micros(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_nanos().div_ceil(1000))
        .unwrap_or(i64::MAX)
        .min(MAX_TTL_MICROS)
}

fn version_of(row: &tokio_postgres::Row) -> Result<Version, DriverError> {
    let v: i64 = row.try_get(0).map_err(pg_error)?;
    Ok(Version::from_u64(v as u64))
}

#[async_trait]
impl Driver for PostgresDriver {
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
        let Some(row) = self.query_opt(&self.sql.get, &[&key.as_bytes()]).await? else {
            return Ok(None);
        };
        let value: Vec<u8> = row.try_get(0).map_err(pg_error)?;
        let version: i64 = row.try_get(1).map_err(pg_error)?;
        let left: Option<i64> = row.try_get(2).map_err(pg_error)?;
        let now = unix_millis(self.clock.now());
        Ok(Some(Entry {
            value: Bytes::from(value),
            version: Version::from_u64(version as u64),
            expires_at: left.map(|ms| from_unix_millis(now.saturating_add(ms.max(0) as u64))),
        }))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        let (key, value, ttl) = (key.as_bytes(), &value[..], options.ttl.map(micros));
        let row = match &options.mode {
            WriteMode::Overwrite => {
                self.query_opt(&self.sql.overwrite, &[&key, &value, &ttl])
                    .await?
            }
            WriteMode::CreateOnly => {
                return match self
                    .query_opt(&self.sql.create, &[&key, &value, &ttl])
                    .await?
                {
                    Some(row) => version_of(&row),
                    None => Err(DriverError::AlreadyExists),
                };
            }
            WriteMode::UpdateOnly => {
                self.query_opt(&self.sql.update, &[&key, &value, &ttl])
                    .await?
            }
            WriteMode::IfVersion(expected) => {
                // A version this driver never issued matches no row.
                let Ok(expected) = expected.as_str().parse::<i64>() else {
                    return Err(DriverError::Conflict);
                };
                self.query_opt(&self.sql.compare_and_swap, &[&key, &value, &ttl, &expected])
                    .await?
            }
        };
        match row {
            Some(row) => version_of(&row),
            None => Err(DriverError::Conflict),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.execute(&self.sql.delete, &[&key.as_bytes()]).await?;
        Ok(())
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        let changed = self
            .execute(&self.sql.touch, &[&key.as_bytes(), &micros(ttl)])
            .await?;
        Ok(changed > 0)
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let after = cursor.unwrap_or_default().as_bytes();
        let rows = match prefix_upper_bound(prefix.as_bytes()) {
            Some(end) => {
                self.query(
                    &self.sql.list_range,
                    &[&after, &PAGE, &prefix.as_bytes(), &end],
                )
                .await?
            }
            None => self.query(&self.sql.list_all, &[&after, &PAGE]).await?,
        };
        let keys = rows
            .iter()
            .map(|row| {
                let key: Vec<u8> = row.try_get(0).map_err(pg_error)?;
                String::from_utf8(key)
                    .map_err(|_| DriverError::corrupt("postgres: a stored key is not UTF-8"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cursor = (keys.len() == PAGE as usize)
            .then(|| keys.last().cloned())
            .flatten();
        Ok(ListPage { keys, cursor })
    }

    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        let row = match prefix_upper_bound(prefix.as_bytes()) {
            Some(end) => {
                self.query_opt(&self.sql.clear_range, &[&prefix.as_bytes(), &end])
                    .await?
            }
            None => self.query_opt(&self.sql.clear_all, &[]).await?,
        };
        let n: i64 = match row {
            Some(row) => row.try_get(0).map_err(pg_error)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn sweep(&self) -> Result<u64, DriverError> {
        PostgresDriver::sweep(self).await
    }
}

//! A SQLite session driver: sessions on one server's disk, nothing else to run.
//!
//! * **Writes** go to one writer thread per process, which commits every write waiting in its
//!   queue in one `BEGIN IMMEDIATE` transaction (up to `max_batch`): under load many session
//!   writes share one commit. Each write still gets its own result (a refused create-only or
//!   compare-and-swap does not affect its neighbours).
//! * **Reads** run concurrently on a small pool of connections (WAL lets readers proceed while
//!   a write transaction is open), always on blocking threads, never on the async workers.
//! * **Several processes** may share one database file: WAL, a busy timeout, and immediate
//!   transactions serialise their writers.
//! * **Expiry** lives in an indexed column, is enforced on every read, and expired rows are
//!   deleted by [`SqliteDriver::sweep`] or a background sweeper (every 10 minutes by default).
//!   Create-only is an insert (an expired row counts as absent), compare-and-swap an update on
//!   the version column, touch an update of the expiry column only.
//! * **Durability**: WAL with `synchronous = NORMAL` (the default) survives a crash of the
//!   application, and the database is never corrupted; a power loss may lose the last
//!   transactions. `synchronous = "full"` makes every commit durable against power loss too.
//!
//! ```
//! use session_kit_core::{Driver, PutOptions, bytes::Bytes};
//! use session_kit_sqlite::SqliteDriver;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let driver = SqliteDriver::builder(dir.path().join("sessions.db")).build()?;
//! driver.put("k", Bytes::from_static(b"v"), PutOptions::new()).await?;
//! assert_eq!(driver.get("k").await?.unwrap().value, "v");
//! # Ok::<(), session_kit_core::DriverError>(())
//! # }).unwrap();
//! ```
#![doc = include_str!("../docs.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
mod writer;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, params};
use session_kit_core::driver::{blocking, from_unix_millis, unix_millis};
use session_kit_core::{
    Capabilities, Clock, Driver, DriverError, Entry, LayerOptions, ListPage, PutOptions,
    SystemClock, TtlSupport, Version, async_trait, bytes::Bytes,
};
use tokio::sync::oneshot;

use crate::{
    config::default_table,
    writer::{Op, OpKind, Output, Sql},
};
pub use config::{DEFAULT_SWEEP_INTERVAL, SqliteConfig, Synchronous, register};
pub(crate) use error::sql_error;

/// The registry name of this driver.
pub const NAME: &str = "sqlite";
/// Largest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_SIZE: usize = 16 * 1024 * 1024;
const PAGE: usize = 1000;

/// Builds a [`SqliteDriver`].
#[derive(Debug)]
pub struct SqliteDriverBuilder {
    path: PathBuf,
    table: String,
    busy_timeout: Duration,
    synchronous: Synchronous,
    max_batch: usize,
    sweep_interval: Option<Duration>,
    clock: Arc<dyn Clock>,
}

impl SqliteDriverBuilder {
    /// The clock deadlines are set and checked by (the system clock by default). Share a
    /// [`ManualClock`](session_kit_core::ManualClock) with the session storage to test expiry
    /// without sleeping.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The table (default `sessions`): letters, digits and `_`.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// How long to wait for another process's write lock (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Commit durability (default [`Synchronous::Normal`]).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Most writes per transaction (default 512).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Deletes expired rows in the background at this interval: the driver asks for the sweep
    /// layer ([`Driver::layer_defaults`]), which runs on the Tokio runtime the layers are
    /// applied on and stops when the driver is dropped. Zero: never.
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval);
        self
    }

    /// Opens the database (creating the file and table if needed) and starts the writer.
    pub fn build(self) -> Result<SqliteDriver, DriverError> {
        let valid = !self.table.is_empty()
            && self
                .table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !self.table.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(DriverError::config(format!(
                "option `table`: {:?} is not a plain identifier (letters, digits, _)",
                self.table
            )));
        }
        let open = |flags| -> Result<Connection, DriverError> {
            let conn = Connection::open_with_flags(&self.path, flags).map_err(|e| {
                DriverError::config(format!(
                    "option `path`: cannot open {}: {e}",
                    self.path.display()
                ))
            })?;
            conn.busy_timeout(self.busy_timeout)
                .map_err(|e| sql_error(&e))?;
            Ok(conn)
        };
        let writer = open(
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let synchronous = match self.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        writer
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};"
            ))
            .map_err(|e| sql_error(&e))?;
        writer::create_schema(&writer, &self.table).map_err(|e| sql_error(&e))?;
        let readers = Mutex::new(Vec::new());
        let (queue, receiver) = mpsc::channel();
        let (table, max_batch, clock) = (self.table.clone(), self.max_batch, self.clock.clone());
        std::thread::Builder::new()
            .name("session-sqlite-writer".into())
            .spawn(move || writer::run(writer, table, receiver, max_batch, clock))
            .map_err(|e| {
                DriverError::permanent("cannot start the sqlite writer thread", Some(Box::new(e)))
            })?;
        let inner = Arc::new(Inner {
            path: self.path,
            busy_timeout: self.busy_timeout,
            sql: Sql::new(&self.table),
            queue: Mutex::new(queue),
            readers,
            clock: self.clock,
        });
        Ok(SqliteDriver {
            inner,
            sweep_interval: self.sweep_interval,
            caps: Capabilities::new(MAX_KEY_LEN, MAX_VALUE_SIZE)
                .with_ttl(TtlSupport::exact(Duration::from_millis(1)))
                .with_create_only()
                .with_update_only()
                .with_compare_and_swap()
                .with_touch()
                .with_list(),
        })
    }
}

/// The SQLite driver. See the crate documentation.
pub struct SqliteDriver {
    inner: Arc<Inner>,
    sweep_interval: Option<Duration>,
    caps: Capabilities,
}

impl fmt::Debug for SqliteDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteDriver")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    busy_timeout: Duration,
    sql: Sql,
    queue: Mutex<mpsc::Sender<Op>>,
    /// Idle read connections.
    readers: Mutex<Vec<Connection>>,
    /// The clock deadlines are set and checked by.
    clock: Arc<dyn Clock>,
}

impl Inner {
    fn now(&self) -> u64 {
        unix_millis(self.clock.now())
    }
}

const MAX_IDLE_READERS: usize = 8;

impl Inner {
    /// Queues a write and waits for its transaction to commit.
    async fn write(&self, kind: OpKind) -> Result<Output, DriverError> {
        let (reply, result) = oneshot::channel();
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Op { kind, reply });
        if sent.is_err() {
            return Err(DriverError::permanent(
                "the sqlite writer thread has stopped",
                None,
            ));
        }
        result
            .await
            .map_err(|_| DriverError::permanent("the sqlite writer thread has stopped", None))?
    }

    /// Runs `f` on an idle read connection (opening one if none is idle).
    fn read<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R, DriverError> {
        let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn =
                    Connection::open_with_flags(&self.path, flags).map_err(|e| sql_error(&e))?;
                conn.busy_timeout(self.busy_timeout)
                    .map_err(|e| sql_error(&e))?;
                conn
            }
        };
        let result = f(&conn).map_err(|e| sql_error(&e));
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

impl SqliteDriver {
    /// A builder for a driver on the database file at `path`.
    pub fn builder(path: impl AsRef<Path>) -> SqliteDriverBuilder {
        SqliteDriverBuilder {
            path: path.as_ref().to_path_buf(),
            table: default_table(),
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
            max_batch: 512,
            sweep_interval: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Deletes every expired row now and returns how many.
    pub async fn sweep(&self) -> Result<u64, DriverError> {
        sweep(&self.inner).await
    }
}

async fn sweep(inner: &Inner) -> Result<u64, DriverError> {
    match inner.write(OpKind::Sweep).await? {
        Output::Swept(n) => Ok(n),
        _ => Err(unexpected()),
    }
}

fn unexpected() -> DriverError {
    DriverError::permanent("the sqlite writer answered another operation", None)
}

#[async_trait]
impl Driver for SqliteDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn layer_defaults(&self) -> LayerOptions {
        LayerOptions::new().with_sweep_interval_opt(self.sweep_interval)
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        let row =
            blocking(move || inner.read(|conn| writer::read(conn, &inner.sql, &key, inner.now())))
                .await?;
        Ok(row.map(|(value, version, expires_at)| Entry {
            value: Bytes::from(value),
            version: Version::new(version.to_string()),
            expires_at: expires_at.map(|t| from_unix_millis(u64::try_from(t).unwrap_or(0))),
        }))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        let ttl = options.ttl;
        let op = OpKind::Put {
            key: key.to_owned(),
            value,
            mode: options.mode,
            ttl,
        };
        match self.inner.write(op).await? {
            Output::Version(v) => Ok(v),
            _ => Err(unexpected()),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        match self
            .inner
            .write(OpKind::Delete {
                key: key.to_owned(),
            })
            .await?
        {
            Output::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        match self
            .inner
            .write(OpKind::Touch {
                key: key.to_owned(),
                ttl,
            })
            .await?
        {
            Output::Touched(found) => Ok(found),
            _ => Err(unexpected()),
        }
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let (inner, prefix, cursor) = (
            Arc::clone(&self.inner),
            prefix.to_owned(),
            cursor.unwrap_or_default().to_owned(),
        );
        blocking(move || {
            let keys: Vec<String> = inner.read(|conn| {
                let mut statement = conn.prepare_cached(&inner.sql.list)?;
                let rows = statement.query_map(
                    params![
                        prefix,
                        cursor,
                        i64::try_from(inner.now()).unwrap_or(i64::MAX),
                        PAGE as i64
                    ],
                    |row| row.get::<_, String>(0),
                )?;
                rows.collect()
            })?;
            let full = keys.len() == PAGE;
            // Keys are in byte order from the prefix on: the first one without the prefix ends it.
            let matching: Vec<String> = keys
                .into_iter()
                .take_while(|k| k.starts_with(&prefix))
                .collect();
            let cursor = (full && matching.len() == PAGE).then(|| matching[PAGE - 1].clone());
            Ok(ListPage {
                keys: matching,
                cursor,
            })
        })
        .await
    }

    async fn sweep(&self) -> Result<u64, DriverError> {
        SqliteDriver::sweep(self).await
    }
}

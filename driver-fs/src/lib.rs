//! A file-system session driver: one file per key under a base directory.
//!
//! * **Names**: a key's file is `<base>/<xx>/<sha256(key) in hex>`, with `xx` its first
//!   byte. No key can name a path outside the base (`..`, `/`, NUL and absolute paths are just
//!   bytes to hash), distinct keys never share a file, and keys of any content up to
//!   [`MAX_KEY_LEN`] bytes work. The key itself is stored in the file, for listing.
//! * **Atomic updates in place**: a file keeps two slots for its record; an update writes the
//!   slot not in use (sequence number and checksum), so a reader sees the old or the new value,
//!   never a mix, and a write torn by a crash leaves the old one. No new file, no rename: on
//!   ext4 that is ~20× cheaper than replacing the file. Records larger than 64 KiB are kept
//!   once and replaced through a temporary file (`.tmp-*`, never listed) renamed over the old.
//! * **Conditional writes across processes**: every write of a shard directory holds that
//!   shard's lock (an in-process mutex plus an OS file lock on `<xx>/.lock`), so create-only
//!   and compare-and-swap hold between tasks and between processes sharing the directory.
//! * **Expiry**: stored with the record, enforced on every read; `touch` writes the same
//!   record with the new deadline. [`FsDriver::sweep`] deletes expired files (and temporary files
//!   left by a crash); [`FsDriverBuilder::sweep_interval`] asks session-kit-core's sweep layer to
//!   run it in the background (a driver opened by config string sweeps every 10 minutes unless
//!   its `sweep_interval` option says otherwise).
//! * **Durability**: by default a write is atomic but not flushed: after a power loss the last
//!   writes may be lost, never torn. With [`FsDriverBuilder::durable`] each write is fsynced
//!   (file, then directory) before it returns, at a measured cost (see the benchmarks in the
//!   README).
//!
//! ```
//! use session_kit_core::{Driver, PutOptions, bytes::Bytes};
//! use session_kit_fs::FsDriver;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let driver = FsDriver::builder(dir.path()).build()?;
//! driver.put("../../etc/passwd", Bytes::from_static(b"harmless"), PutOptions::new()).await?;
//! assert_eq!(driver.get("../../etc/passwd").await?.unwrap().value, "harmless");
//! # Ok::<(), session_kit_core::DriverError>(())
//! # }).unwrap();
//! ```
#![doc = include_str!("../docs.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
mod file;
mod store;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use session_kit_core::driver::blocking;
use session_kit_core::{
    Capabilities, Clock, Driver, DriverError, Entry, LayerOptions, ListPage, PutOptions,
    SystemClock, TtlSupport, Version, async_trait, bytes::Bytes,
};

use crate::store::Inner;

pub use config::{DEFAULT_SWEEP_INTERVAL, FsConfig, register};

/// The registry name of this driver.
pub const NAME: &str = "fs";
/// Largest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_SIZE: usize = 16 * 1024 * 1024;
/// Temporary files older than this are leftovers of a crash; the sweeper deletes them.
const STALE_TEMP: Duration = Duration::from_secs(3600);
const SHARDS: usize = 256;
const PAGE: usize = 1000;

/// Builds an [`FsDriver`].
#[derive(Debug)]
pub struct FsDriverBuilder {
    base: PathBuf,
    durable: bool,
    sweep_interval: Option<Duration>,
    clock: Arc<dyn Clock>,
}

impl FsDriverBuilder {
    /// fsync each write (file and directory) before it returns.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Sweeps expired files in the background at this interval: the driver asks for the sweep
    /// layer ([`Driver::layer_defaults`]), which runs on the Tokio runtime the layers are
    /// applied on and stops when the driver is dropped. Zero: never.
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval);
        self
    }

    /// The clock deadlines are set and checked by (the system clock by default). Share a
    /// [`ManualClock`](session_kit_core::ManualClock) with the session storage to test expiry
    /// without sleeping.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Creates the base directory if needed and builds the driver.
    pub fn build(self) -> Result<FsDriver, DriverError> {
        file::create_private_dir(&self.base).map_err(|e| {
            DriverError::config(format!(
                "option `base`: cannot create {}: {e}",
                self.base.display()
            ))
        })?;
        let inner = Arc::new(Inner {
            base: self.base,
            durable: self.durable,
            clock: self.clock,
            locks: (0..SHARDS).map(|_| Mutex::new(None)).collect(),
        });
        Ok(FsDriver {
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

/// The file-system driver. See the crate documentation.
pub struct FsDriver {
    inner: Arc<Inner>,
    sweep_interval: Option<Duration>,
    caps: Capabilities,
}

impl fmt::Debug for FsDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsDriver")
            .field("base", &self.inner.base)
            .field("durable", &self.inner.durable)
            .field("sweep_interval", &self.sweep_interval)
            .finish()
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Expired records deleted.
    pub expired: usize,
    /// Leftover temporary files deleted.
    pub temp_files: usize,
}

impl FsDriver {
    /// A builder for a driver storing files under `base`.
    pub fn builder(base: impl AsRef<Path>) -> FsDriverBuilder {
        FsDriverBuilder {
            base: base.as_ref().to_path_buf(),
            durable: false,
            sweep_interval: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.inner.base
    }

    /// Deletes expired records and stale temporary files now.
    pub async fn sweep(&self) -> Result<SweepStats, DriverError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.sweep()).await
    }
}

#[async_trait]
impl Driver for FsDriver {
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
        blocking(move || inner.get(&key)).await
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        let ttl = options.ttl;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        blocking(move || inner.put(&key, &value, &options.mode, ttl)).await
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        blocking(move || inner.delete(&key)).await
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        blocking(move || inner.touch(&key, ttl)).await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let start = match cursor {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|s| *s < SHARDS)
                .ok_or_else(|| DriverError::config(format!("invalid list cursor {c:?}")))?,
        };
        let (inner, prefix) = (Arc::clone(&self.inner), prefix.to_owned());
        blocking(move || inner.list(&prefix, start)).await
    }

    async fn sweep(&self) -> Result<u64, DriverError> {
        Ok(FsDriver::sweep(self).await?.expired as u64)
    }
}

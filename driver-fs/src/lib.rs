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
//!   left by a crash); [`FsDriverBuilder::sweep_interval`] asks session-core's sweep layer to
//!   run it in the background (a driver opened by config string sweeps every 10 minutes unless
//!   its `sweep_interval` option says otherwise).
//! * **Durability**: by default a write is atomic but not flushed: after a power loss the last
//!   writes may be lost, never torn. With [`FsDriverBuilder::durable`] each write is fsynced
//!   (file, then directory) before it returns, at a measured cost (see the benchmarks in the
//!   README).
//!
//! ```
//! use session_core::{Driver, PutOptions, bytes::Bytes};
//! use session_driver_fs::FsDriver;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let driver = FsDriver::builder(dir.path()).build()?;
//! driver.put("../../etc/passwd", Bytes::from_static(b"harmless"), PutOptions::new()).await?;
//! assert_eq!(driver.get("../../etc/passwd").await?.unwrap().value, "harmless");
//! # Ok::<(), session_core::DriverError>(())
//! # }).unwrap();
//! ```
#![doc = include_str!("../docs.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod file;

use std::{
    fmt,
    fs::File,
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Deserialize;
use session_core::driver::{
    ValueHeader, blocking, check_condition, deadline_millis, flexible, from_unix_millis, now_millis,
};
use session_core::{
    Capabilities, Driver, DriverConfig, DriverError, Entry, LayerOptions, ListPage, PutOptions,
    Registry, TtlSupport, Version, WriteMode, async_trait, bytes::Bytes,
};
use sha2::{Digest, Sha256};

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

/// Registers `fs`: `"fs"` (base `./.sessions`), `"fs:///var/lib/app/sessions"`,
/// `"fs:relative/dir"`, or `{ driver = "fs", base = "...", durable = true }`.
pub fn register(registry: &mut Registry) {
    registry.register(NAME, |config: DriverConfig| async move {
        let fs_config = FsConfig::from_driver_config(&config)?;
        Ok(Arc::new(fs_config.build()?) as Arc<dyn Driver>)
    });
}

/// Options of the fs driver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsConfig {
    /// Base directory, created if missing (default `.sessions` in the working directory).
    #[serde(default = "default_base")]
    pub base: PathBuf,
    /// fsync every write before returning (default false).
    #[serde(default, deserialize_with = "flexible::bool")]
    pub durable: bool,
}

/// How often a driver opened by config sweeps, unless its `sweep_interval` option (a layer
/// option, see [`session_core::LayerOptions`]) says otherwise: 10 minutes.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(600);

fn default_base() -> PathBuf {
    PathBuf::from(".sessions")
}

impl FsConfig {
    /// Reads the config from a registry config: the URL path (if any) is the base directory.
    pub fn from_driver_config(config: &DriverConfig) -> Result<Self, DriverError> {
        let mut fs_config: Self = config.options()?;
        if let Some(url) = config.url()? {
            if url.host_str().is_some_and(|h| !h.is_empty()) {
                return Err(DriverError::config(format!(
                    "option `driver`: `{}` has a host; write fs:///absolute/path or fs:relative/path",
                    url.scheme()
                )));
            }
            if !url.path().is_empty() && !config.options.contains_key("base") {
                fs_config.base = PathBuf::from(url.path());
            }
        }
        Ok(fs_config)
    }

    /// Builds the driver, asking to be swept every [`DEFAULT_SWEEP_INTERVAL`].
    pub fn build(self) -> Result<FsDriver, DriverError> {
        FsDriver::builder(self.base)
            .durable(self.durable)
            .sweep_interval(DEFAULT_SWEEP_INTERVAL)
            .build()
    }
}

/// Builds an [`FsDriver`].
#[derive(Debug)]
pub struct FsDriverBuilder {
    base: PathBuf,
    durable: bool,
    sweep_interval: Option<Duration>,
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

struct Inner {
    base: PathBuf,
    durable: bool,
    /// Per shard: the open `.lock` file, behind a mutex for exclusion inside this process.
    locks: Box<[Mutex<Option<File>>]>,
}

/// Where a key lives.
struct Location {
    shard: usize,
    dir: PathBuf,
    path: PathBuf,
}

impl Inner {
    fn locate(&self, key: &str) -> Location {
        let digest = Sha256::digest(key.as_bytes());
        let shard = usize::from(digest[0]);
        let dir = self.shard_dir(shard);
        let path = dir.join(hex::encode(digest));
        Location { shard, dir, path }
    }

    fn shard_dir(&self, shard: usize) -> PathBuf {
        self.base.join(format!("{shard:02x}"))
    }

    /// Runs `f` holding the shard's in-process and cross-process locks.
    fn with_lock<R>(
        &self,
        loc: &Location,
        f: impl FnOnce() -> Result<R, DriverError>,
    ) -> Result<R, DriverError> {
        let mut slot = self.locks[loc.shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            file::create_private_dir(&loc.dir).map_err(io_error)?;
            *slot = Some(file::open_lock(&loc.dir.join(".lock")).map_err(io_error)?);
        }
        let lock_file = slot
            .as_ref()
            .ok_or_else(|| io_error(io::Error::other("lock file")))?;
        lock_file.lock().map_err(io_error)?;
        let result = f();
        if let Err(e) = lock_file.unlock() {
            tracing::warn!(error = %e, "could not release an fs driver lock; it is released on close");
            *slot = None;
        }
        result
    }

    /// Reads without the lock; a file caught mid-write (no valid record) is read again, and
    /// then under the lock, where no write is in progress: what is still unreadable there was
    /// torn by a crash, and reads as missing.
    fn read_settled<T>(
        &self,
        loc: &Location,
        read: impl Fn() -> Result<file::Lookup<T>, DriverError>,
    ) -> Result<Option<T>, DriverError> {
        for _ in 0..2 {
            match read()? {
                file::Lookup::Missing => return Ok(None),
                file::Lookup::Found(found) => return Ok(Some(found)),
                file::Lookup::Unsettled => {}
            }
        }
        self.with_lock(loc, || match read()? {
            file::Lookup::Found(found) => Ok(Some(found)),
            file::Lookup::Missing => Ok(None),
            file::Lookup::Unsettled => {
                file::corrupt(&loc.path);
                Ok(None)
            }
        })
    }

    fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let loc = self.locate(key);
        let Some(record) = self.read_settled(&loc, || file::read(&loc.path, key))? else {
            return Ok(None);
        };
        if record.header.expired(now_millis()) {
            return Ok(None);
        }
        Ok(Some(Entry {
            version: record.header.version(),
            expires_at: record.header.expires_at.map(from_unix_millis),
            value: record.value,
        }))
    }

    fn put(
        &self,
        key: &str,
        value: &[u8],
        mode: &WriteMode,
        ttl: Option<Duration>,
    ) -> Result<Version, DriverError> {
        let loc = self.locate(key);
        self.with_lock(&loc, || {
            let now = now_millis();
            let opened = file::Opened::open(&loc.path).map_err(io_error)?;
            let current = opened
                .current(key)?
                .map(|(h, _)| h)
                .filter(|h| !h.expired(now));
            check_condition(mode, current.as_ref().map(ValueHeader::version).as_ref())?;
            if opened.is_corrupt() {
                file::corrupt(&loc.path);
            }
            let header = ValueHeader::new(ttl.map(|t| deadline_millis(now, t)));
            opened
                .write(&loc.dir, &loc.path, key, &header, value, self.durable)
                .map_err(io_error)?;
            Ok(header.version())
        })
    }

    fn delete(&self, key: &str) -> Result<(), DriverError> {
        let loc = self.locate(key);
        self.with_lock(&loc, || {
            file::remove(&loc.path, &loc.dir, self.durable).map_err(io_error)
        })
    }

    fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        let loc = self.locate(key);
        self.with_lock(&loc, || {
            let now = now_millis();
            let opened = file::Opened::open(&loc.path).map_err(io_error)?;
            let Some((header, value)) = opened.current(key)?.filter(|(h, _)| !h.expired(now))
            else {
                return Ok(false);
            };
            // The same version and value with the new expiry, in the other slot.
            let header = ValueHeader {
                expires_at: Some(deadline_millis(now, ttl)),
                ..header
            };
            let value = value.to_vec();
            opened
                .write(&loc.dir, &loc.path, key, &header, &value, self.durable)
                .map_err(io_error)?;
            Ok(true)
        })
    }

    /// The key and header of a record file found by listing a shard.
    fn read_listed(
        &self,
        shard: usize,
        path: PathBuf,
    ) -> Result<Option<(ValueHeader, String)>, DriverError> {
        let loc = Location {
            shard,
            dir: self.shard_dir(shard),
            path,
        };
        self.read_settled(&loc, || file::read_key(&loc.path))
    }

    /// Keys under `prefix` from the shard directories starting at `start`, up to about a page.
    fn list(&self, prefix: &str, start: usize) -> Result<ListPage, DriverError> {
        let now = now_millis();
        let mut keys = Vec::new();
        for shard in start..SHARDS {
            for path in file::records_in(&self.shard_dir(shard)).map_err(io_error)? {
                match self.read_listed(shard, path)? {
                    Some((header, key)) if !header.expired(now) && key.starts_with(prefix) => {
                        keys.push(key)
                    }
                    _ => {}
                }
            }
            if keys.len() >= PAGE && shard + 1 < SHARDS {
                return Ok(ListPage {
                    keys,
                    cursor: Some((shard + 1).to_string()),
                });
            }
        }
        Ok(ListPage { keys, cursor: None })
    }

    fn sweep(&self) -> Result<SweepStats, DriverError> {
        let mut stats = SweepStats::default();
        for shard in 0..SHARDS {
            let dir = self.shard_dir(shard);
            stats.temp_files += file::remove_stale_temps(&dir, STALE_TEMP).map_err(io_error)?;
            for path in file::records_in(&dir).map_err(io_error)? {
                let Some((header, key)) = self.read_listed(shard, path)? else {
                    continue;
                };
                if !header.expired(now_millis()) {
                    continue;
                }
                let loc = self.locate(&key);
                let removed = self.with_lock(&loc, || {
                    let opened = file::Opened::open(&loc.path).map_err(io_error)?;
                    match opened.current(&key)? {
                        // Re-check under the lock: it may have been rewritten since.
                        Some((h, _)) if h.expired(now_millis()) => {
                            drop(opened);
                            file::remove(&loc.path, &loc.dir, false).map_err(io_error)?;
                            Ok(true)
                        }
                        _ => Ok(false),
                    }
                })?;
                stats.expired += usize::from(removed);
            }
        }
        Ok(stats)
    }
}

impl FsDriver {
    /// A builder for a driver storing files under `base`.
    pub fn builder(base: impl AsRef<Path>) -> FsDriverBuilder {
        FsDriverBuilder {
            base: base.as_ref().to_path_buf(),
            durable: false,
            sweep_interval: None,
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

/// Maps I/O errors: resource exhaustion and interruptions may pass, the rest will not.
fn io_error(e: io::Error) -> DriverError {
    let retryable = matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::StorageFull
            | io::ErrorKind::QuotaExceeded
    );
    DriverError::unavailable(
        format!("file system: {}", e.kind()),
        retryable,
        Some(Box::new(e)),
    )
}

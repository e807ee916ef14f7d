//! The files under one base directory, and what each operation does to them (blocking calls,
//! run on Tokio's blocking threads by the driver).

use std::{
    fs::File,
    io,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use session_kit_core::driver::{
    ValueHeader, check_condition, deadline_after, from_unix_millis, unix_millis,
};
use session_kit_core::{Clock, DriverError, Entry, ListPage, Version, WriteMode};
use sha2::{Digest, Sha256};

use crate::{PAGE, SHARDS, STALE_TEMP, SweepStats, error::io_error, file};

/// The files under one base directory: the blocking half of the driver.
pub(crate) struct Inner {
    pub(crate) base: PathBuf,
    pub(crate) durable: bool,
    /// The clock deadlines are set and checked by.
    pub(crate) clock: Arc<dyn Clock>,
    /// Per shard: the open `.lock` file, behind a mutex for exclusion inside this process.
    pub(crate) locks: Box<[Mutex<Option<File>>]>,
}

/// Where a key lives.
struct Location {
    shard: usize,
    dir: PathBuf,
    path: PathBuf,
}

impl Inner {
    fn now(&self) -> u64 {
        unix_millis(self.clock.now())
    }

    fn locate(&self, key: &str) -> Location {
        let digest = Sha256::digest(key.as_bytes());
        let shard = usize::from(digest[0]);
        let dir = self.shard_dir(shard);
        let path = dir.join(hex::encode(digest));
        Location { shard, dir, path }
    }

    pub(crate) fn shard_dir(&self, shard: usize) -> PathBuf {
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

    pub(crate) fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let loc = self.locate(key);
        let Some(record) = self.read_settled(&loc, || file::read(&loc.path, key))? else {
            return Ok(None);
        };
        if record.header.expired(self.now()) {
            return Ok(None);
        }
        Ok(Some(Entry {
            version: record.header.version(),
            expires_at: record.header.expires_at.map(from_unix_millis),
            value: record.value,
        }))
    }

    pub(crate) fn put(
        &self,
        key: &str,
        value: &[u8],
        mode: &WriteMode,
        ttl: Option<Duration>,
    ) -> Result<Version, DriverError> {
        let loc = self.locate(key);
        self.with_lock(&loc, || {
            let now = self.now();
            let opened = file::Opened::open(&loc.path).map_err(io_error)?;
            let current = opened
                .current(key)?
                .map(|(h, _)| h)
                .filter(|h| !h.expired(now));
            check_condition(mode, current.as_ref().map(ValueHeader::version).as_ref())?;
            if opened.is_corrupt() {
                file::corrupt(&loc.path);
            }
            let header = ValueHeader::new(ttl.map(|t| deadline_after(self.clock.now(), t)));
            opened
                .write(&loc.dir, &loc.path, key, &header, value, self.durable)
                .map_err(io_error)?;
            Ok(header.version())
        })
    }

    pub(crate) fn delete(&self, key: &str) -> Result<(), DriverError> {
        let loc = self.locate(key);
        self.with_lock(&loc, || {
            file::remove(&loc.path, &loc.dir, self.durable).map_err(io_error)
        })
    }

    pub(crate) fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        let loc = self.locate(key);
        self.with_lock(&loc, || {
            let now = self.now();
            let opened = file::Opened::open(&loc.path).map_err(io_error)?;
            let Some((header, value)) = opened.current(key)?.filter(|(h, _)| !h.expired(now))
            else {
                return Ok(false);
            };
            // The same version and value with the new expiry, in the other slot.
            let header = ValueHeader {
                expires_at: Some(deadline_after(self.clock.now(), ttl)),
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
    pub(crate) fn list(&self, prefix: &str, start: usize) -> Result<ListPage, DriverError> {
        let now = self.now();
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

    pub(crate) fn sweep(&self) -> Result<SweepStats, DriverError> {
        let mut stats = SweepStats::default();
        for shard in 0..SHARDS {
            let dir = self.shard_dir(shard);
            stats.temp_files += file::remove_stale_temps(&dir, STALE_TEMP).map_err(io_error)?;
            for path in file::records_in(&dir).map_err(io_error)? {
                let Some((header, key)) = self.read_listed(shard, path)? else {
                    continue;
                };
                if !header.expired(self.now()) {
                    continue;
                }
                let loc = self.locate(&key);
                let removed = self.with_lock(&loc, || {
                    let opened = file::Opened::open(&loc.path).map_err(io_error)?;
                    match opened.current(&key)? {
                        // Re-check under the lock: it may have been rewritten since.
                        Some((h, _)) if h.expired(self.now()) => {
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

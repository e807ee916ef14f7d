//! Counting the calls made to a driver.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Capabilities, Driver, DriverError, Entry, ListPage, PutOptions, Version};

/// Counts the calls made to an inner driver: for tests of the session cost contract and for
/// metrics.
///
/// ```
/// use std::sync::Arc;
/// use session_kit_core::{Driver, layers::CountingDriver};
/// use session_kit_memory::MemoryDriver;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let driver = Arc::new(CountingDriver::new(MemoryDriver::new()));
/// driver.get("k").await.unwrap();
/// assert_eq!(driver.counts().get, 1);
/// # });
/// ```
#[derive(Debug)]
pub struct CountingDriver<D> {
    inner: D,
    get: AtomicU64,
    put: AtomicU64,
    delete: AtomicU64,
    touch: AtomicU64,
    list: AtomicU64,
}

/// Calls counted by a [`CountingDriver`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// `get` calls.
    pub get: u64,
    /// `put` calls.
    pub put: u64,
    /// `delete` calls.
    pub delete: u64,
    /// `touch` calls.
    pub touch: u64,
    /// `list` calls (including those made by `clear`).
    pub list: u64,
}

impl CallCounts {
    /// Calls that change the store: put, delete and touch.
    pub fn writes(&self) -> u64 {
        self.put + self.delete + self.touch
    }

    /// All calls.
    pub fn total(&self) -> u64 {
        self.get + self.writes() + self.list
    }
}

impl<D: Driver> CountingDriver<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        Self {
            inner,
            get: AtomicU64::new(0),
            put: AtomicU64::new(0),
            delete: AtomicU64::new(0),
            touch: AtomicU64::new(0),
            list: AtomicU64::new(0),
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> CallCounts {
        CallCounts {
            get: self.get.load(Ordering::Relaxed),
            put: self.put.load(Ordering::Relaxed),
            delete: self.delete.load(Ordering::Relaxed),
            touch: self.touch.load(Ordering::Relaxed),
            list: self.list.load(Ordering::Relaxed),
        }
    }

    /// Returns the counts so far and sets them to zero.
    pub fn take_counts(&self) -> CallCounts {
        CallCounts {
            get: self.get.swap(0, Ordering::Relaxed),
            put: self.put.swap(0, Ordering::Relaxed),
            delete: self.delete.swap(0, Ordering::Relaxed),
            touch: self.touch.swap(0, Ordering::Relaxed),
            list: self.list.swap(0, Ordering::Relaxed),
        }
    }

    /// The wrapped driver.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

#[async_trait]
impl<D: Driver> Driver for CountingDriver<D> {
    forward_identity!("counting");
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.get.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key).await
    }
    async fn get_latest(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.get.fetch_add(1, Ordering::Relaxed);
        self.inner.get_latest(key).await
    }
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        self.put.fetch_add(1, Ordering::Relaxed);
        self.inner.put(key, value, options).await
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.delete.fetch_add(1, Ordering::Relaxed);
        self.inner.delete(key).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        self.touch.fetch_add(1, Ordering::Relaxed);
        self.inner.touch(key, ttl).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        self.list.fetch_add(1, Ordering::Relaxed);
        self.inner.list(prefix, cursor).await
    }
    async fn sweep(&self) -> Result<u64, DriverError> {
        self.inner.sweep().await
    }
}

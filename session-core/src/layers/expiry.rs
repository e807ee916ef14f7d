//! Expiry for backends that keep none, written once: the deadline travels in a
//! [`ValueHeader`] before each value.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use super::Layer;
use crate::{
    Capabilities, Clock, Driver, DriverError, Entry, ListPage, PutOptions, SystemClock, TtlSupport,
    ValueHeader, Version, WriteMode, deadline_after, from_unix_millis, unix_millis,
};

/// Reads of headers in flight at once while a listing, clear or sweep filters by expiry.
const READ_CONCURRENCY: usize = 16;

/// Gives per-key expiry to a driver whose backend has none (object stores, plain key-value
/// stores): every value is stored behind a [`ValueHeader`] (the deadline on the application's
/// clock and a random write id), and the layer treats an entry past its deadline as absent for
/// every operation, as the [`Driver`] contract asks:
///
/// * `get` and `list` leave it out; `clear` and [`sweep`](Driver::sweep) delete it (sweep
///   deletes only expired entries and answers how many);
/// * create-only over it replaces it with a compare-and-swap on the stored version (or, on a
///   backend without compare-and-swap, a delete and a create-only write), so that of racing
///   creators at most one wins;
/// * update-only checks the stored entry is live, then writes with a compare-and-swap on its
///   version (update-only where the backend has no compare-and-swap);
/// * a version handed out by this layer carries the deadline it was read with, so a
///   compare-and-swap on an entry that has expired since fails without a request.
///
/// The driver beneath declares no TTL (`capabilities().ttl` is `None`) and stores bytes
/// verbatim; it asks for this layer with
/// [`LayerOptions::with_emulated_expiry`](crate::LayerOptions::with_emulated_expiry), and the
/// [`Stack`](super::Stack) puts it closest to the driver. The layer declares exact expiry
/// (1 ms) on its clock, no `touch` (a new deadline is a new write, hence a new version), and a
/// `max_value_size` smaller by the header. The write id makes every stored body unique, so a
/// content hash such as an ETag changes with every write.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use session_kit_core::{
///     Driver, ManualClock, PutOptions, bytes::Bytes, layers::{ExpiryLayer, Layer},
/// };
/// use session_kit_memory::MemoryDriver;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// // Any driver: the layer never hands it a TTL. `ExpiryLayer::new()` reads the system
/// // clock; a manual one lets this example pass time without sleeping.
/// let clock = Arc::new(ManualClock::starting_now());
/// let plain = Arc::new(MemoryDriver::new());
/// let driver = ExpiryLayer::with_clock(clock.clone()).layer(plain.clone());
/// let options = PutOptions::new().ttl(Duration::from_millis(20));
/// driver.put("k", Bytes::from_static(b"v"), options).await?;
/// assert_eq!(driver.get("k").await?.unwrap().value, "v");
/// clock.advance(Duration::from_millis(30));
/// assert!(driver.get("k").await?.is_none());
/// assert!(plain.get("k").await?.is_some(), "stored until swept");
/// assert_eq!(driver.sweep().await?, 1);
/// # Ok::<(), session_kit_core::DriverError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ExpiryLayer {
    clock: Arc<dyn Clock>,
}

impl ExpiryLayer {
    /// Deadlines on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// Deadlines on `clock` (tests use a manual clock).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }
}

impl Default for ExpiryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer for ExpiryLayer {
    fn layer(&self, inner: Arc<dyn Driver>) -> Arc<dyn Driver> {
        let native = inner.capabilities();
        let mut caps = native.clone();
        caps.ttl = Some(TtlSupport::exact(Duration::from_millis(1)));
        caps.max_value_size = caps.max_value_size.saturating_sub(ValueHeader::LEN);
        caps.touch = false;
        caps.update_only = native.update_only || native.compare_and_swap;
        Arc::new(Expiring {
            inner,
            clock: Arc::clone(&self.clock),
            caps,
        })
    }
}

struct Expiring {
    inner: Arc<dyn Driver>,
    clock: Arc<dyn Clock>,
    caps: Capabilities,
}

/// A version of this layer: the backend's version and the deadline it was read or written
/// with, as `{backend}@{deadline}` (the deadline empty for none; split at the last `@`).
fn layered_version(inner: &Version, expires_at: Option<u64>) -> Version {
    let mut token = String::with_capacity(inner.as_str().len() + 21);
    token.push_str(inner.as_str());
    token.push('@');
    if let Some(at) = expires_at {
        token.push_str(itoa::Buffer::new().format(at));
    }
    Version::new(token)
}

/// The backend's version and the deadline in a version of this layer; `None` for a version
/// this layer did not hand out (it matches nothing stored).
fn split_version(version: &Version) -> Option<(Version, Option<u64>)> {
    let (inner, at) = version.as_str().rsplit_once('@')?;
    let at = match at {
        "" => None,
        digits => Some(digits.parse().ok()?),
    };
    Some((Version::new(inner), at))
}

impl Expiring {
    fn now(&self) -> u64 {
        unix_millis(self.clock.now())
    }

    /// The stored entry with its header, whether expired or not.
    async fn stored(
        &self,
        key: &str,
        latest: bool,
    ) -> Result<Option<(ValueHeader, Entry)>, DriverError> {
        let entry = if latest {
            self.inner.get_latest(key).await?
        } else {
            self.inner.get(key).await?
        };
        match entry {
            Some(entry) => Ok(Some((ValueHeader::parse(&entry.value)?, entry))),
            None => Ok(None),
        }
    }

    /// A live entry as the caller sees it.
    async fn read(&self, key: &str, latest: bool) -> Result<Option<Entry>, DriverError> {
        let Some((header, entry)) = self.stored(key, latest).await? else {
            return Ok(None);
        };
        if header.expired(self.now()) {
            return Ok(None);
        }
        Ok(Some(Entry {
            value: entry.value.slice(ValueHeader::LEN..),
            version: layered_version(&entry.version, header.expires_at),
            expires_at: header.expires_at.map(from_unix_millis),
        }))
    }

    async fn write(
        &self,
        key: &str,
        body: &Bytes,
        expires_at: Option<u64>,
        mode: WriteMode,
    ) -> Result<Version, DriverError> {
        let version = self
            .inner
            .put(key, body.clone(), PutOptions::new().mode(mode))
            .await?;
        Ok(layered_version(&version, expires_at))
    }

    /// Create-only found an entry: replace it if it has expired, else it exists.
    async fn create_over_expired(
        &self,
        key: &str,
        body: &Bytes,
        expires_at: Option<u64>,
    ) -> Result<Version, DriverError> {
        let current = match self.stored(key, true).await? {
            // Deleted since: one more create-only attempt, and no more.
            None => {
                return self
                    .write(key, body, expires_at, WriteMode::CreateOnly)
                    .await;
            }
            Some((header, _)) if !header.expired(self.now()) => {
                return Err(DriverError::AlreadyExists);
            }
            Some((_, entry)) => entry,
        };
        let replaced = if self.inner.capabilities().compare_and_swap {
            let mode = WriteMode::IfVersion(current.version);
            self.write(key, body, expires_at, mode).await
        } else {
            self.inner.delete(key).await?;
            self.write(key, body, expires_at, WriteMode::CreateOnly)
                .await
        };
        // Another creator replaced it first.
        replaced.map_err(|e| match e {
            DriverError::Conflict => DriverError::AlreadyExists,
            e => e,
        })
    }

    /// The entries among `keys` that exist, with whether each has expired (entries this layer
    /// did not write are left out).
    async fn with_expiry(&self, keys: Vec<String>) -> Result<Vec<(String, bool)>, DriverError> {
        let now = self.now();
        futures_util::stream::iter(keys)
            .map(|key| async move {
                let Some(entry) = self.inner.get(&key).await? else {
                    return Ok(None);
                };
                Ok::<_, DriverError>(match ValueHeader::parse(&entry.value) {
                    Ok(header) => Some((key, header.expired(now))),
                    Err(_) => {
                        tracing::debug!("skipping a stored value without an expiry header");
                        None
                    }
                })
            })
            .buffered(READ_CONCURRENCY)
            .try_filter_map(|found| async move { Ok(found) })
            .try_collect()
            .await
    }

    /// Deletes the entries under `prefix` that `doomed` picks (given whether each expired),
    /// page by page; answers how many it deleted and counted.
    async fn delete_where(
        &self,
        prefix: &str,
        doomed: impl Fn(bool) -> bool,
        counted: impl Fn(bool) -> bool,
    ) -> Result<u64, DriverError> {
        let mut cursor: Option<String> = None;
        let mut count = 0u64;
        loop {
            let page = self.inner.list(prefix, cursor.as_deref()).await?;
            for (key, expired) in self.with_expiry(page.keys).await? {
                if doomed(expired) {
                    self.inner.delete(&key).await?;
                    count += u64::from(counted(expired));
                }
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(count),
            }
        }
    }
}

#[async_trait]
impl Driver for Expiring {
    forward_identity!("expiry");

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.read(key, false).await
    }

    async fn get_latest(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.read(key, true).await
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        let expires_at = options.ttl.map(|ttl| deadline_after(self.clock.now(), ttl));
        let body = Bytes::from(ValueHeader::new(expires_at).wrap(&value));
        match options.mode {
            WriteMode::Overwrite => {
                self.write(key, &body, expires_at, WriteMode::Overwrite)
                    .await
            }
            WriteMode::CreateOnly => {
                match self
                    .write(key, &body, expires_at, WriteMode::CreateOnly)
                    .await
                {
                    Err(DriverError::AlreadyExists) => {
                        self.create_over_expired(key, &body, expires_at).await
                    }
                    done => done,
                }
            }
            WriteMode::UpdateOnly => {
                let current = match self.stored(key, true).await? {
                    Some((header, entry)) if !header.expired(self.now()) => entry,
                    _ => return Err(DriverError::Conflict),
                };
                let mode = if self.inner.capabilities().compare_and_swap {
                    WriteMode::IfVersion(current.version)
                } else {
                    WriteMode::UpdateOnly
                };
                self.write(key, &body, expires_at, mode).await
            }
            WriteMode::IfVersion(version) => match split_version(&version) {
                Some((inner, read_with)) if read_with.is_none_or(|at| at > self.now()) => {
                    self.write(key, &body, expires_at, WriteMode::IfVersion(inner))
                        .await
                }
                // Expired since it was read, or not a version of this layer.
                _ => Err(DriverError::Conflict),
            },
        }
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let page = self.inner.list(prefix, cursor).await?;
        let keys = self.with_expiry(page.keys).await?;
        Ok(ListPage {
            keys: keys
                .into_iter()
                .filter_map(|(key, expired)| (!expired).then_some(key))
                .collect(),
            cursor: page.cursor,
        })
    }

    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        // Expired entries go too, uncounted: they were not there to clear.
        self.delete_where(prefix, |_| true, |expired| !expired)
            .await
    }

    /// Deletes expired entries. A backend without a conditional delete cannot make the read of
    /// the header and the delete one step: an entry rewritten in between would be lost. Session
    /// ids are never reused, so only a create-only write over the expired entry can do that.
    async fn sweep(&self) -> Result<u64, DriverError> {
        self.delete_where("", |expired| expired, |_| true).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{ManualClock, testing::Recorder};

    fn layered(caps: Capabilities) -> (Arc<Recorder>, Arc<ManualClock>, Arc<dyn Driver>) {
        let backend = Arc::new(Recorder::new(caps));
        let clock = Arc::new(ManualClock::starting_now());
        let driver = ExpiryLayer::with_clock(clock.clone()).layer(backend.clone());
        (backend, clock, driver)
    }

    fn full() -> Capabilities {
        Capabilities::new(100, 1000)
            .with_create_only()
            .with_compare_and_swap()
            .with_list()
    }

    fn ttl(secs: u64) -> PutOptions {
        PutOptions::new().ttl(Duration::from_secs(secs))
    }

    fn value() -> Bytes {
        Bytes::from_static(b"v")
    }

    #[tokio::test]
    async fn declares_exact_expiry_and_room_for_the_header() {
        let (_, _, driver) = layered(full());
        let caps = driver.capabilities();
        assert!(caps.ttl.is_some() && caps.update_only && !caps.touch);
        assert_eq!(caps.max_value_size, 1000 - ValueHeader::LEN);
        assert!(driver.native_capabilities().ttl.is_none());
        assert_eq!(driver.layers(), ["expiry"]);
    }

    /// A write at a clock read with a fraction of a millisecond: the deadline counts from the
    /// end of that millisecond, so the entry is never gone before its TTL (an S3 conformance
    /// run once saw an entry gone 449.3 ms into a 450 ms TTL).
    #[tokio::test]
    async fn a_deadline_is_never_early_on_a_clock_read_between_milliseconds() {
        use std::time::SystemTime;

        #[derive(Debug)]
        struct At(std::sync::Mutex<SystemTime>);
        impl Clock for At {
            fn now(&self) -> SystemTime {
                *self.0.lock().unwrap()
            }
        }
        let start = std::time::UNIX_EPOCH + Duration::from_micros(1_000_900);
        let clock = Arc::new(At(std::sync::Mutex::new(start)));
        let driver = ExpiryLayer::with_clock(clock.clone()).layer(Arc::new(Recorder::new(full())));
        let ttl = PutOptions::new().ttl(Duration::from_millis(450));
        driver.put("k", value(), ttl).await.unwrap();
        // 1450.5 ms: 449.6 ms after the write, the clock floored to 1450.
        *clock.0.lock().unwrap() = start + Duration::from_micros(449_600);
        assert!(
            driver.get("k").await.unwrap().is_some(),
            "gone before its TTL"
        );
        *clock.0.lock().unwrap() = start + Duration::from_millis(451);
        assert!(driver.get("k").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_expired_entry_is_absent_until_swept() {
        let (backend, clock, driver) = layered(full());
        driver.put("a", value(), ttl(10)).await.unwrap();
        driver.put("b", value(), ttl(100)).await.unwrap();
        driver.put("c", value(), PutOptions::new()).await.unwrap();
        let entry = driver.get("a").await.unwrap().unwrap();
        assert_eq!(entry.value, "v");
        assert!(entry.expires_at.is_some());
        clock.advance(Duration::from_secs(10));
        assert!(driver.get("a").await.unwrap().is_none());
        let mut keys = driver.list("", None).await.unwrap().keys;
        keys.sort();
        assert_eq!(keys, ["b", "c"]);
        assert!(backend.get("a").await.unwrap().is_some());
        assert_eq!(driver.sweep().await.unwrap(), 1);
        assert!(backend.get("a").await.unwrap().is_none());
        assert_eq!(driver.clear("").await.unwrap(), 2);
    }

    #[tokio::test]
    async fn conditional_writes_treat_an_expired_entry_as_absent() {
        let (_, clock, driver) = layered(full());
        let first = driver.put("k", value(), ttl(1)).await.unwrap();
        assert!(matches!(
            driver
                .put("k", value(), ttl(1).mode(WriteMode::CreateOnly))
                .await,
            Err(DriverError::AlreadyExists)
        ));
        clock.advance(Duration::from_secs(1));
        // Its own version, read before it expired, no longer matches.
        let cas = ttl(1).mode(WriteMode::IfVersion(first));
        assert!(matches!(
            driver.put("k", value(), cas).await,
            Err(DriverError::Conflict)
        ));
        let update = ttl(1).mode(WriteMode::UpdateOnly);
        assert!(matches!(
            driver.put("k", value(), update.clone()).await,
            Err(DriverError::Conflict)
        ));
        let created = driver
            .put("k", value(), ttl(5).mode(WriteMode::CreateOnly))
            .await
            .unwrap();
        let updated = driver.put("k", value(), update).await.unwrap();
        assert_ne!(created, updated);
        let cas = ttl(1).mode(WriteMode::IfVersion(updated.clone()));
        assert!(driver.put("k", value(), cas).await.is_ok());
        // A stale version and a foreign one both fail.
        let stale = PutOptions::new().mode(WriteMode::IfVersion(updated));
        assert!(matches!(
            driver.put("k", value(), stale).await,
            Err(DriverError::Conflict)
        ));
        let foreign = PutOptions::new().mode(WriteMode::IfVersion(Version::new("7")));
        assert!(matches!(
            driver.put("k", value(), foreign).await,
            Err(DriverError::Conflict)
        ));
    }

    #[tokio::test]
    async fn create_only_over_expired_without_compare_and_swap_deletes_first() {
        let (backend, clock, driver) = layered(Capabilities::new(100, 1000).with_create_only());
        assert!(!driver.capabilities().update_only);
        driver.put("k", value(), ttl(1)).await.unwrap();
        clock.advance(Duration::from_secs(2));
        driver
            .put("k", value(), ttl(1).mode(WriteMode::CreateOnly))
            .await
            .unwrap();
        let calls = backend.calls();
        assert_eq!(
            calls[1..],
            [
                "put k ttl=None mode=CreateOnly",
                "get k",
                "delete k",
                "put k ttl=None mode=CreateOnly"
            ]
        );
    }

    #[test]
    fn versions_carry_the_deadline() {
        let inner = Version::new("\"etag@x\"");
        for at in [None, Some(0), Some(u64::MAX)] {
            let (back, read) = split_version(&layered_version(&inner, at)).unwrap();
            assert_eq!((back, read), (inner.clone(), at));
        }
        assert!(split_version(&Version::new("no-deadline")).is_none());
        assert!(split_version(&Version::new("x@later")).is_none());
    }
}

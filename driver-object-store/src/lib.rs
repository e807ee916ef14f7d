//! Sessions on any [`object_store::ObjectStore`]: Amazon S3, Google Cloud Storage, Azure Blob
//! Storage, local files, memory, or your own implementation.
//!
//! * **Conditional writes** map to object_store's put modes: create-only is
//!   [`PutMode::Create`], compare-and-swap is [`PutMode::Update`] on the ETag and version the
//!   store returned. Declare what your store supports with [`ConditionalWrites`] (S3, GCS, Azure
//!   and the in-memory store support both; `LocalFileSystem` supports create only); a store
//!   that answers `NotImplemented` gives [`DriverError::Unsupported`], never a silent overwrite.
//! * **Object layout**: `<prefix>/<escaped key>`, keys escaped with
//!   [`session_core::escape_key`] so that any key is one plain path segment. The body is a
//!   [`ValueHeader`](session_core::ValueHeader) (expiry in Unix milliseconds and a random write
//!   id, so every write has a new ETag even for equal bytes) followed by the value. Attributes and
//!   metadata are not used: not every store keeps them.
//! * **Expiry** is enforced on every read and listing (no store has per-object TTLs);
//!   [`ObjectStoreDriver::sweep`] deletes expired objects, or run it in the background with
//!   [`ObjectStoreDriverBuilder::sweep_interval`]. Add a lifecycle rule on cloud stores as a
//!   backstop.
//! * **Listing** reads the prefix folder and pages by key (1000 per page, the cursor is the last
//!   key), so it works the same on stores that list in order and on those that do not.
//! * Every call is bounded by `operation_timeout` (default 10 s) on top of the store's own
//!   retry and timeout settings; a timeout is a retryable error.
//!
//! ```
//! use std::sync::Arc;
//! use object_store::memory::InMemory;
//! use session_driver_object_store::ObjectStoreDriver;
//!
//! let driver = ObjectStoreDriver::builder(Arc::new(InMemory::new()))
//!     .prefix("sessions")
//!     .build()
//!     .expect("no sweeper, so no runtime needed");
//! # let _ = driver;
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::{collections::BinaryHeap, fmt, sync::Arc, time::Duration};

use futures::{StreamExt, TryStreamExt};
use object_store::{
    ObjectStore, PutMode, PutPayload, UpdateVersion,
    path::{Path, PathPart},
};
use session_core::{
    Capabilities, Driver, DriverError, Entry, ListPage, PeriodicTask, PutOptions, TtlSupport,
    ValueHeader, Version, WriteMode, async_trait, bytes::Bytes, deadline_millis, escape_key,
    from_unix_millis, now_millis, unescape_key,
};

/// The name this driver reports.
pub const NAME: &str = "object-store";
/// Largest value accepted, in bytes.
pub const MAX_VALUE_SIZE: usize = 5 * 1024 * 1024;
/// Longest key accepted by default, in bytes: escaped (up to 3 bytes per byte) it stays within
/// the 1024-byte object names of S3 and GCS with room for a prefix. Local files need less
/// (see [`ObjectStoreDriverBuilder::max_key_len`]).
pub const MAX_KEY_LEN: usize = 300;
/// Keys per listing page.
const PAGE: usize = 1000;
/// Concurrent header reads while filtering a listing by expiry.
const READ_CONCURRENCY: usize = 16;

/// Which conditional writes the store supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ConditionalWrites {
    /// `PutMode::Create` and `PutMode::Update` (S3, GCS, Azure, `InMemory`).
    #[default]
    CreateAndUpdate,
    /// `PutMode::Create` only (`LocalFileSystem`): sessions are last-write-wins.
    CreateOnly,
    /// Neither: every write overwrites.
    None,
}

/// Builds an [`ObjectStoreDriver`].
pub struct ObjectStoreDriverBuilder {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    conditional: ConditionalWrites,
    operation_timeout: Duration,
    sweep_interval: Option<Duration>,
    max_key_len: usize,
}

impl ObjectStoreDriverBuilder {
    /// The folder the sessions live in (default `sessions`), `/`-separated.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Which conditional writes the store supports (default both).
    pub fn conditional_writes(mut self, conditional: ConditionalWrites) -> Self {
        self.conditional = conditional;
        self
    }

    /// Longest key to accept, in bytes (default [`MAX_KEY_LEN`]). An escaped key takes up to
    /// three times its length: for `LocalFileSystem` on a file system with 255-byte names, use
    /// 85 (session keys are about 80 bytes).
    pub fn max_key_len(mut self, max: usize) -> Self {
        self.max_key_len = max;
        self
    }

    /// Longest wait for any store call (default 10 s).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sweeps expired objects this often on the current Tokio runtime (default off).
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval).filter(|i| !i.is_zero());
        self
    }

    /// Builds the driver. Fails when a sweep interval is set outside a Tokio runtime.
    pub fn build(self) -> Result<ObjectStoreDriver, DriverError> {
        let inner = Arc::new(Inner {
            store: self.store,
            folder: Path::from(self.prefix.as_str()),
            timeout: self.operation_timeout,
        });
        let sweeper = match self.sweep_interval {
            Some(interval) => Some(PeriodicTask::spawn(
                Arc::downgrade(&inner),
                interval,
                "sweep_interval",
                "object store sweep",
                |inner: Arc<Inner>| async move { inner.sweep().await },
            )?),
            None => None,
        };
        let mut caps = Capabilities::new(self.max_key_len, MAX_VALUE_SIZE)
            .with_ttl(TtlSupport::exact(Duration::from_millis(1)))
            .with_list();
        if self.conditional != ConditionalWrites::None {
            caps = caps.with_create_only();
        }
        if self.conditional == ConditionalWrites::CreateAndUpdate {
            caps = caps.with_compare_and_swap();
        }
        Ok(ObjectStoreDriver {
            inner,
            caps,
            _sweeper: sweeper,
        })
    }
}

/// A session driver over an [`ObjectStore`]. See the crate documentation.
pub struct ObjectStoreDriver {
    inner: Arc<Inner>,
    caps: Capabilities,
    _sweeper: Option<PeriodicTask>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    folder: Path,
    timeout: Duration,
}

impl fmt::Debug for ObjectStoreDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreDriver")
            .field("store", &self.inner.store.to_string())
            .field("folder", &self.inner.folder.as_ref())
            .finish_non_exhaustive()
    }
}

impl ObjectStoreDriver {
    /// A builder for a driver on `store`.
    pub fn builder(store: Arc<dyn ObjectStore>) -> ObjectStoreDriverBuilder {
        ObjectStoreDriverBuilder {
            store,
            prefix: "sessions".into(),
            conditional: ConditionalWrites::default(),
            operation_timeout: Duration::from_secs(10),
            sweep_interval: None,
            max_key_len: MAX_KEY_LEN,
        }
    }

    /// Deletes every expired object in the folder and returns how many it deleted.
    ///
    /// Object stores have no conditional delete, so an object rewritten between the read of its
    /// header and the delete would be lost; session ids are never reused, so a live session is
    /// not rewritten over an expired one outside a create-only write.
    pub async fn sweep(&self) -> Result<u64, DriverError> {
        self.inner.sweep().await
    }
}

/// An entry's version: the store's ETag and object version, and the entry's expiry, so that a
/// compare-and-swap on an entry that has expired since it was read fails without a request
/// (the store would still match the ETag).
fn version(
    e_tag: Option<String>,
    version: Option<String>,
    expires_at: Option<u64>,
) -> Result<Version, DriverError> {
    if e_tag.is_none() && version.is_none() {
        return Err(DriverError::permanent(
            "the object store returned neither an ETag nor a version",
            None,
        ));
    }
    let token = serde_json::to_string(&(e_tag, version, expires_at))
        .map_err(|e| DriverError::permanent("encoding a version", Some(Box::new(e))))?;
    Ok(Version::new(token))
}

fn update_version(version: &Version) -> Result<UpdateVersion, DriverError> {
    // A version this driver did not hand out cannot match anything stored.
    let (e_tag, version, expires_at): (Option<String>, Option<String>, Option<u64>) =
        serde_json::from_str(version.as_str()).map_err(|_| DriverError::Conflict)?;
    // The entry it names has expired: absent, whatever the store still holds.
    if expires_at.is_some_and(|at| at <= now_millis()) {
        return Err(DriverError::Conflict);
    }
    Ok(UpdateVersion { e_tag, version })
}

/// How a put ended, before mapping to the caller's error kinds.
enum Put {
    Done(Version),
    Exists,
    Changed,
}

impl Inner {
    fn path(&self, key: &str) -> Path {
        self.folder.child(PathPart::from(escape_key(key).as_str()))
    }

    /// Runs a store call within the operation timeout.
    async fn bounded<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = object_store::Result<T>>,
    ) -> Result<object_store::Result<T>, DriverError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| DriverError::timeout(what, self.timeout))
    }

    async fn put(
        &self,
        path: &Path,
        value: &[u8],
        expires_at: Option<u64>,
        mode: PutMode,
    ) -> Result<Put, DriverError> {
        let options = object_store::PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .bounded(
                "object store put",
                self.store.put_opts(
                    path,
                    PutPayload::from(ValueHeader::new(expires_at).wrap(value)),
                    options,
                ),
            )
            .await?
        {
            Ok(done) => Ok(Put::Done(version(done.e_tag, done.version, expires_at)?)),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Put::Exists),
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => Ok(Put::Changed),
            Err(e) => Err(store_error("put", e)),
        }
    }

    /// The expiry of an object, `None` when it is missing.
    async fn read_header(&self, path: &Path) -> Result<Option<ValueHeader>, DriverError> {
        match self
            .bounded(
                "object store read",
                self.store.get_range(path, 0..ValueHeader::LEN as u64),
            )
            .await?
        {
            Ok(header) => ValueHeader::parse(&header).map(Some),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error("get_range", e)),
        }
    }

    /// Object names in the folder that start with `escaped_prefix` and sort after `after`:
    /// the first [`PAGE`] of them, and whether there are more.
    async fn names(
        &self,
        escaped_prefix: &str,
        after: Option<&str>,
    ) -> Result<(Vec<String>, bool), DriverError> {
        let mut stream = match after {
            Some(after) => self.store.list_with_offset(
                Some(&self.folder),
                &self.folder.child(PathPart::from(after)),
            ),
            None => self.store.list(Some(&self.folder)),
        };
        // The PAGE + 1 smallest names (a max-heap), whatever order the store lists in.
        let mut smallest: BinaryHeap<String> = BinaryHeap::with_capacity(PAGE + 2);
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, stream.next())
                .await
                .map_err(|_| DriverError::timeout("object store list", self.timeout))?;
            let Some(meta) = next else { break };
            let meta = meta.map_err(|e| store_error("list", e))?;
            let Some(name) = meta
                .location
                .prefix_match(&self.folder)
                .and_then(|mut parts| {
                    let name = parts.next()?;
                    parts.next().is_none().then(|| name.as_ref().to_owned())
                })
            else {
                continue;
            };
            if !name.starts_with(escaped_prefix) || after.is_some_and(|a| name.as_str() <= a) {
                continue;
            }
            smallest.push(name);
            if smallest.len() > PAGE + 1 {
                smallest.pop();
            }
        }
        let mut names = smallest.into_sorted_vec();
        let more = names.len() > PAGE;
        names.truncate(PAGE);
        Ok((names, more))
    }

    async fn sweep(&self) -> Result<u64, DriverError> {
        let mut after: Option<String> = None;
        let mut deleted = 0u64;
        loop {
            let (names, more) = self.names("", after.as_deref()).await?;
            let now = now_millis();
            let expired: Vec<Path> = futures::stream::iter(names.clone())
                .map(|name: String| async move {
                    let path = self.folder.child(PathPart::from(name.as_str()));
                    Ok::<_, DriverError>(match self.read_header(&path).await? {
                        Some(header) if header.expired(now) => Some(path),
                        _ => None,
                    })
                })
                .buffer_unordered(READ_CONCURRENCY)
                .try_filter_map(|x| async move { Ok(x) })
                .try_collect()
                .await?;
            for path in expired {
                match self
                    .bounded("object store delete", self.store.delete(&path))
                    .await?
                {
                    Ok(()) => deleted += 1,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(store_error("delete", e)),
                }
            }
            if !more {
                tracing::debug!(deleted, "object store sweep done");
                return Ok(deleted);
            }
            after = names.last().cloned();
        }
    }
}

#[async_trait]
impl Driver for ObjectStoreDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let inner = &self.inner;
        let path = inner.path(key);
        let result = match inner
            .bounded("object store get", inner.store.get(&path))
            .await?
        {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_error("get", e)),
        };
        let (e_tag, store_version) = (result.meta.e_tag.clone(), result.meta.version.clone());
        let bytes = inner
            .bounded("object store get", result.bytes())
            .await?
            .map_err(|e| store_error("get", e))?;
        let (header, value) = ValueHeader::split(&bytes)?;
        if header.expired(now_millis()) {
            return Ok(None);
        }
        Ok(Some(Entry {
            value,
            version: version(e_tag, store_version, header.expires_at)?,
            expires_at: header.expires_at.map(from_unix_millis),
        }))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        let ttl = options.ttl;
        let expires_at = ttl.map(|ttl| deadline_millis(now_millis(), ttl));
        let inner = &self.inner;
        let path = inner.path(key);
        let mode = match &options.mode {
            WriteMode::Overwrite => PutMode::Overwrite,
            WriteMode::CreateOnly => PutMode::Create,
            WriteMode::IfVersion(v) => PutMode::Update(update_version(v)?),
            WriteMode::UpdateOnly => return Err(DriverError::unsupported("write mode UpdateOnly")),
        };
        match inner.put(&path, &value, expires_at, mode).await? {
            Put::Done(version) => return Ok(version),
            Put::Changed => return Err(DriverError::Conflict),
            Put::Exists => {}
        }
        // Create-only found an object: an expired one that no sweep has deleted counts as
        // absent. Replace it conditionally where the store can, else delete and create again;
        // either way a concurrent creator wins at most once.
        let current = match inner
            .bounded("object store get", inner.store.get(&path))
            .await?
        {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Err(DriverError::AlreadyExists),
            Err(e) => return Err(store_error("get", e)),
        };
        let update = UpdateVersion {
            e_tag: current.meta.e_tag.clone(),
            version: current.meta.version.clone(),
        };
        let header = inner
            .bounded("object store get", current.bytes())
            .await?
            .map_err(|e| store_error("get", e))?;
        if !ValueHeader::parse(&header)?.expired(now_millis()) {
            return Err(DriverError::AlreadyExists);
        }
        let replaced = if self.caps.compare_and_swap {
            inner
                .put(&path, &value, expires_at, PutMode::Update(update))
                .await?
        } else {
            match inner
                .bounded("object store delete", inner.store.delete(&path))
                .await?
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error("delete", e)),
            }
            inner
                .put(&path, &value, expires_at, PutMode::Create)
                .await?
        };
        match replaced {
            Put::Done(version) => Ok(version),
            Put::Exists | Put::Changed => Err(DriverError::AlreadyExists),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        let inner = &self.inner;
        match inner
            .bounded("object store delete", inner.store.delete(&inner.path(key)))
            .await?
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("delete", e)),
        }
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let inner = &self.inner;
        let escaped = escape_key(prefix);
        if cursor.is_some_and(|c| unescape_key(c).is_none()) {
            return Err(DriverError::invalid_key(
                "not a cursor this driver returned",
            ));
        }
        let (names, more) = inner.names(&escaped, cursor).await?;
        let next = more.then(|| names.last().cloned()).flatten();
        let now = now_millis();
        let keys: Vec<String> = futures::stream::iter(names)
            .map(|name| async move {
                let Some(key) = unescape_key(&name) else {
                    tracing::debug!(
                        "object store list: skipping an object this driver did not write"
                    );
                    return Ok(None);
                };
                let path = inner.folder.child(PathPart::from(name.as_str()));
                Ok::<_, DriverError>(match inner.read_header(&path).await? {
                    Some(header) if !header.expired(now) => Some(key),
                    _ => None,
                })
            })
            .buffered(READ_CONCURRENCY)
            .try_filter_map(|x| async move { Ok(x) })
            .try_collect()
            .await?;
        Ok(ListPage { keys, cursor: next })
    }

    async fn sweep(&self) -> Result<u64, DriverError> {
        ObjectStoreDriver::sweep(self).await
    }
}

/// Maps an object_store error to the core's kinds. The message names the operation and the
/// error class; the store's own text (which may name paths) stays in the source.
fn store_error(operation: &str, e: object_store::Error) -> DriverError {
    use object_store::Error as E;
    match e {
        E::NotImplemented | E::NotSupported { .. } => {
            DriverError::unsupported(format!("object store {operation}"))
        }
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => DriverError::config(format!(
            "object store {operation}: access denied (check the store's credentials)"
        )),
        E::UnknownConfigurationKey { .. } => DriverError::config(format!(
            "object store {operation}: unknown configuration key"
        )),
        E::InvalidPath { .. } => DriverError::permanent(
            format!("object store {operation}: invalid path"),
            Some(Box::new(e)),
        ),
        other => DriverError::transient(format!("object store {operation} failed"), other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_foreign_ones_conflict() {
        let v = version(Some("\"abc\"".into()), None, None).unwrap();
        let u = update_version(&v).unwrap();
        assert_eq!(u.e_tag.as_deref(), Some("\"abc\""));
        assert_eq!(u.version, None);
        let later = version(Some("\"abc\"".into()), None, Some(now_millis() + 60_000)).unwrap();
        assert!(update_version(&later).is_ok());
        // A version of an entry that has expired since matches nothing.
        let expired = version(Some("\"abc\"".into()), None, Some(now_millis() - 1)).unwrap();
        assert!(matches!(
            update_version(&expired),
            Err(DriverError::Conflict)
        ));
        assert!(matches!(
            update_version(&Version::new("17")),
            Err(DriverError::Conflict)
        ));
        assert!(version(None, None, None).is_err());
    }
}

//! Sessions on any [`object_store::ObjectStore`]: Amazon S3, Google Cloud Storage, Azure Blob
//! Storage, local files, memory, or your own implementation.
//!
//! The driver maps the [`Driver`] contract to object_store calls and nothing more; expiry,
//! sweeping and timeouts come from session-kit-core's [layers](session_kit_core::layers), which
//! [`SessionStorage`](session_kit_core::SessionStorage), the registry and the conformance suite
//! put around it (call [`with_defaults`](session_kit_core::layers::with_defaults) to use the
//! driver directly).
//!
//! * **Conditional writes** map to object_store's put modes: create-only is
//!   [`PutMode::Create`], compare-and-swap is [`PutMode::Update`] on the ETag and version the
//!   store returned. Declare what your store supports with [`ConditionalWrites`] (S3, GCS, Azure
//!   and the in-memory store support both; `LocalFileSystem` supports create only); a store
//!   that answers `NotImplemented` gives [`DriverError::Unsupported`], never a silent overwrite.
//! * **Object layout**: `<prefix>/<escaped key>`, keys escaped with
//!   [`session_kit_core::driver::escape_key`] so that any key is one plain path segment. The body is what
//!   the [`ExpiryLayer`](session_kit_core::layers::ExpiryLayer) stores: a
//!   [`ValueHeader`] (expiry in Unix milliseconds and a random write
//!   id, so every write has a new ETag even for equal bytes) followed by the value. Attributes
//!   and metadata are not used: not every store keeps them.
//! * **Expiry** (no store has per-object TTLs) is the expiry layer's: enforced on every read
//!   and listing, on the application's clock; its `sweep` deletes expired objects, and
//!   [`ObjectStoreDriverBuilder::sweep_interval`] runs it in the background. Add a lifecycle
//!   rule on cloud stores as a backstop.
//! * **Listing** reads the prefix folder and pages by key (1000 per page, the cursor is the last
//!   key), so it works the same on stores that list in order and on those that do not.
//! * Every call is bounded by `operation_timeout` (default 10 s, the timeout layer) on top of
//!   the store's own retry and timeout settings; a timeout is a retryable error.
//!
//! ```
//! use std::sync::Arc;
//! use object_store::memory::InMemory;
//! use session_kit_object_store::ObjectStoreDriver;
//!
//! let driver = ObjectStoreDriver::builder(Arc::new(InMemory::new()))
//!     .prefix("sessions")
//!     .build();
//! # let _ = driver;
//! ```
#![doc = include_str!("../docs.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;

use std::{collections::BinaryHeap, fmt, sync::Arc, time::Duration};

use futures::StreamExt;
use object_store::{
    ObjectStore, PutMode, PutPayload, UpdateVersion,
    path::{Path, PathPart},
};
use session_kit_core::driver::{ValueHeader, escape_key, unescape_key};
use session_kit_core::{
    Capabilities, Driver, DriverError, Entry, LayerOptions, ListPage, PutOptions, Version,
    WriteMode, async_trait, bytes::Bytes,
};

use crate::error::store_error;

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

    /// Sweeps expired objects this often on the Tokio runtime the driver's layers are applied
    /// on (default off; zero is off).
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval);
        self
    }

    /// Builds the driver.
    pub fn build(self) -> ObjectStoreDriver {
        let mut caps =
            Capabilities::new(self.max_key_len, MAX_VALUE_SIZE + ValueHeader::LEN).with_list();
        if self.conditional != ConditionalWrites::None {
            caps = caps.with_create_only();
        }
        if self.conditional == ConditionalWrites::CreateAndUpdate {
            caps = caps.with_compare_and_swap();
        }
        ObjectStoreDriver {
            store: self.store,
            folder: Path::from(self.prefix.as_str()),
            caps,
            layers: LayerOptions::new()
                .with_emulated_expiry()
                .with_timeout(self.operation_timeout)
                .with_sweep_interval_opt(self.sweep_interval),
        }
    }
}

/// A session driver over an [`ObjectStore`]. See the crate documentation.
pub struct ObjectStoreDriver {
    store: Arc<dyn ObjectStore>,
    folder: Path,
    caps: Capabilities,
    layers: LayerOptions,
}

impl fmt::Debug for ObjectStoreDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreDriver")
            .field("store", &self.store.to_string())
            .field("folder", &self.folder.as_ref())
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

    fn path(&self, key: &str) -> Path {
        self.folder.child(PathPart::from(escape_key(key).as_str()))
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
        while let Some(meta) = stream.next().await {
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
}

/// An entry's version: the store's ETag and object version.
fn version(e_tag: Option<String>, version: Option<String>) -> Result<Version, DriverError> {
    if e_tag.is_none() && version.is_none() {
        return Err(DriverError::permanent(
            "the object store returned neither an ETag nor a version",
            None,
        ));
    }
    let token = serde_json::to_string(&(e_tag, version))
        .map_err(|e| DriverError::permanent("encoding a version", Some(Box::new(e))))?;
    Ok(Version::new(token))
}

fn update_version(version: &Version) -> Result<UpdateVersion, DriverError> {
    // A version this driver did not hand out cannot match anything stored.
    let (e_tag, version): (Option<String>, Option<String>) =
        serde_json::from_str(version.as_str()).map_err(|_| DriverError::Conflict)?;
    Ok(UpdateVersion { e_tag, version })
}

#[async_trait]
impl Driver for ObjectStoreDriver {
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
        let result = match self.store.get(&self.path(key)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_error("get", e)),
        };
        let version = version(result.meta.e_tag.clone(), result.meta.version.clone())?;
        let value = result.bytes().await.map_err(|e| store_error("get", e))?;
        Ok(Some(Entry {
            value,
            version,
            expires_at: None,
        }))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        let mode = match &options.mode {
            WriteMode::Overwrite => PutMode::Overwrite,
            WriteMode::CreateOnly => PutMode::Create,
            WriteMode::IfVersion(v) => PutMode::Update(update_version(v)?),
            WriteMode::UpdateOnly => return Err(DriverError::unsupported("write mode UpdateOnly")),
        };
        let options = object_store::PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.path(key), PutPayload::from(value), options)
            .await
        {
            Ok(done) => version(done.e_tag, done.version),
            Err(object_store::Error::AlreadyExists { .. }) => Err(DriverError::AlreadyExists),
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => Err(DriverError::Conflict),
            Err(e) => Err(store_error("put", e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("delete", e)),
        }
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        if cursor.is_some_and(|c| unescape_key(c).is_none()) {
            return Err(DriverError::invalid_key(
                "not a cursor this driver returned",
            ));
        }
        let (names, more) = self.names(&escape_key(prefix), cursor).await?;
        let next = more.then(|| names.last().cloned()).flatten();
        let keys = names
            .iter()
            .filter_map(|name| {
                let key = unescape_key(name);
                if key.is_none() {
                    tracing::debug!(
                        "object store list: skipping an object this driver did not write"
                    );
                }
                key
            })
            .collect();
        Ok(ListPage { keys, cursor: next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_foreign_ones_conflict() {
        let v = version(Some("\"abc\"".into()), None).unwrap();
        let u = update_version(&v).unwrap();
        assert_eq!(u.e_tag.as_deref(), Some("\"abc\""));
        assert_eq!(u.version, None);
        assert!(matches!(
            update_version(&Version::new("17")),
            Err(DriverError::Conflict)
        ));
        assert!(version(None, None).is_err());
    }
}

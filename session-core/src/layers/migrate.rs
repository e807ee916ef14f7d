//! Moving sessions to a new store while the app runs, one session at a time.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;

use super::Layer;
use crate::{
    Capabilities, Driver, DriverError, Entry, ListPage, PutOptions, Version, WriteMode,
    clock::{now_millis, unix_millis},
    model::ends_at,
    record::Record,
    user_index::index_key,
};

/// Serves an app from a new store while sessions still live in the old one: a key the new
/// store does not have is looked up in the old store and, when found, **moved** (written to
/// the new store create-only, with the time it has left, then deleted from the old one), so
/// that every session moves on its next request and from then on changes only in the new
/// store. Nothing is copied ahead, and no change is left behind: the old store is never
/// written again, except for deletes.
///
/// - `get`: the new store; on a miss, the old store (moving what it finds, and for a session
///   bound to a user its entry in the user index). A key moved by a concurrent request in
///   between is read from the new store.
/// - `put` and `touch`: the new store (a `touch` of a key still in the old store moves it
///   first).
/// - `delete`: the old store first, then the new one, so that a deleted session (a logout, a
///   regenerated id, "log out everywhere") cannot come back from the old store.
/// - `list`: the new store's keys, then the old store's keys that the new store lacks;
///   `clear` and `sweep`: both stores.
///
/// The new store needs create-only writes (every built-in driver but Cloudflare KV has them):
/// a move must never overwrite a session a concurrent request already moved and changed.
/// Both stores take the same keys: give both storages the same namespace and keyring.
/// [`SessionStorageBuilder::migrate_from`](crate::SessionStorageBuilder::migrate_from) applies
/// this layer; keep it until the old store's sessions have all moved or expired (the
/// absolute timeout), then drop it and the old store.
///
/// ```
/// use std::sync::Arc;
/// use session_kit_core::{Driver, PutOptions, bytes::Bytes, layers::{Layer, MigrateFromLayer}};
/// use session_kit_memory::MemoryDriver;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (old, new) = (Arc::new(MemoryDriver::new()), Arc::new(MemoryDriver::new()));
/// old.put("session:1", Bytes::from_static(b"v"), PutOptions::new()).await?;
/// let app = MigrateFromLayer::new(old.clone()).layer(new.clone());
/// assert!(app.get("session:1").await?.is_some());
/// assert!(old.get("session:1").await?.is_none(), "moved out of the old store");
/// assert!(new.get("session:1").await?.is_some(), "and into the new one");
/// # Ok::<(), session_kit_core::DriverError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct MigrateFromLayer {
    old: Arc<dyn Driver>,
    namespace: Arc<str>,
}

impl std::fmt::Debug for MigrateFromLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrateFromLayer")
            .field("old", &self.old.name())
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl MigrateFromLayer {
    /// Sessions not yet in the wrapped (new) store are moved from `old`.
    pub fn new(old: Arc<dyn Driver>) -> Self {
        Self {
            old,
            namespace: Arc::from("session:"),
        }
    }

    /// The sessions' namespace (`session:` unless the storage sets another): a session bound
    /// to a user is moved with its entry in the user index, so that "log out everywhere" finds
    /// it once the old store is gone. The storage builder sets it.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Arc::from(namespace);
        self
    }
}

impl Layer for MigrateFromLayer {
    fn layer(&self, inner: Arc<dyn Driver>) -> Arc<dyn Driver> {
        Arc::new(Migrating {
            inner,
            old: Arc::clone(&self.old),
            namespace: Arc::clone(&self.namespace),
        })
    }
}

struct Migrating {
    /// The new store (named so for the layer macros).
    inner: Arc<dyn Driver>,
    old: Arc<dyn Driver>,
    namespace: Arc<str>,
}

/// Listing cursors say which store's listing they continue: `n:` the new store's, `o:` the
/// old store's (each followed by that store's own cursor, empty for its first page).
const NEW_PHASE: &str = "n:";
const OLD_PHASE: &str = "o:";

impl Migrating {
    /// The key from the old store, moved into the new one; or from the new store, when
    /// the old one does not have it (it may just have been moved by a concurrent request).
    async fn move_in(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let Some(entry) = self.old.get_latest(key).await? else {
            return self.inner.get_latest(key).await;
        };
        let record = Record::decode(&entry.value).ok();
        let now = now_millis();
        let Some(ttl) = time_left(&entry, record.as_ref(), now) else {
            // Ended: the old store's expiry (or sweep) removes it.
            return self.inner.get_latest(key).await;
        };
        let options = PutOptions::new().ttl_opt(ttl).mode(WriteMode::CreateOnly);
        match self.inner.put(key, entry.value, options).await {
            // Moved by a concurrent request (and perhaps changed since): the new store's
            // copy is the session now.
            Ok(_) | Err(DriverError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
        // A session of a user: its index entry comes along, so that the user's sessions are
        // all found in the new store once the old one is gone.
        let user = record.and_then(|r| r.user).map(|binding| binding.id);
        if let Some(user) = user.filter(|_| key.starts_with(&*self.namespace)) {
            self.move_entry(&index_key(&self.namespace, &user, key), now)
                .await?;
        }
        self.forget(key).await;
        self.inner.get_latest(key).await
    }

    /// Moves a key that is not a session record (overwriting: the value is the key's whole
    /// meaning), if the old store has it.
    async fn move_entry(&self, key: &str, now: u64) -> Result<(), DriverError> {
        let Some(entry) = self.old.get_latest(key).await? else {
            return Ok(());
        };
        if let Some(ttl) = time_left(&entry, None, now) {
            let options = PutOptions::new().ttl_opt(ttl);
            self.inner.put(key, entry.value, options).await?;
        }
        self.forget(key).await;
        Ok(())
    }

    /// Deletes a moved key from the old store. A failure is only logged: the new store has
    /// the key, and every delete reaches both stores, so the copy left behind can neither be
    /// read again nor outlive a logout; it ends with its expiry.
    async fn forget(&self, key: &str) {
        if let Err(e) = self.old.delete(key).await {
            tracing::warn!(
                driver = self.old.name(),
                error = %e,
                "a moved key stays in the old store until it expires"
            );
        }
    }
}

/// How long an entry of the old store has left: `Some(None)` for no expiry, `None` when it
/// has ended. A session record's own deadlines count too (a store need not report expiry).
fn time_left(entry: &Entry, record: Option<&Record>, now: u64) -> Option<Option<Duration>> {
    let reported = entry.expires_at.map(unix_millis);
    let ends = match record {
        Some(record) => ends_at(record, reported),
        None => reported,
    };
    match ends {
        None => Some(None),
        Some(at) if at > now => Some(Some(Duration::from_millis(at - now))),
        Some(_) => None,
    }
}

/// The sum of two stores' answers to an operation that either may not support.
fn both(new: Result<u64, DriverError>, old: Result<u64, DriverError>) -> Result<u64, DriverError> {
    let unsupported = |r: &Result<u64, DriverError>| {
        r.as_ref()
            .is_err_and(|e| e.kind() == crate::ErrorKind::Unsupported)
    };
    match (new, old) {
        (Ok(a), Ok(b)) => Ok(a + b),
        (Ok(a), old) if unsupported(&old) => Ok(a),
        (new, Ok(b)) if unsupported(&new) => Ok(b),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

#[async_trait]
impl Driver for Migrating {
    forward_identity!("migrate_from");
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        match self.inner.get(key).await? {
            Some(entry) => Ok(Some(entry)),
            None => self.move_in(key).await,
        }
    }
    async fn get_latest(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        match self.inner.get_latest(key).await? {
            Some(entry) => Ok(Some(entry)),
            None => self.move_in(key).await,
        }
    }
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        self.inner.put(key, value, options).await
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.old.delete(key).await?;
        self.inner.delete(key).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        if self.inner.touch(key, ttl).await? {
            return Ok(true);
        }
        match self.move_in(key).await? {
            Some(_) => self.inner.touch(key, ttl).await,
            None => Ok(false),
        }
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let bad = || DriverError::permanent("not a cursor of this listing", None);
        let (old_phase, inner) = match cursor {
            None => (false, None),
            Some(c) => match (c.strip_prefix(NEW_PHASE), c.strip_prefix(OLD_PHASE)) {
                (Some(rest), _) => (false, Some(rest).filter(|r| !r.is_empty())),
                (_, Some(rest)) => (true, Some(rest).filter(|r| !r.is_empty())),
                _ => return Err(bad()),
            },
        };
        if !old_phase {
            let page = self.inner.list(prefix, inner).await?;
            let cursor = match page.cursor {
                Some(next) => Some(format!("{NEW_PHASE}{next}")),
                None if self.old.capabilities().list => Some(OLD_PHASE.to_owned()),
                None => None,
            };
            return Ok(ListPage {
                keys: page.keys,
                cursor,
            });
        }
        let page = self.old.list(prefix, inner).await?;
        let mut keys = Vec::with_capacity(page.keys.len());
        for key in page.keys {
            // Listed with the new store's keys already (moved, not yet deleted here).
            if self.inner.get(&key).await?.is_none() {
                keys.push(key);
            }
        }
        Ok(ListPage {
            keys,
            cursor: page.cursor.map(|next| format!("{OLD_PHASE}{next}")),
        })
    }
    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        let old = self.old.clear(prefix).await;
        both(self.inner.clear(prefix).await, old)
    }
    async fn sweep(&self) -> Result<u64, DriverError> {
        let old = self.old.sweep().await;
        both(self.inner.sweep().await, old)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    fn entry(expires_at: Option<SystemTime>) -> Entry {
        Entry {
            value: Bytes::from_static(b"not a record"),
            version: Version::new("1"),
            expires_at,
        }
    }

    #[test]
    fn time_left_follows_the_reported_expiry() {
        let now = now_millis();
        let at = |ms: u64| Some(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(time_left(&entry(None), None, now), Some(None));
        assert_eq!(
            time_left(&entry(at(now + 5_000)), None, now),
            Some(Some(Duration::from_secs(5)))
        );
        assert_eq!(time_left(&entry(at(now)), None, now), None);
        assert_eq!(time_left(&entry(at(now - 1)), None, now), None);
    }

    #[test]
    fn both_stores_answer_or_the_one_that_supports_it() {
        let unsupported = || Err(DriverError::unsupported("sweep"));
        assert_eq!(both(Ok(2), Ok(3)).unwrap(), 5);
        assert_eq!(both(Ok(2), unsupported()).unwrap(), 2);
        assert_eq!(both(unsupported(), Ok(3)).unwrap(), 3);
        assert!(both(unsupported(), unsupported()).is_err());
        assert!(both(Ok(1), Err(DriverError::unavailable("down", true, None))).is_err());
    }
}

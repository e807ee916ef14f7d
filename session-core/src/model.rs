//! What a session is made of, below both the app-facing types and the commit machinery:
//! the data bound, a record as loaded, a request's changes, a landed write, and how
//! concurrent requests of one session write.

use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::{
    Lifetime, SessionError, SessionId, Version,
    id::StorageKey,
    record::{Record, UserBinding},
};

/// Data a session can hold: any serde type that serialises as a map (a struct or a map).
///
/// Each top-level field is the unit of change tracking: two concurrent requests that change
/// different fields both keep their change.
pub trait SessionData: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> SessionData for T {}

/// Session data with string keys and JSON values, for apps that prefer a dynamic map.
pub type DynamicData = Map<String, Value>;

/// What happens when requests of one session overlap (two tabs, parallel fetches, a
/// single-page app).
///
/// | | lost updates | stale reads in a handler | cost |
/// |---|---|---|---|
/// | [`Merge`](Self::Merge) (default) | none: each request's operations are re-applied | possible | one conditional write per commit (or per batch of commits) |
/// | [`LastWriteWins`](Self::LastWriteWins) | between processes, and with requests that ended before this one changed anything | possible | one plain write per commit |
/// | [`Exclusive`](Self::Exclusive) | none | none | requests of a session wait for each other; two more store operations per request |
///
/// ```
/// use std::sync::Arc;
/// use session_kit_core::{ConcurrentWrites, Keyring, SessionStorage};
/// use session_kit_memory::MemoryDriver;
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Cart { items: Vec<String> }
///
/// let storage = SessionStorage::<Cart>::builder(Arc::new(MemoryDriver::new()))
///     .keyring(Keyring::from_secrets(["a secret of at least thirty-two bytes"])?)
///     // Plain writes, like most session libraries: cheaper, and a concurrent commit's
///     // changes to the same session may be overwritten.
///     .concurrent_writes(ConcurrentWrites::LastWriteWins)
///     .build()?;
/// # Ok::<(), session_kit_core::SessionError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ConcurrentWrites {
    /// Requests run concurrently; each commit keeps every other commit's changes (the
    /// default). A request's changes are recorded as operations (see
    /// [`Session`](crate::Session)); commits of one session in this process are combined into
    /// one store write, and a write that meets another process's change (compare-and-swap)
    /// reloads the record and applies every operation again, retrying with jittered backoff.
    /// On a driver without compare-and-swap, changes are kept only for requests of one
    /// process that overlap (the later one made its first change before the earlier one's
    /// write ended); otherwise the last write wins.
    #[default]
    Merge,
    /// Plain writes, without compare-and-swap (what tower-sessions and actix-session do):
    /// cheaper where compare-and-swap costs more than a write (on Redis a script, about 3 µs
    /// of Redis time per commit against 0.3 µs for `SET`). Commits of one session that
    /// overlap in this process are still combined; but a commit replaces what another process
    /// wrote since this request loaded the session, and what a request of this process wrote
    /// before this one made its first change. A session destroyed meanwhile stays destroyed
    /// where the driver can write only existing keys.
    LastWriteWins,
    /// Requests of one session run one at a time, for handlers that must never act on stale
    /// data: a request that uses its session waits until the previous one has committed, so
    /// it sees every earlier change, and a read-then-write handler is exact.
    ///
    /// In this process a per-session lock; across processes a lease in the store (the key
    /// `<storage key>.lock`, create-only with a TTL) on drivers with create-only writes, a
    /// TTL and strong consistency (memory, fs, SQLite, Redis, S3; not Cloudflare KV, where
    /// it holds per process only). Cost: a slow request delays the session's other requests;
    /// two more store operations per request (take and release the lease) and polling while
    /// another process holds it. A request waits at most
    /// [`exclusive_wait`](crate::SessionStorageBuilder::exclusive_wait) (default 10 s, then
    /// [`SessionError::Busy`], answered 503); a request running longer than
    /// [`exclusive_lease`](crate::SessionStorageBuilder::exclusive_lease) (default 30 s) loses its
    /// lease. Requests that never use their session take nothing. Not for cookie-only
    /// storage.
    Exclusive,
}

/// A session record as loaded from the store.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) id: SessionId,
    /// The storage key (empty for cookie-only sessions).
    pub(crate) key: StorageKey,
    /// The stored version (a placeholder for cookie-only sessions).
    pub(crate) version: Version,
    /// Shared with the decoded-record cache and the cookie memo; a commit that changes it
    /// builds its own.
    pub(crate) record: Arc<Record>,
    /// The idle deadline in force: the record's, or a later one the driver reports after a touch.
    pub(crate) idle_deadline: Option<u64>,
    /// The browser's cookie value for this id when it verified under the newest key: sending
    /// it back is the same as signing again, without the HMAC.
    pub(crate) signed: Option<Arc<str>>,
}

impl Stored {
    /// When the session ends (Unix ms), if ever.
    pub(crate) fn expires_at(&self) -> Option<u64> {
        min_opt(self.idle_deadline, self.record.absolute_deadline)
    }
}

/// One request's changes, re-applied key by key on top of a concurrently changed record.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub(crate) data: Vec<(String, Option<Value>)>,
    pub(crate) flash_taken: Vec<String>,
    pub(crate) flash_set: Map<String, Value>,
    pub(crate) lifetime: Option<Option<Lifetime>>,
    pub(crate) renew: bool,
    /// A new user binding (`Some(None)`: unbound); boxed, as most commits have none.
    pub(crate) user: Option<Box<Option<UserBinding>>>,
    /// The whole data as serialised for the diff, reused as the next snapshot; `None` when
    /// the data is unchanged or its changes were found field by field (see
    /// [`crate::field_diff`]).
    pub(crate) current: Option<Map<String, Value>>,
}

impl Changes {
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.flash_taken.is_empty()
            && self.flash_set.is_empty()
            && self.lifetime.is_none()
            && !self.renew
            && self.user.is_none()
    }
}

/// A write of an existing session that landed.
#[derive(Debug, Clone)]
pub(crate) struct Landed {
    /// The version written.
    pub(crate) version: Version,
    /// The record written.
    pub(crate) record: Arc<Record>,
    /// Whether the record holds more than one request's changes on the version it loaded
    /// (concurrent commits combined, or re-applied on a newer record).
    pub(crate) merged: bool,
    /// The storage's write sequence number of this write.
    pub(crate) seq: u64,
}

impl Stored {
    /// This session's identity (id, key, cookie) without its record, to `land` one on.
    pub(crate) fn shell(&self) -> Self {
        Self {
            id: self.id.clone(),
            key: self.key.clone(),
            version: self.version.clone(),
            record: Arc::new(Record::empty()),
            idle_deadline: None,
            signed: None,
        }
    }

    /// This session as of `landed`.
    pub(crate) fn land(&mut self, landed: Landed) {
        self.version = landed.version;
        self.idle_deadline = landed.record.idle_deadline;
        self.record = landed.record;
    }
}

/// What happened to one request's commit of an existing session: written (`Some`), or the
/// session was gone (destroyed or expired: `None`).
pub(crate) type Committed = Result<Option<Landed>, SessionError>;

/// The idle deadline in force: the record's, or a later one the driver reports after a touch.
pub(crate) fn idle_in_force(record_idle: Option<u64>, reported: Option<u64>) -> Option<u64> {
    record_idle.map(|d| reported.map_or(d, |r| r.max(d)))
}

/// When the session in `record` ends (Unix ms), with the expiry the driver reported.
pub(crate) fn ends_at(record: &Record, reported: Option<u64>) -> Option<u64> {
    min_opt(
        idle_in_force(record.idle_deadline, reported),
        record.absolute_deadline,
    )
}

pub(crate) fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

//! [`SessionStorage`]: the sans-IO entry point that turns `Cookie` headers into sessions and
//! sessions into `Set-Cookie` headers.

use std::{
    fmt,
    marker::PhantomData,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use serde::{
    Serialize,
    de::{DeserializeOwned, value::MapDeserializer},
};
use serde_json::{Map, Value};

use crate::{
    Clock, CookieOptions, Driver, DriverError, ExpiryPolicy, Keyring, Lifetime, PutOptions,
    SessionError, SessionId, SetCookie, SystemClock, Version, WriteMode,
    clock::{from_unix_millis, unix_millis},
    combine::{SlotRef, Slots, Turn},
    cookie::{sign, verify},
    intent::{Intent, assign, replay},
    record::{FORMAT, Record, after},
    sealed::seal,
    session::{Incoming, Session},
};

/// The browser's limit for one cookie, `Set-Cookie` attributes included.
pub(crate) const MAX_SET_COOKIE: usize = 4096;

/// Data a session can hold: any serde type that serialises as a map (a struct or a map).
///
/// Each top-level field is the unit of change tracking: two concurrent requests that change
/// different fields both keep their change.
pub trait SessionData: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> SessionData for T {}

/// Session data with string keys and JSON values, for apps that prefer a dynamic map.
pub type DynamicData = Map<String, Value>;

/// Creates sessions from requests and commits them through a [`Driver`].
///
/// Cheap to clone; share one per cookie name. See the crate documentation for the request
/// flow.
pub struct SessionStorage<T = DynamicData> {
    pub(crate) shared: Arc<Shared<T>>,
}

impl<T> Clone for SessionStorage<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for SessionStorage<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match &self.shared.backend {
            Backend::Store(driver) => driver.name(),
            Backend::Cookie => "cookie-only",
        };
        f.debug_struct("SessionStorage")
            .field("backend", &backend)
            .field("cookie", &self.shared.cookie)
            .field("namespace", &self.shared.namespace)
            .field("expiry", &self.shared.expiry)
            .field("keyring", &self.shared.keyring)
            .finish()
    }
}

/// Where session records live.
pub(crate) enum Backend {
    /// In a driver, under a hash of the session id; the cookie carries the signed id.
    Store(Arc<dyn Driver>),
    /// Sealed (encrypted and authenticated) into the cookie itself.
    Cookie,
}

/// Configures a [`SessionStorage`]. A keyring is required: there is no default secret.
pub struct SessionStorageBuilder<T> {
    backend: Backend,
    defaults: T,
    cookie: CookieOptions,
    keyring: Option<Keyring>,
    expiry: ExpiryPolicy,
    namespace: String,
    clock: Arc<dyn Clock>,
    max_attempts: u32,
    concurrent_writes: ConcurrentWrites,
    exclusive_lease: Duration,
    exclusive_wait: Duration,
    /// Options set that only apply to sessions in a store, by name.
    store_only: Vec<&'static str>,
}

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
/// use session_core::{ConcurrentWrites, Keyring, SessionStorage};
/// use session_driver_memory::MemoryDriver;
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
/// # Ok::<(), session_core::SessionError>(())
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
    /// [`exclusive_wait`](SessionStorageBuilder::exclusive_wait) (default 10 s, then
    /// [`SessionError::Busy`], answered 503); a request running longer than
    /// [`exclusive_lease`](SessionStorageBuilder::exclusive_lease) (default 30 s) loses its
    /// lease. Requests that never use their session take nothing. Not for cookie-only
    /// storage.
    Exclusive,
}

impl<T: SessionData + Default> SessionStorage<T> {
    /// A builder whose new sessions start from `T::default()`.
    pub fn builder(driver: Arc<dyn Driver>) -> SessionStorageBuilder<T> {
        Self::builder_with_defaults(driver, T::default())
    }

    /// A builder for cookie-only sessions: the whole session (data, flash, expiry) is sealed
    /// into the cookie with AES-256-GCM-SIV under the keyring, and nothing is stored on the
    /// server. Same [`Session`] API; a commit whose cookie would exceed the browser's 4096-byte
    /// limit fails with [`SessionError::CookieTooLarge`].
    pub fn cookie_only() -> SessionStorageBuilder<T> {
        Self::cookie_only_with_defaults(T::default())
    }
}

impl<T: SessionData> SessionStorage<T> {
    /// A builder whose new sessions start from `defaults` (fields missing from a stored session
    /// are filled from it too, so adding a field to `T` keeps old sessions loadable).
    pub fn builder_with_defaults(driver: Arc<dyn Driver>, defaults: T) -> SessionStorageBuilder<T> {
        // Drivers implement backend semantics only: a driver built in code gets the standard
        // layers and those it asks for here (one opened through a registry has them already).
        let driver = crate::layers::with_defaults(driver);
        Self::builder_for(Backend::Store(driver), defaults)
    }

    /// [`cookie_only`](SessionStorage::cookie_only) with explicit defaults.
    pub fn cookie_only_with_defaults(defaults: T) -> SessionStorageBuilder<T> {
        Self::builder_for(Backend::Cookie, defaults)
    }

    fn builder_for(backend: Backend, defaults: T) -> SessionStorageBuilder<T> {
        SessionStorageBuilder {
            backend,
            defaults,
            cookie: CookieOptions::default(),
            keyring: None,
            expiry: ExpiryPolicy::default(),
            namespace: "session:".into(),
            clock: Arc::new(SystemClock),
            max_attempts: 100,
            concurrent_writes: ConcurrentWrites::default(),
            exclusive_lease: crate::exclusive::DEFAULT_LEASE,
            exclusive_wait: crate::exclusive::DEFAULT_WAIT,
            store_only: Vec::new(),
        }
    }

    /// The session of a request, from its `Cookie` header. Does no I/O: the store is read
    /// only when the session's data is first used.
    ///
    /// A missing, malformed, forged or wrongly signed cookie gives a new, empty session.
    pub fn get_session(&self, cookie_header: Option<&str>) -> Session<T> {
        Session::new(
            Arc::clone(&self.shared),
            self.incoming(cookie_header.into_iter()),
        )
    }

    /// [`get_session`](Self::get_session) from all `Cookie` headers of an `http` request.
    pub fn get_session_from_headers(&self, headers: &http::HeaderMap) -> Session<T> {
        self.get_session_from_values(headers.get_all(http::header::COOKIE).iter())
    }

    /// [`get_session`](Self::get_session) from the raw bytes of every `Cookie` header of a
    /// request, for frameworks with their own header types.
    ///
    /// Headers are bytes, not text: other cookies of the site may hold UTF-8 or Latin-1
    /// (`lang=français`). Such bytes never cost the visitor their session; only a session
    /// cookie whose own value is unusable (not ASCII, over 4096 bytes) counts as invalid.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use session_core::{Keyring, SessionStorage};
    /// # let storage = SessionStorage::<session_core::DynamicData>::builder(Arc::new(session_driver_memory::MemoryDriver::new()))
    /// #     .keyring(Keyring::from_secrets(["a secret of at least thirty-two bytes"])?)
    /// #     .build()?;
    /// let session = storage.get_session_from_raw([&b"lang=fran\xe7ais; theme=dark"[..]]);
    /// # Ok::<(), session_core::SessionError>(())
    /// ```
    pub fn get_session_from_raw<'h>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'h [u8]>,
    ) -> Session<T> {
        let headers = cookie_headers
            .into_iter()
            .map(|bytes| match std::str::from_utf8(bytes) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                // Only other cookies can be affected: ours is ASCII or unusable anyway.
                Err(_) => String::from_utf8_lossy(bytes),
            });
        Session::new(Arc::clone(&self.shared), self.incoming(headers))
    }

    /// [`get_session_from_raw`](Self::get_session_from_raw) over `http` header values: those
    /// that are visible ASCII (nearly all) are read as they are.
    fn get_session_from_values<'h>(
        &self,
        values: impl Iterator<Item = &'h http::HeaderValue>,
    ) -> Session<T> {
        let headers = values.map(|value| match value.to_str() {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value.as_bytes()),
        });
        Session::new(Arc::clone(&self.shared), self.incoming(headers))
    }

    /// Saves what changed and returns the `Set-Cookie` value to send, or `None` when the
    /// browser's cookie is still right (nothing changed, or the session was never touched).
    pub async fn commit_session(
        &self,
        session: &Session<T>,
    ) -> Result<Option<SetCookie>, SessionError> {
        self.check_owner(session)?;
        session.commit().await
    }

    /// Destroys the session now (its record is deleted) and returns the `Set-Cookie` value
    /// that removes the cookie.
    pub async fn destroy_session(&self, session: &Session<T>) -> Result<SetCookie, SessionError> {
        self.check_owner(session)?;
        session.destroy().await;
        Ok(session
            .commit()
            .await?
            .unwrap_or_else(|| self.shared.cookie.render_removal()))
    }

    /// The driver sessions are stored in (`None` for cookie-only sessions).
    pub fn driver(&self) -> Option<&Arc<dyn Driver>> {
        match &self.shared.backend {
            Backend::Store(driver) => Some(driver),
            Backend::Cookie => None,
        }
    }

    /// How many sessions of this storage are being changed by requests in flight in this
    /// process (each has the state that combines their commits; it ends with the session's
    /// last request). A gauge for metrics; it says nothing about other processes.
    pub fn sessions_in_flight(&self) -> usize {
        self.shared.slots.len()
    }

    /// The cookie options.
    pub fn cookie_options(&self) -> &CookieOptions {
        &self.shared.cookie
    }

    fn check_owner(&self, session: &Session<T>) -> Result<(), SessionError> {
        if Arc::ptr_eq(&self.shared, session.shared()) {
            Ok(())
        } else {
            Err(SessionError::ForeignSession)
        }
    }

    fn incoming<H: AsRef<str>>(&self, headers: impl Iterator<Item = H>) -> Incoming {
        let shared = &self.shared;
        let mut seen = false;
        if let Backend::Cookie = shared.backend {
            // Opened lazily, on first use: an untouched request pays no decryption.
            let mut values: Vec<String> = Vec::new();
            for header in headers {
                for value in shared.cookie.values_in(header.as_ref()) {
                    seen = true;
                    values.extend(value.map(str::to_owned));
                }
            }
            return match (values.is_empty(), seen) {
                (false, _) => Incoming::Sealed(values),
                (true, true) => Incoming::Invalid,
                (true, false) => Incoming::Absent,
            };
        }
        for header in headers {
            for value in shared.cookie.values_in(header.as_ref()) {
                seen = true;
                let Some(value) = value else { continue };
                if let Some((id, key_index)) =
                    verify(&shared.keyring, shared.cookie.cookie_name(), value)
                {
                    return Incoming::Valid {
                        id,
                        stale_key: key_index > 0,
                        signed: (key_index == 0).then(|| value.to_owned()),
                    };
                }
            }
        }
        if seen {
            tracing::debug!("ignoring a session cookie that does not verify");
            Incoming::Invalid
        } else {
            Incoming::Absent
        }
    }
}

impl<T: SessionData> SessionStorageBuilder<T> {
    /// Cookie name and attributes.
    pub fn cookie(mut self, cookie: CookieOptions) -> Self {
        self.cookie = cookie;
        self
    }

    /// The keys that sign cookies (required).
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Idle and absolute timeouts.
    pub fn expiry(mut self, expiry: ExpiryPolicy) -> Self {
        self.expiry = expiry;
        self
    }

    /// Prefix of every storage key (default `session:`), so several storages or apps can
    /// share one backend.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self.store_only.push("namespace");
        self
    }

    /// The clock used for expiry (the system clock by default; inject one in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many store writes a commit tries before it gives up with the retryable
    /// [`SessionError::Contention`] (default 100: about a second of backoff). Only writes of
    /// other processes cost attempts: commits of one session within this process are
    /// combined, never in conflict. Retries after the first wait a random time below a window
    /// that doubles from 0.25 ms up to 20 ms.
    pub fn max_commit_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self.store_only.push("max_commit_attempts");
        self
    }

    /// What happens when requests of one session overlap: see [`ConcurrentWrites`].
    pub fn concurrent_writes(mut self, policy: ConcurrentWrites) -> Self {
        self.concurrent_writes = policy;
        self.store_only.push("concurrent_writes");
        self
    }

    /// With [`ConcurrentWrites::Exclusive`]: how long a request's lease on its session lasts
    /// unless it is released earlier (default 30 s; raised to the driver's minimum TTL). A
    /// request that runs longer loses its exclusivity.
    pub fn exclusive_lease(mut self, lease: Duration) -> Self {
        self.exclusive_lease = lease;
        self.store_only.push("exclusive_lease");
        self
    }

    /// With [`ConcurrentWrites::Exclusive`]: how long a request waits for its session before
    /// it fails with the retryable [`SessionError::Busy`] (default 10 s).
    pub fn exclusive_wait(mut self, wait: Duration) -> Self {
        self.exclusive_wait = wait;
        self.store_only.push("exclusive_wait");
        self
    }

    /// Validates the configuration and builds the storage.
    ///
    /// Options for sessions in a store (`namespace`, `max_commit_attempts`,
    /// `concurrent_writes`, `exclusive_lease`, `exclusive_wait`) fail the build of a
    /// cookie-only storage with [`SessionError::Config`], rather than doing nothing.
    pub fn build(self) -> Result<SessionStorage<T>, SessionError> {
        let keyring = self.keyring.ok_or_else(|| {
            SessionError::Config(
                "a keyring is required: use Keyring::from_secrets([secret]) with a secret of at \
                 least 32 bytes (or Keyring::generate_for_development() for local development)"
                    .into(),
            )
        })?;
        self.cookie.validate()?;
        let defaults =
            match serde_json::to_value(&self.defaults).map_err(SessionError::Serialize)? {
                Value::Object(map) => map,
                other => {
                    return Err(SessionError::Config(format!(
                        "session data must serialise as a map or struct, not {other}"
                    )));
                }
            };
        T::deserialize(&Value::Object(defaults.clone())).map_err(SessionError::Serialize)?;
        if let (Backend::Cookie, ConcurrentWrites::Exclusive) =
            (&self.backend, self.concurrent_writes)
        {
            return Err(SessionError::Config(
                "ConcurrentWrites::Exclusive needs a store: cookie-only sessions live in the \
                 browser, where requests cannot wait for each other"
                    .into(),
            ));
        }
        if let (Backend::Cookie, [first, ..]) = (&self.backend, self.store_only.as_slice()) {
            return Err(SessionError::Config(format!(
                "`{first}` applies to sessions kept in a store; cookie-only sessions are sealed \
                 into the cookie (set: {})",
                self.store_only.join(", ")
            )));
        }
        if let Backend::Store(driver) = &self.backend {
            let lease_suffix = if self.concurrent_writes == ConcurrentWrites::Exclusive {
                ".lock".len()
            } else {
                0
            };
            let max_key = self.namespace.len() + 64 + lease_suffix;
            let caps = driver.capabilities();
            if max_key > caps.max_key_len {
                return Err(SessionError::Config(format!(
                    "namespace too long: keys would be {max_key} bytes, driver `{}` accepts {}",
                    driver.name(),
                    caps.max_key_len
                )));
            }
            if caps.last_write_wins() && self.concurrent_writes == ConcurrentWrites::Merge {
                tracing::info!(
                    driver = driver.name(),
                    "driver has no compare-and-swap: concurrent commits to one session are merged within this process only"
                );
            }
            if self.concurrent_writes == ConcurrentWrites::Exclusive
                && !crate::exclusive::can_lease(driver.as_ref())
            {
                tracing::info!(
                    driver = driver.name(),
                    "driver cannot hold a lease: requests of one session are exclusive within this process only"
                );
            }
        }
        Ok(SessionStorage {
            shared: Arc::new(Shared {
                backend: self.backend,
                cookie: self.cookie,
                keyring,
                expiry: self.expiry,
                namespace: self.namespace,
                clock: self.clock,
                defaults,
                max_attempts: self.max_attempts,
                concurrent_writes: self.concurrent_writes,
                exclusive_lease: self.exclusive_lease,
                exclusive_wait: self.exclusive_wait,
                slots: Arc::default(),
                write_seq: AtomicU64::new(0),
                _data: PhantomData,
            }),
        })
    }
}

/// Storage-wide state shared by every session of one storage.
pub(crate) struct Shared<T> {
    pub(crate) backend: Backend,
    pub(crate) cookie: CookieOptions,
    pub(crate) keyring: Keyring,
    pub(crate) expiry: ExpiryPolicy,
    pub(crate) namespace: String,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) defaults: Map<String, Value>,
    pub(crate) max_attempts: u32,
    pub(crate) concurrent_writes: ConcurrentWrites,
    pub(crate) exclusive_lease: Duration,
    pub(crate) exclusive_wait: Duration,
    /// Sessions being changed by requests in flight: see [`crate::combine`].
    pub(crate) slots: Arc<Slots<T>>,
    /// Counts this storage's landed writes: tells whether a slot's latest write happened
    /// after a request loaded its session.
    pub(crate) write_seq: AtomicU64,
    _data: PhantomData<fn() -> T>,
}

/// A session record as loaded from the store.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) id: SessionId,
    /// The storage key (empty for cookie-only sessions).
    pub(crate) key: String,
    /// The stored version (a placeholder for cookie-only sessions).
    pub(crate) version: Version,
    pub(crate) record: Record,
    /// The idle deadline in force: the record's, or a later one the driver reports after a touch.
    pub(crate) idle_deadline: Option<u64>,
    /// The browser's cookie value for this id when it verified under the newest key: sending
    /// it back is the same as signing again, without the HMAC.
    pub(crate) signed: Option<String>,
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
    /// The whole data as serialised for the diff, reused as the next snapshot.
    pub(crate) current: Option<Map<String, Value>>,
}

impl Changes {
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.flash_taken.is_empty()
            && self.flash_set.is_empty()
            && self.lifetime.is_none()
            && !self.renew
    }
}

/// A write of an existing session that landed.
#[derive(Debug, Clone)]
pub(crate) struct Landed {
    /// The version written.
    pub(crate) version: Version,
    /// The record written.
    pub(crate) record: Record,
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
            record: Record::empty(),
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

/// Fails every commit of a batch that has no outcome yet with `error`: the first keeps it
/// (with its cause), the others get a copy.
fn fail_all(error: SessionError, outcomes: &mut [Option<Committed>]) {
    let mut pending = outcomes.iter_mut().filter(|o| o.is_none());
    let Some(first) = pending.next() else {
        return;
    };
    for outcome in pending {
        *outcome = Some(Err(error.replicate()));
    }
    *first = Some(Err(error));
}

/// Waits before the `attempt`-th write (counting from 0) of a commit that keeps meeting other
/// processes' writes: the first retry goes at once (it just read the newer record), later ones
/// wait a random time below a window that doubles from 0.25 ms to at most 20 ms (full jitter),
/// so competing processes spread out instead of colliding again in lockstep. Without the
/// `tokio` feature (Cloudflare Workers) there is no timer and every retry goes at once.
async fn backoff(attempt: u32) {
    #[cfg(feature = "tokio")]
    if attempt > 1 {
        let window = (250u64 << (attempt - 2).min(7)).min(20_000);
        let micros = rand::random_range(0..=window);
        tokio::time::sleep(Duration::from_micros(micros)).await;
    }
    #[cfg(not(feature = "tokio"))]
    let _ = attempt;
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<T: SessionData> Shared<T> {
    pub(crate) fn now(&self) -> u64 {
        unix_millis(self.clock.now())
    }

    /// Typed data read from the defaults overlaid with `stored`, straight from both maps
    /// (nothing is copied).
    pub(crate) fn build_data(&self, stored: &Map<String, Value>) -> Result<T, serde_json::Error> {
        let defaults = self
            .defaults
            .iter()
            .filter(|(key, _)| !stored.contains_key(*key));
        let pairs = stored
            .iter()
            .chain(defaults)
            .map(|(key, value)| (key.as_str(), value));
        T::deserialize(MapDeserializer::<_, serde_json::Error>::new(pairs))
    }

    pub(crate) fn lifetime_of(&self, record_lifetime: Option<Lifetime>) -> Lifetime {
        record_lifetime.unwrap_or_else(|| self.expiry.lifetime())
    }

    /// Reads and validates the record under `key`: `None` if it is missing, expired or
    /// unreadable. `latest`: bypass any cache of the driver ([`Driver::get_latest`]).
    pub(crate) async fn fetch(
        &self,
        driver: &dyn Driver,
        id: &SessionId,
        key: String,
        latest: bool,
    ) -> Result<Option<Stored>, DriverError> {
        let entry = if latest {
            driver.get_latest(&key).await?
        } else {
            driver.get(&key).await?
        };
        let Some(entry) = entry else {
            return Ok(None);
        };
        let record = match Record::decode(&entry.value) {
            Ok(record) => record,
            Err(reason) => {
                tracing::warn!(?id, %reason, "unreadable session record; starting a new session");
                return Ok(None);
            }
        };
        let reported = entry.expires_at.map(unix_millis);
        let idle_deadline = record
            .idle_deadline
            .map(|d| reported.map_or(d, |r| r.max(d)));
        Ok(self.unexpired(Stored {
            id: id.clone(),
            key,
            version: entry.version,
            idle_deadline,
            record,
            signed: None,
        }))
    }

    /// A cookie-only session opened from its cookie, unless it has expired.
    pub(crate) fn opened(&self, id: SessionId, record: Record) -> Option<Stored> {
        self.unexpired(Stored {
            id,
            key: String::new(),
            version: Version::new("cookie"),
            idle_deadline: record.idle_deadline,
            record,
            signed: None,
        })
    }

    fn unexpired(&self, stored: Stored) -> Option<Stored> {
        if stored
            .expires_at()
            .is_some_and(|deadline| self.now() >= deadline)
        {
            tracing::debug!(id = ?stored.id, "session expired");
            return None;
        }
        Some(stored)
    }

    /// Applies `changes` to `record` as of `now`, recomputing its deadlines.
    pub(crate) fn apply(&self, record: &mut Record, changes: &Changes, now: u64) {
        assign(&mut record.data, &changes.data);
        Self::apply_meta(record, changes);
        self.set_deadlines(record, changes.renew || changes.lifetime.is_some(), now);
    }

    /// Applies the flash and lifetime changes of `changes` (everything but the data).
    fn apply_meta(record: &mut Record, changes: &Changes) {
        for key in &changes.flash_taken {
            record.flash.remove(key);
        }
        record.flash.extend(
            changes
                .flash_set
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        if let Some(lifetime) = changes.lifetime {
            record.lifetime = lifetime;
        }
    }

    /// Restarts the idle timeout from `now`, and the absolute one too when `restart`.
    fn set_deadlines(&self, record: &mut Record, restart: bool, now: u64) {
        let lifetime = self.lifetime_of(record.lifetime);
        if restart {
            record.absolute_deadline = lifetime.absolute_timeout.map(|d| after(now, d));
        }
        record.idle_deadline = lifetime.idle_timeout.map(|d| after(now, d));
    }

    /// A record for a session created at `now`.
    pub(crate) fn new_record(&self, now: u64) -> Record {
        Record {
            format: FORMAT,
            data: Map::new(),
            flash: Map::new(),
            created_at: now,
            idle_deadline: None,
            absolute_deadline: self
                .expiry
                .lifetime()
                .absolute_timeout
                .map(|d| after(now, d)),
            lifetime: None,
        }
    }

    /// The TTL to hand a driver with native expiry.
    fn ttl(driver: &dyn Driver, expires_at: Option<u64>, now: u64) -> Option<Duration> {
        driver.capabilities().ttl?;
        expires_at.map(|t| Duration::from_millis(t.saturating_sub(now).max(1)))
    }

    /// Writes `record` under a fresh id, create-only, drawing a new id on a collision.
    pub(crate) async fn create(
        &self,
        driver: &dyn Driver,
        record: Record,
        id: Option<SessionId>,
        now: u64,
    ) -> Result<Stored, SessionError> {
        let bytes = Bytes::from(record.encode().map_err(SessionError::Serialize)?);
        let mode = if driver.capabilities().create_only {
            WriteMode::CreateOnly
        } else {
            WriteMode::Overwrite
        };
        let ttl = Self::ttl(
            driver,
            min_opt(record.idle_deadline, record.absolute_deadline),
            now,
        );
        let mut id = match id {
            Some(id) => id,
            None => SessionId::generate()?,
        };
        for _ in 0..self.max_attempts {
            let key = id.storage_key(&self.namespace);
            let options = PutOptions::new().ttl_opt(ttl).mode(mode.clone());
            match driver.put(&key, bytes.clone(), options).await {
                Ok(version) => {
                    return Ok(Stored {
                        id,
                        key,
                        version,
                        idle_deadline: record.idle_deadline,
                        record,
                        signed: None,
                    });
                }
                Err(DriverError::AlreadyExists) => {
                    tracing::warn!("session id collision in the store; drawing another id");
                    id = SessionId::generate()?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(SessionError::Contention {
            attempts: self.max_attempts,
        })
    }

    /// Commits `intent`, this request's changes to the loaded session `mine`, through the
    /// session's slot: combined with the commits of other requests in this process into one
    /// store write (see [`crate::combine`]).
    pub(crate) async fn commit_combined(
        &self,
        driver: &dyn Driver,
        slot: &SlotRef<T>,
        mine: &Stored,
        loaded_seq: u64,
        intent: Intent<T>,
    ) -> Committed {
        let (guard, intent, others) = match slot.turn(intent).await {
            Turn::Done(outcome) => return outcome,
            Turn::Lead(guard, intent, others) => (guard, intent, others),
        };
        // The base of the write: this request's record, or what this process wrote since.
        let newer = slot.latest_after(loaded_seq).map(|latest| {
            let mut base = mine.shell();
            base.land(latest);
            base
        });
        let base = newer.as_ref().unwrap_or(mine);
        let mine = if others.is_empty() {
            // Alone: nothing to allocate.
            let mut outcome = [None];
            self.write_batch(driver, base, &[&*intent], &mut outcome)
                .await;
            let [outcome] = outcome;
            outcome.unwrap_or(Ok(None))
        } else {
            let mut items: Vec<&Intent<T>> = Vec::with_capacity(1 + others.len());
            items.push(&intent);
            items.extend(others.iter().map(|w| &*w.intent));
            let mut outcomes: Vec<Option<Committed>> = items.iter().map(|_| None).collect();
            self.write_batch(driver, base, &items, &mut outcomes).await;
            let mut outcomes = outcomes.into_iter().map(|o| o.unwrap_or(Ok(None)));
            let mine = outcomes.next().unwrap_or(Ok(None));
            // Kept as the base of the next write while other requests are in flight (one
            // that joins later and loaded earlier meets a conflict and reloads instead).
            if guard.others_in_flight()
                && let Ok(Some(landed)) = &mine
            {
                guard.written(Some(landed.clone()));
            }
            for (waiting, outcome) in others.into_iter().zip(outcomes) {
                waiting.answer(outcome);
            }
            return mine;
        };
        // What was written is the base of the next write for requests that loaded before it:
        // kept while other requests of the session are in flight.
        let latest = match (&mine, guard.others_in_flight()) {
            (Ok(Some(landed)), true) => Some(landed.clone()),
            _ => None,
        };
        guard.written(latest);
        // Dropping the guard hands the lead to the next queued commit.
        drop(guard);
        mine
    }

    /// Writes the combined changes of `items` on top of `first` in one store write,
    /// compare-and-swap where the driver can; after a concurrent write (another process) it
    /// reloads the record and runs every item's operations again on it. Fills `outcomes`
    /// (one per item, all `None` on entry).
    pub(crate) async fn write_batch(
        &self,
        driver: &dyn Driver,
        first: &Stored,
        items: &[&Intent<T>],
        outcomes: &mut [Option<Committed>],
    ) {
        let caps = driver.capabilities();
        // The record the write applies to: `first`, then whatever a conflict reloads.
        let mut reloaded: Option<Stored> = None;
        for attempt in 0..self.max_attempts {
            backoff(attempt).await;
            let base = reloaded.as_ref().unwrap_or(first);
            let now = self.now();
            let (record, merged) = loop {
                // After a reload, every operation runs again even on the version a request
                // loaded: an earlier attempt may have run it on an older base, and what it
                // returned (`update_and_save`) must come from the record that is written.
                match self.combine(base, items, outcomes, now, reloaded.is_none()) {
                    Ok(combined) => break combined,
                    Err((i, error)) => {
                        tracing::warn!(error = %error, "a request's session changes cannot be re-applied to the newer record");
                        if let Some(outcome) = outcomes.get_mut(i) {
                            *outcome = Some(Err(error));
                        }
                    }
                }
            };
            if outcomes.iter().all(Option::is_some) {
                return;
            }
            let bytes = match record.encode() {
                Ok(bytes) => Bytes::from(bytes),
                Err(e) => return fail_all(SessionError::Serialize(e), outcomes),
            };
            // Exclusive requests write compare-and-swap too: a request that outlived its lease
            // must not overwrite the next one's change.
            let mode = if caps.compare_and_swap
                && self.concurrent_writes != ConcurrentWrites::LastWriteWins
            {
                WriteMode::IfVersion(base.version.clone())
            } else if caps.update_only {
                WriteMode::UpdateOnly
            } else {
                WriteMode::Overwrite
            };
            let expires_at = min_opt(record.idle_deadline, record.absolute_deadline);
            let options = PutOptions::new()
                .ttl_opt(Self::ttl(driver, expires_at, now))
                .mode(mode);
            match driver.put(&base.key, bytes, options).await {
                Ok(version) => {
                    let landed = Landed {
                        version,
                        record,
                        merged,
                        seq: self.write_seq.fetch_add(1, Ordering::Relaxed) + 1,
                    };
                    // Each request gets its own copy of the record; the last one the original.
                    let mut landed = Some(landed);
                    let last = outcomes.iter().rposition(Option::is_none);
                    for (i, outcome) in outcomes.iter_mut().enumerate() {
                        if outcome.is_none() {
                            *outcome = Some(Ok(match Some(i) == last {
                                true => landed.take(),
                                false => landed.clone(),
                            }));
                        }
                    }
                    return;
                }
                Err(DriverError::Conflict) => {
                    match self.fetch(driver, &base.id, base.key.clone(), true).await {
                        Ok(Some(fresh)) => {
                            tracing::debug!(id = ?base.id, attempt, "concurrent session write from elsewhere; re-applying");
                            reloaded = Some(fresh);
                        }
                        Ok(None) => {
                            for outcome in outcomes.iter_mut().filter(|o| o.is_none()) {
                                *outcome = Some(Ok(None));
                            }
                            return;
                        }
                        Err(e) => return fail_all(e.into(), outcomes),
                    }
                }
                Err(e) => return fail_all(e.into(), outcomes),
            }
        }
        fail_all(
            SessionError::Contention {
                attempts: self.max_attempts,
            },
            outcomes,
        )
    }

    /// The record `items` make of `base` as of `now`, and whether it holds more than one
    /// request's changes on the version it loaded. `Err((i, _))`: item `i` cannot be applied.
    fn combine(
        &self,
        base: &Stored,
        items: &[&Intent<T>],
        outcomes: &[Option<Committed>],
        now: u64,
        allow_fast: bool,
    ) -> Result<(Record, bool), (usize, SessionError)> {
        let live = || {
            items
                .iter()
                .enumerate()
                .filter(|(i, _)| outcomes.get(*i).is_some_and(Option::is_none))
        };
        let mut single = live();
        let fast = allow_fast
            && match (single.next(), single.next()) {
                (Some((_, item)), None) => item.base_version == base.version,
                _ => false,
            };
        let mut record = base.record.clone();
        let mut restart = false;
        for (i, item) in live() {
            if fast {
                assign(&mut record.data, &item.changes.data);
            } else if !item.ops.is_empty() {
                let typed = self
                    .build_data(&record.data)
                    .map_err(|e| (i, SessionError::Serialize(e)))?;
                let changed =
                    replay(typed, &record.data, &self.defaults, &item.ops).map_err(|e| (i, e))?;
                assign(&mut record.data, &changed);
            }
            Self::apply_meta(&mut record, &item.changes);
            restart |= item.changes.renew || item.changes.lifetime.is_some();
        }
        self.set_deadlines(&mut record, restart, now);
        Ok((record, !fast))
    }

    /// Whether a read-only request should extend the idle deadline now, and to when.
    pub(crate) fn refresh_due(&self, stored: &Stored, now: u64) -> Option<u64> {
        let idle = self.lifetime_of(stored.record.lifetime).idle_timeout?;
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let new_deadline = after(now, idle);
        let due = match stored.idle_deadline {
            None => true,
            Some(deadline) => {
                let last_refresh = deadline.saturating_sub(idle_ms);
                let threshold = (idle_ms as f64 * self.expiry.refresh_fraction_value()) as u64;
                now.saturating_sub(last_refresh) >= threshold
            }
        };
        let extends =
            min_opt(Some(new_deadline), stored.record.absolute_deadline) > stored.expires_at();
        (due && extends).then_some(new_deadline)
    }

    /// Extends the idle deadline with `touch`; `false` when the session is gone.
    pub(crate) async fn touch(
        &self,
        driver: &dyn Driver,
        stored: &mut Stored,
        new_deadline: u64,
        now: u64,
    ) -> Result<bool, SessionError> {
        let expires_at = min_opt(Some(new_deadline), stored.record.absolute_deadline);
        let ttl = Duration::from_millis(
            expires_at
                .unwrap_or(new_deadline)
                .saturating_sub(now)
                .max(1),
        );
        let touched = driver.touch(&stored.key, ttl).await?;
        if touched {
            stored.idle_deadline = Some(new_deadline);
        }
        Ok(touched)
    }

    /// The cookie carrying `stored` (its signed id, or the sealed session), with a Max-Age
    /// matching its expiry.
    pub(crate) fn cookie_for(&self, stored: &Stored, now: u64) -> Result<SetCookie, SessionError> {
        let name = self.cookie.cookie_name();
        let value = match (&self.backend, self.keyring.sealing().first()) {
            (Backend::Cookie, Some(key)) => seal(key, name, &stored.id, &stored.record)?,
            _ => match &stored.signed {
                Some(value) => value.clone(),
                None => sign(&self.keyring, name, &stored.id),
            },
        };
        let max_age = stored.expires_at().map(|t| {
            from_unix_millis(t)
                .duration_since(from_unix_millis(now))
                .unwrap_or_default()
        });
        let cookie = self.cookie.render(value, max_age);
        if cookie.as_str().len() > MAX_SET_COOKIE {
            return Err(SessionError::CookieTooLarge {
                size: cookie.as_str().len(),
                limit: MAX_SET_COOKIE,
            });
        }
        Ok(cookie)
    }
}

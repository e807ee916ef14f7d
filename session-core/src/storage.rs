//! [`SessionStorage`]: the sans-IO entry point that turns `Cookie` headers into sessions and
//! sessions into `Set-Cookie` headers.

use std::{
    fmt,
    marker::PhantomData,
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use serde_json::Value;

use crate::{
    Clock, CookieOptions, Driver, ExpiryPolicy, HeaderTransport, Keyring, ResponseHeaders,
    SessionError, SetCookie, SystemClock,
    combine::Slots,
    commit::{Backend, NotBefore, Shared},
    cookie::{Incoming, SealedValues, verify},
    cookie_memo::{CookieMemo, SEALED_PER_SHARD, SIGNED_PER_SHARD, Verified},
    decoded::DecodedRecords,
    id::StorageKey,
    layers::{Layer, MigrateFromLayer},
    model::{ConcurrentWrites, DynamicData, SessionData},
    session::Session,
    transport::Via,
};

/// Creates sessions from requests and commits them through a [`Driver`].
///
/// Cheap to clone; share one per cookie name. See the crate documentation for the request
/// flow.
///
/// # What a storage keeps in memory
///
/// To spare a request work this process already did, each storage keeps, bounded (a full
/// shard is emptied):
/// * signed cookies it verified (the HMAC check and the storage key; 16 × 256 entries of
///   about 250 bytes) and sealed cookies it opened (16 × 32 entries, at most 4 MiB);
/// * the last record it read or wrote for each session, decoded, with the stored bytes it came
///   from (up to 4 MiB of stored bytes, values over 16 KiB not kept): a load whose driver
///   returns exactly those bytes reuses the record instead of decoding the JSON again;
/// * a write slot per session being changed (idle ones are kept until their shard fills).
///
/// The memos and decoded records cannot serve stale data: each answer is a pure function of
/// the bytes it was computed from (the cookie value, the stored record), which must match
/// exactly, and whether a session exists, has expired or was revoked is decided on every
/// request as before. A write slot's last record serves only as the base of a later write in
/// this process, when it is newer than the record that request loaded (and, with
/// compare-and-swap, the store checks that base's version).
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

/// Configures a [`SessionStorage`]. A keyring is required: there is no default secret.
pub struct SessionStorageBuilder<T> {
    backend: Backend,
    defaults: T,
    /// Builds a new session's data without going through the defaults' JSON (`T::default`,
    /// when the defaults are `T::default()`).
    new_data: Option<fn() -> T>,
    cookie: CookieOptions,
    header: Option<HeaderTransport>,
    not_before: Option<NotBefore>,
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
    /// The store sessions move from ([`SessionStorageBuilder::migrate_from`]).
    migrate_from: Option<Arc<dyn Driver>>,
}

impl<T: SessionData + Default> SessionStorage<T> {
    /// A builder whose new sessions start from `T::default()`.
    pub fn builder(driver: Arc<dyn Driver>) -> SessionStorageBuilder<T> {
        SessionStorageBuilder {
            new_data: Some(T::default),
            ..Self::builder_with_defaults(driver, T::default())
        }
    }

    /// A builder for cookie-only sessions: the whole session (data, flash, expiry) is sealed
    /// into the cookie with AES-256-GCM-SIV under the keyring, and nothing is stored on the
    /// server. Same [`Session`] API; a commit whose cookie would exceed the browser's 4096-byte
    /// limit fails with [`SessionError::CookieTooLarge`].
    ///
    /// Nothing is stored, but the process remembers the last few hundred cookies it opened
    /// for read-only requests (at most 512, 4 MiB in all, usually a few hundred KiB), so that
    /// a visitor's next request skips the decryption; deadlines are checked on every request
    /// all the same. Signed cookies of stored sessions are remembered alike (their signature
    /// check), 4096 at most.
    pub fn cookie_only() -> SessionStorageBuilder<T> {
        SessionStorageBuilder {
            new_data: Some(T::default),
            ..Self::cookie_only_with_defaults(T::default())
        }
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
            new_data: None,
            cookie: CookieOptions::default(),
            header: None,
            not_before: None,
            keyring: None,
            expiry: ExpiryPolicy::default(),
            namespace: "session:".into(),
            clock: Arc::new(SystemClock),
            max_attempts: 100,
            concurrent_writes: ConcurrentWrites::default(),
            exclusive_lease: crate::exclusive::DEFAULT_LEASE,
            exclusive_wait: crate::exclusive::DEFAULT_WAIT,
            store_only: Vec::new(),
            migrate_from: None,
        }
    }

    /// The session of a request, from its `Cookie` header. Does no I/O: the store is read
    /// only when the session's data is first used.
    ///
    /// A missing, malformed, forged or wrongly signed cookie gives a new, empty session.
    pub fn get_session(&self, cookie_header: Option<&str>) -> Session<T> {
        self.session(self.incoming(cookie_header.into_iter()))
    }

    /// The session of a request from the session token of a header transport (see
    /// [`HeaderTransport`]; `None` when the request carried none). Does no I/O; an invalid
    /// token gives a new, empty session, as an invalid cookie does.
    pub fn get_session_from_token(&self, token: Option<&str>) -> Session<T> {
        match token {
            Some(token) => Session::new(
                Arc::clone(&self.shared),
                self.incoming_token(token),
                Via::Header(token.into()),
            ),
            None => self.session(Incoming::Absent),
        }
    }

    /// [`get_session`](Self::get_session) from an `http` request's headers: the header
    /// transport's token when the storage has one and the request carries it, otherwise
    /// every `Cookie` header.
    pub fn get_session_from_headers(&self, headers: &http::HeaderMap) -> Session<T> {
        if let Some(token) = self.shared.header.as_ref().and_then(|t| t.token(headers)) {
            return self.get_session_from_token(Some(token));
        }
        self.get_session_from_values(headers.get_all(http::header::COOKIE).iter())
    }

    /// The header transport, if the storage accepts tokens in a request header.
    pub fn header_transport(&self) -> Option<&HeaderTransport> {
        self.shared.header.as_ref()
    }

    /// A session of a request whose cookies said `incoming`.
    fn session(&self, incoming: Incoming) -> Session<T> {
        let via = match incoming {
            Incoming::Absent => Via::Nothing,
            _ => Via::Cookie,
        };
        Session::new(Arc::clone(&self.shared), incoming, via)
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
    /// # use session_kit_core::{Keyring, SessionStorage};
    /// # let storage = SessionStorage::<session_kit_core::DynamicData>::builder(Arc::new(session_kit_memory::MemoryDriver::new()))
    /// #     .keyring(Keyring::from_secrets(["a secret of at least thirty-two bytes"])?)
    /// #     .build()?;
    /// let session = storage.get_session_from_raw([&b"lang=fran\xe7ais; theme=dark"[..]]);
    /// # Ok::<(), session_kit_core::SessionError>(())
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
        self.session(self.incoming(headers))
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
        self.session(self.incoming(headers))
    }

    /// Saves what changed and returns the `Set-Cookie` value to send, or `None` when the
    /// browser's cookie is still right: nothing changed, the session was never touched, or a
    /// change to a stored session kept its id and its idle deadline (see
    /// [`ExpiryPolicy::refresh_fraction`](crate::ExpiryPolicy::refresh_fraction)).
    pub async fn commit_session(
        &self,
        session: &Session<T>,
    ) -> Result<Option<SetCookie>, SessionError> {
        self.check_owner(session)?;
        session.commit().await
    }

    /// [`commit_session`](Self::commit_session), as the response headers that carry its
    /// outcome: `Set-Cookie` for a session that came in a cookie, the token header for one
    /// that came through the [`HeaderTransport`], both for a request that carried neither
    /// (when the storage has a header transport). The framework integrations use this.
    pub async fn commit_response(
        &self,
        session: &Session<T>,
    ) -> Result<ResponseHeaders, SessionError> {
        let set_cookie = self.commit_session(session).await?;
        Ok(self.response_headers(session, set_cookie))
    }

    /// The headers that carry a commit's outcome for `session`.
    fn response_headers(
        &self,
        session: &Session<T>,
        set_cookie: Option<SetCookie>,
    ) -> ResponseHeaders {
        ResponseHeaders::new(session.via(), self.shared.header.as_ref(), set_cookie)
    }

    /// [`commit_response`](Self::commit_response) without awaiting, when the commit needs no
    /// I/O: the session has nothing to commit (never used, or new and left unchanged), the
    /// storage is cookie-only (sealing is all its commit does), or the request only read a
    /// stored session whose idle deadline is not yet due for a refresh. `None` otherwise (a
    /// store write, or another handle of the session holding it): then await
    /// `commit_response`.
    ///
    /// For framework integrations whose request future should not carry a store commit's
    /// state (over a kilobyte) when the commit needs no store: they box `commit_response`
    /// only when this declines. [`CommitAfter`](crate::CommitAfter) does exactly that.
    pub fn commit_response_now(
        &self,
        session: &Session<T>,
    ) -> Option<Result<ResponseHeaders, SessionError>> {
        if let Err(e) = self.check_owner(session) {
            return Some(Err(e));
        }
        let committed = session.commit_now()?;
        Some(committed.map(|set_cookie| self.response_headers(session, set_cookie)))
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
            let mut values = None;
            for header in headers {
                for value in shared.cookie.values_in(header.as_ref()) {
                    seen = true;
                    if let Some(value) = value {
                        SealedValues::add(&mut values, value);
                    }
                }
            }
            return match (values, seen) {
                (Some(values), _) => Incoming::Sealed(values),
                (None, true) => Incoming::Invalid,
                (None, false) => Incoming::Absent,
            };
        }
        for header in headers {
            for value in shared.cookie.values_in(header.as_ref()) {
                seen = true;
                let Some(value) = value else { continue };
                if let Some(incoming) = self.verified(value) {
                    return incoming;
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

    /// What a header transport's token says: the same value a cookie would hold.
    fn incoming_token(&self, token: &str) -> Incoming {
        let shared = &self.shared;
        if let Backend::Cookie = shared.backend {
            return Incoming::Sealed(SealedValues::new(token));
        }
        self.verified(token).unwrap_or_else(|| {
            tracing::debug!("ignoring a session token that does not verify");
            Incoming::Invalid
        })
    }

    /// A signed cookie value (or header token) that verifies, as the session it names:
    /// remembered by the process's memo after the first check (see [`crate::cookie_memo`]).
    fn verified(&self, value: &str) -> Option<Incoming> {
        let shared = &self.shared;
        let known = shared.verified.get_or_check(value, || {
            let (id, key_index) = verify(&shared.keyring, shared.cookie.cookie_name(), value)?;
            Some(Arc::new(Verified {
                storage_key: StorageKey::of(&id, &shared.namespace),
                signed: (key_index == 0).then(|| Arc::from(value)),
                id,
                key_index,
            }))
        })?;
        Some(Incoming::Valid {
            id: known.id.clone(),
            stale_key: known.key_index > 0,
            known: Some(known),
        })
    }
}

impl<T: SessionData> SessionStorageBuilder<T> {
    /// Cookie name and attributes.
    pub fn cookie(mut self, cookie: CookieOptions) -> Self {
        self.cookie = cookie;
        self
    }

    /// A per-user "not before" stamp, for cookie-only sessions (which cannot be revoked one by
    /// one) or as a second line on any storage: a session bound to a user
    /// ([`Session::bind_user`](crate::Session::bind_user)) and created before
    /// `not_before(user)` is refused like an expired one. Keep the stamp with your users (set
    /// it to now on "log out everywhere" or a password change); the lookup runs on every load
    /// of a bound session, so keep it cheap (a cache).
    pub fn user_not_before(
        mut self,
        not_before: impl Fn(&str) -> Option<std::time::SystemTime> + Send + Sync + 'static,
    ) -> Self {
        self.not_before = Some(Arc::new(not_before));
        self
    }

    /// Also accept the session token in a request header, for API and mobile clients (see
    /// [`HeaderTransport`]); cookies keep working.
    pub fn header_transport(mut self, transport: HeaderTransport) -> Self {
        self.header = Some(transport);
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
    /// request that runs longer loses its exclusivity. A process that dies holding a lease (a
    /// crash, a kill) releases nothing: the session's requests in other processes wait for the
    /// lease to end (each up to [`exclusive_wait`](Self::exclusive_wait), then `Busy`), so keep
    /// it near the longest a request should take.
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

    /// Moves sessions from `old`, the store the app used until now, into this storage's
    /// store as visitors come back: a session this store does not have is read from `old`,
    /// written here (create-only, with the time it has left) and deleted there, so that it
    /// changes only here from then on; deletes (logouts, regenerated ids, "log out
    /// everywhere") reach both stores, so nothing deleted comes back from `old`. See
    /// [`MigrateFromLayer`](crate::layers::MigrateFromLayer) and the operations guide.
    ///
    /// `old` must hold the sessions under the same namespace, and the keyring must verify
    /// their cookies. It must stay reachable: a request whose session this store lacks asks
    /// it, and a delete deletes there too (when it is down, those requests fail with a
    /// retryable error, as with this store down). Keep it until every session of `old` has
    /// moved or ended (the absolute timeout after the switch, or the idle timeout for sessions
    /// without one), then remove it: a moved session's entry in the user index moved with it.
    /// The store needs create-only writes (not Cloudflare KV); the build fails otherwise, and
    /// for cookie-only sessions.
    pub fn migrate_from(mut self, old: Arc<dyn Driver>) -> Self {
        self.store_only.push("migrate_from");
        self.migrate_from = Some(crate::layers::with_defaults(old));
        self
    }

    /// Validates the configuration and builds the storage.
    ///
    /// Options for sessions in a store (`namespace`, `max_commit_attempts`,
    /// `concurrent_writes`, `exclusive_lease`, `exclusive_wait`) fail the build of a
    /// cookie-only storage with [`SessionError::Config`], rather than doing nothing.
    pub fn build(mut self) -> Result<SessionStorage<T>, SessionError> {
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
        if let (Backend::Store(driver), Some(old)) = (&self.backend, self.migrate_from.take()) {
            if !driver.capabilities().create_only {
                return Err(SessionError::Config(format!(
                    "migrate_from needs a store with create-only writes, and driver `{}` has \
                     none: a session moved in could overwrite one a concurrent request moved \
                     and changed",
                    driver.name()
                )));
            }
            let layer = MigrateFromLayer::new(old).namespace(&self.namespace);
            self.backend = Backend::Store(layer.layer(Arc::clone(driver)));
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
                header: self.header,
                not_before: self.not_before,
                keyring,
                expiry: self.expiry,
                namespace: self.namespace,
                clock: self.clock,
                defaults,
                new_data: self.new_data,
                max_attempts: self.max_attempts,
                concurrent_writes: self.concurrent_writes,
                exclusive_lease: self.exclusive_lease,
                exclusive_wait: self.exclusive_wait,
                slots: Slots::default(),
                decoded: DecodedRecords::default(),
                write_seq: AtomicU64::new(0),
                verified: CookieMemo::new(SIGNED_PER_SHARD),
                opened: CookieMemo::new(SEALED_PER_SHARD),
                _data: PhantomData,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use crate::{
        Capabilities, DynamicData, Keyring, SessionStorage,
        testing::{Collect, Recorder},
    };

    /// The cookie memos hold what they should: a signed cookie once verified (never a forged
    /// one); a sealed cookie only once a response kept it (a change replaces the cookie, so
    /// the old value is not remembered).
    #[tokio::test]
    async fn cookie_memos_remember_verified_and_kept_cookies_only() {
        let ring = || Keyring::from_secrets(["a secret of at least thirty-two bytes"]).unwrap();
        // A new session with n = 1: its cookie's value.
        async fn first_value(storage: &SessionStorage<DynamicData>) -> String {
            let s = storage.get_session(None);
            s.insert("n", 1).await.unwrap();
            let set = storage.commit_session(&s).await.unwrap().unwrap();
            let pair = set.as_str().split(';').next().unwrap();
            pair.split_once('=').unwrap().1.to_owned()
        }
        let stored = SessionStorage::<DynamicData>::builder(Arc::new(Recorder::new(
            Capabilities::new(200, 1 << 20).with_create_only(),
        )))
        .keyring(ring())
        .build()
        .unwrap();
        let value = first_value(&stored).await;
        assert!(
            stored.shared.verified.get(&value).is_none(),
            "not sent back yet"
        );
        let _ = stored.get_session(Some(&format!("session={value}")));
        assert!(
            stored.shared.verified.get(&value).is_some(),
            "verified once"
        );
        let forged = format!("{}x", &value[..value.len() - 1]);
        let _ = stored.get_session(Some(&format!("session={forged}")));
        assert!(stored.shared.verified.get(&forged).is_none());

        let sealed = SessionStorage::<DynamicData>::cookie_only()
            .keyring(ring())
            .build()
            .unwrap();
        let value = first_value(&sealed).await;
        let cookie = format!("session={value}");
        // A request that changes the session: its cookie is replaced, not remembered.
        let s = sealed.get_session(Some(&cookie));
        s.insert("n", 2).await.unwrap();
        assert!(sealed.commit_session(&s).await.unwrap().is_some());
        assert!(sealed.shared.opened.get(&value).is_none());
        // A read-only request keeps it: remembered.
        let s = sealed.get_session(Some(&cookie));
        assert_eq!(s.get::<u32>("n").await.unwrap(), Some(1));
        assert!(sealed.commit_session(&s).await.unwrap().is_none());
        assert!(sealed.shared.opened.get(&value).is_some());
    }

    /// Loads and commits run in `session.load` / `session.commit` spans naming the storage,
    /// around the driver's own spans; no id, key or value appears in any field. A request
    /// without a cookie loads nothing: no load span.
    #[tokio::test]
    async fn loads_and_commits_are_spans_without_ids() {
        let (collect, _guard) = Collect::install();
        let caps = Capabilities::new(200, 1 << 20)
            .with_create_only()
            .with_compare_and_swap()
            .with_update_only();
        let storage = SessionStorage::<DynamicData>::builder(Arc::new(Recorder::new(caps)))
            .keyring(Keyring::from_secrets(["a secret of at least thirty-two bytes"]).unwrap())
            .build()
            .unwrap();
        let session = storage.get_session(None);
        session.insert("card", "4111 1111 1111 1111").await.unwrap();
        let cookie = storage.commit_session(&session).await.unwrap().unwrap();
        let value = cookie.as_str().split(';').next().unwrap().to_owned();
        let again = storage.get_session(Some(&value));
        assert!(!again.is_new().await.unwrap());
        let lines = collect.lines.lock().unwrap().clone();
        let spans: Vec<&String> = lines.iter().filter(|l| l.starts_with("span")).collect();
        assert_eq!(
            spans,
            [
                r#"span session.commit storage="recorder""#,
                r#"span session.driver driver="recorder" operation="put""#,
                r#"span session.load storage="recorder""#,
                r#"span session.driver driver="recorder" operation="get""#,
            ],
            "{lines:#?}"
        );
        let all = lines.concat();
        let id = value.split_once('=').unwrap().1.split_once('.').unwrap().0;
        assert!(!all.contains(id) && !all.contains("4111"), "{lines:#?}");
    }
}

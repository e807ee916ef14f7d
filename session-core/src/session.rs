//! [`Session`]: one request's view of a session, loaded lazily and committed by its storage.

use std::{
    collections::BTreeSet,
    fmt,
    sync::{Arc, atomic::Ordering},
};

use futures_util::lock::{Mutex, MutexGuard};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use tracing::Instrument;

use crate::{
    ConcurrentWrites, Driver, DynamicData, Lifetime, SessionError, SessionId, SetCookie,
    combine::SlotRef,
    commit::{Backend, Shared},
    cookie::Incoming,
    cookie_memo::Opened,
    exclusive::Hold,
    field_diff::changed_fields,
    id::StorageKey,
    intent::{Base, Intent, Op, Ops, diff, to_map},
    metrics,
    model::{Changes, SessionData, Stored, ends_at},
    record::{Record, UserBinding},
    sealed::open,
    spans,
    transport::Via,
    user_index, users,
};

/// One request's session. Cheap to clone (clones share state), `Send + Sync`.
///
/// Nothing is read from the store until a method needs the data; methods that only record an
/// intent (like [`destroy`](Self::destroy)) never read it. Changes are saved by
/// [`SessionStorage::commit_session`](crate::SessionStorage::commit_session).
///
/// Typed data is read with [`data`](Self::data) or [`read`](Self::read) and changed with
/// [`update`](Self::update) or [`set`](Self::set); with [`DynamicData`] there are also
/// [`get`](Self::get), [`insert`](Self::insert) and [`remove`](Self::remove) by key.
///
/// # Concurrent requests on one session
///
/// Browsers send requests of one session in parallel (tabs, prefetch, single-page apps).
/// Each request works on its own view: the session as it was when the request first used
/// it, plus its own changes. Its changes are kept as operations, and a commit that meets a
/// change committed meanwhile runs them again on the newer record:
///
/// * [`update`](Self::update) closures run again: 50 concurrent `update(|d| d.visits += 1)`
///   add exactly 50, concurrent pushes to one list all survive.
/// * [`set`](Self::set), [`insert`](Self::insert) and [`remove`](Self::remove) write the
///   top-level keys they changed: a handler that reads a value and writes it back
///   (`get` then `insert`) gets per-key last-writer-wins, never an error.
/// * Flash values set or taken, [`renew`](Self::renew) and
///   [`set_lifetime`](Self::set_lifetime) apply to whatever record is current.
///
/// What an `update` closure returns, and what the handler reads, come from the request's own
/// view and may miss a concurrent change; [`update_and_save`](Self::update_and_save) returns
/// the value computed on the record that was actually saved. Within one process, concurrent
/// commits of a session are combined into one store write; between processes they are
/// compare-and-swap writes retried with jittered backoff (on drivers that support
/// compare-and-swap; see [`ConcurrentWrites`](crate::ConcurrentWrites)).
pub struct Session<T = DynamicData> {
    /// One allocation per request, so that a clone (the framework's extension, the
    /// handler's extractor) is one atomic increment.
    state: Arc<State<T>>,
}

struct State<T> {
    shared: Arc<Shared<T>>,
    /// How the request carried its session: the response answers the same way.
    via: Via,
    inner: Mutex<Inner<T>>,
}

impl<T> Clone for Session<T> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }
}

impl<T> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

struct Inner<T> {
    incoming: Incoming,
    loaded: Option<Loaded<T>>,
    /// Records to delete on commit (destroyed sessions).
    pending_deletes: Vec<String>,
    /// Send a removal cookie if the commit sends no other.
    clear_cookie: bool,
    /// The cookie of an explicit [`Session::save`], sent by the final commit unless it sends
    /// another.
    saved_cookie: Option<SetCookie>,
    /// This request's hold on the session, with `ConcurrentWrites::Exclusive`; released by
    /// the final commit. Boxed: most storages never take one.
    exclusive: Option<Box<Hold<T>>>,
    /// The sealed cookie this request opened (and which key opened it), not yet in the
    /// storage's memo: added there when the response keeps the cookie.
    unremembered: Option<(String, usize)>,
}

struct Loaded<T> {
    stored: Option<Stored>,
    data: T,
    /// This request's changes to the data, in order, to run again on a newer record.
    ops: Ops<T>,
    /// The storage's write sequence number when the session was loaded (or last committed).
    loaded_seq: u64,
    /// The session's slot in this process, held from the first change to the end of the
    /// request: concurrent commits of the session are combined through it.
    slot: Option<SlotRef<T>>,
    /// `data` as a map when it was last committed: the base of change detection. `None` while
    /// that is the defaults overlaid with the stored record's data (as when loaded, or after a
    /// commit whose changes were found field by field, which leaves the record matching the
    /// data exactly), so loading a session copies nothing.
    snapshot: Option<Map<String, Value>>,
    data_touched: bool,
    /// Everything else this request asked for since the last commit; `None` until it asks.
    asks: Option<Box<Asks>>,
    /// The id a new (or regenerated) session will be stored under.
    new_id: Option<SessionId>,
    /// A commit of this request merged changes that concurrent requests made.
    merged: bool,
}

/// What a request asked of its session besides changing the data: flash values, renewal, a
/// lifetime, a user binding, a regeneration. Most requests ask none of it, so it is boxed on first
/// use: the state every request builds, moves and drops stays small.
#[derive(Default)]
struct Asks {
    flash_taken: BTreeSet<String>,
    flash_set: Map<String, Value>,
    reflash: bool,
    lifetime: Option<Option<Lifetime>>,
    renew: bool,
    regenerate: bool,
    /// A new user binding for this session (`Some(None)`: unbound).
    user: Option<Option<UserBinding>>,
}

impl Asks {
    /// Whether these asks change nothing: no flash set or taken (or all kept), no lifetime,
    /// renewal, user binding or regeneration.
    fn change_nothing(&self) -> bool {
        (self.flash_taken.is_empty() || self.reflash)
            && self.flash_set.is_empty()
            && self.lifetime.is_none()
            && !self.renew
            && !self.regenerate
            && self.user.is_none()
    }
}

impl<T> Loaded<T> {
    /// Whether this request changed nothing since the last commit, as its flags tell: answered
    /// without building the change set (an `update` that changed no value still counts).
    fn untouched(&self) -> bool {
        !self.data_touched && self.asks.as_deref().is_none_or(Asks::change_nothing)
    }

    fn asks_mut(&mut self) -> &mut Asks {
        self.asks.get_or_insert_with(Box::default)
    }

    /// Whether [`Session::regenerate`] was called on a stored session since the last commit.
    fn regenerating(&self) -> bool {
        self.asks.as_ref().is_some_and(|a| a.regenerate)
    }

    /// The flash value under `key` that an earlier request set, unless this one took it.
    fn flash_value<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>, SessionError> {
        if self
            .asks
            .as_ref()
            .is_some_and(|a| a.flash_taken.contains(key))
        {
            return Ok(None);
        }
        match &self.stored {
            Some(stored) => value_of(&stored.record.flash, key),
            None => Ok(None),
        }
    }
}

impl<T: SessionData> Session<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>, incoming: Incoming, via: Via) -> Self {
        Self {
            state: Arc::new(State {
                shared,
                via,
                inner: Mutex::new(Inner {
                    incoming,
                    loaded: None,
                    pending_deletes: Vec::new(),
                    clear_cookie: false,
                    saved_cookie: None,
                    exclusive: None,
                    unremembered: None,
                }),
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<T>> {
        &self.state.shared
    }

    pub(crate) fn via(&self) -> &Via {
        &self.state.via
    }

    /// The session's state. Uncontended (the usual case: one task per request) the lock is
    /// one atomic operation each way, without creating and polling a wait future; contended
    /// (handlers of one request sharing its session), the caller waits. An unlock without
    /// waiters takes no lock of its own (unlike tokio's mutex: 5 % of a request's time).
    async fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        match self.state.inner.try_lock() {
            Some(guard) => guard,
            None => self.state.inner.lock().await,
        }
    }

    /// Runs `f` on the loaded session, loading it first if needed.
    async fn with_loaded<R>(
        &self,
        f: impl FnOnce(&mut Loaded<T>) -> Result<R, SessionError>,
    ) -> Result<R, SessionError> {
        let mut inner = self.lock().await;
        if inner.loaded.is_none() && matches!(inner.incoming, Incoming::Absent) {
            // Nothing to read: no load future, no span.
            inner.loaded = Some(self.new_visitor()?);
        }
        if inner.loaded.is_none() {
            let span = spans::debug(|| {
                tracing::debug_span!("session.load", storage = self.state.shared.backend.name())
            });
            // Unwrapped when nobody listens: no span bookkeeping on the hot path.
            let loaded = match span {
                None => self.load(&mut inner).await,
                Some(span) => self.load(&mut inner).instrument(span).await,
            }
            .inspect_err(|e| metrics::error("load", e))?;
            inner.loaded = Some(loaded);
        }
        match inner.loaded.as_mut() {
            Some(loaded) => f(loaded),
            None => Err(SessionError::Internal("session state lost")),
        }
    }

    /// Runs `f` on the loaded session as a change: the session's slot is entered first, so
    /// that this request's commit combines with concurrent ones.
    async fn change<R>(
        &self,
        f: impl FnOnce(&mut Loaded<T>) -> Result<R, SessionError>,
    ) -> Result<R, SessionError> {
        self.with_loaded(|l| {
            if l.slot.is_none()
                && let Some(stored) = &l.stored
                && matches!(self.state.shared.backend, Backend::Store(_))
            {
                l.slot = Some(self.state.shared.slots.enter(&stored.key));
            }
            f(l)
        })
        .await
    }

    async fn load(&self, inner: &mut Inner<T>) -> Result<Loaded<T>, SessionError> {
        let mut loaded_seq = self.state.shared.write_seq.load(Ordering::Relaxed);
        let stored = match (&self.state.shared.backend, &mut inner.incoming) {
            (Backend::Store(driver), Incoming::Valid { id, known, .. }) => {
                let known = known.take();
                let key = match &known {
                    Some(known) => known.storage_key.clone(),
                    None => StorageKey::of(id, &self.state.shared.namespace),
                };
                // An exclusive request reads what the previous holder wrote, never a cached copy.
                let exclusive = self.state.shared.concurrent_writes == ConcurrentWrites::Exclusive;
                if exclusive && inner.exclusive.is_none() {
                    // Boxed: the hold's state is large, and inline it would enlarge every
                    // future that can load a session, on every request.
                    inner.exclusive = Some(Box::new(
                        Box::pin(self.state.shared.hold(driver, &key)).await?,
                    ));
                    loaded_seq = self.state.shared.write_seq.load(Ordering::Relaxed);
                }
                let mut stored = self
                    .state
                    .shared
                    .fetch(driver.as_ref(), id, key, exclusive)
                    .await
                    .map_err(|e| SessionError::store(driver.as_ref().name(), "load", e))?;
                if let Some(stored) = stored.as_mut() {
                    // Shared with the memo: a reference count, no copy.
                    stored.signed = known.and_then(|known| known.signed.clone());
                }
                stored
            }
            (Backend::Cookie, Incoming::Sealed(values)) => {
                let name = self.state.shared.cookie.cookie_name();
                let mut found = None;
                for value in values.iter_mut() {
                    if let Some(opened) = self.state.shared.opened.get(value) {
                        found = Some(opened);
                        break;
                    }
                    if let Some((id, record, key_index)) =
                        open(self.state.shared.keyring.sealing(), name, value)
                    {
                        // Remembered by the commit if the response keeps this cookie: a
                        // cookie replaced by a change is never sent again. (Moved: the
                        // incoming values are replaced just below.)
                        inner.unremembered = Some((std::mem::take(value), key_index));
                        found = Some(Opened {
                            id,
                            record: Arc::new(record),
                            key_index,
                        });
                        break;
                    }
                }
                match found {
                    Some(Opened {
                        id,
                        record,
                        key_index,
                    }) => {
                        let stored = self.state.shared.opened(id.clone(), record);
                        inner.incoming = Incoming::Valid {
                            id,
                            stale_key: key_index > 0,
                            known: None,
                        };
                        stored
                    }
                    None => {
                        tracing::debug!("ignoring a sealed session cookie that does not open");
                        None
                    }
                }
            }
            (_, Incoming::Absent) => return self.new_visitor(),
            _ => None,
        };
        let Some(stored) = stored else {
            // Forged, unknown, expired or destroyed: never adopt the client's id. A cookie
            // that does not verify, or a sealed one that expired, is removed. A verified id
            // without a record is left alone: it may have just been regenerated by a
            // concurrent request of the same browser (a login), whose new cookie a removal
            // arriving after it would delete.
            let verified = matches!(inner.incoming, Incoming::Valid { .. });
            metrics::load(if verified { "not_found" } else { "invalid" });
            let sealed = matches!(self.state.shared.backend, Backend::Cookie);
            inner.clear_cookie = !verified || sealed;
            return self.fresh();
        };
        if let (Some(not_before), Some(user)) = (&self.state.shared.not_before, &stored.record.user)
            && not_before(&user.id)
                .is_some_and(|t| crate::clock::unix_millis(t) > stored.record.created_at)
        {
            // Created before the user's "log out everywhere": refused like an expired one.
            metrics::load("revoked");
            inner.clear_cookie = true;
            return self.fresh();
        }
        metrics::load("found");
        match self.state.shared.build_data(&stored.record.data) {
            Ok(data) => {
                let mut l = loaded(Some(stored), data);
                l.loaded_seq = loaded_seq;
                Ok(l)
            }
            Err(e) => {
                tracing::warn!(id = ?stored.id, error = %e, "stored session does not fit the session type; starting a new session");
                inner.clear_cookie = true;
                self.fresh()
            }
        }
    }

    /// The session of a request without a cookie: new, counted as such.
    fn new_visitor(&self) -> Result<Loaded<T>, SessionError> {
        metrics::load("new");
        self.fresh()
    }

    /// A new, empty session.
    fn fresh(&self) -> Result<Loaded<T>, SessionError> {
        let shared = &self.state.shared;
        let data = match shared.new_data {
            Some(new_data) => new_data(),
            None => shared
                .build_data(&Map::new())
                .map_err(SessionError::Serialize)?,
        };
        Ok(loaded(None, data))
    }

    /// A copy of the session data.
    pub async fn data(&self) -> Result<T, SessionError>
    where
        T: Clone,
    {
        self.with_loaded(|l| Ok(l.data.clone())).await
    }

    /// Reads the session data through a closure.
    pub async fn read<R>(&self, f: impl FnOnce(&T) -> R) -> Result<R, SessionError> {
        self.with_loaded(|l| Ok(f(&l.data))).await
    }

    /// Changes the session data through a closure and returns what it returns.
    ///
    /// The closure runs now, on this request's view of the session. It is kept, and runs
    /// again (possibly more than once) if the commit meets a change that a concurrent request
    /// committed meanwhile, on the newer data: so it must be `Fn` and own what it captures
    /// (`move`, and clone values it inserts), and should depend on nothing but the data it is
    /// given. Only the fields whose value changed are written; an update that changes nothing
    /// writes nothing.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use session_kit_core::{Keyring, SessionStorage};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # struct Cart { visits: u64, items: Vec<String> }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let storage = SessionStorage::<Cart>::builder(Arc::new(session_kit_memory::MemoryDriver::new()))
    /// #     .keyring(Keyring::from_secrets(["a secret of at least thirty-two bytes"])?)
    /// #     .build()?;
    /// # let session = storage.get_session(None);
    /// let item = String::from("apple");
    /// session.update(move |cart| cart.items.push(item.clone())).await?;
    /// let seen = session.update(|cart| { cart.visits += 1; cart.visits }).await?;
    /// assert_eq!(seen, 1);
    /// # Ok::<(), session_kit_core::SessionError>(())
    /// # }).unwrap();
    /// ```
    pub async fn update<R, F>(&self, f: F) -> Result<R, SessionError>
    where
        F: Fn(&mut T) -> R + Send + Sync + 'static,
    {
        self.change(|l| {
            l.data_touched = true;
            let out = f(&mut l.data);
            l.ops.push(Op::Update(Arc::new(move |data: &mut T| {
                f(data);
            })));
            Ok(out)
        })
        .await
    }

    /// Applies `f` like [`update`](Self::update), saves the session now, and returns what `f`
    /// returned on the data that was saved: with concurrent requests on the session, that is
    /// the exact value after every commit before this one (a counter shows the exact count).
    ///
    /// Like [`save`](Self::save), it also saves this request's earlier changes, and the
    /// session layer sends the cookie. Fails with [`SessionError::Vanished`] when a concurrent
    /// request destroyed the session first (nothing was saved).
    pub async fn update_and_save<R, F>(&self, f: F) -> Result<R, SessionError>
    where
        F: Fn(&mut T) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        let result = Arc::new(std::sync::Mutex::new(None));
        let sink = Arc::clone(&result);
        self.update(move |data| {
            let out = f(data);
            if let Ok(mut slot) = sink.lock() {
                *slot = Some(out);
            }
        })
        .await?;
        if self.commit_inner(true).await?.vanished {
            return Err(SessionError::Vanished);
        }
        let out = match result.lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => None,
        };
        // `f` ran at least once, in `update` above, without panicking.
        out.ok_or(SessionError::UpdatePanicked)
    }

    /// Replaces the session data. Only the top-level fields that differ from this request's
    /// view are written: a field that a concurrent request changed and `data` leaves as this
    /// request saw it keeps the concurrent change.
    pub async fn set(&self, data: T) -> Result<(), SessionError> {
        let new = to_map(&data)?;
        self.change(move |l| {
            let current = to_map(&l.data)?;
            let pairs = diff(&new, &Base::Snapshot(&current));
            if !pairs.is_empty() {
                l.data_touched = true;
                l.data = data;
                l.ops.push(Op::Assign(Arc::from(pairs)));
            }
            Ok(())
        })
        .await
    }

    /// Saves the session now instead of when the response is sent (for example before
    /// streaming a response). The session layers still send the resulting cookie; with the
    /// sans-IO API, [`SessionStorage::commit_session`](crate::SessionStorage::commit_session)
    /// returns it. Changes made afterwards are saved by the final commit as usual.
    pub async fn save(&self) -> Result<(), SessionError> {
        self.commit_inner(true).await.map(|_| ())
    }

    /// Stores a flash value: readable once, on a later request.
    pub async fn flash<V: Serialize>(&self, key: &str, value: V) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(SessionError::Serialize)?;
        self.change(|l| {
            l.asks_mut().flash_set.insert(key.to_owned(), value);
            Ok(())
        })
        .await
    }

    /// Reads a flash value set by an earlier request without consuming it: it stays for the
    /// next request that takes it. For requests that must not change the session, such as
    /// `HEAD` (which would otherwise consume a message the user never sees).
    pub async fn peek_flash<V: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<V>, SessionError> {
        self.with_loaded(|l| l.flash_value(key)).await
    }

    /// Reads a flash value set by an earlier request and consumes it (it is removed on commit).
    pub async fn take_flash<V: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<V>, SessionError> {
        self.change(|l| {
            let value = l.flash_value(key)?;
            if value.is_some() {
                l.asks_mut().flash_taken.insert(key.to_owned());
            }
            Ok(value)
        })
        .await
    }

    /// Keeps every flash value this request read for one more request.
    pub async fn reflash(&self) -> Result<(), SessionError> {
        self.change(|l| {
            l.asks_mut().reflash = true;
            Ok(())
        })
        .await
    }

    /// Gives the session a new id on commit and deletes the record under the old one, keeping
    /// the data. Call it when privileges change (log in): the session-fixation defence.
    ///
    /// The new record is this request's view of the session with its changes. A change that a
    /// concurrent request commits to the old id in the meantime is not carried over, and
    /// requests still holding the old cookie afterwards find the session gone (a fresh one):
    /// the old id must stop working.
    pub async fn regenerate(&self) -> Result<(), SessionError> {
        self.with_loaded(|l| {
            l.asks_mut().regenerate = l.stored.is_some();
            l.new_id = Some(SessionId::generate()?);
            Ok(())
        })
        .await
    }

    /// Ends the session: its record is deleted on commit and the cookie removed. Changes made
    /// afterwards start a new session with a new id. Reads nothing from the store.
    pub async fn destroy(&self) {
        let mut inner = self.lock().await;
        let key = match (&self.state.shared.backend, &inner.loaded, &inner.incoming) {
            (Backend::Cookie, _, _) => None,
            (
                _,
                Some(Loaded {
                    stored: Some(s), ..
                }),
                _,
            ) => Some(s.key.clone()),
            (_, None, Incoming::Valid { id, known, .. }) => Some(match known {
                Some(known) => known.storage_key.clone(),
                None => StorageKey::of(id, &self.state.shared.namespace),
            }),
            _ => None,
        };
        // A bound session's index entry goes with it (unloaded, it is cleaned up when the
        // user's sessions are next listed).
        if let (
            Some(key),
            Some(Loaded {
                stored: Some(s), ..
            }),
        ) = (&key, &inner.loaded)
            && let Some(user) = &s.record.user
        {
            let entry = user_index::index_key(&self.state.shared.namespace, &user.id, key);
            inner.pending_deletes.push(entry);
        }
        inner
            .pending_deletes
            .extend(key.as_deref().map(str::to_owned));
        inner.clear_cookie |= !matches!(inner.incoming, Incoming::Absent)
            || inner.loaded.as_ref().is_some_and(|l| l.stored.is_some())
            || inner.saved_cookie.is_some();
        inner.saved_cookie = None;
        inner.incoming = Incoming::Absent;
        inner.loaded = self.fresh().ok();
    }

    /// Restarts the session's idle and absolute timeouts from now (a write on commit).
    pub async fn renew(&self) -> Result<(), SessionError> {
        self.change(|l| {
            l.asks_mut().renew = true;
            Ok(())
        })
        .await
    }

    /// Gives this session its own lifetime, for example a long one for "remember me".
    /// Both timeouts restart from now; the lifetime is kept in the session record.
    pub async fn set_lifetime(&self, lifetime: Lifetime) -> Result<(), SessionError> {
        self.change(|l| {
            l.asks_mut().lifetime = Some(Some(lifetime));
            Ok(())
        })
        .await
    }

    /// Whether this session has no stored record yet (first visit, or its old one expired).
    pub async fn is_new(&self) -> Result<bool, SessionError> {
        self.with_loaded(|l| Ok(l.stored.is_none())).await
    }

    /// Whether a commit of this request so far (a [`save`](Self::save), or the final commit)
    /// merged changes that concurrent requests made to the session: their changes and this
    /// request's were written together, none lost, and this request now sees the merged data.
    /// Never reads the store.
    pub async fn merged_concurrent_changes(&self) -> bool {
        let inner = self.lock().await;
        inner.loaded.as_ref().is_some_and(|l| l.merged)
    }

    /// Whether committing now would write something. Never reads the store.
    pub async fn has_changed(&self) -> Result<bool, SessionError> {
        let inner = self.lock().await;
        if !inner.pending_deletes.is_empty() {
            return Ok(true);
        }
        match &inner.loaded {
            None => Ok(false),
            Some(l) => Ok(l.regenerating() || !changes(l, &self.state.shared.defaults)?.is_empty()),
        }
    }

    /// Binds the session to `user` (your user id), typically right after `regenerate` on
    /// login. The binding is kept by `regenerate` and lets you list the user's sessions and
    /// revoke them ([`SessionStorage::user_sessions`](crate::SessionStorage::user_sessions),
    /// [`revoke_user`](crate::SessionStorage::revoke_user)); with a store that can list, the
    /// commit also writes a small index entry (one more `put` per login). Binding another
    /// user drops the labels.
    pub async fn bind_user(&self, user: impl Into<String>) -> Result<(), SessionError> {
        let user = user.into();
        self.change(|l| {
            let labels = match current_user(l) {
                Some(binding) if binding.id == user => binding.labels,
                _ => Map::new(),
            };
            l.asks_mut().user = Some(Some(UserBinding { id: user, labels }));
            Ok(())
        })
        .await
    }

    /// A label of the bound session, shown when listing the user's sessions (a device
    /// name, the login's IP address). [`SessionError::Config`] when no user is bound.
    pub async fn set_user_label(
        &self,
        key: &str,
        value: impl Serialize,
    ) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(SessionError::Serialize)?;
        self.change(|l| {
            let mut binding = current_user(l).ok_or_else(|| {
                SessionError::Config("set_user_label needs a user bound first (bind_user)".into())
            })?;
            binding.labels.insert(key.to_owned(), value);
            l.asks_mut().user = Some(Some(binding));
            Ok(())
        })
        .await
    }

    /// The user the session is bound to.
    pub async fn user(&self) -> Result<Option<String>, SessionError> {
        self.with_loaded(|l| Ok(current_user(l).map(|b| b.id)))
            .await
    }

    /// Ends the binding (the session stays; it is no longer listed for the user).
    pub async fn unbind_user(&self) -> Result<(), SessionError> {
        self.change(|l| {
            if current_user(l).is_some() {
                l.asks_mut().user = Some(None);
            }
            Ok(())
        })
        .await
    }

    /// The session's public handle: the hex SHA-256 of its id (what its storage key ends
    /// with), as [`UserSession::id_hash`](crate::UserSession::id_hash) shows it. `None` for a
    /// session that is not stored yet.
    pub async fn id_hash(&self) -> Result<Option<String>, SessionError> {
        self.with_loaded(|l| Ok(l.stored.as_ref().map(|s| s.id.storage_key(""))))
            .await
    }

    /// The id a request-forgery token is bound to: the session's id once this request has
    /// committed. `issue`: for a token being issued, a new session is marked to be stored
    /// (the token must verify on the next request) and a pending regenerate's id is drawn
    /// now. For a check, `None` while the session is not stored.
    pub(crate) async fn csrf_id(&self, issue: bool) -> Result<Option<SessionId>, SessionError> {
        let (id, new) = self
            .with_loaded(|l| {
                if !issue {
                    return Ok((l.stored.as_ref().map(|s| s.id.clone()), false));
                }
                let new = l.stored.is_none();
                let regenerate = l.regenerating();
                if (new || regenerate) && l.new_id.is_none() {
                    l.new_id = Some(SessionId::generate()?);
                }
                let id = match (&l.new_id, &l.stored) {
                    (Some(id), _) if new || regenerate => Some(id.clone()),
                    (_, Some(stored)) => Some(stored.id.clone()),
                    _ => None,
                };
                Ok((id, new))
            })
            .await?;
        if new {
            self.renew().await?;
        }
        Ok(id)
    }

    /// The session's id (a new one is drawn for a new session). This is a bearer secret:
    /// log its `Debug` form, which shows only a hash.
    pub async fn id(&self) -> Result<SessionId, SessionError> {
        self.with_loaded(|l| match (&l.new_id, &l.stored) {
            (Some(id), _) => Ok(id.clone()),
            (None, Some(stored)) => Ok(stored.id.clone()),
            (None, None) => {
                let id = SessionId::generate()?;
                l.new_id = Some(id.clone());
                Ok(id)
            }
        })
        .await
    }

    /// Saves the session; see [`SessionStorage::commit_session`](crate::SessionStorage::commit_session).
    pub(crate) async fn commit(&self) -> Result<Option<SetCookie>, SessionError> {
        Ok(self.commit_inner(false).await?.cookie)
    }

    /// Saves the session. `keep`: an explicit save, whose cookie is kept for the final commit
    /// (which then returns it unless it has another); otherwise the request's exclusive hold
    /// on the session, if any, ends here.
    async fn commit_inner(&self, keep: bool) -> Result<Commit, SessionError> {
        let mut guard = self.lock().await;
        if self.nothing_to_commit(&guard) {
            return Ok(Commit {
                cookie: None,
                vanished: false,
            });
        }
        let span = spans::debug(|| {
            tracing::debug_span!("session.commit", storage = self.state.shared.backend.name())
        });
        let result = match span {
            None => self.commit_locked(&mut guard, keep).await,
            Some(span) => self.commit_locked(&mut guard, keep).instrument(span).await,
        }
        .inspect_err(|e| metrics::error("commit", e));
        if !keep && let Some(hold) = guard.exclusive.take() {
            self.state.shared.release(*hold).await;
        }
        result
    }

    /// The final commit, done now when it needs no I/O: nothing to commit, a cookie-only
    /// session (sealing is all its commit does), or a stored session this request only read
    /// (unless its idle deadline is due for a refresh). `None` when it needs the store, or
    /// when another handle of this session holds it (then [`commit`](Self::commit) waits).
    pub(crate) fn commit_now(&self) -> Option<Result<Option<SetCookie>, SessionError>> {
        let mut guard = self.state.inner.try_lock()?;
        if self.nothing_to_commit(&guard) {
            return Some(Ok(None));
        }
        let sealed = matches!(self.state.shared.backend, Backend::Cookie);
        if !sealed && !read_only(&guard) {
            return None;
        }
        let span = spans::debug(|| {
            tracing::debug_span!("session.commit", storage = self.state.shared.backend.name())
        });
        let _entered = span.as_ref().map(tracing::Span::enter);
        let committed = match sealed {
            true => self.commit_locked_sealed(&mut guard, false),
            false => self.commit_read_only(&mut guard)?,
        };
        Some(
            committed
                .map(|commit| commit.cookie)
                .inspect_err(|e| metrics::error("commit", e)),
        )
    }

    /// [`commit_locked`](Self::commit_locked) for a stored session that [`read_only`] holds
    /// for, when that needs no I/O: nothing to write, or only a cookie to re-sign with the
    /// current key. `None`, with nothing changed, when the commit must touch or rewrite the
    /// record (its idle deadline is due for a refresh).
    fn commit_read_only(&self, inner: &mut Inner<T>) -> Option<Result<Commit, SessionError>> {
        let (now, stale_key) = self.begin_commit(inner, false);
        let outcome = match inner.loaded.as_mut() {
            None => Outcome::Nothing,
            Some(l) => {
                let p = match self.prepare_commit(l, stale_key, now) {
                    Ok(p) => p,
                    Err(e) => return Some(Err(e)),
                };
                // As `commit_to_store` answers these two plans.
                let outcome = match (p.plan, l.stored.as_ref()) {
                    (Plan::Nothing, _) => Outcome::Nothing,
                    (Plan::Resign, Some(stored)) => match self.state.shared.cookie_for(stored, now)
                    {
                        Ok(cookie) => Outcome::Cookie(cookie),
                        Err(e) => return Some(Err(e)),
                    },
                    _ => return None,
                };
                count_commit(false, p.plan, &outcome);
                // No user-index step: nothing here creates, binds or moves the session.
                if let Err(e) = self.committed(l, false, p.current) {
                    return Some(Err(e));
                }
                outcome
            }
        };
        Some(self.conclude(inner, outcome, false))
    }

    /// Whether a commit has nothing to do and cannot send a cookie: the session was never
    /// used, or it is a new session this request left unchanged (a visitor who only reads).
    /// Answered without a span or a clock read; the commit metric counts it as the full path
    /// would.
    fn nothing_to_commit(&self, inner: &Inner<T>) -> bool {
        if !inner.pending_deletes.is_empty()
            || inner.clear_cookie
            || inner.saved_cookie.is_some()
            || inner.exclusive.is_some()
        {
            return false;
        }
        let Some(l) = &inner.loaded else {
            return true;
        };
        let idle =
            matches!(inner.incoming, Incoming::Absent) && l.stored.is_none() && l.untouched();
        if idle {
            metrics::commit("nothing");
        }
        idle
    }

    async fn commit_locked(
        &self,
        inner: &mut Inner<T>,
        keep: bool,
    ) -> Result<Commit, SessionError> {
        let shared = &*self.state.shared;
        let driver = match &shared.backend {
            Backend::Store(driver) => driver,
            Backend::Cookie => return self.commit_locked_sealed(inner, keep),
        };
        let destroyed = !inner.pending_deletes.is_empty();
        while let Some(key) = inner.pending_deletes.first() {
            shared.delete_record(driver.as_ref(), key).await?;
            inner.pending_deletes.remove(0);
        }
        let (now, stale_key) = self.begin_commit(inner, destroyed);
        let outcome = match inner.loaded.as_mut() {
            None => Outcome::Nothing,
            Some(loaded) => {
                self.commit_loaded_to_store(driver.as_ref(), loaded, stale_key, destroyed, now)
                    .await?
            }
        };
        self.conclude(inner, outcome, keep)
    }

    /// [`commit_locked`](Self::commit_locked) for cookie-only sessions: sealing is all a
    /// commit does, so nothing awaits (a sealed session has no record to delete).
    fn commit_locked_sealed(
        &self,
        inner: &mut Inner<T>,
        keep: bool,
    ) -> Result<Commit, SessionError> {
        let destroyed = !inner.pending_deletes.is_empty();
        let (now, stale_key) = self.begin_commit(inner, destroyed);
        let outcome = match inner.loaded.as_mut() {
            None => Outcome::Nothing,
            Some(loaded) => self.commit_loaded_to_cookie(loaded, stale_key, destroyed, now)?,
        };
        self.conclude(inner, outcome, keep)
    }

    /// The commit's time and whether the incoming cookie was signed with a retired key.
    fn begin_commit(&self, inner: &Inner<T>, destroyed: bool) -> (u64, bool) {
        let stale_key = matches!(
            inner.incoming,
            Incoming::Valid {
                stale_key: true,
                ..
            }
        );
        if destroyed {
            metrics::commit("destroy");
        }
        (self.state.shared.now(), stale_key)
    }

    /// The request's state after the commit's `outcome`, and the cookie to send.
    fn conclude(
        &self,
        inner: &mut Inner<T>,
        outcome: Outcome,
        keep: bool,
    ) -> Result<Commit, SessionError> {
        let shared = &*self.state.shared;
        let vanished = matches!(outcome, Outcome::Vanished);
        let cookie = match outcome {
            Outcome::Cookie(cookie) => {
                inner.clear_cookie = false;
                if let Some(Loaded {
                    stored: Some(s), ..
                }) = &inner.loaded
                {
                    inner.incoming = Incoming::Valid {
                        id: s.id.clone(),
                        stale_key: false,
                        known: None,
                    };
                }
                Some(cookie)
            }
            Outcome::Nothing => {
                // A sealed cookie the response keeps: the browser sends it again.
                if let (
                    Some((value, key_index)),
                    Some(Loaded {
                        stored: Some(s), ..
                    }),
                ) = (inner.unremembered.take(), &inner.loaded)
                {
                    shared.opened.insert(
                        value,
                        Opened {
                            id: s.id.clone(),
                            record: s.record.clone(),
                            key_index,
                        },
                        1,
                    );
                }
                None
            }
            Outcome::Vanished => {
                tracing::debug!(
                    "session was destroyed, regenerated or expired by a concurrent request; dropping this request's changes"
                );
                inner.loaded = Some(self.fresh()?);
                inner.incoming = Incoming::Absent;
                // No removal: a concurrent login (a regenerated id) sent the browser a new
                // cookie, which a removal arriving after it would delete; a concurrent logout
                // removed the cookie itself.
                None
            }
        };
        let cookie = match cookie {
            None if std::mem::take(&mut inner.clear_cookie) => Some(shared.cookie.render_removal()),
            cookie => cookie,
        };
        let cookie = if keep {
            if cookie.is_some() {
                inner.saved_cookie = cookie;
            }
            None
        } else {
            cookie.or_else(|| inner.saved_cookie.take())
        };
        Ok(Commit { cookie, vanished })
    }

    /// What this request's changes amount to, decided without I/O for both backends.
    fn prepare_commit(
        &self,
        l: &Loaded<T>,
        stale_key: bool,
        now: u64,
    ) -> Result<Prepared, SessionError> {
        let mut changes = changes(l, &self.state.shared.defaults)?;
        let current = changes.current.take();
        // For the user index, only on a commit that creates, binds or moves the session: what
        // it was (no copies on the usual commit).
        let bound_now = changes.user.is_some();
        let follow_index = l.stored.is_none() || bound_now || l.regenerating();
        let before = l.stored.as_ref().filter(|_| follow_index).map(|s| {
            let user = s.record.user.as_ref().map(|b| b.id.clone());
            (s.key.clone(), user)
        });
        // Decided once for both backends. A cookie can always "touch": a refresh re-seals it
        // with the new deadline.
        let can_touch = match &self.state.shared.backend {
            Backend::Store(driver) => driver.capabilities().touch,
            Backend::Cookie => true,
        };
        let plan = Plan::decide(
            l.stored.is_some(),
            l.regenerating(),
            !changes.is_empty(),
            l.stored
                .as_ref()
                .and_then(|s| self.state.shared.refresh_due(s, now)),
            can_touch,
            stale_key,
        );
        Ok(Prepared {
            changes,
            current,
            plan,
            bound_now,
            follow_index,
            before,
        })
    }

    /// Commits a cookie-only session: sealing is all it does, so nothing here awaits.
    fn commit_loaded_to_cookie(
        &self,
        l: &mut Loaded<T>,
        stale_key: bool,
        destroyed: bool,
        now: u64,
    ) -> Result<Outcome, SessionError> {
        let p = self.prepare_commit(l, stale_key, now)?;
        let outcome = self.commit_to_cookie(l, p.plan, p.changes, now)?;
        count_commit(destroyed, p.plan, &outcome);
        self.committed(l, false, p.current)?;
        Ok(outcome)
    }

    /// Commits a session to its store, then keeps the user index in step.
    async fn commit_loaded_to_store(
        &self,
        driver: &dyn Driver,
        l: &mut Loaded<T>,
        stale_key: bool,
        destroyed: bool,
        now: u64,
    ) -> Result<Outcome, SessionError> {
        // Taken apart, and the changes lent down the commit: each async layer that took
        // them by value kept its own copy in the commit's future (3.0 KiB then, 2.4 now).
        let Prepared {
            mut changes,
            current,
            plan,
            bound_now,
            follow_index,
            before,
        } = self.prepare_commit(l, stale_key, now)?;
        let (outcome, merged) = self
            .commit_to_store(driver, l, plan, &mut changes, now)
            .await?;
        count_commit(destroyed, plan, &outcome);
        if matches!(outcome, Outcome::Vanished) {
            return Ok(outcome);
        }
        if let Some(stored) = &l.stored
            && follow_index
        {
            users::follow(&self.state.shared, driver, before, bound_now, stored, now).await?;
        }
        self.committed(l, merged, current)?;
        Ok(outcome)
    }

    /// Everything is saved: the stored record is the new base. Only a merge with a
    /// concurrent change makes the data differ from what this request already holds.
    fn committed(
        &self,
        l: &mut Loaded<T>,
        merged: bool,
        current: Option<Map<String, Value>>,
    ) -> Result<(), SessionError> {
        l.merged |= merged;
        if let Some(stored) = &l.stored {
            if merged {
                l.data = self
                    .state
                    .shared
                    .build_data(&stored.record.data)
                    .map_err(SessionError::Serialize)?;
                l.snapshot = None;
            } else if let Some(current) = current {
                l.snapshot = Some(current);
            }
        }
        l.ops.clear();
        l.data_touched = false;
        l.asks = None;
        Ok(())
    }

    async fn commit_to_store(
        &self,
        driver: &dyn Driver,
        l: &mut Loaded<T>,
        plan: Plan,
        changes: &mut Changes,
        now: u64,
    ) -> Result<(Outcome, bool), SessionError> {
        let shared = &*self.state.shared;
        let outcome = match (plan, l.stored.as_mut()) {
            (Plan::Nothing, _) => Outcome::Nothing,
            (Plan::Create, _) => {
                let mut record = shared.new_record(now);
                shared.apply(&mut record, std::mem::take(changes), now);
                let stored = shared.create(driver, record, l.new_id.take(), now).await?;
                Outcome::Cookie(shared.cookie_for(l.stored.insert(stored), now)?)
            }
            (Plan::Regenerate, Some(stored)) => {
                let mut record = Record::clone(&stored.record);
                shared.apply(&mut record, std::mem::take(changes), now);
                let old_key = stored.key.clone();
                *stored = shared.create(driver, record, l.new_id.take(), now).await?;
                // Only after the new record exists: a failure here leaves the old id working
                // rather than losing the session.
                shared.delete_record(driver, &old_key).await?;
                Outcome::Cookie(shared.cookie_for(stored, now)?)
            }
            (Plan::Update, Some(_)) => {
                // A change, or a refresh on a driver that cannot touch (a write restarts the
                // idle timeout). Operations that changed nothing here are not run again
                // elsewhere.
                let ops = match changes.is_empty() {
                    true => Ops::new(),
                    false => l.ops.clone(),
                };
                return self.commit_combined(driver, l, ops, changes, now).await;
            }
            (Plan::Touch(deadline), Some(stored)) => {
                if shared.touch(driver, stored, deadline, now).await? {
                    Outcome::Cookie(shared.cookie_for(stored, now)?)
                } else {
                    Outcome::Vanished
                }
            }
            (Plan::Resign, Some(stored)) => Outcome::Cookie(shared.cookie_for(stored, now)?),
            (_, None) => return Err(SessionError::Internal("a commit plan without a session")),
        };
        Ok((outcome, false))
    }

    /// Commits changes to the loaded, stored session through its slot (see
    /// [`crate::combine`]); the flag says whether concurrent changes were merged in.
    async fn commit_combined(
        &self,
        driver: &dyn Driver,
        l: &mut Loaded<T>,
        ops: Ops<T>,
        changes: &mut Changes,
        now: u64,
    ) -> Result<(Outcome, bool), SessionError> {
        let shared = &*self.state.shared;
        let Some(stored) = l.stored.as_mut() else {
            return Ok((Outcome::Nothing, false));
        };
        let slot = l
            .slot
            .get_or_insert_with(|| shared.slots.enter(&stored.key));
        let mut intent = Some(Intent {
            base_version: stored.version.clone(),
            changes: std::mem::take(changes),
            ops,
        });
        let committed = shared
            .commit_combined(driver, slot, stored, l.loaded_seq, &mut intent, now)
            .await;
        match committed? {
            Some(landed) => {
                let merged = landed.merged;
                let loaded_end = ends_at(&stored.record, None);
                l.loaded_seq = landed.seq;
                stored.land(landed);
                // The client's cookie (or token) names this id, signed under the newest key,
                // and the record ends when it did (a change keeps the idle deadline until a
                // refresh is due): the cookie the client holds still expires with the
                // session, and sending it again would change nothing. (The record's end, not
                // the expiry a driver reports, which may be rounded.)
                let current =
                    stored.signed.is_some() && ends_at(&stored.record, None) == loaded_end;
                let outcome = match current {
                    true => Outcome::Nothing,
                    false => Outcome::Cookie(shared.cookie_for(stored, now)?),
                };
                Ok((outcome, merged))
            }
            None => Ok((Outcome::Vanished, false)),
        }
    }

    /// Cookie-only sessions: every change, refresh or rotation re-seals the whole session.
    fn commit_to_cookie(
        &self,
        l: &mut Loaded<T>,
        plan: Plan,
        changes: Changes,
        now: u64,
    ) -> Result<Outcome, SessionError> {
        let shared = &*self.state.shared;
        // As with a store, the session's state changes only once the write (here: sealing,
        // which fails when too large) succeeded; a failed commit can be retried as it was.
        match (plan, l.stored.as_mut()) {
            (Plan::Nothing, _) => Ok(Outcome::Nothing),
            (Plan::Create, _) => {
                let mut record = shared.new_record(now);
                shared.apply(&mut record, changes, now);
                let Some(next) = shared.opened(id_for(&l.new_id)?, Arc::new(record)) else {
                    return Ok(Outcome::Nothing);
                };
                let cookie = shared.sealed_cookie_for(&next, now)?;
                l.new_id = None;
                l.stored = Some(next);
                Ok(Outcome::Cookie(cookie))
            }
            // A touch's deadline is the one a commit without changes sets.
            (Plan::Regenerate | Plan::Update | Plan::Touch(_), Some(stored)) => {
                let new_id = match plan {
                    Plan::Regenerate => Some(id_for(&l.new_id)?),
                    _ => None,
                };
                let cookie = self.reseal_in_place(stored, new_id, changes, now)?;
                l.new_id = None;
                Ok(Outcome::Cookie(cookie))
            }
            (Plan::Resign, Some(stored)) => {
                Ok(Outcome::Cookie(shared.sealed_cookie_for(stored, now)?))
            }
            (_, None) => Err(SessionError::Internal("a commit plan without a session")),
        }
    }

    /// A cookie-only session sealed again with `changes` (and `new_id`, when it regenerates)
    /// without copying its record: the changes are applied to it in place and put back if
    /// sealing fails, so a failed commit still leaves the session as it was.
    fn reseal_in_place(
        &self,
        stored: &mut Stored,
        new_id: Option<SessionId>,
        changes: Changes,
        now: u64,
    ) -> Result<SetCookie, SessionError> {
        let shared = &*self.state.shared;
        let idle_before = stored.idle_deadline;
        // Unshared unless the cookie memo holds the record too; then this copies it.
        let applied = shared.apply_undoably(Arc::make_mut(&mut stored.record), changes, now);
        stored.idle_deadline = stored.record.idle_deadline;
        let old_id = new_id.map(|id| std::mem::replace(&mut stored.id, id));
        let sealed = shared.sealed_cookie_for(stored, now);
        if sealed.is_err() {
            applied.undo(Arc::make_mut(&mut stored.record));
            stored.idle_deadline = idle_before;
            if let Some(id) = old_id {
                stored.id = id;
            }
        }
        sealed
    }
}

/// A commit's decisions, made before any I/O ([`Session::prepare_commit`]).
struct Prepared {
    changes: Changes,
    /// The data as a map, the next base of change detection once the commit lands.
    current: Option<Map<String, Value>>,
    plan: Plan,
    /// The request bound the session to a user.
    bound_now: bool,
    /// The commit may move the user index entry (creates, binds or regenerates).
    follow_index: bool,
    /// The session's storage key and user before the commit, when `follow_index`.
    before: Option<(StorageKey, Option<String>)>,
}

/// Counts a commit in the commit metric. `destroyed`: the session's record was deleted by this
/// commit, which the metric counted as such; the fresh session left, with nothing to write, is
/// not counted again.
fn count_commit(destroyed: bool, plan: Plan, outcome: &Outcome) {
    if !(destroyed && plan == Plan::Nothing) {
        metrics::commit(match outcome {
            Outcome::Vanished => "vanished",
            _ => plan.label(),
        });
    }
}

/// What a commit does, decided once for both backends from what the request did (pure: no
/// I/O); [`Session::commit_to_store`] and [`Session::commit_to_cookie`] carry it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Nothing to write, no cookie to send.
    Nothing,
    /// A new session with this request's changes: a record created (store) or sealed (cookie).
    Create,
    /// The session under a new id, its data kept, with this request's changes (fixation
    /// defence); the old record deleted.
    Regenerate,
    /// This request's changes written (or a due refresh where the backend cannot touch).
    Update,
    /// Only the idle deadline moves, to this time (Unix ms).
    Touch(u64),
    /// The cookie signed again with the newest key; nothing written.
    Resign,
}

impl Plan {
    /// The plan's name in the commit metric.
    fn label(self) -> &'static str {
        match self {
            Self::Nothing => "nothing",
            Self::Create => "create",
            Self::Regenerate => "regenerate",
            Self::Update => "update",
            Self::Touch(_) => "touch",
            Self::Resign => "resign",
        }
    }
}

impl Plan {
    fn decide(
        has_session: bool,
        regenerate: bool,
        changed: bool,
        refresh_due: Option<u64>,
        can_touch: bool,
        stale_key: bool,
    ) -> Self {
        match (has_session, refresh_due) {
            (false, _) if changed => Self::Create,
            (false, _) => Self::Nothing,
            _ if regenerate => Self::Regenerate,
            _ if changed => Self::Update,
            (true, Some(_)) if !can_touch => Self::Update,
            (true, Some(deadline)) => Self::Touch(deadline),
            (true, None) if stale_key => Self::Resign,
            (true, None) => Self::Nothing,
        }
    }
}

/// The id drawn for this session earlier in the request, or a new one.
fn id_for(new_id: &Option<SessionId>) -> Result<SessionId, SessionError> {
    match new_id {
        Some(id) => Ok(id.clone()),
        None => SessionId::generate(),
    }
}

/// The value under `key` in a JSON map, as `V`.
fn value_of<V: DeserializeOwned>(
    map: &Map<String, Value>,
    key: &str,
) -> Result<Option<V>, SessionError> {
    map.get(key)
        .map(|value| {
            V::deserialize(value).map_err(|source| SessionError::Deserialize {
                key: key.to_owned(),
                source,
            })
        })
        .transpose()
}

/// The binding the session has now: this request's change, else the stored one.
fn current_user<T>(l: &Loaded<T>) -> Option<UserBinding> {
    match l.asks.as_ref().and_then(|a| a.user.as_ref()) {
        Some(binding) => binding.clone(),
        None => l.stored.as_ref().and_then(|s| s.record.user.clone()),
    }
}

fn loaded<T>(stored: Option<Stored>, data: T) -> Loaded<T> {
    Loaded {
        stored,
        data,
        ops: Ops::new(),
        loaded_seq: 0,
        slot: None,
        snapshot: None,
        data_touched: false,
        asks: None,
        new_id: None,
        merged: false,
    }
}

enum Outcome {
    Nothing,
    Cookie(SetCookie),
    Vanished,
}

/// What a commit produced.
struct Commit {
    cookie: Option<SetCookie>,
    /// A concurrent request destroyed the session (or it expired): this request's changes
    /// were dropped.
    vanished: bool,
}

/// Whether this request only read its session (or did not load it): no record to delete, no
/// exclusive hold to release, no change of any kind. Its commit writes nothing unless the
/// idle deadline is due for a refresh.
fn read_only<T>(inner: &Inner<T>) -> bool {
    inner.pending_deletes.is_empty()
        && inner.exclusive.is_none()
        && inner.loaded.as_ref().is_none_or(Loaded::untouched)
}

/// This request's changes relative to what was loaded (or last committed).
fn changes<T: SessionData>(
    l: &Loaded<T>,
    defaults: &Map<String, Value>,
) -> Result<Changes, SessionError> {
    let mut data = Vec::new();
    let mut whole = None;
    if l.data_touched {
        let loaded = Base::Overlay {
            stored: l.stored.as_ref().map(|s| &s.record.data),
            defaults,
        };
        // Field by field, with no map of the whole data: once the commit lands, the stored
        // record overlaid on the defaults is exactly the data again (the walk answers only
        // when nothing was removed), so no snapshot is kept.
        let walked = match &l.snapshot {
            None => changed_fields(&l.data, &loaded),
            Some(_) => None,
        };
        match walked {
            Some(pairs) => data = pairs,
            None => {
                let current = to_map(&l.data)?;
                let base = match &l.snapshot {
                    Some(snapshot) => Base::Snapshot(snapshot),
                    None => loaded,
                };
                data = diff(&current, &base);
                whole = Some(current);
            }
        }
    }
    let mut changes = Changes {
        data,
        current: whole,
        ..Changes::default()
    };
    if let Some(asks) = &l.asks {
        if !asks.reflash {
            changes.flash_taken = asks.flash_taken.iter().cloned().collect();
        }
        changes.flash_set = asks.flash_set.clone();
        changes.lifetime = asks.lifetime;
        changes.renew = asks.renew;
        changes.user = asks.user.clone().map(Box::new);
    }
    Ok(changes)
}

impl Session<DynamicData> {
    /// Reads the value under `key` as `V`.
    pub async fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>, SessionError> {
        self.with_loaded(|l| value_of(&l.data, key)).await
    }

    /// Stores `value` under `key`.
    pub async fn insert<V: Serialize>(&self, key: &str, value: V) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(SessionError::Serialize)?;
        let key = key.to_owned();
        self.update(move |d| {
            d.insert(key.clone(), value.clone());
        })
        .await
    }

    /// Removes `key`.
    pub async fn remove(&self, key: &str) -> Result<(), SessionError> {
        let key = key.to_owned();
        self.update(move |d| {
            d.remove(&key);
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::Plan;

    #[test]
    fn one_plan_for_both_backends() {
        // (has session, regenerate, changed, refresh due, can touch, stale key) -> plan
        let cases = [
            ((false, false, false, None, true, false), Plan::Nothing),
            ((false, false, true, None, true, false), Plan::Create),
            ((true, true, false, None, true, false), Plan::Regenerate),
            ((true, true, true, Some(9), true, true), Plan::Regenerate),
            ((true, false, true, Some(9), true, false), Plan::Update),
            ((true, false, false, Some(9), true, false), Plan::Touch(9)),
            ((true, false, false, Some(9), false, false), Plan::Update),
            ((true, false, false, None, true, true), Plan::Resign),
            ((true, false, false, None, false, false), Plan::Nothing),
        ];
        for ((has, regenerate, changed, due, touch, stale), plan) in cases {
            assert_eq!(
                Plan::decide(has, regenerate, changed, due, touch, stale),
                plan,
                "{:?}",
                (has, regenerate, changed, due, touch, stale)
            );
        }
    }
}

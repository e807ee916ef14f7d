//! The commit machinery shared by every session of one storage: where records live, the
//! storage-wide settings, and the loading, combining and writing of records (exclusive
//! holds are in [`crate::exclusive`]).

use std::{
    marker::PhantomData,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use serde::de::value::MapDeserializer;
use serde_json::{Map, Value};

use crate::{
    Clock, CookieOptions, Driver, DriverError, ExpiryPolicy, HeaderTransport, Keyring, Lifetime,
    PutOptions, SessionError, SessionId, SetCookie, Version, WriteMode,
    clock::{from_unix_millis, unix_millis},
    combine::{SlotRef, Slots, Turn},
    cookie::{MAX_SET_COOKIE, sign},
    decoded::DecodedRecords,
    id::StorageKey,
    intent::{Intent, assign, assign_owned, exchange, replay},
    model::{
        Changes, Committed, ConcurrentWrites, Landed, SessionData, Stored, idle_in_force, min_opt,
    },
    record::{FORMAT, Record, UserBinding, after},
    sealed::seal,
};

/// Where session records live.
pub(crate) enum Backend {
    /// In a driver, under a hash of the session id; the cookie carries the signed id.
    Store(Arc<dyn Driver>),
    /// Sealed (encrypted and authenticated) into the cookie itself.
    Cookie,
}

impl Backend {
    /// The driver's name, or `cookie`: the `storage` field of the session spans.
    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Store(driver) => driver.name(),
            Self::Cookie => "cookie",
        }
    }
}

/// Storage-wide state shared by every session of one storage.
pub(crate) struct Shared<T> {
    pub(crate) backend: Backend,
    pub(crate) cookie: CookieOptions,
    /// Tokens in a request header too (API clients), if configured.
    pub(crate) header: Option<HeaderTransport>,
    /// Per-user "not before" stamps: a bound session created earlier is refused.
    pub(crate) not_before: Option<NotBefore>,
    pub(crate) keyring: Keyring,
    pub(crate) expiry: ExpiryPolicy,
    pub(crate) namespace: String,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) defaults: Map<String, Value>,
    /// A new session's data, built directly (`T::default`) when the defaults are `T`'s own;
    /// else it is read from `defaults`.
    pub(crate) new_data: Option<fn() -> T>,
    pub(crate) max_attempts: u32,
    pub(crate) concurrent_writes: ConcurrentWrites,
    pub(crate) exclusive_lease: Duration,
    pub(crate) exclusive_wait: Duration,
    /// Sessions being changed by requests in flight: see [`crate::combine`].
    pub(crate) slots: Slots<T>,
    /// Records this process read or wrote, with their bytes: see [`crate::decoded`].
    pub(crate) decoded: DecodedRecords,
    /// Counts this storage's landed writes: tells whether a slot's latest write happened
    /// after a request loaded its session.
    pub(crate) write_seq: AtomicU64,
    /// Cookie signatures this process already verified (stores only).
    pub(crate) verified: crate::cookie_memo::CookieMemo<Arc<crate::cookie_memo::Verified>>,
    /// Sealed cookies this process already opened (cookie-only sessions).
    pub(crate) opened: crate::cookie_memo::CookieMemo<crate::cookie_memo::Opened>,
    pub(crate) _data: PhantomData<fn() -> T>,
}

/// The app's lookup of a user's "not before" stamp (see
/// `SessionStorageBuilder::user_not_before`).
pub(crate) type NotBefore = Arc<dyn Fn(&str) -> Option<std::time::SystemTime> + Send + Sync>;

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

/// A commit whose intent was already taken (cannot happen: it is taken only to be queued, once).
const NO_INTENT: SessionError = SessionError::Internal("a commit without its changes");

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
        key: StorageKey,
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
        let record = match self.decoded.get(&key, &entry.value) {
            Some(record) => record,
            None => match Record::decode(&entry.value) {
                Ok(record) => {
                    let record = Arc::new(record);
                    self.decoded
                        .insert(&key, entry.value.clone(), Arc::clone(&record));
                    record
                }
                Err(reason) => {
                    tracing::warn!(?id, %reason, "unreadable session record; starting a new session");
                    return Ok(None);
                }
            },
        };
        let reported = entry.expires_at.map(unix_millis);
        let idle_deadline = idle_in_force(record.idle_deadline, reported);
        Ok(self.unexpired(Stored {
            id: id.clone(),
            key,
            version: entry.version,
            idle_deadline,
            record,
            signed: None,
        }))
    }

    /// Deletes the record under `key`, and its decoded copy.
    pub(crate) async fn delete_record(
        &self,
        driver: &dyn Driver,
        key: &str,
    ) -> Result<(), SessionError> {
        driver
            .delete(key)
            .await
            .map_err(|e| SessionError::store(driver.name(), "delete", e))?;
        self.decoded.remove(key);
        Ok(())
    }

    /// A cookie-only session opened from its cookie, unless it has expired.
    pub(crate) fn opened(&self, id: SessionId, record: Arc<Record>) -> Option<Stored> {
        self.unexpired(Stored {
            id,
            key: StorageKey::default(),
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
    pub(crate) fn apply(&self, record: &mut Record, mut changes: Changes, now: u64) {
        assign_owned(&mut record.data, std::mem::take(&mut changes.data));
        Self::apply_meta(record, &changes);
        self.set_deadlines(record, changes.renew || changes.lifetime.is_some(), now);
    }

    /// [`apply`](Self::apply) to a record that must be as it was if what follows fails
    /// (sealing a cookie-only session fails when the cookie would be too large): the changes
    /// are exchanged into `record`, and [`Applied::undo`] puts back what they replaced.
    pub(crate) fn apply_undoably(
        &self,
        record: &mut Record,
        changes: Changes,
        now: u64,
    ) -> Applied {
        let restart = changes.renew || changes.lifetime.is_some();
        // Flash changes as pairs for `exchange`, built only when there are any (most commits
        // have none).
        let flash = match changes.flash_taken.is_empty() && changes.flash_set.is_empty() {
            true => Vec::new(),
            false => {
                let taken = changes.flash_taken.into_iter().map(|key| (key, None));
                let set = changes.flash_set.into_iter().map(|(k, v)| (k, Some(v)));
                taken.chain(set).collect()
            }
        };
        let mut applied = Applied {
            data: changes.data,
            flash,
            user: None,
            kept: (
                record.lifetime,
                record.idle_deadline,
                record.absolute_deadline,
            ),
        };
        exchange(&mut record.data, &mut applied.data);
        exchange(&mut record.flash, &mut applied.flash);
        if let Some(lifetime) = changes.lifetime {
            record.lifetime = lifetime;
        }
        applied.user = changes
            .user
            .map(|user| std::mem::replace(&mut record.user, *user));
        self.set_deadlines(record, restart, now);
        applied
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
        if let Some(user) = &changes.user {
            record.user = (**user).clone();
        }
    }

    /// Restarts the idle timeout from `now` when it is due for a refresh, and both timeouts
    /// when `restart` (a renewal or a new lifetime).
    ///
    /// An idle deadline that is not due ([`Self::refresh_is_due`]) is kept, as a read keeps
    /// it: the browser's cookie then still expires when the record
    /// does, so a change to a stored session needs no new cookie (see
    /// `Session::commit_combined`). A kept deadline is never later than a restart would set
    /// (an idle timeout shortened since takes effect).
    pub(crate) fn set_deadlines(&self, record: &mut Record, restart: bool, now: u64) {
        let lifetime = self.lifetime_of(record.lifetime);
        if restart {
            record.absolute_deadline = lifetime.absolute_timeout.map(|d| after(now, d));
        }
        let Some(idle) = lifetime.idle_timeout else {
            record.idle_deadline = None;
            return;
        };
        let renewed = after(now, idle);
        record.idle_deadline = match record.idle_deadline {
            Some(kept) if !restart && kept <= renewed && !self.refresh_is_due(kept, idle, now) => {
                Some(kept)
            }
            _ => Some(renewed),
        };
    }

    /// Whether the idle deadline `deadline`, set `idle` ahead at its last extension, is due
    /// to be extended at `now`: the refresh fraction of `idle` has passed since then.
    fn refresh_is_due(&self, deadline: u64, idle: Duration, now: u64) -> bool {
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let last_refresh = deadline.saturating_sub(idle_ms);
        let threshold = (idle_ms as f64 * self.expiry.refresh_fraction_value()) as u64;
        now.saturating_sub(last_refresh) >= threshold
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
            user: None,
        }
    }

    /// The TTL to hand a driver with native expiry.
    pub(crate) fn ttl(driver: &dyn Driver, expires_at: Option<u64>, now: u64) -> Option<Duration> {
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
            let key = StorageKey::of(&id, &self.namespace);
            let options = PutOptions::new().ttl_opt(ttl).mode(mode.clone());
            match driver.put(&key, bytes.clone(), options).await {
                Ok(version) => {
                    // Not kept in the decoded records: most new sessions are never read again.
                    return Ok(Stored {
                        id,
                        key,
                        version,
                        idle_deadline: record.idle_deadline,
                        record: Arc::new(record),
                        signed: None,
                    });
                }
                Err(DriverError::AlreadyExists) => {
                    tracing::warn!("session id collision in the store; drawing another id");
                    id = SessionId::generate()?;
                }
                Err(e) => return Err(SessionError::store(driver.name(), "create", e)),
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
        intent: &mut Option<Intent<T>>,
        now: u64,
    ) -> Committed {
        // The intent is lent, not moved: an async function keeps a copy of every argument
        // taken by value for its whole run. It is taken only to be queued.
        let mut queued = None;
        let (guard, others) = match slot.lead() {
            Some(guard) => (guard, Vec::new()),
            None => {
                let owned = Arc::new(intent.take().ok_or(NO_INTENT)?);
                match slot.wait_turn(&owned).await {
                    Turn::Done(outcome) => return outcome,
                    Turn::Lead(guard, others) => {
                        queued = Some(owned);
                        (guard, others)
                    }
                }
            }
        };
        let intent = queued.as_deref().or(intent.as_ref()).ok_or(NO_INTENT)?;
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
            self.write_batch(driver, base, &[intent], &mut outcome, now)
                .await;
            let [outcome] = outcome;
            outcome.unwrap_or(Ok(None))
        } else {
            let mut items: Vec<&Intent<T>> = Vec::with_capacity(1 + others.len());
            items.push(intent);
            items.extend(others.iter().map(|w| &*w.intent));
            let mut outcomes: Vec<Option<Committed>> = items.iter().map(|_| None).collect();
            self.write_batch(driver, base, &items, &mut outcomes, now)
                .await;
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
    /// (one per item, all `None` on entry). `now`: the time of the first attempt (the
    /// commit's, read before it queued for its turn: deadlines can only come out earlier);
    /// later attempts read the clock again.
    pub(crate) async fn write_batch(
        &self,
        driver: &dyn Driver,
        first: &Stored,
        items: &[&Intent<T>],
        outcomes: &mut [Option<Committed>],
        now: u64,
    ) {
        let caps = driver.capabilities();
        // The record the write applies to: `first`, then whatever a conflict reloads.
        let mut reloaded: Option<Stored> = None;
        for attempt in 0..self.max_attempts {
            backoff(attempt).await;
            let base = reloaded.as_ref().unwrap_or(first);
            let now = if attempt == 0 { now } else { self.now() };
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
            match driver.put(&base.key, bytes.clone(), options).await {
                Ok(version) => {
                    let record = Arc::new(record);
                    self.decoded.insert(&base.key, bytes, Arc::clone(&record));
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
                            crate::metrics::conflict_merged();
                            reloaded = Some(fresh);
                        }
                        Ok(None) => {
                            for outcome in outcomes.iter_mut().filter(|o| o.is_none()) {
                                *outcome = Some(Ok(None));
                            }
                            return;
                        }
                        Err(e) => {
                            return fail_all(
                                SessionError::store(driver.name(), "load", e),
                                outcomes,
                            );
                        }
                    }
                }
                Err(e) => {
                    return fail_all(SessionError::store(driver.name(), "write", e), outcomes);
                }
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
        let mut record = Record::clone(&base.record);
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
                assign_owned(&mut record.data, changed);
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
        let new_deadline = after(now, idle);
        let due = stored
            .idle_deadline
            .is_none_or(|deadline| self.refresh_is_due(deadline, idle, now));
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
        let touched = driver
            .touch(&stored.key, ttl)
            .await
            .map_err(|e| SessionError::store(driver.name(), "touch", e))?;
        if touched {
            stored.idle_deadline = Some(new_deadline);
        }
        Ok(touched)
    }

    /// The cookie carrying `stored`'s signed id, with a Max-Age matching its expiry.
    pub(crate) fn cookie_for(&self, stored: &Stored, now: u64) -> Result<SetCookie, SessionError> {
        match &stored.signed {
            Some(value) => self.render(stored, value, now),
            None => self.render(
                stored,
                &sign(&self.keyring, self.cookie.cookie_name(), &stored.id),
                now,
            ),
        }
    }

    /// The cookie carrying the sealed session `stored` (cookie-only sessions), with a Max-Age
    /// matching its expiry.
    ///
    /// The value is not put in the memo of opened cookies, though it is known to open to
    /// `stored`: a browser sends it next, but a client replaying an older cookie (as `wrk`
    /// does) never does. Measured in-process on actix-web: with a browser's cookies the
    /// memo's insert cost about what the opening it saved, and with one replayed cookie a
    /// `/count` took 6 % longer (its inserts pushed out the replayed cookies).
    pub(crate) fn sealed_cookie_for(
        &self,
        stored: &Stored,
        now: u64,
    ) -> Result<SetCookie, SessionError> {
        let key = self
            .keyring
            .sealing()
            .first()
            .ok_or(SessionError::Internal("a keyring without a sealing key"))?;
        let value = seal(key, self.cookie.cookie_name(), &stored.id, &stored.record)?;
        self.render(stored, &value, now)
    }

    /// `value` as our cookie, with a Max-Age matching `stored`'s expiry; refused when the
    /// header would be longer than a browser keeps.
    fn render(&self, stored: &Stored, value: &str, now: u64) -> Result<SetCookie, SessionError> {
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

/// What [`Shared::apply_undoably`] replaced in a record: each changed key's previous value,
/// the previous user binding, lifetime and deadlines.
pub(crate) struct Applied {
    data: Vec<(String, Option<Value>)>,
    flash: Vec<(String, Option<Value>)>,
    user: Option<Option<UserBinding>>,
    kept: (Option<Lifetime>, Option<u64>, Option<u64>),
}

impl Applied {
    /// Puts back into `record` what the changes replaced.
    pub(crate) fn undo(mut self, record: &mut Record) {
        self.data.reverse();
        exchange(&mut record.data, &mut self.data);
        self.flash.reverse();
        exchange(&mut record.flash, &mut self.flash);
        if let Some(user) = self.user {
            record.user = user;
        }
        (
            record.lifetime,
            record.idle_deadline,
            record.absolute_deadline,
        ) = self.kept;
    }
}

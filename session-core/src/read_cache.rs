//! A process-local read cache, written once; what keeps it correct comes from an invalidation
//! source the driver provides ([`Invalidations`]: Redis's `CLIENT TRACKING` is one).
//!
//! The cache keeps what this process read and wrote, and answers `get` without a request
//! while the source says invalidations flow. What keeps it correct:
//! * A write always goes to the backend, whose conditions (create-only, compare-and-swap)
//!   are checked there: a stale local record can only make a commit fail with a conflict,
//!   never overwrite a newer one; a failed write drops the key, so the session layer's
//!   reload reads the backend. `get_latest` always reads the backend.
//! * A fill (the reply of a read, or a record just written) is kept only if no invalidation of
//!   that key was processed since the request was sent: every ticket records a per-stripe
//!   counter that invalidations bump, so a reply that raced a change is dropped.
//! * The cache is used only while the source confirms invalidations flow: a source that loses
//!   them ([`ReadCache::disconnected`]) empties the cache and turns it off until
//!   [`Invalidations::enable`] succeeds again; a source that can never deliver them leaves the
//!   driver uncached.
//! * A create-only write is not kept (most new sessions are never read again), and a write
//!   is kept only if the source keeps the key under watch after this process's own write
//!   ([`Invalidations::watches_own_writes`]).
//! * Entries carry their expiry, shortened by the read's round trip (a driver that reads the
//!   time left dates it from the reply's arrival), and are bounded in bytes.
//!
//! A reader on another app server can see the previous record until the invalidation reaches
//! it. Where that would be wrong, the session layer reads with [`Driver::get_latest`](crate::Driver::get_latest): after
//! a compare-and-swap conflict, and when a request has just taken exclusive hold of its
//! session.

use std::{
    collections::HashMap,
    fmt,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime},
};

use async_trait::async_trait;

use crate::{Clock, DriverError, SystemClock, entry::Entry};

/// Values larger than this are not cached.
pub const MAX_ENTRY: usize = 64 * 1024;
/// Per-entry bookkeeping counted against the budget besides the key and the value.
const OVERHEAD: usize = 64;
/// Invalidation counters; a write or invalidation refuses fills of the keys sharing its stripe,
/// so with many requests in flight there must be far more stripes than requests.
const STRIPES: usize = 4096;
/// Wait between attempts to turn tracking on after a failure.
const RETRY: Duration = Duration::from_millis(500);

/// Taken before a request is sent; a fill is accepted only if nothing invalidated the key
/// (or the whole cache) since.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    epoch: u64,
    stripe: usize,
    count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracking {
    /// Not confirmed on the current connection; may be tried again after `retry_at`.
    Off {
        retry_at: Option<Instant>,
    },
    /// A `CLIENT TRACKING` command is in flight for the current epoch.
    Enabling,
    On,
    /// The server refused it: never cache.
    Unsupported,
}

struct State {
    entries: HashMap<Box<[u8]>, Kept>,
    bytes: usize,
    stripes: [u64; STRIPES],
    /// Bumped whenever the connection is lost or the whole cache is flushed.
    epoch: u64,
    tracking: Tracking,
}

/// A cached record and how long the cache may answer with it.
struct Kept {
    entry: Entry,
    /// The record's expiry as the backend knows it, at the latest: a record read from the
    /// backend is kept a round trip less than the driver reports (see [`ReadCache::fill`]).
    until: Option<SystemTime>,
}

/// The entries of one [`CacheLayer`], and the sink of its invalidation source: see the
/// module documentation. Bounded in bytes; values over [`MAX_ENTRY`] bytes are never kept.
pub struct ReadCache {
    state: Mutex<State>,
    budget: usize,
    hasher: RandomState,
}

/// What a lookup found.
pub(crate) enum Lookup {
    Hit(Entry),
    /// Not cached: read the backend and [`ReadCache::fill`] with this ticket.
    Miss(Ticket),
    /// The cache is off. `Some(epoch)`: this caller should enable the invalidations now and
    /// report the outcome with [`ReadCache::tracking_result`].
    Off(Option<u64>),
}

impl ReadCache {
    /// A cache holding at most `budget` bytes of keys and values.
    pub fn new(budget: usize) -> Self {
        Self {
            state: Mutex::new(State {
                entries: HashMap::new(),
                bytes: 0,
                stripes: [0; STRIPES],
                epoch: 0,
                tracking: Tracking::Off { retry_at: None },
            }),
            budget,
            hasher: RandomState::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stripe(&self, key: &[u8]) -> usize {
        // The modulo keeps the value below STRIPES (4096), so the cast cannot truncate.
        (self.hasher.hash_one(key) % STRIPES as u64) as usize
    }

    /// The outcome of enabling the invalidations for `epoch`: `Some(true)` on, `Some(false)`
    /// refused by the server (never retried), `None` failed for now (retried later).
    pub(crate) fn tracking_result(&self, epoch: u64, outcome: Option<bool>) {
        let mut state = self.lock();
        if state.epoch != epoch || state.tracking != Tracking::Enabling {
            // The connection was lost meanwhile: the command may have run on the old one.
            if state.tracking == Tracking::Enabling {
                state.tracking = Tracking::Off { retry_at: None };
            }
            return;
        }
        state.tracking = match outcome {
            Some(true) => Tracking::On,
            Some(false) => Tracking::Unsupported,
            None => Tracking::Off {
                retry_at: Some(Instant::now() + RETRY),
            },
        };
    }

    /// Looks `key` up: a hit, a miss with the ticket to fill it, or off (and whether this
    /// caller should try to turn tracking on now).
    pub(crate) fn lookup(&self, key: &[u8], now: SystemTime) -> Lookup {
        let stripe = self.stripe(key);
        let mut state = self.lock();
        match state.tracking {
            Tracking::On => match state.entries.get(key) {
                Some(kept) if kept.until.is_none_or(|at| now < at) => {
                    Lookup::Hit(kept.entry.clone())
                }
                _ => Lookup::Miss(Self::ticket_in(&state, stripe)),
            },
            Tracking::Off { retry_at } if retry_at.is_none_or(|at| Instant::now() >= at) => {
                state.tracking = Tracking::Enabling;
                Lookup::Off(Some(state.epoch))
            }
            _ => Lookup::Off(None),
        }
    }

    /// A ticket for a request about `key`, or `None` while the cache is off.
    pub(crate) fn ticket(&self, key: &[u8]) -> Option<Ticket> {
        let stripe = self.stripe(key);
        let state = self.lock();
        (state.tracking == Tracking::On).then(|| Self::ticket_in(&state, stripe))
    }

    fn ticket_in(state: &State, stripe: usize) -> Ticket {
        Ticket {
            epoch: state.epoch,
            stripe,
            count: state.stripes[stripe],
        }
    }

    /// Keeps `record`, read from the backend for `key` in `round_trip`, if nothing invalidated
    /// the key since `ticket` was taken. It is kept a round trip less than its expiry: a driver
    /// that reads the time left (PostgreSQL's) dates it from the reply's arrival, up to a
    /// round trip after the backend measured it, and the cache must never answer for a record
    /// the backend let expire (hits still report the driver's expiry).
    pub(crate) fn fill(&self, ticket: Ticket, key: &[u8], record: Entry, round_trip: Duration) {
        let mut state = self.lock();
        if Self::valid(&state, ticket) {
            let until = record
                .expires_at
                .map(|at| at.checked_sub(round_trip).unwrap_or(at));
            self.insert(&mut state, key, record, until);
        }
    }

    /// The layer wrote `key` (or tried to: a conflict, an error): replies of reads sent
    /// before are refused from now on, and the record written is kept if `ticket` (taken
    /// before the write was sent) is still valid. `None` drops the key.
    pub(crate) fn wrote(&self, ticket: Option<Ticket>, key: &[u8], record: Option<Entry>) {
        let stripe = self.stripe(key);
        let mut state = self.lock();
        let valid = ticket.is_some_and(|t| Self::valid(&state, t));
        state.stripes[stripe] += 1;
        Self::remove_entry(&mut state, key);
        if let (true, Some(record)) = (valid, record) {
            let until = record.expires_at;
            self.insert(&mut state, key, record, until);
        }
    }

    fn valid(state: &State, ticket: Ticket) -> bool {
        state.tracking == Tracking::On
            && state.epoch == ticket.epoch
            && state.stripes[ticket.stripe] == ticket.count
    }

    fn insert(&self, state: &mut State, key: &[u8], entry: Entry, until: Option<SystemTime>) {
        let size = key.len() + entry.value.len() + OVERHEAD;
        Self::remove_entry(state, key);
        if entry.value.len() > MAX_ENTRY || size > self.budget {
            return;
        }
        while state.bytes + size > self.budget {
            // Any entry: sessions have no useful recency order to keep here.
            let Some(victim) = state.entries.keys().next().cloned() else {
                break;
            };
            Self::remove_entry(state, &victim);
        }
        state.bytes += size;
        state.entries.insert(key.into(), Kept { entry, until });
    }

    fn remove_entry(state: &mut State, key: &[u8]) {
        if let Some(old) = state.entries.remove(key) {
            state.bytes -= key.len() + old.entry.value.len() + OVERHEAD;
        }
    }

    /// `key` changed elsewhere (or may have): drop it, and refuse fills from requests already
    /// under way. For invalidation sources; the key is the driver's (without its own prefix).
    pub fn invalidate(&self, key: &[u8]) {
        let stripe = self.stripe(key);
        let mut state = self.lock();
        state.stripes[stripe] += 1;
        Self::remove_entry(&mut state, key);
    }

    /// Drops everything and refuses fills from requests already under way (the backend was
    /// emptied, or invalidations may have been missed). For invalidation sources.
    pub fn flush(&self) {
        Self::clear(&mut self.lock());
    }

    /// The invalidations stopped (a lost connection took them): empty the cache and keep it
    /// off until [`Invalidations::enable`] succeeds again. For invalidation sources.
    pub fn disconnected(&self) {
        let mut state = self.lock();
        Self::clear(&mut state);
        if state.tracking != Tracking::Unsupported {
            state.tracking = Tracking::Off { retry_at: None };
        }
    }

    fn clear(state: &mut State) {
        state.epoch += 1;
        state.entries.clear();
        state.bytes = 0;
    }

    /// Cached entries and their bytes, for diagnostics.
    pub fn usage(&self) -> (usize, usize) {
        let state = self.lock();
        (state.entries.len(), state.bytes)
    }
}

/// Where a [`ReadCache`] learns that entries changed elsewhere: the driver's side of the
/// cache. The source delivers invalidations to the cache it was given
/// ([`ReadCache::invalidate`], [`ReadCache::flush`], [`ReadCache::disconnected`]) and turns
/// them on when the cache asks.
#[async_trait]
pub trait Invalidations: Send + Sync + 'static {
    /// Makes invalidations flow (Redis: `CLIENT TRACKING ON` on the current connection).
    /// `Ok(true)`: they flow from now on; `Ok(false)`: they never can (the cache stays off);
    /// an error: not now (asked again after a pause).
    async fn enable(&self) -> Result<bool, DriverError>;

    /// Whether a key this process wrote stays watched, so that a later change by someone else
    /// is invalidated (Redis: the driver reads the key back in the same round trip, and
    /// invalidates it itself when the read shows another writer came between). Without it,
    /// writes drop the key instead of keeping what was written.
    fn watches_own_writes(&self) -> bool {
        false
    }
}

/// Wraps a driver in a [`ReadCache`] kept correct by `source`. A driver asks for it in its
/// [`layer_defaults`](crate::Driver::layer_defaults) (the Redis driver, with `local_cache` bytes);
/// the [`Stack`](crate::layers::Stack) puts it above timeouts, retries and expiry, so a hit costs
/// none of them.
#[derive(Clone)]
pub struct CacheLayer {
    pub(crate) cache: Arc<ReadCache>,
    pub(crate) source: Arc<dyn Invalidations>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl CacheLayer {
    /// A layer over `cache`, which `source` keeps correct.
    pub fn new(cache: Arc<ReadCache>, source: Arc<dyn Invalidations>) -> Self {
        Self {
            cache,
            source,
            clock: Arc::new(SystemClock),
        }
    }

    /// The cache.
    pub fn cache(&self) -> &Arc<ReadCache> {
        &self.cache
    }
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (entries, bytes) = self.cache.usage();
        f.debug_struct("CacheLayer")
            .field("entries", &entries)
            .field("bytes", &bytes)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CacheLayer {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.cache, &other.cache)
    }
}

impl Eq for CacheLayer {}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::Version;

    fn record(value: &'static [u8]) -> Entry {
        Entry {
            value: Bytes::from_static(value),
            version: Version::from_u64(1),
            expires_at: None,
        }
    }

    fn at(ms: u64) -> SystemTime {
        crate::from_unix_millis(ms)
    }

    fn enable(cache: &ReadCache) -> u64 {
        match cache.lookup(b"any", at(0)) {
            Lookup::Off(Some(epoch)) => epoch,
            _ => panic!("expected to be asked to enable tracking"),
        }
    }

    fn on(cache: &ReadCache) {
        let epoch = enable(cache);
        cache.tracking_result(epoch, Some(true));
    }

    fn ticket(cache: &ReadCache, key: &[u8]) -> Ticket {
        match cache.lookup(key, at(0)) {
            Lookup::Miss(t) => t,
            Lookup::Hit(_) => panic!("unexpected hit"),
            Lookup::Off(_) => panic!("cache off"),
        }
    }

    fn hit(cache: &ReadCache, key: &[u8], now: u64) -> Option<Bytes> {
        match cache.lookup(key, at(now)) {
            Lookup::Hit(c) => Some(c.value),
            _ => None,
        }
    }

    #[test]
    fn off_until_tracking_is_confirmed() {
        let cache = ReadCache::new(1 << 20);
        assert!(cache.ticket(b"k").is_none());
        let epoch = enable(&cache);
        assert!(
            matches!(cache.lookup(b"k", at(0)), Lookup::Off(None)),
            "one attempt at a time"
        );
        cache.tracking_result(epoch, Some(true));
        let t = ticket(&cache, b"k");
        cache.fill(t, b"k", record(b"v"), Duration::ZERO);
        assert_eq!(hit(&cache, b"k", 0).unwrap(), "v");
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_or_a_write_is_dropped() {
        let cache = ReadCache::new(1 << 20);
        on(&cache);
        let t = ticket(&cache, b"k");
        cache.invalidate(b"k");
        cache.fill(t, b"k", record(b"stale"), Duration::ZERO);
        assert!(hit(&cache, b"k", 0).is_none());
        let t = ticket(&cache, b"k");
        cache.fill(t, b"k", record(b"fresh"), Duration::ZERO);
        assert_eq!(hit(&cache, b"k", 0).unwrap(), "fresh");
        cache.invalidate(b"k");
        assert!(hit(&cache, b"k", 0).is_none());

        // A read sent before this driver's own write cannot replace what the write stored.
        let read = ticket(&cache, b"k");
        let write = cache.ticket(b"k");
        cache.wrote(write, b"k", Some(record(b"written")));
        cache.fill(read, b"k", record(b"read before"), Duration::ZERO);
        assert_eq!(hit(&cache, b"k", 0).unwrap(), "written");
        // Two writes finishing out of order: the later ticket's record is not trusted.
        let (first, second) = (cache.ticket(b"k"), cache.ticket(b"k"));
        cache.wrote(second, b"k", Some(record(b"second")));
        cache.wrote(first, b"k", Some(record(b"first")));
        assert!(hit(&cache, b"k", 0).is_none());
        // A failed write drops the key.
        let t = cache.ticket(b"k");
        cache.wrote(t, b"k", Some(record(b"v")));
        cache.wrote(None, b"k", None);
        assert!(hit(&cache, b"k", 0).is_none());
    }

    #[test]
    fn a_lost_connection_empties_and_turns_off_the_cache() {
        let cache = ReadCache::new(1 << 20);
        on(&cache);
        let t = ticket(&cache, b"k");
        cache.fill(t, b"k", record(b"v"), Duration::ZERO);
        let before = ticket(&cache, b"j");
        cache.disconnected();
        assert_eq!(cache.usage(), (0, 0));
        assert!(cache.ticket(b"k").is_none());
        // Tracking confirmed for the old epoch does not count.
        let epoch = enable(&cache);
        cache.disconnected();
        cache.tracking_result(epoch, Some(true));
        assert!(cache.ticket(b"k").is_none());
        on(&cache);
        // A request from before the loss cannot fill.
        cache.fill(before, b"j", record(b"old"), Duration::ZERO);
        assert!(hit(&cache, b"j", 0).is_none());
    }

    #[test]
    fn refused_tracking_is_final_and_failures_wait_before_retrying() {
        let cache = ReadCache::new(1 << 20);
        let epoch = enable(&cache);
        cache.tracking_result(epoch, None);
        assert!(
            matches!(cache.lookup(b"k", at(0)), Lookup::Off(None)),
            "waits {RETRY:?}"
        );
        let cache = ReadCache::new(1 << 20);
        let epoch = enable(&cache);
        cache.tracking_result(epoch, Some(false));
        cache.disconnected();
        assert!(matches!(cache.lookup(b"k", at(0)), Lookup::Off(None)));
        assert!(cache.ticket(b"k").is_none());
    }

    #[test]
    fn bounded_in_bytes_and_expiry_is_enforced() {
        let budget = 10 * (OVERHEAD + 2 + 100);
        let cache = ReadCache::new(budget);
        on(&cache);
        for i in 0..100u8 {
            let key = [b'k', i];
            let t = ticket(&cache, &key);
            cache.fill(t, &key, record(&[0; 100]), Duration::ZERO);
        }
        let (entries, bytes) = cache.usage();
        assert_eq!(entries, 10);
        assert!(bytes <= budget);
        let t = ticket(&cache, b"big");
        let big = Entry {
            value: Bytes::from(vec![0; MAX_ENTRY + 1]),
            ..record(b"")
        };
        cache.fill(t, b"big", big, Duration::ZERO);
        assert!(hit(&cache, b"big", 0).is_none());
        let t = ticket(&cache, b"e");
        let expiring = Entry {
            expires_at: Some(at(1000)),
            ..record(b"v")
        };
        cache.fill(t, b"e", expiring, Duration::ZERO);
        assert!(hit(&cache, b"e", 999).is_some());
        assert!(hit(&cache, b"e", 1000).is_none());
        cache.flush();
        assert_eq!(cache.usage(), (0, 0));
    }
}

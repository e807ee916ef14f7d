//! A reference driver for the suite's own tests: correct by default, with exactly one
//! realistic defect when given a [`Flaw`]. Every operation yields once first, as a network or
//! disk round trip would (unless built with `yields(false)`).
#![allow(dead_code)]

use std::{
    collections::{BTreeMap, HashMap},
    ops::Bound,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use session_kit_core::driver::{check_condition, check_key, check_put};
use session_kit_core::{
    Capabilities, Driver, DriverError, Entry, ListPage, PutOptions, TtlSupport, Version, WriteMode,
    async_trait, bytes::Bytes,
};
use unicode_normalization::UnicodeNormalization;

/// One defect a real backend or driver has had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flaw {
    // Declared behaviour that is not there.
    /// Declares create-only, writes anyway (s3rver and `If-None-Match`).
    IgnoresCreateOnly,
    /// Declares compare-and-swap, ignores the version.
    IgnoresVersion,
    /// Declares compare-and-swap, answers every compare-and-swap with a conflict (a version
    /// compared in another form than the one returned).
    CompareAndSwapAlwaysConflicts,
    /// Declares TTL, drops it (unstorage drivers that ignore `ttl`).
    IgnoresTtl,
    /// Declares no touch but answers it with success.
    PretendsToTouch,
    // TTL and expiry.
    /// Expires keys at 90 % of their TTL.
    ExpiresEarly,
    /// Rounds TTLs up to whole seconds while declaring millisecond granularity.
    RoundsTtlToSeconds,
    /// Converts the TTL to milliseconds in an `i32`: 30 days wrap around.
    TtlOverflows,
    /// Create-only, update-only and compare-and-swap writes store no expiry.
    ConditionalWritesDropTtl,
    /// Reports an expiry twice the TTL away.
    MisreportsExpiry,
    /// An expired, unswept entry still blocks create-only.
    ExpiredBlocksCreateOnly,
    /// An expired, unswept entry still satisfies update-only and compare-and-swap (and is
    /// revived by them).
    ExpiredAcceptsConditionalWrites,
    // Touch.
    /// Touch of an expired, unswept entry revives it.
    TouchRevivesExpired,
    /// Touch rewrites the value through a lossy UTF-8 conversion.
    TouchIsLossy,
    /// Touch only ever extends the expiry.
    TouchOnlyExtends,
    /// Touch answers true and changes nothing.
    TouchDoesNothing,
    // Versions and races.
    /// A per-key version counter that restarts when the key is deleted.
    ReusesVersions,
    /// Create-only as a read, then a write, in two backend requests (another request can
    /// write in between).
    CheckThenWriteCreateOnly,
    /// Compare-and-swap as a read, then a write, in two backend requests.
    CheckThenWriteCompareAndSwap,
    /// Writes the first half of a value, then the rest, in two backend requests.
    TornWrites,
    // Keys.
    /// Cuts keys at the first NUL (C strings).
    TruncatesAtNul,
    /// Normalises keys (unstorage turns `/` into `:`), lower case.
    NormalisesKeys,
    /// Trims spaces around keys.
    TrimsKeys,
    /// Stores keys in Unicode NFD (file systems on macOS).
    NormalisesUnicode,
    /// Strips a trailing `/` (path handling).
    StripsTrailingSlash,
    /// Cuts keys at a `#` or `?` (URL handling).
    DropsUrlSuffix,
    /// Cuts keys to 250 bytes while declaring more.
    TruncatesLongKeys,
    /// Keys longer than 100 bytes are stored as their first 100 bytes and their length.
    HashesKeyPrefix,
    /// Rejects a key whose compressed size is over half the declared maximum (a database
    /// index that accepts a compressible 8 KiB key).
    RejectsIncompressibleKeys,
    // Values.
    /// Returns a value with its last byte dropped.
    LosesLastByte,
    /// Trims trailing whitespace from values.
    TrimsValues,
    /// Stores values that parse as JSON in canonical form.
    NormalisesJson,
    /// Swaps the first two 4 KiB chunks of values over 64 KiB (a multipart reassembly bug).
    ScramblesLargeValues,
    // Delete.
    /// Every other read goes to a replica that never hears of deletes.
    StaleReplicaAfterDelete,
    /// Delete is a tombstone that expires after a second, showing the old value again.
    SoftDeleteExpires,
    // Read caches.
    /// Keeps what it read in a cache (expiring with the entry) that every write, delete and
    /// touch refreshes, except update-only writes (one write path forgot the cache).
    UpdateOnlyMissesReadCache,
    // List and clear.
    /// Lists keys that contain the prefix anywhere.
    ListContains,
    /// Pages after the first forget the prefix.
    ListLaterPagesForgetPrefix,
    /// Clear treats `ns-a/` as `ns-a`.
    ClearIgnoresSeparator,
    /// Prefixes are SQL `LIKE` patterns (`_`, `%`).
    LikePrefix,
    /// Prefixes are globs (`*`, `?`, `[...]`).
    GlobPrefix,
}

struct Item {
    value: Bytes,
    version: u64,
    expires: Option<(Instant, SystemTime)>,
}

impl Item {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|(at, _)| now < at)
    }
}

#[derive(Default)]
struct State {
    map: BTreeMap<String, Item>,
    replica: HashMap<String, (Bytes, u64)>,
    tombstones: HashMap<String, Instant>,
    last_version: u64,
    per_key: HashMap<String, u64>,
    reads: u64,
    cache: HashMap<String, Entry>,
}

/// The reference driver.
pub(crate) struct Model {
    flaw: Option<Flaw>,
    caps: Capabilities,
    state: Mutex<State>,
    yields: bool,
    page: usize,
    /// Reads left that stall (see [`Model::stalls_first_reads`]), and for how long.
    stalls: AtomicU32,
    stall: Duration,
}

impl Model {
    /// A correct driver.
    pub(crate) fn correct() -> Self {
        Self::build(None)
    }

    /// A driver with one flaw.
    pub(crate) fn flawed(flaw: Flaw) -> Self {
        Self::build(Some(flaw))
    }

    fn build(flaw: Option<Flaw>) -> Self {
        let mut caps = Capabilities::new(4096, 4 << 20)
            .with_ttl(TtlSupport::exact(Duration::from_millis(1)))
            .with_create_only()
            .with_update_only()
            .with_compare_and_swap()
            .with_touch()
            .with_list();
        if flaw == Some(Flaw::PretendsToTouch) {
            caps.touch = false;
        }
        Self {
            flaw,
            caps,
            state: Mutex::default(),
            yields: true,
            page: 100,
            stalls: AtomicU32::new(0),
            stall: Duration::ZERO,
        }
    }

    /// Declares (and enforces) a different maximum key length.
    pub(crate) fn max_key_len(mut self, len: usize) -> Self {
        self.caps.max_key_len = len;
        self
    }

    /// Whether operations yield before they run.
    pub(crate) fn yields(mut self, yields: bool) -> Self {
        self.yields = yields;
        self
    }

    /// The first `reads` reads wait `by` before they look (a machine or backend that stalled,
    /// not a defect).
    pub(crate) fn stalls_first_reads(mut self, reads: u32, by: Duration) -> Self {
        self.stalls = AtomicU32::new(reads);
        self.stall = by;
        self
    }

    fn is(&self, flaw: Flaw) -> bool {
        self.flaw == Some(flaw)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn io(&self) {
        if self.yields {
            tokio::task::yield_now().await;
        }
    }

    fn key(&self, key: &str) -> String {
        match self.flaw {
            Some(Flaw::TruncatesAtNul) => key.split('\0').next().unwrap_or_default().to_owned(),
            Some(Flaw::NormalisesKeys) => key.replace('/', ":").to_lowercase(),
            Some(Flaw::TrimsKeys) => key.trim().to_owned(),
            Some(Flaw::NormalisesUnicode) => key.nfd().collect(),
            Some(Flaw::StripsTrailingSlash) => key.trim_end_matches('/').to_owned(),
            Some(Flaw::DropsUrlSuffix) => {
                key.split(['#', '?']).next().unwrap_or_default().to_owned()
            }
            Some(Flaw::TruncatesLongKeys) => cut(key, 250).to_owned(),
            Some(Flaw::HashesKeyPrefix) if key.len() > 100 => {
                format!("{}#{}", cut(key, 100), key.len())
            }
            _ => key.to_owned(),
        }
    }

    fn check_key(&self, key: &str) -> Result<(), DriverError> {
        check_key(key, &self.caps)?;
        if self.is(Flaw::RejectsIncompressibleKeys) {
            let runs = key.as_bytes().windows(2).filter(|w| w[0] != w[1]).count();
            if runs > self.caps.max_key_len / 2 {
                return Err(DriverError::invalid_key("index row too large"));
            }
        }
        Ok(())
    }

    /// The deadline of a TTL written now.
    fn expiry(&self, ttl: Duration, now: Instant) -> Option<(Instant, SystemTime)> {
        let ttl = match self.flaw {
            Some(Flaw::ExpiresEarly) => ttl * 9 / 10,
            Some(Flaw::RoundsTtlToSeconds) => {
                Duration::from_secs(ttl.as_millis().div_ceil(1000) as u64)
            }
            Some(Flaw::TtlOverflows) => {
                #[allow(clippy::cast_possible_truncation)]
                let ms = ttl.as_millis() as i32;
                Duration::from_millis(u64::try_from(ms).unwrap_or(0))
            }
            _ => ttl,
        };
        let reported = if self.is(Flaw::MisreportsExpiry) {
            ttl * 2
        } else {
            ttl
        };
        Some((now + ttl, SystemTime::now() + reported))
    }

    /// The live item under `key` (by the flaw's idea of live).
    fn current<'a>(
        &self,
        state: &'a State,
        key: &str,
        now: Instant,
        for_mode: &WriteMode,
    ) -> Option<&'a Item> {
        let item = state.map.get(key)?;
        let expired_counts = matches!(
            (self.flaw, for_mode),
            (Some(Flaw::ExpiredBlocksCreateOnly), WriteMode::CreateOnly)
                | (
                    Some(Flaw::ExpiredAcceptsConditionalWrites),
                    WriteMode::UpdateOnly | WriteMode::IfVersion(_)
                )
        );
        (item.live(now) || expired_counts).then_some(item)
    }

    fn next_version(&self, state: &mut State, key: &str) -> u64 {
        if self.is(Flaw::ReusesVersions) {
            let n = state.per_key.entry(key.to_owned()).or_insert(0);
            *n += 1;
            *n
        } else {
            state.last_version += 1;
            state.last_version
        }
    }

    fn store(
        &self,
        state: &mut State,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mode: &WriteMode,
    ) -> u64 {
        let now = Instant::now();
        let drop_ttl = self.is(Flaw::IgnoresTtl)
            || (self.is(Flaw::ConditionalWritesDropTtl) && *mode != WriteMode::Overwrite);
        let expires = ttl
            .filter(|_| !drop_ttl)
            .and_then(|ttl| self.expiry(ttl, now));
        let version = self.next_version(state, key);
        state.tombstones.remove(key);
        if *mode != WriteMode::UpdateOnly {
            state.cache.remove(key);
        }
        state
            .replica
            .insert(key.to_owned(), (value.clone(), version));
        state.map.insert(
            key.to_owned(),
            Item {
                value,
                version,
                expires,
            },
        );
        version
    }

    fn stored_value(&self, value: Bytes) -> Bytes {
        match self.flaw {
            Some(Flaw::TrimsValues) => Bytes::from(value.trim_ascii_end().to_vec()),
            Some(Flaw::NormalisesJson) => match serde_json::from_slice::<serde_json::Value>(&value)
            {
                Ok(json) => serde_json::to_vec(&json).map(Bytes::from).unwrap_or(value),
                Err(_) => value,
            },
            Some(Flaw::ScramblesLargeValues) if value.len() > 64 * 1024 => {
                let mut v = value.to_vec();
                let (a, b) = v.split_at_mut(4096);
                a.swap_with_slice(&mut b[..4096]);
                Bytes::from(v)
            }
            _ => value,
        }
    }

    fn matches(&self, key: &str, prefix: &str) -> bool {
        match self.flaw {
            Some(Flaw::ListContains) => key.contains(prefix),
            Some(Flaw::LikePrefix) => like(key.as_bytes(), prefix.as_bytes()),
            Some(Flaw::GlobPrefix) => glob(key.as_bytes(), prefix.as_bytes()),
            _ => key.starts_with(prefix),
        }
    }
}

/// The gap between the two halves of a non-atomic operation: one more request to the backend
/// (a millisecond, the shortest timer; a real round trip is as long or longer).
async fn round_trip() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

fn cut(key: &str, len: usize) -> &str {
    let mut end = len.min(key.len());
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

/// `key` starts with something the SQL LIKE pattern `prefix` matches.
fn like(key: &[u8], pattern: &[u8]) -> bool {
    match pattern.split_first() {
        None => true,
        Some((b'%', rest)) => (0..=key.len()).any(|i| like(&key[i..], rest)),
        Some((b'_', rest)) => !key.is_empty() && like(&key[1..], rest),
        Some((c, rest)) => key.first() == Some(c) && like(&key[1..], rest),
    }
}

/// `key` starts with something the glob `prefix` matches.
fn glob(key: &[u8], pattern: &[u8]) -> bool {
    match pattern.split_first() {
        None => true,
        Some((b'*', rest)) => (0..=key.len()).any(|i| glob(&key[i..], rest)),
        Some((b'?', rest)) => !key.is_empty() && glob(&key[1..], rest),
        Some((b'[', rest)) => match rest.iter().position(|&c| c == b']') {
            Some(end) => {
                !key.is_empty()
                    && rest[..end].contains(&key[0])
                    && glob(&key[1..], &rest[end + 1..])
            }
            None => key.first() == Some(&b'[') && glob(&key[1..], rest),
        },
        Some((c, rest)) => key.first() == Some(c) && glob(&key[1..], rest),
    }
}

#[async_trait]
impl Driver for Model {
    fn name(&self) -> &str {
        "model"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.check_key(key)?;
        self.io().await;
        let stalls = self
            .stalls
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            });
        if stalls.is_ok() {
            tokio::time::sleep(self.stall).await;
        }
        let key = self.key(key);
        let now = Instant::now();
        let mut state = self.state();
        state.reads += 1;
        if self.is(Flaw::UpdateOnlyMissesReadCache) {
            let live = state.map.get(&key).is_some_and(|i| i.live(now));
            if let Some(cached) = state.cache.get(&key).filter(|_| live) {
                return Ok(Some(cached.clone()));
            }
        }
        if self.is(Flaw::StaleReplicaAfterDelete) && state.reads.is_multiple_of(2) {
            return Ok(state.replica.get(&key).map(|(value, version)| Entry {
                value: value.clone(),
                version: Version::from_u64(*version),
                expires_at: None,
            }));
        }
        if state.tombstones.get(&key).is_some_and(|until| now < *until) {
            return Ok(None);
        }
        let Some(item) = state.map.get(&key).filter(|i| i.live(now)) else {
            return Ok(None);
        };
        let mut value = item.value.clone();
        if self.is(Flaw::LosesLastByte) && value.len() > 1 {
            value = value.slice(..value.len() - 1);
        }
        let entry = Entry {
            value,
            version: Version::from_u64(item.version),
            expires_at: item.expires.map(|(_, wall)| wall),
        };
        if self.is(Flaw::UpdateOnlyMissesReadCache) {
            state.cache.insert(key, entry.clone());
        }
        Ok(Some(entry))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        self.check_key(key)?;
        let ttl = check_put(key, &value, &options, &self.caps)?;
        self.io().await;
        let key = self.key(key);
        let value = self.stored_value(value);
        let mut mode = options.mode;
        if self.is(Flaw::CompareAndSwapAlwaysConflicts) && matches!(mode, WriteMode::IfVersion(_)) {
            return Err(DriverError::Conflict);
        }
        match (self.flaw, &mode) {
            (Some(Flaw::IgnoresCreateOnly), WriteMode::CreateOnly)
            | (Some(Flaw::IgnoresVersion), WriteMode::IfVersion(_)) => mode = WriteMode::Overwrite,
            _ => {}
        }
        let split = matches!(
            (self.flaw, &mode),
            (Some(Flaw::CheckThenWriteCreateOnly), WriteMode::CreateOnly)
                | (
                    Some(Flaw::CheckThenWriteCompareAndSwap),
                    WriteMode::IfVersion(_)
                )
        );
        if split {
            {
                let state = self.state();
                let current = self
                    .current(&state, &key, Instant::now(), &mode)
                    .map(|i| Version::from_u64(i.version));
                check_condition(&mode, current.as_ref())?;
            }
            round_trip().await;
            let mut state = self.state();
            return Ok(Version::from_u64(
                self.store(&mut state, &key, value, ttl, &mode),
            ));
        }
        if self.is(Flaw::TornWrites) && value.len() > 1 {
            {
                let mut state = self.state();
                let current = self
                    .current(&state, &key, Instant::now(), &mode)
                    .map(|i| Version::from_u64(i.version));
                check_condition(&mode, current.as_ref())?;
                let half = value.slice(..value.len() / 2);
                self.store(&mut state, &key, half, ttl, &mode);
            }
            round_trip().await;
            let mut state = self.state();
            return Ok(Version::from_u64(self.store(
                &mut state,
                &key,
                value,
                ttl,
                &WriteMode::Overwrite,
            )));
        }
        let mut state = self.state();
        let current = self
            .current(&state, &key, Instant::now(), &mode)
            .map(|i| Version::from_u64(i.version));
        check_condition(&mode, current.as_ref())?;
        Ok(Version::from_u64(
            self.store(&mut state, &key, value, ttl, &mode),
        ))
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.check_key(key)?;
        self.io().await;
        let key = self.key(key);
        let mut state = self.state();
        if self.is(Flaw::SoftDeleteExpires) {
            state
                .tombstones
                .insert(key, Instant::now() + Duration::from_secs(1));
            return Ok(());
        }
        state.map.remove(&key);
        state.cache.remove(&key);
        if self.is(Flaw::ReusesVersions) {
            state.per_key.remove(&key);
        }
        if !self.is(Flaw::StaleReplicaAfterDelete) {
            state.replica.remove(&key);
        }
        Ok(())
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        self.check_key(key)?;
        self.io().await;
        let key = self.key(key);
        let now = Instant::now();
        let lossy = self.is(Flaw::TouchIsLossy);
        let revive = self.is(Flaw::TouchRevivesExpired);
        let new = self.expiry(ttl.max(Duration::from_millis(1)), now);
        let mut state = self.state();
        if state.tombstones.get(&key).is_some_and(|until| now < *until) {
            return Ok(false);
        }
        state.cache.remove(&key);
        let Some(item) = state.map.get_mut(&key).filter(|i| revive || i.live(now)) else {
            return Ok(false);
        };
        match self.flaw {
            Some(Flaw::TouchDoesNothing) => {}
            Some(Flaw::TouchOnlyExtends) => item.expires = item.expires.max(new),
            _ => item.expires = new,
        }
        if lossy {
            item.value = Bytes::from(String::from_utf8_lossy(&item.value).into_owned());
        }
        Ok(true)
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        self.io().await;
        let now = Instant::now();
        let state = self.state();
        let later_page = cursor.is_some();
        let start = match cursor {
            Some(after) => Bound::Excluded(after.to_owned()),
            None => Bound::Unbounded,
        };
        let mut keys = Vec::new();
        let mut more = false;
        for (key, item) in state.map.range((start, Bound::Unbounded)) {
            let forget = later_page && self.is(Flaw::ListLaterPagesForgetPrefix);
            if !(forget || self.matches(key, prefix)) || !item.live(now) {
                continue;
            }
            if state.tombstones.get(key).is_some_and(|until| now < *until) {
                continue;
            }
            if keys.len() == self.page {
                more = true;
                break;
            }
            keys.push(key.clone());
        }
        let cursor = more.then(|| keys.last().cloned()).flatten();
        Ok(ListPage { keys, cursor })
    }

    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        let prefix = if self.is(Flaw::ClearIgnoresSeparator) {
            prefix.trim_end_matches('/')
        } else {
            prefix
        };
        let mut cleared = 0;
        loop {
            let page = self.list(prefix, None).await?;
            for key in &page.keys {
                self.delete(key).await?;
                cleared += 1;
            }
            if page.cursor.is_none() {
                return Ok(cleared);
            }
        }
    }
}

//! An in-process session driver.
//!
//! * Sharded: many tasks read and write concurrently without one global lock.
//! * Native TTL: every write also drops the shard's expired entries (an expiry index makes
//!   that cheap), reads never return them, and [`MemoryDriver::sweep`] reclaims everything
//!   expired at once, so memory does not grow with dead sessions.
//! * Create-only, update-only, compare-and-swap and touch, with strong consistency.
//! * An optional capacity: when full, the entry closest to expiry is evicted.
//!
//! Data lives as long as the process: use it for tests, development and single-process apps
//! that accept losing sessions on restart.
//!
//! ```
//! use std::sync::Arc;
//! use session_kit_core::{Driver, PutOptions, WriteMode, bytes::Bytes};
//! use session_kit_memory::MemoryDriver;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let driver = MemoryDriver::builder().capacity(100_000).build();
//! let v1 = driver.put("k", Bytes::from_static(b"one"), PutOptions::new()).await?;
//! let stale = WriteMode::IfVersion(v1.clone());
//! driver.put("k", Bytes::from_static(b"two"), PutOptions::new().mode(stale.clone())).await?;
//! assert!(driver.put("k", Bytes::from_static(b"three"), PutOptions::new().mode(stale)).await.is_err());
//! # Ok::<(), session_kit_core::DriverError>(())
//! # }).unwrap();
//! ```
#![doc = include_str!("../docs.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::{
    collections::BTreeMap,
    hash::BuildHasher,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hashbrown::HashTable;
use serde::Deserialize;
use session_kit_core::driver::{
    check_condition, deadline_after, flexible, from_unix_millis, unix_millis,
};
use session_kit_core::{
    Capabilities, Clock, Driver, DriverConfig, DriverError, Entry, ListPage, PutOptions, Registry,
    SystemClock, TtlSupport, Version, async_trait, bytes::Bytes,
};

/// The registry name of this driver.
pub const NAME: &str = "memory";

/// Largest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_SIZE: usize = 16 * 1024 * 1024;

const SHARDS: usize = 64;
const PAGE: usize = 1000;

/// Registers `memory` (`"memory"`, `"memory:?capacity=10000"`).
pub fn register(registry: &mut Registry) {
    registry.register(NAME, |config: DriverConfig| async move {
        let config: MemoryConfig = config.options()?;
        let mut builder = MemoryDriver::builder();
        if let Some(capacity) = config.capacity {
            builder = builder.capacity(usize::try_from(capacity).unwrap_or(usize::MAX));
        }
        Ok(Arc::new(builder.build()) as Arc<dyn Driver>)
    });
}

/// Options of the memory driver.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Most entries kept (default: unbounded). When full, the entry closest to expiry is
    /// evicted; a write that would need to evict an entry without TTL fails instead.
    #[serde(default, deserialize_with = "flexible::opt_u64")]
    pub capacity: Option<u64>,
}

/// Builds a [`MemoryDriver`].
#[derive(Debug, Default)]
pub struct MemoryDriverBuilder {
    capacity: Option<usize>,
    clock: Option<Arc<dyn Clock>>,
}

impl MemoryDriverBuilder {
    /// Bounds the number of entries.
    pub fn capacity(mut self, entries: usize) -> Self {
        self.capacity = Some(entries.max(1));
        self
    }

    /// The clock TTLs are measured with (the system clock by default). Share a
    /// [`ManualClock`](session_kit_core::ManualClock) with the session storage to test expiry
    /// without sleeping.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Builds the driver.
    pub fn build(self) -> MemoryDriver {
        MemoryDriver {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: foldhash::fast::RandomState::default(),
            per_shard: self.capacity.map(|c| c.div_ceil(SHARDS)),
            next_version: AtomicU64::new(1),
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            caps: Capabilities::new(MAX_KEY_LEN, MAX_VALUE_SIZE)
                .with_ttl(TtlSupport::exact(Duration::from_millis(1)))
                .with_create_only()
                .with_update_only()
                .with_compare_and_swap()
                .with_touch()
                .with_list(),
        }
    }
}

/// The in-process driver. See the crate documentation.
#[derive(Debug)]
pub struct MemoryDriver {
    shards: Box<[Mutex<Shard>]>,
    /// foldhash, seeded at random per driver (hashbrown's default): about 65 instructions for
    /// a session's storage key where SipHash took 340 (twice per `/count`).
    hasher: foldhash::fast::RandomState,
    per_shard: Option<usize>,
    next_version: AtomicU64,
    clock: Arc<dyn Clock>,
    caps: Capabilities,
}

#[derive(Debug, Default)]
struct Shard {
    /// Entries under their key's hash, computed once per operation (it also picked the shard).
    items: HashTable<Item>,
    /// The hash of every entry with a TTL under (deadline in Unix ms, version), soonest first.
    /// Versions are unique, so an update finds its old index entry without the key, and the
    /// hash with the version finds the entry: rewriting a session allocates nothing here.
    expiry: BTreeMap<(u64, u64), u64>,
}

#[derive(Debug)]
struct Item {
    key: Box<str>,
    /// The key's hash, kept so that growing the table never hashes a key again.
    hash: u64,
    value: Bytes,
    version: u64,
    deadline: Option<u64>,
}

impl Item {
    /// Matches the entry of `key` (with [`HashTable`]'s lookups).
    fn is(key: &str) -> impl Fn(&Item) -> bool + '_ {
        move |item| *item.key == *key
    }

    fn live(&self, now: u64) -> bool {
        self.deadline.is_none_or(|d| d > now)
    }
}

impl Shard {
    fn live(&self, hash: u64, key: &str, now: u64) -> Option<&Item> {
        self.items.find(hash, Item::is(key)).filter(|i| i.live(now))
    }

    fn remove(&mut self, hash: u64, key: &str) -> Option<Item> {
        let (item, _) = self.items.find_entry(hash, Item::is(key)).ok()?.remove();
        if let Some(d) = item.deadline {
            self.expiry.remove(&(d, item.version));
        }
        Some(item)
    }

    /// Moves `item`'s expiry index entry to `deadline` and `version` (set on the item).
    fn reindex(
        expiry: &mut BTreeMap<(u64, u64), u64>,
        item: &mut Item,
        deadline: Option<u64>,
        version: u64,
    ) {
        if let Some(old) = item.deadline {
            expiry.remove(&(old, item.version));
        }
        item.deadline = deadline;
        item.version = version;
        if let Some(new) = deadline {
            expiry.insert((new, version), item.hash);
        }
    }

    /// Drops the entry an expiry index entry (already taken out of the index) pointed at.
    fn drop_indexed(&mut self, version: u64, hash: u64) {
        if let Ok(entry) = self.items.find_entry(hash, |i| i.version == version) {
            entry.remove();
        }
    }

    /// Drops every expired entry; returns how many.
    fn reclaim(&mut self, now: u64) -> usize {
        let mut n = 0;
        while let Some(soonest) = self.expiry.first_entry() {
            if soonest.key().0 > now {
                break;
            }
            let ((_, version), hash) = soonest.remove_entry();
            self.drop_indexed(version, hash);
            n += 1;
        }
        n
    }

    /// Makes room for one new entry under a capacity bound.
    fn make_room(&mut self, limit: usize) -> Result<(), DriverError> {
        if self.items.len() < limit {
            return Ok(());
        }
        match self.expiry.pop_first() {
            Some(((_, version), hash)) => {
                self.drop_indexed(version, hash);
                Ok(())
            }
            None => Err(DriverError::unavailable(
                "memory driver is at capacity and no entry has a TTL to evict",
                false,
                None,
            )),
        }
    }
}

impl MemoryDriver {
    /// An unbounded driver.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for options such as a capacity.
    pub fn builder() -> MemoryDriverBuilder {
        MemoryDriverBuilder::default()
    }

    /// Drops every expired entry now and returns how many were dropped.
    pub fn sweep(&self) -> usize {
        let now = self.now();
        self.shards.iter().map(|s| lock(s).reclaim(now)).sum()
    }

    /// The number of live entries.
    pub fn len(&self) -> usize {
        let now = self.now();
        self.shards
            .iter()
            .map(|s| lock(s).items.iter().filter(|i| i.live(now)).count())
            .sum()
    }

    /// Whether there is no live entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> u64 {
        unix_millis(self.clock.now())
    }

    /// The time now (Unix milliseconds) and the deadline `ttl` from now, from one reading of
    /// the clock.
    fn now_and_deadline(&self, ttl: Option<Duration>) -> (u64, Option<u64>) {
        let now = self.clock.now();
        (unix_millis(now), ttl.map(|t| deadline_after(now, t)))
    }

    /// The hash of `key`, which picks its shard and its place in the shard's table.
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        lock(&self.shards[shard_index(hash)])
    }
}

impl Default for MemoryDriver {
    fn default() -> Self {
        Self::new()
    }
}

/// The shard of a key's hash. The table inside the shard places entries by the hash's low bits
/// and tags them with its top 7, so the shard comes from bits in between: within one shard,
/// the hashes still differ in every bit the table uses.
fn shard_index(hash: u64) -> usize {
    ((hash >> 32) % SHARDS as u64) as usize
}

/// Locks a shard; a poisoned lock is still consistent (no critical section panics midway).
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl Driver for MemoryDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let now = self.now();
        let hash = self.hash(key);
        let shard = self.shard(hash);
        Ok(shard.live(hash, key, now).map(|item| Entry {
            value: item.value.clone(),
            version: Version::from_u64(item.version),
            expires_at: item.deadline.map(from_unix_millis),
        }))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        let ttl = options.ttl;
        let (now, deadline) = self.now_and_deadline(ttl);
        let hash = self.hash(key);
        let mut guard = self.shard(hash);
        let shard = &mut *guard;
        shard.reclaim(now);
        // Expired entries were reclaimed above, so a present one is live: it is updated in
        // place (one lookup, no allocation).
        let version = match shard.items.find_mut(hash, Item::is(key)) {
            Some(item) => {
                check_condition(&options.mode, Some(&Version::from_u64(item.version)))?;
                let version = self.next_version.fetch_add(1, Ordering::Relaxed);
                item.value = value;
                Shard::reindex(&mut shard.expiry, item, deadline, version);
                version
            }
            None => {
                check_condition(&options.mode, None)?;
                if let Some(limit) = self.per_shard {
                    shard.make_room(limit)?;
                }
                let version = self.next_version.fetch_add(1, Ordering::Relaxed);
                if let Some(d) = deadline {
                    shard.expiry.insert((d, version), hash);
                }
                let item = Item {
                    key: key.into(),
                    hash,
                    value,
                    version,
                    deadline,
                };
                shard.items.insert_unique(hash, item, |i| i.hash);
                version
            }
        };
        Ok(Version::from_u64(version))
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        let hash = self.hash(key);
        self.shard(hash).remove(hash, key);
        Ok(())
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        let ttl = Some(ttl);
        let (now, deadline) = self.now_and_deadline(ttl);
        let hash = self.hash(key);
        let mut guard = self.shard(hash);
        let shard = &mut *guard;
        match shard.items.find_mut(hash, Item::is(key)) {
            Some(item) if item.live(now) => {
                let version = item.version;
                Shard::reindex(&mut shard.expiry, item, deadline, version);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let now = self.now();
        let mut keys: Vec<String> = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            keys.extend(
                shard
                    .items
                    .iter()
                    .filter(|i| {
                        i.key.starts_with(prefix)
                            && i.live(now)
                            && cursor.is_none_or(|c| &*i.key > c)
                    })
                    .map(|i| i.key.to_string()),
            );
        }
        keys.sort_unstable();
        let cursor = (keys.len() > PAGE).then(|| keys[PAGE - 1].clone());
        keys.truncate(PAGE);
        Ok(ListPage { keys, cursor })
    }

    async fn sweep(&self) -> Result<u64, DriverError> {
        Ok(MemoryDriver::sweep(self) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capacity_evicts_the_entry_closest_to_expiry() {
        let d = MemoryDriver::builder().capacity(SHARDS).build(); // one entry per shard
        let ttl = |s| PutOptions::new().ttl(Duration::from_secs(s));
        // Fill until two keys share a shard, then the sooner-expiring one must go.
        let mut placed: std::collections::HashMap<usize, String> = Default::default();
        for i in 0.. {
            let key = format!("k{i}");
            let shard = shard_index(d.hash(&key));
            if let Some(first) = placed.get(&shard) {
                d.put(&key, Bytes::new(), ttl(100)).await.unwrap();
                assert!(d.get(first).await.unwrap().is_none(), "evicted");
                assert!(d.get(&key).await.unwrap().is_some());
                break;
            }
            d.put(&key, Bytes::new(), ttl(10)).await.unwrap();
            placed.insert(shard, key);
        }
    }

    #[tokio::test]
    async fn capacity_without_ttl_refuses_instead_of_evicting() {
        let d = MemoryDriver::builder().capacity(1).build();
        let mut refused = false;
        for i in 0..200 {
            if d.put(&format!("k{i}"), Bytes::new(), PutOptions::new())
                .await
                .is_err()
            {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }

    #[tokio::test]
    async fn writes_reclaim_expired_entries() {
        let d = MemoryDriver::new();
        for i in 0..1000 {
            d.put(
                &format!("k{i}"),
                Bytes::new(),
                PutOptions::new().ttl(Duration::from_millis(1)),
            )
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let held: usize = d.shards.iter().map(|s| lock(s).items.len()).sum();
        assert!(held > 0);
        assert_eq!(d.sweep(), held);
        assert_eq!(
            d.shards.iter().map(|s| lock(s).items.len()).sum::<usize>(),
            0
        );
        assert!(d.is_empty());
    }

    #[tokio::test]
    async fn a_driver_opened_by_config_string_can_sweep() {
        let mut registry = Registry::new();
        register(&mut registry);
        let d = registry.open("memory").await.unwrap();
        assert_eq!(d.layers(), ["trace", "validate"]);
        // A TTL below the 1 ms minimum: rounded up by the validate layer.
        d.put("k", Bytes::new(), PutOptions::new().ttl(Duration::ZERO))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(d.sweep().await.unwrap(), 1);
        assert_eq!(d.sweep().await.unwrap(), 0);
    }
}

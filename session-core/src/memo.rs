//! A bounded memo from exact keys to what this process computed for them: the mechanism
//! behind the cookie memos ([`crate::cookie_memo`]) and the decoded records
//! ([`crate::decoded`]).
//!
//! Sharded (one lock each); an entry is found only by its exact key. Each entry has a weight
//! (1 for a count bound, its size in bytes for a byte bound); a shard whose weight would pass
//! its budget starts over, and what it held is dropped after its lock is released (a full
//! shard may hold thousands of records). Keys are hashed by their last 16 bytes only, so the
//! cost does not grow with them: every user's keys end in bytes no client can choose (a MAC
//! or AEAD tag, the hash of a server-generated id).

use std::{
    hash::{BuildHasher, Hasher},
    sync::{Mutex, MutexGuard},
};

use hashbrown::HashTable;

/// Shards (independent locks).
pub(crate) const SHARDS: usize = 16;

/// Bytes at the end of a key that its hash is taken over.
const TAIL: usize = 16;

struct Entry<V> {
    key: Box<str>,
    value: V,
    weight: usize,
}

struct Shard<V> {
    table: HashTable<Entry<V>>,
    /// The sum of the entries' weights.
    weight: usize,
}

impl<V> Shard<V> {
    /// Empties the shard, handing its entries over to be dropped outside the lock.
    fn start_over(&mut self) -> HashTable<Entry<V>> {
        self.weight = 0;
        std::mem::take(&mut self.table)
    }
}

/// A memo (see the module documentation).
pub(crate) struct Memo<V, S = foldhash::fast::RandomState> {
    hasher: S,
    shards: [Mutex<Shard<V>>; SHARDS],
    /// Weight each shard may hold.
    budget: usize,
}

impl<V> Memo<V> {
    /// A memo whose shards each hold entries of at most `budget` in total weight, its keys
    /// hashed with a per-process random key.
    pub(crate) fn new(budget: usize) -> Self {
        Self::with_hasher(budget, foldhash::fast::RandomState::default())
    }
}

impl<V, S: BuildHasher> Memo<V, S> {
    /// [`Memo::new`] with keys hashed by `hasher`.
    pub(crate) fn with_hasher(budget: usize, hasher: S) -> Self {
        Self {
            hasher,
            shards: std::array::from_fn(|_| {
                Mutex::new(Shard {
                    table: HashTable::new(),
                    weight: 0,
                })
            }),
            budget: budget.max(1),
        }
    }

    fn hash(&self, key: &str) -> u64 {
        let bytes = key.as_bytes();
        let mut hasher = self.hasher.build_hasher();
        hasher.write(&bytes[bytes.len().saturating_sub(TAIL)..]);
        hasher.finish()
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard<V>> {
        // Middle bits: the table uses the low ones and the top seven.
        let shard = &self.shards[(hash >> 32) as usize % SHARDS];
        // Nothing that runs under this lock can panic half-way through a change.
        shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `f` of the value kept for `key`.
    pub(crate) fn find_map<R>(&self, key: &str, f: impl FnOnce(&V) -> Option<R>) -> Option<R> {
        let hash = self.hash(key);
        let shard = self.shard(hash);
        shard
            .table
            .find(hash, |e| &*e.key == key)
            .and_then(|e| f(&e.value))
    }

    /// Keeps `value` for `key` (replacing what was kept, in place), weighing `weight`.
    pub(crate) fn insert<K: AsRef<str> + Into<Box<str>>>(&self, key: K, value: V, weight: usize) {
        let hash = self.hash(key.as_ref());
        let mut guard = self.shard(hash);
        let shard = &mut *guard;
        let (replaced, evicted);
        if let Some(kept) = shard.table.find_mut(hash, |e| *e.key == *key.as_ref()) {
            replaced = Some(std::mem::replace(&mut kept.value, value));
            shard.weight = shard.weight - kept.weight + weight;
            kept.weight = weight;
            evicted = (shard.weight > self.budget).then(|| shard.start_over());
        } else {
            replaced = None;
            evicted = (shard.weight + weight > self.budget).then(|| shard.start_over());
            shard.weight += weight;
            let entry = Entry {
                key: key.into(),
                value,
                weight,
            };
            shard
                .table
                .insert_unique(hash, entry, |e| self.hash(&e.key));
        }
        drop(guard);
        drop((replaced, evicted));
    }

    /// Forgets `key`.
    pub(crate) fn remove(&self, key: &str) {
        let hash = self.hash(key);
        let mut shard = self.shard(hash);
        let removed = match shard.table.find_entry(hash, |e| &*e.key == key) {
            Ok(entry) => Some(entry.remove().0),
            Err(_) => None,
        };
        if let Some(entry) = &removed {
            shard.weight -= entry.weight;
        }
        drop(shard);
        drop(removed);
    }

    /// Entries and their total weight, over all shards.
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, usize) {
        (0..SHARDS).fold((0, 0), |(n, w), i| {
            let shard = self.shards[i]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (n + shard.table.len(), w + shard.weight)
        })
    }
}

impl<V: Clone, S: BuildHasher> Memo<V, S> {
    /// The value kept for `key`.
    pub(crate) fn get(&self, key: &str) -> Option<V> {
        self.find_map(key, |v| Some(v.clone()))
    }

    /// The value kept for `key`, or `check()` kept (weighing 1) when it gives one.
    pub(crate) fn get_or_check(&self, key: &str, check: impl FnOnce() -> Option<V>) -> Option<V> {
        if let Some(value) = self.get(key) {
            return Some(value);
        }
        let value = check()?;
        self.insert(key, value.clone(), 1);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_exact_keys_only_and_stays_within_its_count() {
        let memo = Memo::new(8);
        assert_eq!(memo.get_or_check("abc.tag", || Some(1)), Some(1));
        assert_eq!(
            memo.get_or_check("abc.tag", || Some(2)),
            Some(1),
            "the first check is remembered"
        );
        assert_eq!(memo.get("abc.tah"), None, "another key is not found");
        assert_eq!(memo.get("abc.ta"), None);
        assert_eq!(memo.get_or_check("forged", || None), None);
        assert_eq!(memo.get("forged"), None, "a failed check is not remembered");
        for i in 0..(SHARDS * 8 * 4) {
            memo.insert(format!("value-{i}"), 3, 1);
        }
        let (held, weight) = memo.held();
        assert!(held <= SHARDS * 8, "{held} entries held");
        assert_eq!(held, weight);
    }

    #[test]
    fn keys_sharing_a_tail_are_told_apart_and_replaced_in_place() {
        let memo = Memo::new(8);
        let tail = "0123456789abcdef";
        memo.insert(format!("first.{tail}"), 1, 1);
        memo.insert(format!("second.{tail}"), 2, 1);
        assert_eq!(memo.get(&format!("first.{tail}")), Some(1));
        assert_eq!(memo.get(&format!("second.{tail}")), Some(2));
        assert_eq!(memo.get(&format!("third.{tail}")), None);
        assert_eq!(memo.get(tail), None);
        memo.insert(format!("first.{tail}"), 3, 1);
        assert_eq!(memo.get(&format!("first.{tail}")), Some(3), "replaced");
        assert_eq!(memo.held(), (2, 2));
        memo.remove(&format!("first.{tail}"));
        assert_eq!(memo.get(&format!("first.{tail}")), None);
        assert_eq!(memo.held(), (1, 1));
    }

    #[test]
    fn weights_are_bounded_and_follow_replacements() {
        let budget = 10_000;
        let memo = Memo::new(budget);
        memo.insert("k", (), 300);
        memo.insert("k", (), 200);
        assert_eq!(memo.held(), (1, 200), "a replacement weighs what it weighs");
        for i in 0..10_000 {
            memo.insert(format!("sessions/{i:064x}"), (), 3_000);
            assert!(memo.held().1 <= SHARDS * budget);
        }
        // Keys spread over the shards: most of the room is in use.
        assert!(memo.held().1 > SHARDS * budget / 3, "{:?}", memo.held());
        // An entry that grows past its shard's budget starts the shard over.
        memo.insert("k", (), 300);
        memo.insert("k", (), budget + 1);
        assert_eq!(memo.get("k"), None);
    }
}

//! Decoded records: the last record this process read or wrote for a storage key, with the
//! bytes it was decoded from, so that reading the same bytes again skips the JSON decode (an
//! eighth of a page view's instructions with the memory driver).
//!
//! A hit needs the driver to return exactly the bytes the record came from, compared in
//! full: decoding is a pure function of those bytes, so a hit gives what a decode would,
//! whatever the driver's versions look like, and nothing can go stale. The record is shared
//! (`Arc`), not copied: a commit that changes it builds its own.
//!
//! Bounded: [`SHARD_BYTES`] of stored bytes per shard ([`SHARDS`] shards), a full shard starts
//! over; values over [`MAX_VALUE`] bytes are not kept. The entry of a session this storage
//! destroys, regenerates or revokes is removed with its record; one deleted elsewhere (another
//! process, the admin tools) can never be served, since the driver no longer returns its
//! bytes, and leaves when its shard starts over.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use hashbrown::HashTable;

use crate::{key_hash::hash_key, record::Record};

/// Shards, each behind its own lock.
const SHARDS: usize = 16;
/// Stored bytes kept per shard (4 MiB in all; the decoded records take about as much again).
const SHARD_BYTES: usize = 256 * 1024;
/// Larger values are decoded every time.
const MAX_VALUE: usize = 16 * 1024;

struct Decoded {
    key: Box<str>,
    raw: Bytes,
    record: Arc<Record>,
}

#[derive(Default)]
struct Shard {
    table: HashTable<Decoded>,
    /// Sum of `raw.len()` over the table.
    bytes: usize,
}

impl Shard {
    /// Empties the shard, handing its entries over to be dropped outside the lock.
    fn start_over(&mut self) -> HashTable<Decoded> {
        self.bytes = 0;
        std::mem::take(&mut self.table)
    }
}

/// The decoded-record cache of one storage.
pub(crate) struct DecodedRecords {
    shards: [Mutex<Shard>; SHARDS],
}

impl Default for DecodedRecords {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Nothing that runs under this lock can panic half-way through a change.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DecodedRecords {
    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        // Middle bits: the table uses the low ones and the top seven.
        &self.shards[(hash >> 32) as usize % SHARDS]
    }

    /// The record `raw` decodes to, if `raw` is what was last kept for `key`.
    pub(crate) fn get(&self, key: &str, raw: &[u8]) -> Option<Arc<Record>> {
        let hash = hash_key(key);
        let shard = lock(self.shard(hash));
        let found = shard.table.find(hash, |d| &*d.key == key)?;
        (found.raw == raw).then(|| Arc::clone(&found.record))
    }

    /// Keeps `record` as what `raw` (stored under `key`) decodes to.
    pub(crate) fn insert(&self, key: &str, raw: Bytes, record: Arc<Record>) {
        if raw.len() > MAX_VALUE {
            // The entry kept before, if any, no longer matches the stored bytes.
            self.remove(key);
            return;
        }
        let hash = hash_key(key);
        let mut guard = lock(self.shard(hash));
        let shard = &mut *guard;
        // What this insert replaces or evicts, dropped after the lock is released (a full
        // shard holds thousands of records).
        let dropped;
        if let Some(kept) = shard.table.find_mut(hash, |d| &*d.key == key) {
            // The session's next record, in place (its key stays).
            let old_raw = std::mem::replace(&mut kept.raw, raw);
            let old_record = std::mem::replace(&mut kept.record, record);
            shard.bytes = shard.bytes - old_raw.len() + kept.raw.len();
            // Grown past the shard's room: start over.
            let evicted = (shard.bytes > SHARD_BYTES).then(|| shard.start_over());
            dropped = (Some((old_raw, old_record)), evicted);
        } else {
            let evicted = (shard.bytes + raw.len() > SHARD_BYTES).then(|| shard.start_over());
            shard.bytes += raw.len();
            shard.table.insert_unique(
                hash,
                Decoded {
                    key: key.into(),
                    raw,
                    record,
                },
                |d| hash_key(&d.key),
            );
            dropped = (None, evicted);
        }
        drop(guard);
        drop(dropped);
    }

    /// Forgets `key` (its record was deleted).
    pub(crate) fn remove(&self, key: &str) {
        let hash = hash_key(key);
        let mut shard = lock(self.shard(hash));
        if let Ok(entry) = shard.table.find_entry(hash, |d| &*d.key == key) {
            let (old, _) = entry.remove();
            shard.bytes -= old.raw.len();
        }
    }

    /// Entries kept, over all shards.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).table.len()).sum()
    }

    /// Stored bytes kept, over all shards.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.shards.iter().map(|s| lock(s).bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> Arc<Record> {
        let mut r = Record::empty();
        r.data.insert("n".into(), n.into());
        Arc::new(r)
    }

    fn raw(r: &Record) -> Bytes {
        Bytes::from(r.encode().unwrap())
    }

    #[test]
    fn a_hit_needs_the_same_key_and_the_same_bytes() {
        let cache = DecodedRecords::default();
        let one = record(1);
        cache.insert("k1", raw(&one), Arc::clone(&one));
        let hit = cache.get("k1", &raw(&one)).unwrap();
        assert!(Arc::ptr_eq(&hit, &one), "shared, not copied");
        // Other bytes under the same key (a write from elsewhere), or another key: a miss.
        assert!(cache.get("k1", &raw(&record(2))).is_none());
        assert!(cache.get("k2", &raw(&one)).is_none());
        // Same length, one byte different.
        let mut other = raw(&one).to_vec();
        let last = other.len() - 2;
        other[last] ^= 1;
        assert!(cache.get("k1", &other).is_none());
    }

    #[test]
    fn a_newer_record_replaces_the_older_and_removal_forgets_it() {
        let cache = DecodedRecords::default();
        let (one, two) = (record(1), record(2));
        cache.insert("k", raw(&one), Arc::clone(&one));
        cache.insert("k", raw(&two), Arc::clone(&two));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), raw(&two).len());
        assert!(cache.get("k", &raw(&one)).is_none());
        assert!(Arc::ptr_eq(&cache.get("k", &raw(&two)).unwrap(), &two));
        cache.remove("k");
        assert!(cache.get("k", &raw(&two)).is_none());
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
    }

    #[test]
    fn large_values_are_not_kept_and_drop_what_was() {
        let cache = DecodedRecords::default();
        let one = record(1);
        cache.insert("k", raw(&one), Arc::clone(&one));
        let mut big = Record::empty();
        big.data.insert("blob".into(), "x".repeat(MAX_VALUE).into());
        let big = Arc::new(big);
        cache.insert("k", raw(&big), Arc::clone(&big));
        assert!(cache.get("k", &raw(&big)).is_none());
        assert!(cache.get("k", &raw(&one)).is_none());
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
    }

    #[test]
    fn memory_stays_bounded() {
        let cache = DecodedRecords::default();
        let mut blob = Record::empty();
        blob.data.insert("blob".into(), "x".repeat(4000).into());
        let blob = Arc::new(blob);
        let bytes = raw(&blob);
        for _ in 0..10_000 {
            // Storage keys are hex digits of a hash, as here.
            let key = crate::SessionId::generate()
                .unwrap()
                .storage_key("sessions/");
            cache.insert(&key, bytes.clone(), Arc::clone(&blob));
            assert!(cache.bytes() <= SHARDS * SHARD_BYTES);
        }
        // Keys spread over the shards: most of the room is in use.
        assert!(
            cache.bytes() > SHARDS * SHARD_BYTES / 3,
            "{}",
            cache.bytes()
        );
    }
}

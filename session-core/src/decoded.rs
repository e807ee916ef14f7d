//! Decoded records: the last record this process read or wrote for a storage key, with the
//! bytes it was decoded from, so that reading the same bytes again skips the JSON decode (an
//! eighth of a page view's instructions with the memory driver).
//!
//! A hit needs the driver to return exactly the bytes the record came from, compared in
//! full: decoding is a pure function of those bytes, so a hit gives what a decode would,
//! whatever the driver's versions look like, and nothing can go stale. The record is shared
//! (`Arc`), not copied: a commit that changes it builds its own.
//!
//! Bounded (a [`Memo`] weighing stored bytes): [`SHARD_BYTES`] per shard, a full shard starts
//! over; values over [`MAX_VALUE`] bytes are not kept. The entry of a session this storage
//! destroys, regenerates or revokes is removed with its record; one deleted elsewhere (another
//! process, the admin tools) can never be served, since the driver no longer returns its
//! bytes, and leaves when its shard starts over.

use std::sync::Arc;

use bytes::Bytes;

use crate::{key_hash::KeyTailState, memo::Memo, record::Record};

/// Stored bytes kept per shard (4 MiB in all; the decoded records take about as much again).
const SHARD_BYTES: usize = 256 * 1024;
/// Larger values are decoded every time.
const MAX_VALUE: usize = 16 * 1024;

/// A record and the stored bytes it was decoded from.
struct Decoded {
    raw: Bytes,
    record: Arc<Record>,
}

/// The decoded-record cache of one storage.
pub(crate) struct DecodedRecords(Memo<Decoded, KeyTailState>);

impl Default for DecodedRecords {
    fn default() -> Self {
        Self(Memo::with_hasher(SHARD_BYTES, KeyTailState))
    }
}

impl DecodedRecords {
    /// The record `raw` decodes to, if `raw` is what was last kept for `key`.
    pub(crate) fn get(&self, key: &str, raw: &[u8]) -> Option<Arc<Record>> {
        self.0
            .find_map(key, |d| (d.raw == raw).then(|| Arc::clone(&d.record)))
    }

    /// Keeps `record` as what `raw` (stored under `key`) decodes to.
    pub(crate) fn insert(&self, key: &str, raw: Bytes, record: Arc<Record>) {
        if raw.len() > MAX_VALUE {
            // The entry kept before, if any, no longer matches the stored bytes.
            self.0.remove(key);
            return;
        }
        let weight = raw.len();
        self.0.insert(key, Decoded { raw, record }, weight);
    }

    /// Forgets `key` (its record was deleted).
    pub(crate) fn remove(&self, key: &str) {
        self.0.remove(key);
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
        assert_eq!(cache.0.held(), (1, raw(&two).len()));
        assert!(cache.get("k", &raw(&one)).is_none());
        assert!(Arc::ptr_eq(&cache.get("k", &raw(&two)).unwrap(), &two));
        cache.remove("k");
        assert!(cache.get("k", &raw(&two)).is_none());
        assert_eq!(cache.0.held(), (0, 0));
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
        assert_eq!(cache.0.held(), (0, 0));
    }

    #[test]
    fn real_storage_keys_spread_over_the_shards_within_the_byte_bound() {
        // The key hash reads only the keys' last bytes: hex digits of a hash, as here.
        let cache = DecodedRecords::default();
        let mut blob = Record::empty();
        blob.data.insert("blob".into(), "x".repeat(4000).into());
        let blob = Arc::new(blob);
        let bytes = raw(&blob);
        for _ in 0..10_000 {
            let key = crate::SessionId::generate()
                .unwrap()
                .storage_key("sessions/");
            cache.insert(&key, bytes.clone(), Arc::clone(&blob));
            assert!(cache.0.held().1 <= crate::memo::SHARDS * SHARD_BYTES);
        }
        let held = cache.0.held().1;
        assert!(held > crate::memo::SHARDS * SHARD_BYTES / 3, "{held}");
    }
}

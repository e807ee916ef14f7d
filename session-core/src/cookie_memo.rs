//! Memos of session cookies this process already checked, so that the next request carrying
//! the same cookie skips the work: for signed cookies the HMAC check and the storage-key hash
//! (about a tenth of a read-only request's time on the memory driver), for sealed cookie-only
//! sessions the decryption and the record's decoding (about a third). Measured in
//! `benches/http` (`--in-process`).
//!
//! What is remembered is a pure function of the cookie value, the cookie name and the
//! keyring (one memo per storage, so one name and one keyring): the signature check, or what
//! the sealed value decrypts to. Whether the session still exists, has expired or was revoked
//! is decided on every request as before (by the store, or by the deadlines in the record).
//! An entry is found only by presenting the exact value, so a forged or altered cookie always
//! takes the full check. Bounded: a shard that fills up is emptied.

use std::{
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex},
};

use hashbrown::HashTable;

use crate::{SessionId, record::Record};

/// Shards (independent locks).
const SHARDS: usize = 16;
/// Signed cookies remembered per shard (an entry is about 250 bytes).
pub(crate) const SIGNED_PER_SHARD: usize = 256;
/// Sealed cookies remembered per shard: each holds the value and its record, up to 4 KiB each
/// (a browser's cookie limit), so at most 4 MiB in all and usually a few hundred KiB.
pub(crate) const SEALED_PER_SHARD: usize = 32;

/// What a verified signed cookie says.
#[derive(Clone)]
pub(crate) struct Verified {
    pub(crate) id: SessionId,
    /// Which key of the keyring signed it (0: the newest).
    pub(crate) key_index: usize,
    /// The session's storage key (namespace + hash of the id).
    pub(crate) storage_key: Box<str>,
}

/// What a sealed cookie opened to.
#[derive(Clone)]
pub(crate) struct Opened {
    pub(crate) id: SessionId,
    pub(crate) record: Arc<Record>,
    /// Which key of the keyring sealed it (0: the newest).
    pub(crate) key_index: usize,
}

/// One lock's share of a memo: cookie values and what they said.
type Shard<V> = Mutex<HashTable<(Box<str>, V)>>;

/// Bytes at the end of a value that its hash is taken over.
const TAIL: usize = 16;

/// A memo (see the module documentation).
pub(crate) struct CookieMemo<V> {
    hasher: RandomState,
    shards: Box<[Shard<V>]>,
    per_shard: usize,
}

impl<V: Clone> CookieMemo<V> {
    /// A memo of at most `per_shard` values in each of its shards.
    pub(crate) fn new(per_shard: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
            per_shard: per_shard.max(1),
        }
    }

    /// The hash of a value's last bytes: a MAC tag (signed cookies) or an AEAD tag (sealed
    /// ones), which no client can choose for a value that verifies, and only such values are
    /// remembered; a lookup still compares whole values. Hashing the tail alone keeps the
    /// cost independent of the cookie's size (a sealed one may reach 4 KiB).
    fn hash(&self, value: &str) -> u64 {
        let bytes = value.as_bytes();
        self.hasher
            .hash_one(&bytes[bytes.len().saturating_sub(TAIL)..])
    }

    fn shard(&self, hash: u64) -> &Shard<V> {
        // The shard from the hash's high bits (the table uses the low ones).
        &self.shards[(hash >> 60) as usize % SHARDS]
    }

    /// What `value` said when this process checked it before.
    pub(crate) fn get(&self, value: &str) -> Option<V> {
        let hash = self.hash(value);
        let shard = self.shard(hash).lock().ok()?;
        shard
            .find(hash, |(known, _)| **known == *value)
            .map(|(_, said)| said.clone())
    }

    /// Remembers what `value` said.
    pub(crate) fn insert(&self, value: impl Into<Box<str>>, said: V) {
        let value = value.into();
        let hash = self.hash(&value);
        let Ok(mut shard) = self.shard(hash).lock() else {
            return;
        };
        if shard.len() >= self.per_shard {
            shard.clear();
        }
        match shard.find_mut(hash, |(known, _)| *known == value) {
            Some(entry) => entry.1 = said,
            None => {
                shard.insert_unique(hash, (value, said), |(known, _)| self.hash(known));
            }
        }
    }

    /// `value`'s entry, or `check(value)` remembered when it says something.
    pub(crate) fn get_or_check(&self, value: &str, check: impl FnOnce() -> Option<V>) -> Option<V> {
        if let Some(said) = self.get(value) {
            return Some(said);
        }
        let said = check()?;
        self.insert(value, said.clone());
        Some(said)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_exact_values_only_and_stays_bounded() {
        let memo = CookieMemo::new(8);
        assert_eq!(memo.get_or_check("abc.tag", || Some(1)), Some(1));
        assert_eq!(
            memo.get_or_check("abc.tag", || Some(2)),
            Some(1),
            "the first check is remembered"
        );
        assert_eq!(memo.get("abc.tah"), None, "another value is not found");
        assert_eq!(memo.get("abc.ta"), None);
        assert_eq!(memo.get_or_check("forged", || None), None);
        assert_eq!(memo.get("forged"), None, "a failed check is not remembered");
        for i in 0..(SHARDS * 8 * 4) {
            memo.insert(format!("value-{i}"), 3);
        }
        let held: usize = memo
            .shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(held <= SHARDS * 8, "{held} entries held");
    }

    #[test]
    fn values_sharing_a_tail_are_told_apart() {
        let memo = CookieMemo::new(8);
        let tail = "0123456789abcdef";
        memo.insert(format!("first.{tail}"), 1);
        memo.insert(format!("second.{tail}"), 2);
        assert_eq!(memo.get(&format!("first.{tail}")), Some(1));
        assert_eq!(memo.get(&format!("second.{tail}")), Some(2));
        assert_eq!(memo.get(&format!("third.{tail}")), None);
        assert_eq!(memo.get(tail), None);
        memo.insert(format!("first.{tail}"), 3);
        assert_eq!(memo.get(&format!("first.{tail}")), Some(3), "replaced");
    }
}

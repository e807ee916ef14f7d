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
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::Mutex,
};

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
    pub(crate) record: Record,
    /// Which key of the keyring sealed it (0: the newest).
    pub(crate) key_index: usize,
}

/// One lock's share of a memo: cookie value to what it said.
type Shard<V> = Mutex<HashMap<Box<str>, V>>;

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
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: per_shard.max(1),
        }
    }

    fn shard(&self, value: &str) -> &Shard<V> {
        // The shard from the hash's high bits (the map uses the low ones).
        let index = (self.hasher.hash_one(value) >> 60) as usize % SHARDS;
        &self.shards[index]
    }

    /// What `value` said when this process checked it before.
    pub(crate) fn get(&self, value: &str) -> Option<V> {
        let shard = self.shard(value).lock().ok()?;
        shard.get(value).cloned()
    }

    /// Remembers what `value` said.
    pub(crate) fn insert(&self, value: &str, said: V) {
        let Ok(mut shard) = self.shard(value).lock() else {
            return;
        };
        if shard.len() >= self.per_shard {
            shard.clear();
        }
        shard.insert(value.into(), said);
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
            memo.insert(&format!("value-{i}"), 3);
        }
        let held: usize = memo
            .shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(held <= SHARDS * 8, "{held} entries held");
    }
}

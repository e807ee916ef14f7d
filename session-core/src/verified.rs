//! A memo of session cookies whose signature this process already verified: the next request
//! carrying the same cookie skips the HMAC check and the storage-key hash (about a third of a
//! read-only request's own cost on the memory driver, measured in `benches/http`).
//!
//! Only the signature check is remembered, a pure function of the cookie value, the cookie
//! name and the keyring (one memo per storage, so one name and one keyring): whether the
//! session still exists, has expired or was revoked is decided by the store on every request
//! as before. An entry is found only by presenting the exact signed value, so a forged or
//! altered cookie always takes the full check. Bounded: a shard that fills up is emptied.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::Mutex,
};

use crate::SessionId;

/// Shards (independent locks), and the entries each holds before it is emptied.
const SHARDS: usize = 16;
const PER_SHARD: usize = 256;

/// One lock's share of the memo: cookie value to what it said.
type Shard = Mutex<HashMap<Box<str>, Verified>>;

/// What a verified cookie says.
#[derive(Clone)]
pub(crate) struct Verified {
    pub(crate) id: SessionId,
    /// Which key of the keyring signed it (0: the newest).
    pub(crate) key_index: usize,
    /// The session's storage key (namespace + hash of the id).
    pub(crate) storage_key: Box<str>,
}

/// The memo (see the module documentation).
pub(crate) struct VerifiedCookies {
    hasher: RandomState,
    shards: Box<[Shard]>,
}

impl VerifiedCookies {
    pub(crate) fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, value: &str) -> &Shard {
        // The shard from the hash's high bits (the map uses the low ones).
        let index = (self.hasher.hash_one(value) >> 60) as usize % SHARDS;
        &self.shards[index]
    }

    /// The verification of `value`, if this process did it before.
    pub(crate) fn get(&self, value: &str) -> Option<Verified> {
        let shard = self.shard(value).lock().ok()?;
        shard.get(value).cloned()
    }

    /// Remembers that `value` verified as `verified`.
    pub(crate) fn insert(&self, value: &str, verified: Verified) {
        let Ok(mut shard) = self.shard(value).lock() else {
            return;
        };
        if shard.len() >= PER_SHARD {
            shard.clear();
        }
        shard.insert(value.into(), verified);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(n: u8) -> Verified {
        Verified {
            id: SessionId::generate().unwrap_or_else(|_| unreachable!()),
            key_index: usize::from(n),
            storage_key: format!("session:{n}").into(),
        }
    }

    #[test]
    fn remembers_exact_values_only_and_stays_bounded() {
        let memo = VerifiedCookies::new();
        memo.insert("abc.tag", verified(0));
        assert!(memo.get("abc.tag").is_some());
        assert!(memo.get("abc.tah").is_none(), "another value is not found");
        assert!(memo.get("abc.ta").is_none());
        for i in 0..(SHARDS * PER_SHARD * 4) {
            memo.insert(&format!("value-{i}"), verified(1));
        }
        let held: usize = memo
            .shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(held <= SHARDS * PER_SHARD, "{held} entries held");
    }
}

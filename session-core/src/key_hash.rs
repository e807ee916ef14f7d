//! Hashing storage keys for the process's own maps (write combining, decoded records).

use std::hash::{BuildHasher, Hasher};

/// Hashes a storage key by its last 16 bytes: hex digits of the SHA-256 of a random,
/// server-generated id (an attacker cannot choose them: a cookie reaches the store only once
/// its signature verifies), so they are already uniform, and SipHash would only cost time.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyTail(u64);

impl Hasher for KeyTail {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let tail = bytes.get(bytes.len().saturating_sub(16)..).unwrap_or(bytes);
        for chunk in tail.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            // Odd multipliers spread the hex digits' low bits over the whole word.
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
}

#[derive(Default, Clone, Copy)]
pub(crate) struct KeyTailState;

impl BuildHasher for KeyTailState {
    type Hasher = KeyTail;

    fn build_hasher(&self) -> KeyTail {
        KeyTail::default()
    }
}

//! Randomness from the operating system's CSPRNG.

use rand::{TryRngCore, rngs::OsRng};

use crate::SessionError;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), SessionError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|e| SessionError::Random(e.to_string()))
}

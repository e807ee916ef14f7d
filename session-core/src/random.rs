//! Randomness from the operating system's CSPRNG, drawn in batches.
//!
//! A new session id costs 32 random bytes. Asking the kernel for them one id at a time is a
//! system call per new visitor (in a profile of a new visitor's request, 7 % of it). Each
//! thread instead asks for [`BATCH`] bytes at once and hands them out in order: every byte
//! still comes from the operating system (no user-space generator stretches them), each is
//! handed out once, and it is zeroed in the batch as it is handed out, so the batch never
//! holds a copy of an id or token already issued.
//!
//! Like any per-thread random state (`rand`'s `ThreadRng` included), the rest of a batch would
//! be shared with a child if the process `fork`ed while serving; Rust servers do not (a fork
//! without `exec` leaves a multi-threaded runtime unusable).

use std::cell::RefCell;

use rand::{TryRngCore, rngs::OsRng};

use crate::SessionError;

/// Bytes asked of the kernel at once: 32 session ids.
const BATCH: usize = 1024;

/// Requests above this size are served straight from the kernel: session ids and CSRF tokens
/// (32 bytes) come from the batch, a generated key (64 bytes) does not.
const LARGEST_BATCHED: usize = 32;

struct Pool {
    bytes: [u8; BATCH],
    /// Bytes handed out so far (`BATCH`: empty).
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            bytes: [0; BATCH],
            used: BATCH,
        })
    };
}

/// Fills `buf` straight from the operating system's CSPRNG.
fn from_os(buf: &mut [u8]) -> Result<(), SessionError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|e| SessionError::Random(e.to_string()))
}

/// Fills `buf` with bytes from the operating system's CSPRNG (through the thread's batch for
/// small requests).
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), SessionError> {
    if buf.len() > LARGEST_BATCHED {
        return from_os(buf);
    }
    let batched = POOL.try_with(|pool| {
        // Never re-entered: nothing below calls back into this module.
        let Ok(mut pool) = pool.try_borrow_mut() else {
            return from_os(buf);
        };
        if BATCH - pool.used < buf.len() {
            from_os(&mut pool.bytes)?;
            pool.used = 0;
        }
        let start = pool.used;
        let chunk = &mut pool.bytes[start..start + buf.len()];
        buf.copy_from_slice(chunk);
        chunk.fill(0);
        pool.used += buf.len();
        Ok(())
    });
    match batched {
        Ok(result) => result,
        // The thread is exiting and its batch is gone.
        Err(_) => from_os(buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_and_the_batch_keeps_no_copy() {
        let mut seen = std::collections::HashSet::new();
        // More than three batches' worth, so refills happen on the way.
        for _ in 0..(3 * BATCH / 32 + 5) {
            let mut id = [0u8; 32];
            fill_random(&mut id).unwrap();
            assert!(seen.insert(id), "a draw repeated");
            POOL.with_borrow(|pool| {
                assert!(
                    pool.bytes[..pool.used].iter().all(|&b| b == 0),
                    "bytes handed out are zeroed in the batch"
                );
                assert!(!pool.bytes.windows(32).any(|w| w == id));
            });
        }
    }

    #[test]
    fn sizes_that_do_not_divide_the_batch_and_large_requests() {
        for len in [1, 7, 33, LARGEST_BATCHED, LARGEST_BATCHED + 1, 4096] {
            let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
            for _ in 0..40 {
                fill_random(&mut a).unwrap();
                fill_random(&mut b).unwrap();
                if len >= 7 {
                    assert_ne!(a, b);
                }
            }
        }
    }
}

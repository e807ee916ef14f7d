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
//! takes the full check. Bounded: a shard that fills up is emptied (see [`crate::memo`]).

use std::sync::Arc;

use crate::{SessionId, id::StorageKey, memo::Memo, record::Record};

/// A memo of cookie values (a [`Memo`] whose entries weigh 1 each).
pub(crate) type CookieMemo<V> = Memo<V>;

/// Signed cookies remembered per shard (an entry is about 350 bytes: the value is kept twice,
/// as the key and as the cookie to send back).
pub(crate) const SIGNED_PER_SHARD: usize = 256;
/// Sealed cookies remembered per shard: each holds the value and its record, up to 4 KiB each
/// (a browser's cookie limit), so at most 4 MiB in all and usually a few hundred KiB.
pub(crate) const SEALED_PER_SHARD: usize = 32;

/// What a verified signed cookie says. Shared (`Arc`) between the memo and the requests that
/// present the cookie: a request that never loads its session copies nothing out of it.
pub(crate) struct Verified {
    pub(crate) id: SessionId,
    /// Which key of the keyring signed it (0: the newest).
    pub(crate) key_index: usize,
    /// The session's storage key (namespace + hash of the id).
    pub(crate) storage_key: StorageKey,
    /// The cookie value itself when the newest key signed it: sending it back is the same as
    /// signing the id again, without the HMAC.
    pub(crate) signed: Option<Arc<str>>,
}

/// Names none of the secrets: the cookie value and the storage key lead to the session.
impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("key_index", &self.key_index)
            .finish_non_exhaustive()
    }
}

/// What a sealed cookie opened to.
#[derive(Clone)]
pub(crate) struct Opened {
    pub(crate) id: SessionId,
    pub(crate) record: Arc<Record>,
    /// Which key of the keyring sealed it (0: the newest).
    pub(crate) key_index: usize,
}

//! Where the user index keeps its entries: one key per session of a user, beside the
//! sessions (see [`crate::users`]).

use sha2::{Digest, Sha256};

/// Where index entries live: apart from every session namespace, so that nothing listing
/// sessions meets them.
const INDEX: &str = "user-index:";

/// The prefix of `user`'s index entries in storage `namespace`.
pub(crate) fn index_prefix(namespace: &str, user: &str) -> String {
    let digest = Sha256::digest(user.as_bytes());
    format!("{INDEX}{namespace}{}/", hex::encode(&digest[..16]))
}

/// The index entry of the session stored under `storage_key`, for `user`.
pub(crate) fn index_key(namespace: &str, user: &str, storage_key: &str) -> String {
    let id_hash = storage_key.strip_prefix(namespace).unwrap_or(storage_key);
    format!("{}{id_hash}", index_prefix(namespace, user))
}

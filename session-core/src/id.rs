//! Session ids: 256 bits from the OS CSPRNG, stored only as a hash.

use std::{fmt, sync::Arc};

use sha2::{Digest, Sha256};

use crate::{SessionError, random::fill_random};

pub(crate) const ID_BYTES: usize = 32;
const ID_CHARS: usize = 43; // unpadded base64 of 32 bytes

/// A session id: 256 random bits, written as 43 URL-safe base64 characters.
///
/// The id is a bearer secret: its `Debug` output shows only a short hash, suitable for logs.
///
/// Held inline (no allocation): parsing one from a cookie and cloning it are plain copies.
/// Both forms are kept: the text for cookies and storage keys, the bytes for sealed cookies.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId {
    text: [u8; ID_CHARS],
    bytes: [u8; ID_BYTES],
}

impl SessionId {
    /// A new random id.
    pub fn generate() -> Result<Self, SessionError> {
        let mut bytes = [0u8; ID_BYTES];
        fill_random(&mut bytes)?;
        // 32 bytes always encode to 43 characters; a different count would be a bug in the
        // encoder, reported rather than panicking.
        Self::from_bytes(&bytes).ok_or(SessionError::Internal("encoding a session id"))
    }

    /// Parses an id as found in a cookie: exactly 43 URL-safe base64 characters in their
    /// canonical form (the engine refuses padding and set trailing bits).
    pub fn parse(s: &str) -> Option<Self> {
        let text: [u8; ID_CHARS] = s.as_bytes().try_into().ok()?;
        let bytes = crate::b64::decode_exact(&text)?;
        Some(Self { text, bytes })
    }

    /// The id from its 32 random bytes (as a sealed cookie carries it).
    pub(crate) fn from_bytes(bytes: &[u8; ID_BYTES]) -> Option<Self> {
        let text = crate::b64::encode_exact(bytes)?;
        Some(Self {
            text,
            bytes: *bytes,
        })
    }

    /// The id's 32 random bytes (as a sealed cookie carries them).
    pub(crate) fn as_bytes(&self) -> &[u8; ID_BYTES] {
        &self.bytes
    }

    /// The id as it appears in the cookie. This is a secret.
    pub fn expose(&self) -> &str {
        // Always ASCII: built by the base64 encoder or checked by its decoder.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// The key the record is stored under: `namespace` followed by the hex SHA-256 of the id.
    /// A leaked store therefore cannot be replayed as cookies.
    pub fn storage_key(&self, namespace: &str) -> String {
        let digits = self.hash_digits();
        let mut key = String::with_capacity(namespace.len() + digits.len());
        key.push_str(namespace);
        key.push_str(std::str::from_utf8(&digits).unwrap_or_default());
        key
    }

    /// The hex SHA-256 of the id: the end of its storage key.
    fn hash_digits(&self) -> [u8; 64] {
        let mut digits = [0u8; 64];
        // 32 bytes always fit 64 hex digits.
        let _ = hex::encode_to_slice(Sha256::digest(self.text), &mut digits);
        digits
    }
}

/// A session's storage key, shared: the cookie memo computes it once per cookie, and each
/// request that loads the session holds it by reference count instead of copying it.
/// Empty (and unallocated) for a cookie-only session.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct StorageKey(Option<Arc<str>>);

impl StorageKey {
    /// [`SessionId::storage_key`], made in place: one allocation, the shared one.
    pub(crate) fn of(id: &SessionId, namespace: &str) -> Self {
        let mut key = [0u8; 128];
        let Some(room) = key.get_mut(..namespace.len() + 64) else {
            // A namespace over 64 bytes: through the owned string.
            return Self(Some(Arc::from(id.storage_key(namespace))));
        };
        let (prefix, digits) = room.split_at_mut(namespace.len());
        prefix.copy_from_slice(namespace.as_bytes());
        digits.copy_from_slice(&id.hash_digits());
        Self(Some(Arc::from(
            std::str::from_utf8(room).unwrap_or_default(),
        )))
    }
}

impl std::ops::Deref for StorageKey {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_deref().unwrap_or_default()
    }
}

/// Shown as the key: a hash of the id, not a secret (a leaked key cannot be used as a cookie).
impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = Sha256::digest(self.text);
        write!(f, "SessionId(sha256:{}…)", hex::encode(&digest[..4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(a.expose()), Some(a.clone()));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn the_text_and_the_bytes_are_one_id() {
        let id = SessionId::generate().unwrap();
        let parsed = SessionId::parse(id.expose()).unwrap();
        let rebuilt = SessionId::from_bytes(id.as_bytes()).unwrap();
        assert_eq!((&parsed, &rebuilt), (&id, &id));
        assert_eq!(
            crate::b64::decode(id.expose().as_bytes()).unwrap(),
            id.as_bytes().to_vec()
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        let good = SessionId::generate().unwrap();
        let s = good.expose();
        for bad in [
            "",
            "short",
            &s[..42],
            &format!("{s}A"),
            &format!("{}+", &s[..42]),
            &format!("{}=", &s[..42]),
            "ééééééééééééééééééééé.",
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad:?}");
        }
        // A non-canonical last character (unused low bits set) is refused too.
        let mut chars: Vec<char> = s.chars().collect();
        let last = chars[42];
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.find(last).unwrap();
        chars[42] = alphabet.as_bytes()[(idx & !3) | ((idx + 1) & 3)] as char;
        let tweaked: String = chars.into_iter().collect();
        assert_eq!(SessionId::parse(&tweaked), None);
    }

    #[test]
    fn storage_key_is_a_hash_under_the_namespace() {
        let id = SessionId::generate().unwrap();
        let key = id.storage_key("app:");
        assert!(key.starts_with("app:"));
        assert_eq!(key.len(), 4 + 64);
        assert!(!key.contains(id.expose()));
    }

    #[test]
    fn the_shared_storage_key_is_the_same_key() {
        let id = SessionId::generate().unwrap();
        for namespace in ["", "app:", &"n".repeat(64), &"long".repeat(40)] {
            let shared = StorageKey::of(&id, namespace);
            assert_eq!(&*shared, id.storage_key(namespace), "{}", namespace.len());
        }
        assert_eq!(
            &*StorageKey::default(),
            "",
            "cookie-only sessions have none"
        );
    }
}

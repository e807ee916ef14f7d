//! The values a driver exchanges: versions, entries, write modes and options, listing pages.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;

/// An opaque version of a stored value, returned by `put` and `get`, used for compare-and-swap.
///
/// Drivers choose the representation (a counter, an ETag, a random token); callers only compare
/// versions for equality and hand them back in [`WriteMode::IfVersion`]. Tokens of up to
/// 23 bytes (every number, most write ids) are held inline, without allocating.
#[derive(Clone)]
pub struct Version(Repr);

const INLINE: usize = 23;

#[derive(Clone)]
enum Repr {
    /// `len` bytes of UTF-8 at the start of `bytes`.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Shared(Arc<str>),
}

impl Version {
    /// A version from the backend's own token (for example an S3 ETag).
    pub fn new(token: impl AsRef<str>) -> Self {
        let token = token.as_ref();
        let mut bytes = [0u8; INLINE];
        match (bytes.get_mut(..token.len()), u8::try_from(token.len())) {
            (Some(prefix), Ok(len)) => {
                prefix.copy_from_slice(token.as_bytes());
                Self(Repr::Inline { len, bytes })
            }
            _ => Self(Repr::Shared(token.into())),
        }
    }

    /// A version from a number (for example a row counter), in decimal.
    pub fn from_u64(n: u64) -> Self {
        Self::new(itoa::Buffer::new().format(n))
    }

    /// A version from a number (for example a random write id), as 16 lowercase hex digits.
    pub fn from_u64_hex(n: u64) -> Self {
        let mut digits = [0u8; 16];
        // 8 bytes always fit 16 hex digits.
        let _ = hex::encode_to_slice(n.to_be_bytes(), &mut digits);
        Self::new(std::str::from_utf8(&digits).unwrap_or_default())
    }

    /// The token's bytes (compared and hashed without checking them as UTF-8 again).
    fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Repr::Shared(token) => token.as_bytes(),
        }
    }

    /// The token as a string.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Shared(token) => token,
            // Always valid UTF-8: copied from a `&str` or written as ASCII digits.
            Repr::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
        }
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Version {}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({})", self.as_str())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored value with its version and, where the backend knows it, its expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The bytes exactly as written.
    pub value: Bytes,
    /// The version the last write returned.
    pub version: Version,
    /// When the key expires, if it has a TTL and the backend reports it.
    pub expires_at: Option<SystemTime>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are session data: print their size, never their content.
        f.debug_struct("Entry")
            .field("value_len", &self.value.len())
            .field("version", &self.version)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The condition under which a `put` writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Always write.
    #[default]
    Overwrite,
    /// Write only if the key is absent, else [`DriverError::AlreadyExists`](crate::DriverError::AlreadyExists).
    CreateOnly,
    /// Write only if the key is present, else [`DriverError::Conflict`](crate::DriverError::Conflict).
    UpdateOnly,
    /// Write only if the stored version equals this one, else [`DriverError::Conflict`](crate::DriverError::Conflict).
    IfVersion(Version),
}

/// Options of a `put`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutOptions {
    /// Expire the key after this long. `None` stores it without expiry (clearing an old TTL).
    pub ttl: Option<Duration>,
    /// The write condition.
    pub mode: WriteMode,
}

impl PutOptions {
    /// Overwrite, no TTL.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets an optional TTL.
    pub fn ttl_opt(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the write mode.
    pub fn mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }
}

/// One page of a prefix listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Keys on this page (unexpired keys only, in no guaranteed order).
    pub keys: Vec<String>,
    /// Pass this to the next `list` call; `None` when this was the last page.
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, RandomState};

    use super::*;

    #[test]
    fn versions_compare_and_hash_by_their_token() {
        let hasher = RandomState::new();
        let long = "\"0123456789abcdef0123456789abcdef\"";
        for (a, b) in [("7", "8"), (long, "\"0123456789abcdef0123456789abcdee\"")] {
            assert_eq!(Version::new(a), Version::new(a));
            assert_eq!(
                hasher.hash_one(Version::new(a)),
                hasher.hash_one(Version::new(a).clone())
            );
            assert_ne!(Version::new(a), Version::new(b));
            assert_eq!(Version::new(a).as_str(), a);
        }
        // Tokens that share a prefix, inline and shared, differ.
        assert_ne!(Version::new("12"), Version::new("123"));
        assert_ne!(Version::new(long), Version::new(&long[..20]));
        assert_eq!(Version::from_u64(42), Version::new("42"));
        assert_eq!(Version::from_u64_hex(255), Version::new("00000000000000ff"));
    }
}

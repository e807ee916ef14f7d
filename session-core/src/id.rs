//! Session ids: 256 bits from the OS CSPRNG, stored only as a hash.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::{SessionError, keys::fill_random};

const ID_BYTES: usize = 32;
const ID_CHARS: usize = 43; // unpadded base64 of 32 bytes

/// A session id: 256 random bits, written as 43 URL-safe base64 characters.
///
/// The id is a bearer secret: its `Debug` output shows only a short hash, suitable for logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    /// A new random id.
    pub fn generate() -> Result<Self, SessionError> {
        let mut bytes = [0u8; ID_BYTES];
        fill_random(&mut bytes)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Parses an id as found in a cookie: exactly 43 URL-safe base64 characters.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != ID_CHARS {
            return None;
        }
        let mut bytes = [0u8; ID_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(s, &mut bytes) {
            // Only the canonical encoding: re-encoding must give back the same text.
            Ok(ID_BYTES) if URL_SAFE_NO_PAD.encode(bytes) == s => Some(Self(s.to_owned())),
            _ => None,
        }
    }

    /// The id as it appears in the cookie. This is a secret.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key the record is stored under: `namespace` followed by the hex SHA-256 of the id.
    /// A leaked store therefore cannot be replayed as cookies.
    pub fn storage_key(&self, namespace: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::digest(self.0.as_bytes());
        let mut key = String::with_capacity(namespace.len() + 64);
        key.push_str(namespace);
        // Table-driven (hex::encode collects through a char iterator: measurably slower here).
        for byte in digest {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
        key
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = Sha256::digest(self.0.as_bytes());
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
}

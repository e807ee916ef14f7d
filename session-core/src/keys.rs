//! Secret keys and the keyring that signs session cookies, with rotation.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use aes_gcm_siv::{Aes256GcmSiv, KeyInit as _};
use sha2::Digest;

use crate::{SessionError, random::fill_random};

/// Bytes of a sealing key's id at the front of every sealed cookie.
pub(crate) const KID: usize = 4;

type HmacSha256 = Hmac<Sha256>;

/// A secret of at least [`Key::MIN_LEN`] bytes. Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct Key {
    secret: Zeroizing<Vec<u8>>,
}

impl Key {
    /// Shortest secret accepted, in bytes.
    pub const MIN_LEN: usize = 32;

    /// A key from raw secret bytes (for example a 32+ character passphrase).
    pub fn from_bytes(secret: impl AsRef<[u8]>) -> Result<Self, SessionError> {
        let secret = secret.as_ref();
        if secret.len() < Self::MIN_LEN {
            return Err(SessionError::Config(format!(
                "a secret key must be at least {} bytes long, this one has {}",
                Self::MIN_LEN,
                secret.len()
            )));
        }
        Ok(Self {
            secret: Zeroizing::new(secret.to_vec()),
        })
    }

    /// A key from unpadded or padded URL-safe base64 (what [`Key::generate`] prints).
    pub fn from_base64(encoded: &str) -> Result<Self, SessionError> {
        let trimmed = encoded.trim().trim_end_matches('=');
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(trimmed)
                .map_err(|_| SessionError::Config("a secret key is not valid base64".into()))?,
        );
        Self::from_bytes(&*bytes)
    }

    /// A new random 64-byte key from the OS random number generator.
    pub fn generate() -> Result<Self, SessionError> {
        let mut bytes = Zeroizing::new(vec![0u8; 64]);
        fill_random(&mut bytes)?;
        Self::from_bytes(&*bytes)
    }

    /// The secret as URL-safe base64, to store it somewhere safe. Handle with care.
    pub fn expose_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(&*self.secret)
    }

    /// A sub-key for one purpose, so one secret can sign cookies and seal them independently.
    pub(crate) fn derive(&self, purpose: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut mac = mac_for(&self.secret);
        mac.update(b"session-core key derivation v1\0");
        mac.update(purpose);
        Zeroizing::new(mac.finalize().into_bytes().to_vec())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// An ordered list of keys: the first signs, every one verifies.
///
/// To rotate, put a new key first and keep the old ones after it until every cookie they
/// signed has expired: old cookies keep working and are re-signed with the new key on the
/// next commit that sends a cookie.
///
/// ```
/// use session_core::{Key, Keyring};
///
/// let old = Key::from_bytes("an old secret that is at least 32 bytes")?;
/// let new = Key::from_bytes("the new secret, also at least 32 bytes")?;
/// let keyring = Keyring::new(new).with_previous(old);
/// assert_eq!(keyring.len(), 2);
/// # Ok::<(), session_core::SessionError>(())
/// ```
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Key>,
    /// HMAC state already keyed with each signing key (cloned per use: no key setup per cookie).
    signing: Vec<HmacSha256>,
    sealing: Vec<SealKey>,
}

impl Keyring {
    /// A keyring with one key.
    pub fn new(newest: Key) -> Self {
        Self {
            signing: vec![mac_for(&newest.derive(b"cookie-signature"))],
            sealing: vec![SealKey::derive(&newest)],
            keys: vec![newest],
        }
    }

    /// Adds an older key that is still accepted but no longer used to sign.
    pub fn with_previous(mut self, key: Key) -> Self {
        self.signing.push(mac_for(&key.derive(b"cookie-signature")));
        self.sealing.push(SealKey::derive(&key));
        self.keys.push(key);
        self
    }

    /// A keyring from secrets, newest first.
    pub fn from_secrets<I, S>(secrets: I) -> Result<Self, SessionError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut keys = secrets.into_iter().map(Key::from_bytes);
        let first = keys
            .next()
            .ok_or_else(|| SessionError::Config("a keyring needs at least one key".into()))??;
        keys.try_fold(Self::new(first), |ring, key| Ok(ring.with_previous(key?)))
    }

    /// A random keyring for local development. Logs a warning: sessions signed with it do not
    /// survive a restart. Never use it in production; load a secret from your configuration.
    pub fn generate_for_development() -> Result<Self, SessionError> {
        tracing::warn!(
            "using a randomly generated session key: every session is lost when the process \
             restarts. Configure a secret of at least 32 bytes for anything but development."
        );
        Ok(Self::new(Key::generate()?))
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring has at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, newest first.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Sealing keys, newest first.
    pub(crate) fn sealing(&self) -> &[SealKey] {
        &self.sealing
    }

    /// Signs the concatenation of `message` with the newest key.
    pub(crate) fn sign(&self, message: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.signing[0].clone();
        for part in message {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The index of the key whose signature of the concatenation of `message` matches
    /// (0 = newest), comparing in constant time.
    pub(crate) fn verify(&self, message: &[&[u8]], tag: &[u8]) -> Option<usize> {
        self.signing.iter().position(|keyed| {
            let mut mac = keyed.clone();
            for part in message {
                mac.update(part);
            }
            mac.verify_slice(tag).is_ok()
        })
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({} keys, <redacted>)", self.keys.len())
    }
}

fn mac_for(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail; fall back to an empty-key MAC
    // rather than panicking if a future version of the crate changes that.
    <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()))
}

/// One key's sealing material.
#[derive(Clone)]
pub(crate) struct SealKey {
    pub(crate) kid: [u8; KID],
    pub(crate) cipher: Aes256GcmSiv,
}

impl SealKey {
    pub(crate) fn derive(key: &Key) -> Self {
        // Bound to the algorithm: a key is never used with two ciphers, and values sealed by
        // the earlier cipher carry another key id (they read as absent, a fresh session).
        let secret: Zeroizing<Vec<u8>> = key.derive(b"cookie-seal/aes-256-gcm-siv");
        let digest = Sha256::digest(&*secret);
        let mut kid = [0u8; KID];
        kid.copy_from_slice(&digest[..KID]);
        // A derived key is always 32 bytes; an empty-key cipher can never open anything.
        // The derived secret is an HMAC-SHA256 output (32 bytes), so this cannot fail.
        let cipher = Aes256GcmSiv::new_from_slice(&secret)
            .unwrap_or_else(|_| Aes256GcmSiv::new(&Default::default()));
        Self { kid, cipher }
    }
}

//! Secret keys and the keyring that signs session cookies, with rotation.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use sha2::Digest;

use crate::{SessionError, random::fill_random};

/// Bytes of a sealing key's id at the front of every sealed cookie.
pub(crate) const KID: usize = 4;

type HmacSha256 = Hmac<Sha256>;

/// The derivation purpose of the sealing key (bound to the cipher).
const SEAL_PURPOSE: &[u8] = b"cookie-seal/aes-256-gcm-siv";

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
            crate::b64::decode(trimmed.as_bytes())
                .ok_or_else(|| SessionError::Config("a secret key is not valid base64".into()))?,
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
        crate::b64::encode(&self.secret)
    }

    /// A short public identifier of this key: 8 hex digits, the key id at the front of every
    /// cookie sealed with it. Safe to log and to show (it is a hash of a derived key and tells
    /// nothing about the secret): during a rotation it says which key a deployment signs with.
    ///
    /// ```
    /// use session_kit_core::Key;
    ///
    /// let key = Key::from_bytes("a secret that is at least 32 bytes long")?;
    /// assert_eq!(key.id().len(), 8);
    /// assert_eq!(key.id(), key.clone().id());
    /// assert!(!format!("{key:?}").contains(&key.expose_base64()));
    /// # Ok::<(), session_kit_core::SessionError>(())
    /// ```
    pub fn id(&self) -> String {
        SealKey::kid_of(&self.derive(SEAL_PURPOSE))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A sub-key for one purpose, so one secret can sign cookies and seal them independently.
    pub(crate) fn derive(&self, purpose: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut mac = mac_for(&self.secret);
        // A constant of the cookie format, not the crate's name: changing it would invalidate
        // every cookie in every browser (the sealed-cookie compatibility test guards it).
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
/// use session_kit_core::{Key, Keyring};
///
/// let old = Key::from_bytes("an old secret that is at least 32 bytes")?;
/// let new = Key::from_bytes("the new secret, also at least 32 bytes")?;
/// let keyring = Keyring::new(new).with_previous(old);
/// assert_eq!(keyring.len(), 2);
/// # Ok::<(), session_kit_core::SessionError>(())
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

    /// A keyring from the environment, for key rotation without code: the newest secret in
    /// `var` (it signs), older ones still accepted in `{var}_1`, `{var}_2`, ... (read until
    /// the first missing one). To rotate: move the value of `SESSION_SECRET` to
    /// `SESSION_SECRET_1` (and `_1` to `_2`, ...), put a new secret in `SESSION_SECRET`, and
    /// deploy; drop the oldest once the sessions it signed have expired. Each secret needs at
    /// least 32 bytes. Errors name the variable, never its value.
    pub fn from_env(var: &str) -> Result<Self, SessionError> {
        Self::from_lookup(var, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables read by `lookup` (for tests, or another
    /// source of configuration).
    ///
    /// ```
    /// use session_kit_core::Keyring;
    ///
    /// let env = |name: &str| match name {
    ///     "SESSION_SECRET" => Some("the newest secret, at least 32 bytes long".to_owned()),
    ///     "SESSION_SECRET_1" => Some("the previous secret, at least 32 bytes long".to_owned()),
    ///     _ => None,
    /// };
    /// assert_eq!(Keyring::from_lookup("SESSION_SECRET", env)?.len(), 2);
    /// assert!(Keyring::from_lookup("MISSING", env).is_err());
    /// # Ok::<(), session_kit_core::SessionError>(())
    /// ```
    pub fn from_lookup(
        var: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SessionError> {
        let newest = lookup(var).ok_or_else(|| {
            SessionError::Config(format!(
                "environment variable {var} is not set: a secret of at least 32 bytes \
                 (older secrets still accepted in {var}_1, {var}_2, ...)"
            ))
        })?;
        let mut secrets = vec![newest];
        for n in 1.. {
            match lookup(&format!("{var}_{n}")) {
                Some(secret) => secrets.push(secret),
                None => break,
            }
        }
        secrets
            .iter()
            .enumerate()
            .map(|(n, secret)| {
                Key::from_bytes(secret.as_bytes()).map_err(|e| {
                    let name = if n == 0 {
                        var.to_owned()
                    } else {
                        format!("{var}_{n}")
                    };
                    SessionError::Config(format!("environment variable {name}: {e}"))
                })
            })
            .try_fold(None::<Self>, |ring, key| {
                let key = key?;
                Ok(Some(match ring {
                    None => Self::new(key),
                    Some(ring) => ring.with_previous(key),
                }))
            })?
            .ok_or_else(|| SessionError::Config(format!("environment variable {var} is empty")))
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
    pub(crate) cipher: crate::cipher::SealCipher,
}

impl SealKey {
    pub(crate) fn derive(key: &Key) -> Self {
        // Bound to the algorithm: a key is never used with two ciphers, and values sealed by
        // the earlier cipher carry another key id (they read as absent, a fresh session).
        let secret: Zeroizing<Vec<u8>> = key.derive(SEAL_PURPOSE);
        let kid = Self::kid_of(&secret);
        // The derived secret is an HMAC-SHA256 output: always 32 bytes. Were it not, an
        // all-zero key would be used, which opens nothing sealed under a real one.
        let bytes: Zeroizing<[u8; 32]> =
            Zeroizing::new(secret.as_slice().try_into().unwrap_or_default());
        let cipher = crate::cipher::SealCipher::new(&bytes);
        Self { kid, cipher }
    }

    /// The key id of a derived sealing secret: the first bytes of its SHA-256.
    fn kid_of(secret: &[u8]) -> [u8; KID] {
        let digest = Sha256::digest(secret);
        let mut kid = [0u8; KID];
        kid.copy_from_slice(&digest[..KID]);
        kid
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn keyrings_from_the_environment_are_newest_first_and_errors_keep_secrets() {
        const NEW: &str = "the newest secret, 32 bytes at the least";
        const OLD: &str = "the previous secret, 32 bytes at the least";
        let ring = Keyring::from_lookup(
            "S",
            env(&[
                ("S", NEW),
                ("S_1", OLD),
                ("S_3", "not read: S_2 is missing"),
            ]),
        )
        .unwrap();
        assert_eq!(ring.len(), 2);
        let signer = Keyring::from_secrets([NEW]).unwrap();
        assert_eq!(
            ring.keys()[0].expose_base64(),
            signer.keys()[0].expose_base64(),
            "the newest signs"
        );

        let short = Keyring::from_lookup("S", env(&[("S", NEW), ("S_1", "short-secret-xyz")]))
            .err()
            .unwrap()
            .to_string();
        assert!(
            short.contains("S_1") && !short.contains("short-secret-xyz"),
            "{short}"
        );
        let missing = Keyring::from_lookup("S", env(&[]))
            .err()
            .unwrap()
            .to_string();
        assert!(
            missing.contains("S is not set") && missing.contains("S_1"),
            "{missing}"
        );
    }
}

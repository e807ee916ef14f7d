//! The storage contract: the [`Driver`] trait and the helpers its implementations share
//! (argument and condition checks, key escaping). Public through [`crate::driver`].

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    BelowMinTtl, Capabilities, DriverError, LayerOptions,
    entry::{Entry, ListPage, PutOptions, Version, WriteMode},
};

/// The async key-value contract every storage backend implements.
///
/// Keys are UTF-8 strings and values are bytes; both round-trip byte-exact (no normalisation).
/// A driver implements `name`, `capabilities`, `get`, `put` and `delete`; `touch` and `list` are
/// optional (they answer [`DriverError::Unsupported`] by default) and `clear` is built from
/// `list` and `delete` unless the backend has something better.
///
/// Usable as `Arc<dyn Driver>`. A driver implements its backend's semantics only: what every
/// backend needs is written once as [layers](crate::layers) that the [`Registry`](crate::Registry)
/// and [`SessionStorage`](crate::SessionStorage) put around it. In particular the validate
/// layer checks arguments ([`check_key`], [`check_put`]) before a call reaches the driver, so
/// a driver sees only non-empty keys within `max_key_len`, values within `max_value_size`,
/// declared write modes, and TTLs at least the declared minimum (a driver used directly, not
/// through them, gets no such checks: wrap it with
/// [`Stack::standard`](crate::layers::Stack::standard)). [`check_condition`] evaluates a write
/// condition against the current version.
///
/// # Writing a driver: the contract
///
/// The `session-kit-conformance` crate checks every rule below against a running driver (and its
/// own tests prove each check against a driver that breaks exactly that rule): run it from
/// your crate's tests and its command line.
///
/// **Declare exactly what you do.** [`Capabilities`] are data the session layer and the suite
/// read. Anything not declared is refused with [`DriverError::Unsupported`] and writes
/// nothing; never answer an undeclared operation with success.
///
/// **Keys.** Any non-empty UTF-8 string up to `max_key_len` bytes, stored byte for byte: no
/// trimming, case folding, Unicode normalisation, `/` or `.` handling, URL decoding, cutting
/// at NUL or at some length, or hashing a prefix. An empty or too long key is
/// [`DriverError::InvalidKey`] (not retryable); a backend that cannot hold some characters
/// escapes them ([`escape_key`]) or refuses them with `InvalidKey`, never stores a different
/// key. `max_key_len` is what the backend holds for *any* key of that length, random and
/// incompressible ones included. Session keys are the namespace plus 64 hex digits: 72 bytes
/// under the default `session:`.
///
/// **Values.** Any bytes up to `max_value_size`, returned exactly (no trimming, re-encoding or
/// JSON normalisation); a larger one is [`DriverError::ValueTooLarge`]. A read sees a whole
/// value, old or new, never part of a write, and temporary objects never appear in listings.
///
/// **Versions.** Every successful `put` returns a new [`Version`] that this key has never had
/// and never will again, also after the key is deleted and written again (use a global
/// counter, a random token or an ETag of content that includes one, never a per-key counter
/// that restarts). `get` returns the version of the last write; `touch` keeps it.
///
/// **Conditions are atomic with the write.** [`WriteMode::CreateOnly`] writes only if the key
/// is absent ([`DriverError::AlreadyExists`] otherwise), [`WriteMode::UpdateOnly`] only if it
/// is present and [`WriteMode::IfVersion`] only if the stored version is that one
/// ([`DriverError::Conflict`] otherwise). Check and write in one backend operation (a
/// transaction, a script, a conditional request, or one lock held around both): a read, then a
/// write, lets two racing requests both succeed.
///
/// **Expiry.** `PutOptions::ttl` applies to every write mode, conditional ones included; a
/// write without a TTL leaves the key without expiry (clearing an old one). A key is readable
/// until its TTL has passed, never earlier (round TTLs up, never down, and never overflow:
/// 400-day TTLs are valid), and gone at most the declared `granularity` later. A TTL below the
/// declared minimum is rounded up or refused, as declared. **An expired entry is absent for
/// every operation**, whether or not the backend has removed it yet: `get` answers `None`,
/// create-only succeeds over it, update-only and compare-and-swap (with any version, its own
/// included) fail with `Conflict`, `touch` answers `false` and does not revive it, and `list`
/// leaves it out. `Entry::expires_at`, when reported, is the real deadline.
///
/// **Which clock.** Expiry is measured by the clock of whatever enforces it: the backend's
/// (Redis, a database, KV) or the application server's (a driver that stores the deadline
/// beside the value). Report `expires_at` on the application's clock. If the two clocks can
/// disagree, declare the bound in the granularity (keys may live that much longer) and make
/// sure skew can never make them expire earlier. The session layer keeps its own idle and
/// absolute deadlines in the record, so a key that outlives its deadline never loads as a
/// live session; a key that expires early loses one.
///
/// **Touch** sets the expiry to `ttl` from now (shorter or longer: it does not only extend),
/// without rewriting the value or changing the version, and answers `false` for a missing or
/// expired key. Declaring `touch` means `get` reports `expires_at`.
///
/// **Delete** is final and immediate for this driver's later reads: no cache, replica or
/// tombstone may bring the value back. Deleting a missing key succeeds.
///
/// **List** returns keys that *start with* the prefix, as raw bytes: never a substring, a
/// pattern (`LIKE` with `_` and `%`, globs with `*`, `?`, `[`) or a prefix cut at a separator.
/// Every page stays under the prefix; together the pages return each live key once (a backend
/// whose cursor walks a hash table, like Redis's `SCAN`, may repeat a key moved by a resize
/// during the listing: say so in the driver's docs). Memory per page stays bounded: never
/// collect the whole keyspace to answer one page. **Clear**
/// removes exactly what `list` of the same prefix returns and answers how many keys it
/// removed (entries that expire during the clear may be counted or not).
///
/// **Consistency.** [`Consistency::Strong`](crate::Consistency) means a read after a completed
/// write (or delete) sees it, from any process. Declare `Eventual` with the staleness bound
/// otherwise; the suite's read-after-write checks then need a test backend that is consistent
/// (for example a local emulator).
///
/// **Errors.** Map the backend's errors to the [`ErrorKind`](crate::ErrorKind) a caller can
/// act on: dropped connections and timeouts are retryable, bad configuration and corrupt data
/// are not. Credentials never appear in errors or `Debug`.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// A short name for reports and logs (`"memory"`, `"fs"`).
    fn name(&self) -> &str;

    /// What this driver supports (through its layers, if it has any).
    fn capabilities(&self) -> &Capabilities;

    /// What the backend supports by itself, beneath any [layers](crate::layers): the same as
    /// [`capabilities`](Self::capabilities) for a driver that is not layered. Layers forward
    /// it; a driver never overrides it.
    fn native_capabilities(&self) -> &Capabilities {
        self.capabilities()
    }

    /// The layers this driver wants by default (for example a timeout, or retries of a backend
    /// that throttles): the registry and [`SessionStorage`](crate::SessionStorage) add them,
    /// under what a config string asks for. None by default.
    fn layer_defaults(&self) -> LayerOptions {
        LayerOptions::default()
    }

    /// The [layers](crate::layers) this driver is wrapped in, outermost first (`"validate"`,
    /// `"trace"`, ...): empty for a driver that is not layered. Layers add their name; a
    /// driver never overrides it.
    fn layers(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Reads a key. A missing or expired key is `Ok(None)`.
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError>;

    /// Reads a key as the backend holds it now, bypassing any cache the driver keeps in this
    /// process (the same as [`get`](Self::get) unless it has one). The session layer calls it
    /// where a possibly stale read would be wrong rather than merely slower: after a
    /// compare-and-swap conflict, and when a request has just taken exclusive hold of its
    /// session ([`ConcurrentWrites::Exclusive`](crate::ConcurrentWrites::Exclusive)).
    async fn get_latest(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.get(key).await
    }

    /// Writes a key under the given condition and returns the new version.
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError>;

    /// Deletes a key; succeeds when the key is missing.
    async fn delete(&self, key: &str) -> Result<(), DriverError>;

    /// Sets a key's TTL to `ttl` from now without rewriting its value or changing its version.
    /// Returns `false` when the key is missing.
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        let _ = (key, ttl);
        Err(DriverError::unsupported("touch"))
    }

    /// Lists unexpired keys starting with `prefix` (a raw byte prefix), one page at a time.
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let _ = (prefix, cursor);
        Err(DriverError::unsupported("list"))
    }

    /// Removes entries that have expired but are still stored, and answers how many it
    /// removed. Backends that drop expired keys themselves (Redis, Cloudflare KV) answer 0; a
    /// driver that keeps the expiry beside the value implements it. Unsupported by default.
    /// Run it periodically from one process: the sweep layer does, with a `sweep_interval`
    /// option or a driver's [`layer_defaults`](Self::layer_defaults).
    async fn sweep(&self) -> Result<u64, DriverError> {
        Err(DriverError::unsupported("sweep"))
    }

    /// Deletes every key starting with `prefix` (a raw byte prefix, as in [`list`](Self::list))
    /// and returns how many it deleted.
    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        let mut cursor: Option<String> = None;
        let mut cleared = 0u64;
        loop {
            let page = self.list(prefix, cursor.as_deref()).await?;
            for key in &page.keys {
                self.delete(key).await?;
                cleared += 1;
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(cleared),
            }
        }
    }
}

/// Refuses an empty key or one longer than the declared maximum.
pub fn check_key(key: &str, caps: &Capabilities) -> Result<(), DriverError> {
    if key.is_empty() {
        return Err(DriverError::invalid_key("the key is empty"));
    }
    if key.len() > caps.max_key_len {
        return Err(DriverError::invalid_key(format!(
            "the key is {} bytes long, the limit is {}",
            key.len(),
            caps.max_key_len
        )));
    }
    Ok(())
}

/// Refuses a value larger than the declared maximum.
pub fn check_value(value: &[u8], caps: &Capabilities) -> Result<(), DriverError> {
    if value.len() > caps.max_value_size {
        return Err(DriverError::ValueTooLarge {
            size: value.len(),
            limit: caps.max_value_size,
        });
    }
    Ok(())
}

/// Checks a put's write condition against the key's current version (`None` when absent):
/// [`DriverError::AlreadyExists`] for create-only on a present key, [`DriverError::Conflict`]
/// for update-only on an absent key or a version mismatch.
pub fn check_condition(mode: &WriteMode, current: Option<&Version>) -> Result<(), DriverError> {
    match (mode, current) {
        (WriteMode::CreateOnly, Some(_)) => Err(DriverError::AlreadyExists),
        (WriteMode::UpdateOnly, None) => Err(DriverError::Conflict),
        (WriteMode::IfVersion(expected), found) if found != Some(expected) => {
            Err(DriverError::Conflict)
        }
        _ => Ok(()),
    }
}

/// Every argument check of a `put` in one call: [`check_key`], [`check_value`] and
/// [`effective_ttl`]; returns the TTL to apply.
pub fn check_put(
    key: &str,
    value: &[u8],
    options: &PutOptions,
    caps: &Capabilities,
) -> Result<Option<Duration>, DriverError> {
    check_key(key, caps)?;
    check_value(value, caps)?;
    effective_ttl(options, caps)
}

/// Checks a put's mode against the capabilities and returns the TTL to apply
/// (rounded up to the minimum where the driver declares so).
pub fn effective_ttl(
    options: &PutOptions,
    caps: &Capabilities,
) -> Result<Option<Duration>, DriverError> {
    let supported = match options.mode {
        WriteMode::Overwrite => true,
        WriteMode::CreateOnly => caps.create_only,
        WriteMode::UpdateOnly => caps.update_only,
        WriteMode::IfVersion(_) => caps.compare_and_swap,
    };
    if !supported {
        return Err(DriverError::unsupported(format!(
            "write mode {:?}",
            options.mode
        )));
    }
    let Some(ttl) = options.ttl else {
        return Ok(None);
    };
    let Some(support) = caps.ttl else {
        return Err(DriverError::unsupported("put with a TTL"));
    };
    if ttl < support.min {
        return match support.below_min {
            BelowMinTtl::RoundUp => Ok(Some(support.min)),
            BelowMinTtl::Reject => Err(DriverError::unsupported(format!(
                "a TTL of {ttl:?}, below the minimum of {:?}",
                support.min
            ))),
        };
    }
    Ok(Some(ttl))
}

/// Bytes that [`escape_key`] keeps as they are.
fn is_plain_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':')
}

/// Escapes a key into `[A-Za-z0-9_:-]` plus `=XX` (two upper-case hex digits per escaped byte),
/// for backends whose object names are restricted or normalised (object stores, URLs, paths).
///
/// The escaping is byte by byte, so it keeps prefixes: `escape_key(a + b)` is
/// `escape_key(a) + escape_key(b)`, and a raw prefix listing becomes a listing by the escaped
/// prefix. `/`, `.`, `%`, control characters and non-ASCII bytes are all escaped, so no key can
/// form a path segment such as `..`. At most three bytes per key byte; [`unescape_key`] inverts it.
///
/// ```
/// use session_kit_core::driver::{escape_key, unescape_key};
///
/// assert_eq!(escape_key("session:ab/../c"), "session:ab=2F=2E=2E=2Fc");
/// assert_eq!(unescape_key("session:ab=2F=2E=2E=2Fc").as_deref(), Some("session:ab/../c"));
/// assert_eq!(unescape_key("bad=4"), None);
/// ```
pub fn escape_key(key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        if is_plain_key_byte(b) {
            out.push(char::from(b));
        } else {
            out.push('=');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
    out
}

/// Inverts [`escape_key`]; `None` for a name it cannot have produced.
pub fn unescape_key(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'=' {
            let hex = escaped.get(i + 1..i + 3)?;
            if !hex
                .bytes()
                .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(&h))
            {
                return None;
            }
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if is_plain_key_byte(byte) {
                return None;
            }
            out.push(byte);
            i += 3;
        } else if is_plain_key_byte(b) {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// The smallest byte string greater than every key that starts with `prefix`, for a backend
/// that lists by key range in byte order (`key >= prefix AND key < bound`, never a pattern):
/// `None` when every key is under the prefix (an empty prefix). A prefix of UTF-8 always has
/// one (its last byte is below `0xFF`).
///
/// ```
/// use session_kit_core::driver::prefix_upper_bound;
///
/// assert_eq!(prefix_upper_bound(b"session:"), Some(b"session;".to_vec()));
/// assert_eq!(prefix_upper_bound(b"a\xff"), Some(b"b".to_vec()));
/// assert_eq!(prefix_upper_bound(b""), None);
/// ```
pub fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Checks a table, schema or similar name a driver puts into SQL: letters, digits and `_`,
/// not starting with a digit, at most `max_len` bytes; otherwise a
/// [`DriverError::Config`] naming `option`.
///
/// ```
/// use session_kit_core::driver::check_identifier;
///
/// assert!(check_identifier("table", "web_sessions", 48).is_ok());
/// assert!(check_identifier("table", "x; DROP TABLE y", 48).is_err());
/// ```
pub fn check_identifier(option: &str, name: &str, max_len: usize) -> Result<(), DriverError> {
    let plain = !name.is_empty()
        && name.len() <= max_len
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        Ok(())
    } else {
        Err(DriverError::config(format!(
            "option `{option}`: {name:?} is not a plain identifier \
             (letters, digits and _, not starting with a digit, at most {max_len} bytes)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_token_whatever_their_storage() {
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            assert_eq!(Version::from_u64(n).as_str(), n.to_string());
            assert_eq!(Version::from_u64_hex(n).as_str(), format!("{n:016x}"));
        }
        let long = "\"0123456789abcdef0123456789abcdef\"";
        assert_eq!(Version::new(long).as_str(), long);
        assert_eq!(Version::new("ünï").as_str(), "ünï");
        assert_eq!(Version::new(""), Version::new(String::new()));
        // Inline and shared tokens of the same text are the same version, and hash alike.
        let inline = Version::new("x".repeat(23));
        let shared = Version::new("x".repeat(24));
        assert_eq!(inline.as_str().len(), 23);
        assert_ne!(inline, shared);
        assert_eq!(Version::from_u64(42), Version::new("42"));
        let set: std::collections::HashSet<_> = [
            Version::from_u64(42),
            Version::new("42"),
            Version::new(long),
        ]
        .into();
        assert_eq!(set.len(), 2);
        assert_eq!(format!("{:?}", Version::from_u64(5)), "Version(5)");
    }

    #[test]
    fn escaped_keys_round_trip_and_keep_prefixes() {
        let keys = [
            "",
            "plain-key_1:2",
            "a/b",
            "..",
            "../x",
            "=41",
            "%2F",
            "spa ce",
            "\0nul\u{1}",
            "ünï🎉",
            "A",
        ];
        for key in keys {
            let escaped = escape_key(key);
            assert!(
                escaped
                    .bytes()
                    .all(|b| is_plain_key_byte(b) || b == b'=' || b.is_ascii_hexdigit()),
                "{escaped}"
            );
            assert_eq!(unescape_key(&escaped).as_deref(), Some(key));
            for other in keys {
                let joined = format!("{key}{other}");
                assert_eq!(escape_key(&joined), escaped.clone() + &escape_key(other));
            }
        }
        // Distinct keys never collide, including keys that look escaped.
        assert_ne!(escape_key("=41"), escape_key("A"));
    }

    #[test]
    fn unescape_refuses_foreign_names() {
        for name in ["a/b", "=", "=4", "=4G", "=41", "=2f", "=FF", "a b"] {
            assert_eq!(unescape_key(name), None, "{name}");
        }
    }
}

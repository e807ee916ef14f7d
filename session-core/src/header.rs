//! The value header of drivers whose backend keeps neither expiry nor versions.

use bytes::Bytes;

use crate::{DriverError, Version};

/// What a driver puts before each value on a backend that keeps neither expiry nor versions
/// (object stores, Workers KV): the expiry in Unix milliseconds (0 for none) and a random write
/// id, both big-endian, then the value.
///
/// The write id makes the bytes of every write unique, so a content hash such as an S3 ETag
/// changes with every write (no ABA in compare-and-swap), and it is the version where the
/// backend has none.
///
/// ```
/// use session_kit_core::driver::{ValueHeader, bytes::Bytes};
///
/// let header = ValueHeader::new(Some(1_700_000_000_000));
/// let stored = Bytes::from(header.wrap(b"data"));
/// let (read, value) = ValueHeader::split(&stored).unwrap();
/// assert_eq!((read, &value[..]), (header, &b"data"[..]));
/// assert!(read.expired(1_700_000_000_000) && !read.expired(1_699_999_999_999));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueHeader {
    /// When the value expires (Unix milliseconds), if ever.
    pub expires_at: Option<u64>,
    /// A random id of the write.
    pub write_id: u64,
}

impl ValueHeader {
    /// Bytes before the value.
    pub const LEN: usize = 16;

    /// A header for a new write, with a fresh random write id.
    pub fn new(expires_at: Option<u64>) -> Self {
        Self {
            expires_at,
            write_id: rand::random(),
        }
    }

    /// The header followed by `value`.
    pub fn wrap(&self, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN + value.len());
        out.extend_from_slice(&self.expires_at.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&self.write_id.to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    /// Reads the header from the first [`LEN`](Self::LEN) bytes of `raw` (a stored value, or
    /// just its first bytes from a range read).
    pub fn parse(raw: &[u8]) -> Result<Self, DriverError> {
        let field = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(raw.get(at..at + 8)?.try_into().ok()?))
        };
        match (field(0), field(8)) {
            (Some(expires_at), Some(write_id)) => Ok(Self {
                expires_at: Some(expires_at).filter(|&at| at != 0),
                write_id,
            }),
            _ => Err(DriverError::corrupt(
                "a stored value without this driver's header",
            )),
        }
    }

    /// Splits a stored value into its header and the value (sharing `raw`'s buffer).
    pub fn split(raw: &Bytes) -> Result<(Self, Bytes), DriverError> {
        let header = Self::parse(raw)?;
        Ok((header, raw.slice(Self::LEN..)))
    }

    /// Whether the value has expired at `now` (Unix milliseconds).
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The write id as a [`Version`].
    pub fn version(&self) -> Version {
        Version::from_u64_hex(self.write_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_empty_values() {
        let header = ValueHeader::new(None);
        let (read, value) = ValueHeader::split(&Bytes::from(header.wrap(b""))).unwrap();
        assert_eq!((read.expires_at, value.len()), (None, 0));
        assert!(!read.expired(u64::MAX));
        assert!(ValueHeader::parse(&[0; 15]).is_err());
        assert_ne!(
            ValueHeader::new(None).write_id,
            ValueHeader::new(None).write_id
        );
    }
}

//! How a value is stored: a 16-byte header (version, expiry) and the bytes.

use session_kit_core::driver::from_unix_millis;
use session_kit_core::{DriverError, Entry, Version, bytes::Bytes};

pub(crate) const HEADER: usize = 16;
/// The last byte of the version in a stored value (`GETRANGE` bounds are inclusive).
pub(crate) const HEADER_VERSION_END: usize = 7;

pub(crate) fn encode(version: u64, expires_at: Option<u64>, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + value.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&expires_at.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(value);
    out
}

pub(crate) fn version_token(version: [u8; 8]) -> Version {
    Version::from_u64_hex(u64::from_be_bytes(version))
}

/// Splits a stored value into its header fields and the value.
pub(crate) fn decode(raw: Vec<u8>) -> Result<Entry, DriverError> {
    let (Some(version), Some(expiry)) = (raw.get(..8), raw.get(8..HEADER)) else {
        return Err(DriverError::corrupt(
            "a Redis value without this driver's header",
        ));
    };
    let mut be = [0u8; 8];
    be.copy_from_slice(version);
    let version = u64::from_be_bytes(be);
    be.copy_from_slice(expiry);
    let expires_at = u64::from_be_bytes(be);
    Ok(Entry {
        version: version_token(version.to_be_bytes()),
        expires_at: (expires_at != 0).then(|| from_unix_millis(expires_at)),
        value: Bytes::from(raw).split_off(HEADER),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let blob = encode(7, Some(9), b"v");
        assert_eq!(&blob[..8], &7u64.to_be_bytes());
        assert_eq!(&blob[8..16], &9u64.to_be_bytes());
        assert_eq!(&blob[16..], b"v");
        assert_eq!(
            version_token(7u64.to_be_bytes()).as_str(),
            "0000000000000007"
        );
    }
}

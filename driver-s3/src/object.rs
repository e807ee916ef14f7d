//! An entry as an S3 object: a random nonce before the value in the body, the expiry in the
//! metadata, and a version made of the ETag and the expiry.

use session_kit_core::{DriverError, Version};

use crate::{EXPIRES_AT, NONCE};

/// An entry's version: its ETag (unique per write: every body starts with a random nonce),
/// and its expiry when it has one, so that a compare-and-swap on an entry that has expired
/// since it was read fails without a request (S3 would still match the ETag).
pub(crate) fn version(etag: &str, expires_at: Option<u64>) -> Version {
    match expires_at {
        Some(at) => Version::new(format!("{etag}@{at}")),
        None => Version::new(etag),
    }
}

/// The ETag and expiry of a [`version`] (ETags are quoted hex, never `@`).
pub(crate) fn parse_version(version: &Version) -> (&str, Option<u64>) {
    let token = version.as_str();
    match token.rsplit_once('@') {
        Some((etag, at)) => match at.parse() {
            Ok(at) => (etag, Some(at)),
            Err(_) => (token, None),
        },
        None => (token, None),
    }
}

/// What `HeadObject`/`GetObject` tell about an object.
pub(crate) struct Head {
    pub(crate) etag: String,
    pub(crate) expires_at: Option<u64>,
}

impl Head {
    pub(crate) fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

pub(crate) fn head_of(
    etag: Option<&str>,
    metadata: Option<&std::collections::HashMap<String, String>>,
) -> Result<Head, DriverError> {
    let etag = etag
        .ok_or_else(|| DriverError::permanent("S3 returned an object without an ETag", None))?
        .to_owned();
    let expires_at = match metadata.and_then(|m| m.get(EXPIRES_AT)) {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| DriverError::corrupt("an S3 object with an unreadable expiry"))?,
        ),
    };
    Ok(Head { etag, expires_at })
}

/// The object body: a random write nonce, then the value.
pub(crate) fn body(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(NONCE + value.len());
    out.extend_from_slice(&rand::random::<u64>().to_le_bytes());
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_carry_the_expiry() {
        let v = version("\"0a1b\"", Some(1_700_000_000_000));
        assert_eq!(parse_version(&v), ("\"0a1b\"", Some(1_700_000_000_000)));
        assert_eq!(
            parse_version(&version("\"0a1b\"", None)),
            ("\"0a1b\"", None)
        );
        // Not ours: the token is the ETag, matched by S3 (and most likely refused).
        assert_eq!(parse_version(&Version::new("x@y")), ("x@y", None));
    }
}

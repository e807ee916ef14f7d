//! Expiry policy and the stored session record.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The stored format written now: 2 has one-letter field names (`v`, `d`, `f`, `c`, `i`, `a`,
/// `l`); 1 spelled them out. Both are read; records of any other format load as a fresh session.
pub(crate) const FORMAT: u32 = 2;

/// Whether a record of this format can be read.
pub(crate) fn readable_format(format: u32) -> bool {
    format == 1 || format == FORMAT
}

/// How long a session lives: an idle (sliding) timeout and an absolute timeout.
///
/// `None` switches a timeout off. A session with neither gets a browser-session cookie and
/// no TTL in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifetime {
    /// The session ends this long after its last activity.
    #[serde(default, with = "opt_millis", rename = "idle_ms")]
    pub idle_timeout: Option<Duration>,
    /// The session ends this long after it was created (or renewed), whatever the activity.
    #[serde(default, with = "opt_millis", rename = "absolute_ms")]
    pub absolute_timeout: Option<Duration>,
}

impl Lifetime {
    /// A lifetime with the given timeouts.
    pub fn new(idle_timeout: Option<Duration>, absolute_timeout: Option<Duration>) -> Self {
        Self {
            idle_timeout,
            absolute_timeout,
        }
    }
}

/// The storage-wide expiry rules.
///
/// Defaults: idle timeout 24 hours, absolute timeout 7 days, sliding refresh at most once
/// per quarter of the idle timeout.
///
/// ```
/// use std::time::Duration;
/// use session_kit_core::ExpiryPolicy;
///
/// let policy = ExpiryPolicy::new()
///     .idle_timeout(Some(Duration::from_secs(30 * 60)))
///     .absolute_timeout(Some(Duration::from_secs(12 * 3600)))
///     .refresh_fraction(0.1);
/// assert_eq!(policy.lifetime().idle_timeout, Some(Duration::from_secs(1800)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpiryPolicy {
    lifetime: Lifetime,
    refresh_fraction: f64,
}

impl Default for ExpiryPolicy {
    fn default() -> Self {
        Self {
            lifetime: Lifetime::new(
                Some(Duration::from_secs(24 * 3600)),
                Some(Duration::from_secs(7 * 24 * 3600)),
            ),
            refresh_fraction: 0.25,
        }
    }
}

impl ExpiryPolicy {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the idle (sliding) timeout.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.lifetime.idle_timeout = timeout;
        self
    }

    /// Sets the absolute timeout.
    pub fn absolute_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.lifetime.absolute_timeout = timeout;
        self
    }

    /// A request extends the idle deadline only once this fraction of the idle timeout has
    /// passed since the last extension: a read-only request with a `touch`, a change with its
    /// write. Only an extension re-sends the cookie (its `Max-Age`): in between, a change to a
    /// stored session is written and the browser keeps the cookie it has, which names the same
    /// id and expires when the session does. A session thus ends between `1 - fraction` and
    /// all of the idle timeout after its last request. Clamped to `0.0..=1.0`; `0.0` extends
    /// (and re-sends the cookie) on every request that reads or changes the session.
    pub fn refresh_fraction(mut self, fraction: f64) -> Self {
        self.refresh_fraction = if fraction.is_nan() {
            0.25
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// The default lifetime of a session.
    pub fn lifetime(&self) -> Lifetime {
        self.lifetime
    }

    pub(crate) fn refresh_fraction_value(&self) -> f64 {
        self.refresh_fraction
    }
}

/// What the store holds for one session, serialised with `serde_json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// [`FORMAT`] when written; see [`readable_format`].
    #[serde(rename = "v", alias = "format")]
    pub format: u32,
    /// The session data, one entry per top-level key (the unit of concurrent merges).
    #[serde(rename = "d", alias = "data")]
    pub data: Map<String, Value>,
    /// Flash values not yet read.
    #[serde(
        rename = "f",
        alias = "flash",
        default,
        skip_serializing_if = "Map::is_empty"
    )]
    pub flash: Map<String, Value>,
    /// Unix milliseconds.
    #[serde(rename = "c", alias = "created_at")]
    pub created_at: u64,
    /// Unix milliseconds; drivers that can `touch` report a later one on `get`.
    #[serde(
        rename = "i",
        alias = "idle_deadline",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_deadline: Option<u64>,
    /// Unix milliseconds.
    #[serde(
        rename = "a",
        alias = "absolute_deadline",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub absolute_deadline: Option<u64>,
    /// A per-session lifetime ("remember me") replacing the policy's.
    #[serde(
        rename = "l",
        alias = "lifetime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub lifetime: Option<Lifetime>,
    /// The user the session is bound to, if any (see `Session::bind_user`).
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserBinding>,
}

/// The user a session is bound to, and the app's labels for the session (a device name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct UserBinding {
    /// The app's user id.
    pub id: String,
    /// Labels the app chose, shown when listing the user's sessions.
    #[serde(rename = "l", default, skip_serializing_if = "Map::is_empty")]
    pub labels: Map<String, Value>,
}

impl Record {
    /// A record without data or deadlines, to be overwritten.
    pub(crate) fn empty() -> Self {
        Self {
            format: FORMAT,
            data: Map::new(),
            flash: Map::new(),
            created_at: 0,
            idle_deadline: None,
            absolute_deadline: None,
            lifetime: None,
            user: None,
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let record: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if !readable_format(record.format) {
            return Err(format!("unknown record format {}", record.format));
        }
        Ok(record)
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

fn to_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `now + d` in Unix milliseconds, saturating.
pub(crate) fn after(now: u64, d: Duration) -> u64 {
    now.saturating_add(to_millis(d))
}

mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&super::to_millis(*d)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_checks_its_format() {
        let mut data = Map::new();
        data.insert("count".into(), Value::from(3));
        let r = Record {
            format: FORMAT,
            data,
            flash: Map::new(),
            created_at: 1,
            idle_deadline: Some(2),
            absolute_deadline: None,
            lifetime: Some(Lifetime::new(Some(Duration::from_secs(1)), None)),
            user: None,
        };
        let bytes = r.encode().unwrap();
        assert_eq!(Record::decode(&bytes).unwrap(), r);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("{\"v\":2,\"d\":{"), "{text}");
        let future = text.replace("\"v\":2", "\"v\":9");
        assert!(Record::decode(future.as_bytes()).is_err());
        // Format 1 (long field names) is still read.
        let v1 = br#"{"format":1,"data":{"count":3},"created_at":1,"idle_deadline":2,"lifetime":{"idle_ms":1000}}"#;
        let old = Record::decode(v1).unwrap();
        assert_eq!(
            (old.data, old.created_at, old.idle_deadline),
            (r.data.clone(), 1, Some(2))
        );
        assert_eq!(old.lifetime, r.lifetime);
        assert!(Record::decode(b"\xff\x00garbage").is_err());
        assert!(Record::decode(b"{}").is_err());
    }

    #[test]
    fn refresh_fraction_is_clamped() {
        assert_eq!(
            ExpiryPolicy::new()
                .refresh_fraction(7.0)
                .refresh_fraction_value(),
            1.0
        );
        assert_eq!(
            ExpiryPolicy::new()
                .refresh_fraction(-1.0)
                .refresh_fraction_value(),
            0.0
        );
        assert_eq!(
            ExpiryPolicy::new()
                .refresh_fraction(f64::NAN)
                .refresh_fraction_value(),
            0.25
        );
    }
}

//! What a driver can do, as data that users, the session layer and the conformance suite read,
//! and the layers it wants around it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::flexible;

/// The capabilities a [`Driver`](crate::Driver) declares.
///
/// Anything not declared is answered with [`DriverError::Unsupported`](crate::DriverError),
/// never silently ignored. Build one with [`Capabilities::new`] and the `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use session_kit_core::{Capabilities, Consistency, TtlSupport};
///
/// let caps = Capabilities::new(512, 1 << 20)
///     .with_ttl(TtlSupport::exact(Duration::from_millis(1)))
///     .with_create_only()
///     .with_compare_and_swap()
///     .with_list();
/// assert!(caps.compare_and_swap && !caps.touch);
/// assert_eq!(caps.consistency, Consistency::Strong);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// Native per-key expiry, if any. Without it, `put` with a TTL is refused.
    pub ttl: Option<TtlSupport>,
    /// `WriteMode::CreateOnly` is supported.
    pub create_only: bool,
    /// `WriteMode::UpdateOnly` is supported.
    pub update_only: bool,
    /// `WriteMode::IfVersion` (compare-and-swap) is supported. Without it the session layer
    /// is last-write-wins between concurrent requests.
    pub compare_and_swap: bool,
    /// `touch` extends a key's expiry without rewriting it, and `get` reports the new expiry.
    pub touch: bool,
    /// `list` and `clear` by prefix are supported.
    pub list: bool,
    /// Longest key accepted, in bytes (UTF-8).
    pub max_key_len: usize,
    /// Largest value accepted, in bytes.
    pub max_value_size: usize,
    /// Whether a read always sees the latest write.
    pub consistency: Consistency,
}

/// Native expiry support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TtlSupport {
    /// Shortest TTL the backend accepts.
    #[serde(serialize_with = "as_millis")]
    pub min: Duration,
    /// How late an expired key may still be readable: the backend's expiry resolution plus
    /// any skew between the clock that enforces expiry and the application's. A key is never
    /// gone before its TTL.
    #[serde(serialize_with = "as_millis")]
    pub granularity: Duration,
    /// What happens to a TTL below `min`.
    pub below_min: BelowMinTtl,
}

/// What a driver does with a TTL below its minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BelowMinTtl {
    /// The write is refused with `Unsupported`.
    Reject,
    /// The TTL is raised to the minimum.
    RoundUp,
}

/// Read-after-write guarantee of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Consistency {
    /// Every read sees the latest completed write.
    Strong,
    /// Reads may return older data for up to `max_staleness` (for example Cloudflare KV: 60 s).
    Eventual {
        /// Upper bound of staleness.
        #[serde(serialize_with = "as_millis")]
        max_staleness: Duration,
    },
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

impl TtlSupport {
    /// Exact expiry with the given granularity, any TTL of at least one millisecond.
    pub fn exact(granularity: Duration) -> Self {
        Self {
            min: Duration::from_millis(1),
            granularity,
            below_min: BelowMinTtl::RoundUp,
        }
    }

    /// Expiry with a minimum TTL and a policy for shorter ones.
    pub fn with_min(min: Duration, granularity: Duration, below_min: BelowMinTtl) -> Self {
        Self {
            min,
            granularity,
            below_min,
        }
    }
}

impl Capabilities {
    /// A driver that can get, put (overwrite), and delete, with the given limits.
    pub fn new(max_key_len: usize, max_value_size: usize) -> Self {
        Self {
            ttl: None,
            create_only: false,
            update_only: false,
            compare_and_swap: false,
            touch: false,
            list: false,
            max_key_len,
            max_value_size,
            consistency: Consistency::Strong,
        }
    }

    /// Declares native expiry.
    pub fn with_ttl(mut self, ttl: TtlSupport) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Declares `WriteMode::CreateOnly`.
    pub fn with_create_only(mut self) -> Self {
        self.create_only = true;
        self
    }

    /// Declares `WriteMode::UpdateOnly`.
    pub fn with_update_only(mut self) -> Self {
        self.update_only = true;
        self
    }

    /// Declares `WriteMode::IfVersion`.
    pub fn with_compare_and_swap(mut self) -> Self {
        self.compare_and_swap = true;
        self
    }

    /// Declares `touch`.
    pub fn with_touch(mut self) -> Self {
        self.touch = true;
        self
    }

    /// Declares `list` and `clear`.
    pub fn with_list(mut self) -> Self {
        self.list = true;
        self
    }

    /// Declares eventual consistency.
    pub fn with_eventual_consistency(mut self, max_staleness: Duration) -> Self {
        self.consistency = Consistency::Eventual { max_staleness };
        self
    }

    /// Concurrent session commits can lose updates on this driver (no compare-and-swap).
    pub fn last_write_wins(&self) -> bool {
        !self.compare_and_swap
    }
}

/// The layer options any driver config may carry, next to the driver's own (the registry
/// takes them out before the driver sees its options), and the defaults a driver asks for
/// ([`Driver::layer_defaults`](crate::Driver::layer_defaults)).
///
/// * `timeout`: a time limit per operation (`"2s"`, or milliseconds).
/// * `retries`: how many more times an idempotent operation is tried after a retryable error.
/// * `sweep_interval`: how often to delete expired entries in the background (`"10m"`; `0` or
///   absent: never). Run it from one process of a deployment.
///
/// A driver whose backend keeps no expiry also asks for expiry emulation here; that is not a
/// config option (it decides how values are stored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct LayerOptions {
    /// See `TimeoutLayer`.
    #[serde(default, deserialize_with = "flexible::opt_duration")]
    pub timeout: Option<Duration>,
    /// See `RetryLayer`.
    #[serde(default, deserialize_with = "opt_u32")]
    pub retries: Option<u32>,
    /// See `SweepLayer`. Zero means never.
    #[serde(default, deserialize_with = "flexible::opt_duration")]
    pub sweep_interval: Option<Duration>,
    /// See [`ExpiryLayer`](crate::layers::ExpiryLayer): asked for by a driver, never by a
    /// config.
    #[serde(skip)]
    pub emulate_expiry: bool,
    /// See [`CacheLayer`](crate::layers::CacheLayer): asked for by a driver that can say when
    /// its entries change, never by a config.
    #[serde(skip)]
    pub read_cache: Option<crate::read_cache::CacheLayer>,
}

impl LayerOptions {
    /// The option names that belong to layers.
    pub const NAMES: [&'static str; 3] = ["timeout", "retries", "sweep_interval"];

    /// No layer options.
    pub fn new() -> Self {
        Self::default()
    }

    /// A time limit per operation.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retries of idempotent operations.
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// Deletes expired entries every `interval` (zero: never).
    pub fn with_sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval);
        self
    }

    /// Sweeps every `interval`, if given.
    pub fn with_sweep_interval_opt(mut self, interval: Option<Duration>) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Expiry kept in a header before each value, for a backend without it.
    pub fn with_emulated_expiry(mut self) -> Self {
        self.emulate_expiry = true;
        self
    }

    /// A read cache kept correct by the driver's invalidations.
    pub fn with_read_cache(mut self, cache: crate::read_cache::CacheLayer) -> Self {
        self.read_cache = Some(cache);
        self
    }

    /// These options, each one missing taken from `defaults`.
    pub fn or(self, defaults: Self) -> Self {
        Self {
            timeout: self.timeout.or(defaults.timeout),
            retries: self.retries.or(defaults.retries),
            sweep_interval: self.sweep_interval.or(defaults.sweep_interval),
            emulate_expiry: self.emulate_expiry || defaults.emulate_expiry,
            read_cache: self.read_cache.or(defaults.read_cache),
        }
    }
}

fn opt_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match flexible::opt_u64(d)? {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{n} is too large"))),
    }
}

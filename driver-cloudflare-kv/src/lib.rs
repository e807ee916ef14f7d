//! Sessions in Cloudflare Workers KV, two ways in:
//!
//! * **REST API** (feature `rest`, default), for Rust servers anywhere:
//!   [`CloudflareKvDriver`] calls Cloudflare's v4 KV endpoints with an API token.
//!   Config string: `cloudflare-kv://ACCOUNT_ID/NAMESPACE_ID` (token in `api_token` or
//!   `CLOUDFLARE_API_TOKEN`), see [`CloudflareKvConfig`].
//! * **Workers binding** (feature `worker`), for Rust code running inside a Worker
//!   (`wasm32-unknown-unknown`, the `worker` crate): `WorkerKvDriver::new(env.kv("SESSIONS")?)`.
//!
//! Both store the same format, so a Worker and a server can share one namespace.
//!
//! # What KV can and cannot do, as declared in the capabilities
//!
//! * **TTL**: sent as `expiration_ttl`. KV's minimum is 60 seconds: shorter TTLs are rounded up
//!   to it ([`BelowMinTtl::RoundUp`](session_kit_core::BelowMinTtl)). The exact expiry is also kept
//!   in a [`ValueHeader`] before the value (expiry in Unix
//!   milliseconds and a random write id that serves as the version), and enforced on every read.
//! * **No create-only, no compare-and-swap, no touch**: KV has no conditional writes. Sessions
//!   on KV are last-write-wins between concurrent requests (in one process too, unless their
//!   commits overlap and are combined), and the conformance suite skips those checks with that
//!   reason. `ConcurrentWrites::Exclusive` runs a session's requests one at a time in each
//!   process, so that the requests one process serves keep every change (tested over HTTP, with
//!   KV cut off for a second under load, in the repository's `http-tests/tests/outage.rs`).
//! * **Eventual consistency**: a write may take up to 60 seconds to be seen in other locations.
//! * **Keys** are escaped with [`session_kit_core::driver::escape_key`] (KV keys are at most 512 bytes and
//!   travel in URL paths), so a key may be `170 - prefix length` bytes long.
//!
//! From a Rust server, apps usually name the namespace in a config string through session-kit
//! (feature `cloudflare-kv`): `session_kit::storage("cloudflare-kv://ACCOUNT_ID/NAMESPACE_ID")`
//! with the token in `CLOUDFLARE_API_TOKEN`. Built in code:
//!
//! ```no_run
//! # #[cfg(feature = "rest")]
//! # async fn app() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use session_kit_cloudflare_kv::{CloudflareKvConfig, CloudflareKvDriver};
//! use session_kit_core::{DynamicData, Keyring, SessionStorage};
//!
//! let mut config = CloudflareKvConfig::new("ACCOUNT_ID", "NAMESPACE_ID");
//! config.api_token = Some(std::env::var("CLOUDFLARE_API_TOKEN")?);
//! config.prefix = "app:".into();
//! let driver = CloudflareKvDriver::connect(config).await?;
//! let storage = SessionStorage::<DynamicData>::builder(Arc::new(driver))
//!     .keyring(Keyring::from_env("SESSION_SECRET")?)
//!     .build()?; // with the retry layer the driver asks for
//! # Ok(()) }
//! ```
//!
//! Inside a Worker, session-kit's guide has a complete example
//! ([Cloudflare Workers](https://docs.rs/session-kit/latest/session_kit/guide/cloudflare_workers/index.html)).
#![doc = include_str!("../docs.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "worker")]
mod binding;
#[cfg(feature = "rest")]
mod rest;

use std::{sync::Arc, time::Duration};

use session_kit_core::driver::{
    ValueHeader, deadline_after, escape_key, from_unix_millis, unescape_key, unix_millis,
};
use session_kit_core::{
    BelowMinTtl, Capabilities, Clock, Driver, DriverError, Entry, LayerOptions, ListPage,
    PutOptions, SystemClock, TtlSupport, Version, async_trait, bytes::Bytes,
};

#[cfg(feature = "worker")]
pub use binding::WorkerBinding;
#[cfg(feature = "rest")]
pub use rest::{CloudflareKvConfig, NAME, RestApi, SCHEMES, register};

/// The KV driver over the REST API.
#[cfg(feature = "rest")]
pub type CloudflareKvDriver = KvDriver<RestApi>;
/// The KV driver over a Workers binding.
#[cfg(feature = "worker")]
pub type WorkerKvDriver = KvDriver<WorkerBinding>;

/// KV's shortest TTL.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// Largest value accepted, in bytes (KV takes 25 MiB; sessions need far less).
pub const MAX_VALUE_SIZE: usize = 1024 * 1024;
/// How stale a KV read may be.
pub const MAX_STALENESS: Duration = Duration::from_secs(60);
/// Longest KV key, in bytes.
const MAX_KV_KEY: usize = 512;
/// Keys per listing page (KV's maximum).
const PAGE: u32 = 1000;

mod sealed {
    pub trait Sealed {}
}

/// One page of a KV listing: escaped names with their expiry (Unix seconds), and the cursor.
#[derive(Debug, Default)]
pub struct KvPage {
    /// Names with the expiry KV reports.
    pub keys: Vec<(String, Option<u64>)>,
    /// The next cursor, `None` on the last page.
    pub cursor: Option<String>,
}

/// How a [`KvDriver`] reaches KV: the REST API or a Workers binding. Sealed.
#[async_trait]
pub trait Transport: sealed::Sealed + Send + Sync + 'static {
    /// The raw stored bytes, `None` when missing.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, DriverError>;
    /// Writes raw bytes with an optional `expiration_ttl` in seconds.
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl_secs: Option<u64>,
    ) -> Result<(), DriverError>;
    /// Deletes a key (missing is fine).
    async fn delete(&self, key: &str) -> Result<(), DriverError>;
    /// One listing page.
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<KvPage, DriverError>;
    /// The layers the driver asks for (retries over the REST API; none in a Worker).
    fn layer_defaults(&self) -> LayerOptions {
        LayerOptions::new()
    }
}

/// A session driver over Workers KV through a [`Transport`]. See the crate documentation.
pub struct KvDriver<T> {
    transport: T,
    prefix: String,
    caps: Capabilities,
    /// The clock the exact expiry is set and checked by (KV deletes keys by its own).
    clock: Arc<dyn Clock>,
}

impl<T> std::fmt::Debug for KvDriver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvDriver")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> KvDriver<T> {
    /// Sets and checks the exact expiry by `clock` (the system clock by default; KV itself
    /// deletes keys by Cloudflare's clock, at least a second later).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn now(&self) -> u64 {
        unix_millis(self.clock.now())
    }

    /// A driver over `transport`, with `prefix` before every key.
    pub fn with_transport(transport: T, prefix: impl Into<String>) -> Result<Self, DriverError> {
        let prefix = prefix.into();
        let max_key_len = (MAX_KV_KEY / 3)
            .checked_sub(prefix.len())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                DriverError::config(format!(
                    "option `prefix`: {} bytes leaves no room in a {MAX_KV_KEY}-byte KV key",
                    prefix.len()
                ))
            })?;
        Ok(Self {
            transport,
            prefix,
            clock: Arc::new(SystemClock),
            caps: Capabilities::new(max_key_len, MAX_VALUE_SIZE)
                .with_ttl(TtlSupport::with_min(
                    MIN_TTL,
                    Duration::from_secs(1),
                    BelowMinTtl::RoundUp,
                ))
                .with_list()
                .with_eventual_consistency(MAX_STALENESS),
        })
    }

    /// The transport (for example to reach the REST client).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    fn kv_key(&self, key: &str) -> String {
        escape_key(&format!("{}{key}", self.prefix))
    }
}

#[async_trait]
impl<T: Transport> Driver for KvDriver<T> {
    fn layer_defaults(&self) -> LayerOptions {
        self.transport.layer_defaults()
    }

    fn name(&self) -> &str {
        "cloudflare-kv"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let Some(raw) = self.transport.get(&self.kv_key(key)).await? else {
            return Ok(None);
        };
        let (header, value) = ValueHeader::split(&raw)?;
        if header.expired(self.now()) {
            return Ok(None);
        }
        Ok(Some(Entry {
            value,
            version: header.version(),
            expires_at: header.expires_at.map(from_unix_millis),
        }))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        let ttl = options.ttl;
        let now = self.now();
        let expires_at = ttl.map(|ttl| deadline_after(self.clock.now(), ttl));
        let header = ValueHeader::new(expires_at);
        // KV counts whole seconds: round up, so KV never deletes before our own expiry.
        let ttl_secs = expires_at.map(|at| (at - now).div_ceil(1000));
        self.transport
            .put(&self.kv_key(key), header.wrap(&value), ttl_secs)
            .await?;
        Ok(header.version())
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.transport.delete(&self.kv_key(key)).await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let page = self.transport.list(&self.kv_key(prefix), cursor).await?;
        let now_secs = self.now() / 1000;
        let keys = page
            .keys
            .into_iter()
            .filter(|(_, expiration)| expiration.is_none_or(|at| at > now_secs))
            .filter_map(|(name, _)| {
                let key = unescape_key(&name)?;
                key.strip_prefix(&self.prefix).map(str::to_owned)
            })
            .collect();
        Ok(ListPage {
            keys,
            cursor: page.cursor,
        })
    }

    /// KV drops expired keys itself: nothing to do.
    async fn sweep(&self) -> Result<u64, DriverError> {
        Ok(0)
    }
}

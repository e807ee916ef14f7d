//! A session driver written the way a third-party crate writes one: only `session-kit-core`'s
//! public API, certified by `session-kit-conformance` from its own tests and command line.
//!
//! The store is an ordered map behind a mutex, so the file reads as a template: each
//! operation shows what the [`Driver`] contract asks of it (an expired entry is absent for
//! every operation, versions never reused, conditions checked atomically with the write,
//! listings paged by key). Argument checks are not here: the validate layer, which the registry
//! and `SessionStorage` apply, refuses empty or long keys, large values and undeclared modes
//! before a call reaches the driver, and rounds short TTLs up to the declared minimum.
//!
//! * `tests/conformance.rs` (a test target with `harness = false`) runs every check in
//!   `cargo test`.
//! * `examples/certify.rs` is the certification command with this driver registered:
//!   `cargo run -p session-example-driver --example certify -- --driver btree --json report.json`.
//!
//! ```
//! use std::sync::Arc;
//! use session_kit_core::{Driver, PutOptions, Registry, bytes::Bytes};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mut registry = Registry::new();
//! session_example_driver::register(&mut registry);
//! let driver = registry.open("btree://?page_size=10").await?;
//! driver.put("k", Bytes::from_static(b"v"), PutOptions::new()).await?;
//! assert_eq!(driver.get("k").await?.map(|e| e.value), Some(Bytes::from_static(b"v")));
//! # Ok::<(), session_kit_core::DriverError>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::{
    collections::BTreeMap,
    ops::Bound,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use serde::Deserialize;
use session_kit_core::driver::{check_condition, deadline_after, from_unix_millis, now_millis};
use session_kit_core::{
    Capabilities, Driver, DriverConfig, DriverError, Entry, ListPage, PutOptions, Registry,
    TtlSupport, Version, async_trait, bytes::Bytes,
};

/// The registry name (`"btree"`, `"btree://?page_size=100"`).
pub const NAME: &str = "btree";

/// Registers the driver under [`NAME`].
pub fn register(registry: &mut Registry) {
    registry.register(NAME, |config: DriverConfig| async move {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Options {
            #[serde(
                default,
                deserialize_with = "session_kit_core::driver::flexible::opt_u64"
            )]
            page_size: Option<u64>,
        }
        let options: Options = config.options()?;
        let mut driver = BTreeDriver::new();
        if let Some(size) = options.page_size {
            driver.page_size = usize::try_from(size)
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| DriverError::config("page_size must be at least 1"))?;
        }
        Ok(Arc::new(driver) as Arc<dyn Driver>)
    });
}

struct Stored {
    value: Bytes,
    version: u64,
    /// Unix milliseconds.
    expires_at: Option<u64>,
}

impl Stored {
    fn live(&self, now: u64) -> bool {
        // Expired from its deadline on: an expired entry is absent for every operation.
        self.expires_at.is_none_or(|at| now < at)
    }
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, Stored>,
    /// One counter for every key, never reset: a version is never reused for a key, also
    /// after it was deleted and written again.
    last_version: u64,
}

/// An in-process driver over an ordered map.
pub struct BTreeDriver {
    state: Mutex<State>,
    caps: Capabilities,
    page_size: usize,
}

impl Default for BTreeDriver {
    fn default() -> Self {
        Self::new()
    }
}

impl BTreeDriver {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            state: Mutex::default(),
            caps: Capabilities::new(1024, 4 << 20)
                .with_ttl(TtlSupport::exact(Duration::from_millis(1)))
                .with_create_only()
                .with_update_only()
                .with_compare_and_swap()
                .with_touch()
                .with_list(),
            page_size: 500,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the map half-written: every change is one insert or
        // remove.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Driver for BTreeDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let now = now_millis();
        Ok(self
            .state()
            .entries
            .get(key)
            .filter(|s| s.live(now))
            .map(|s| Entry {
                value: s.value.clone(),
                version: Version::from_u64(s.version),
                expires_at: s.expires_at.map(from_unix_millis),
            }))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        // Already checked by the validate layer: key, value size, declared mode; the TTL is
        // at least the declared minimum.
        let ttl = options.ttl;
        let now = now_millis();
        let mut state = self.state();
        // The condition is checked under the same lock as the write: atomic.
        let current = state
            .entries
            .get(key)
            .filter(|s| s.live(now))
            .map(|s| Version::from_u64(s.version));
        check_condition(&options.mode, current.as_ref())?;
        state.last_version += 1;
        let version = state.last_version;
        let stored = Stored {
            value,
            version,
            expires_at: ttl.map(|ttl| deadline_after(std::time::SystemTime::now(), ttl)),
        };
        state.entries.insert(key.to_owned(), stored);
        Ok(Version::from_u64(version))
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.state().entries.remove(key);
        Ok(())
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        let now = now_millis();
        let ttl = ttl.max(Duration::from_millis(1));
        let mut state = self.state();
        match state.entries.get_mut(key).filter(|s| s.live(now)) {
            // Shorter or longer: touch sets the expiry, it does not only extend it.
            Some(stored) => {
                stored.expires_at = Some(deadline_after(std::time::SystemTime::now(), ttl));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let now = now_millis();
        let state = self.state();
        // The cursor is the last key returned: the next page starts after it, still under the
        // prefix (a raw byte prefix, never a pattern).
        let start = match cursor {
            Some(after) if after.starts_with(prefix) => Bound::Excluded(after.to_owned()),
            Some(_) => {
                return Err(DriverError::invalid_key(
                    "the cursor is not under the prefix",
                ));
            }
            None => Bound::Included(prefix.to_owned()),
        };
        let mut keys = Vec::new();
        let mut more = false;
        for (key, stored) in state.entries.range((start, Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            if !stored.live(now) {
                continue;
            }
            if keys.len() == self.page_size {
                more = true;
                break;
            }
            keys.push(key.clone());
        }
        let cursor = more.then(|| keys.last().cloned()).flatten();
        Ok(ListPage { keys, cursor })
    }

    async fn sweep(&self) -> Result<u64, DriverError> {
        let now = now_millis();
        let mut state = self.state();
        let before = state.entries.len();
        state.entries.retain(|_, stored| stored.live(now));
        Ok((before - state.entries.len()) as u64)
    }
}

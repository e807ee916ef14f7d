//! Behaviour every backend needs, written once: layers that wrap a [`Driver`].
//!
//! A driver implements its backend's semantics; a [`Layer`] wraps any driver in one
//! cross-cutting behaviour, and a [`Stack`] applies several in order. The [`Registry`]
//! applies the standard stack to every driver it opens, and
//! [`SessionStorage`](crate::SessionStorage) validates every driver it is given that is not
//! validated yet, so a driver built in code is checked too.
//!
//! | layer | what it does | applied |
//! |---|---|---|
//! | [`ValidateLayer`] | argument checks: keys, value sizes, declared modes, TTL minimum | always |
//! | [`TraceLayer`] | a `tracing` span per operation: driver, operation, outcome, latency | always |
//! | `TimeoutLayer` | a time limit per operation (feature `tokio`) | `timeout` option |
//! | `RetryLayer` | retries of idempotent operations, full-jitter backoff (feature `tokio`) | `retries` option |
//! | [`ExpiryLayer`] | per-key expiry in a header before each value, for backends without it | asked for by the driver |
//! | `SweepLayer` | deletes expired entries in the background (feature `tokio`) | `sweep_interval` option |
//! | [`CacheLayer`] | a process-local read cache kept correct by the driver's [`Invalidations`] | asked for by the driver |
//! | [`PrefixLayer`] | a key prefix | in code |
//! | [`MigrateFromLayer`] | reads fall back to an old store and move what they find | `SessionStorageBuilder::migrate_from` |
//! | [`CountingDriver`] | counts calls (tests, cost checks) | in code |
//!
//! A layered driver tells what wraps it ([`Driver::layers`], outermost first) and what its
//! backend supports by itself ([`Driver::native_capabilities`]); the conformance report shows
//! both.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use session_kit_core::{Driver, layers::{PrefixLayer, Stack}};
//! use session_kit_memory::MemoryDriver;
//!
//! let driver = Stack::standard()
//!     .layer(PrefixLayer::new("app-a/"))
//!     .apply(Arc::new(MemoryDriver::new()));
//! assert_eq!(driver.layers(), ["prefix", "trace", "validate"]);
//! ```
//!
//! [`Registry`]: crate::Registry

/// The methods every layer forwards the same way: the driver's name, what the backend
/// supports by itself, the layers it asks for, and the layer list with this layer's name in
/// front.
macro_rules! forward_identity {
    ($layer:literal) => {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn native_capabilities(&self) -> &$crate::Capabilities {
            self.inner.native_capabilities()
        }
        fn layers(&self) -> Vec<&'static str> {
            let mut layers = vec![$layer];
            layers.extend(self.inner.layers());
            layers
        }
        fn layer_defaults(&self) -> $crate::LayerOptions {
            self.inner.layer_defaults()
        }
    };
}

/// Every data method forwarded unchanged, handing the inner driver's future on (no future or
/// allocation of the layer's own): for layers that only add something beside the calls, such
/// as a background task (the sweep layer), and for `Arc<D>` (`forward_calls!(deref)`).
macro_rules! forward_calls {
    () => {
        forward_calls!(@via [.inner]);
    };
    (deref) => {
        forward_calls!(@via [.as_ref()]);
    };
    (@via [$($via:tt)*]) => {
        fn get<'a, 'b, 'c>(
            &'a self,
            key: &'b str,
        ) -> $crate::layers::Call<'c, Option<$crate::Entry>>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            self $($via)*.get(key)
        }
        fn get_latest<'a, 'b, 'c>(
            &'a self,
            key: &'b str,
        ) -> $crate::layers::Call<'c, Option<$crate::Entry>>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            self $($via)*.get_latest(key)
        }
        fn put<'a, 'b, 'c>(
            &'a self,
            key: &'b str,
            value: bytes::Bytes,
            options: $crate::PutOptions,
        ) -> $crate::layers::Call<'c, $crate::Version>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            self $($via)*.put(key, value, options)
        }
        fn delete<'a, 'b, 'c>(&'a self, key: &'b str) -> $crate::layers::Call<'c, ()>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            self $($via)*.delete(key)
        }
        fn touch<'a, 'b, 'c>(
            &'a self,
            key: &'b str,
            ttl: std::time::Duration,
        ) -> $crate::layers::Call<'c, bool>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            self $($via)*.touch(key, ttl)
        }
        fn list<'a, 'b, 'd, 'c>(
            &'a self,
            prefix: &'b str,
            cursor: Option<&'d str>,
        ) -> $crate::layers::Call<'c, $crate::ListPage>
        where
            'a: 'c,
            'b: 'c,
            'd: 'c,
            Self: 'c,
        {
            self $($via)*.list(prefix, cursor)
        }
        fn clear<'a, 'b, 'c>(&'a self, prefix: &'b str) -> $crate::layers::Call<'c, u64>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            self $($via)*.clear(prefix)
        }
        fn sweep<'a, 'c>(&'a self) -> $crate::layers::Call<'c, u64>
        where
            'a: 'c,
            Self: 'c,
        {
            self $($via)*.sweep()
        }
    };
}

// Hands the shared driver's future on: with `async fn` here, every call through a layer's
// `Arc<dyn Driver>` boxed one more future.
#[async_trait::async_trait]
impl<D: Driver + ?Sized> Driver for Arc<D> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn capabilities(&self) -> &crate::Capabilities {
        (**self).capabilities()
    }
    fn native_capabilities(&self) -> &crate::Capabilities {
        (**self).native_capabilities()
    }
    fn layers(&self) -> Vec<&'static str> {
        (**self).layers()
    }
    fn layer_defaults(&self) -> LayerOptions {
        (**self).layer_defaults()
    }
    forward_calls!(deref);
}

mod cache;
mod counting;
mod expiry;
mod migrate;
mod prefix;
#[cfg(feature = "tokio")]
mod retry;
#[cfg(feature = "tokio")]
mod sweep;
#[cfg(feature = "tokio")]
mod timeout;
mod trace;
mod validate;

use std::{fmt, future::Future, pin::Pin, sync::Arc};

pub use counting::{CallCounts, CountingDriver};
pub use expiry::ExpiryLayer;
pub use migrate::MigrateFromLayer;
pub use prefix::PrefixLayer;
#[cfg(feature = "tokio")]
pub use retry::RetryLayer;
#[cfg(feature = "tokio")]
pub use sweep::SweepLayer;
#[cfg(feature = "tokio")]
pub use timeout::TimeoutLayer;
pub use trace::TraceLayer;
pub use validate::ValidateLayer;

pub use crate::capabilities::LayerOptions;
pub use crate::read_cache::{CacheLayer, Invalidations, MAX_ENTRY, ReadCache};
use crate::{Driver, DriverError};

/// What a [`Driver`] method returns under `async_trait`: layers on the hot path implement
/// those methods without `async` and hand the inner driver's future on, so that they cost no
/// future (and no allocation) of their own.
pub(crate) type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, DriverError>> + Send + 'a>>;

/// A call refused before it reached the driver.
pub(crate) fn refused<'a, T: Send + 'a>(error: DriverError) -> Call<'a, T> {
    Box::pin(std::future::ready(Err(error)))
}

/// Wraps a driver in one behaviour.
pub trait Layer: Send + Sync + 'static {
    /// Wraps `inner`.
    fn layer(&self, inner: Arc<dyn Driver>) -> Arc<dyn Driver>;
}

/// Layers applied in order: the first added wraps the driver, each next one wraps the result.
#[derive(Clone, Default)]
pub struct Stack {
    layers: Vec<Arc<dyn Layer>>,
}

impl Stack {
    /// No layers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stack every driver gets: [`ValidateLayer`], then [`TraceLayer`] around it.
    pub fn standard() -> Self {
        Self::new().layer(ValidateLayer).layer(TraceLayer)
    }

    /// The standard stack with the layers `options` ask for beneath it, from the driver out:
    /// a `TimeoutLayer` per attempt, a `RetryLayer` around it, the [`ExpiryLayer`], the
    /// [`CacheLayer`], and a `SweepLayer` (timeout, retry and sweep need the `tokio` feature; a zero
    /// `sweep_interval` sweeps never).
    pub fn from_options(options: &LayerOptions) -> Result<Self, DriverError> {
        let sweep = options.sweep_interval.filter(|i| !i.is_zero());
        let mut stack = Self::new();
        #[cfg(feature = "tokio")]
        {
            if let Some(limit) = options.timeout {
                stack = stack.layer(TimeoutLayer::new(limit));
            }
            if let Some(retries) = options.retries {
                stack = stack.layer(RetryLayer::new(retries));
            }
        }
        #[cfg(not(feature = "tokio"))]
        if options.timeout.is_some() || options.retries.is_some() || sweep.is_some() {
            return Err(DriverError::config(
                "the `timeout`, `retries` and `sweep_interval` options need session-kit-core's \
                 `tokio` feature",
            ));
        }
        if options.emulate_expiry {
            stack = stack.layer(ExpiryLayer::new());
        }
        if let Some(cache) = &options.read_cache {
            stack = stack.layer(cache.clone());
        }
        #[cfg(feature = "tokio")]
        if let Some(interval) = sweep {
            stack = stack.layer(SweepLayer::new(interval));
        }
        Ok(stack.layer(ValidateLayer).layer(TraceLayer))
    }

    /// Adds `layer` around what the stack builds so far.
    pub fn layer(mut self, layer: impl Layer) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }

    /// Wraps `driver` in every layer.
    pub fn apply(&self, driver: Arc<dyn Driver>) -> Arc<dyn Driver> {
        self.layers
            .iter()
            .fold(driver, |inner, layer| layer.layer(inner))
    }
}

/// `driver` as users get it: in the standard stack with the layers it asks for
/// ([`Driver::layer_defaults`]), unless it is layered already (opened through a registry, or
/// wrapped in [`ValidateLayer`] in code). [`SessionStorage`](crate::SessionStorage) and the
/// conformance suite call it on every driver they are given; call it to use a driver directly.
///
/// Defaults that need the `tokio` feature when it is off are logged and left out; expiry
/// emulation, the read cache and validation always apply. To build a stack of your own around
/// a driver, start from `Stack::from_options(&driver.layer_defaults())`.
pub fn with_defaults(driver: Arc<dyn Driver>) -> Arc<dyn Driver> {
    if driver.layers().contains(&"validate") {
        return driver;
    }
    let defaults = driver.layer_defaults();
    let stack = Stack::from_options(&defaults).unwrap_or_else(|e| {
        tracing::warn!(
            driver = driver.name(),
            error = %e,
            "some of the driver's default layers are not applied"
        );
        let mut bare = LayerOptions::new();
        bare.emulate_expiry = defaults.emulate_expiry;
        bare.read_cache = defaults.read_cache.clone();
        Stack::from_options(&bare).unwrap_or_else(|_| Stack::standard())
    });
    stack.apply(driver)
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("layers", &self.layers.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;
    use crate::{Capabilities, testing::Recorder};

    #[test]
    fn a_stack_applies_its_layers_inside_out() {
        let recorder: Arc<dyn Driver> = Arc::new(Recorder::new(Capabilities::new(10, 10)));
        let driver = Stack::standard()
            .layer(PrefixLayer::new("p/"))
            .apply(recorder);
        assert_eq!(driver.layers(), ["prefix", "trace", "validate"]);
        assert_eq!(driver.capabilities().max_key_len, 8);
        assert_eq!(driver.native_capabilities().max_key_len, 10);
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn options_add_timeout_and_retry_beneath_the_standard_layers() {
        let options = LayerOptions::new()
            .with_timeout(Duration::from_secs(2))
            .with_retries(3);
        let recorder: Arc<dyn Driver> = Arc::new(Recorder::new(Capabilities::new(10, 10)));
        let driver = Stack::from_options(&options).unwrap().apply(recorder);
        assert_eq!(driver.layers(), ["trace", "validate", "retry", "timeout"]);
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn expiry_and_sweeping_sit_between_retries_and_validation() {
        let options = LayerOptions::new()
            .with_emulated_expiry()
            .with_retries(1)
            .with_sweep_interval(Duration::from_secs(60));
        let recorder: Arc<dyn Driver> = Arc::new(Recorder::new(Capabilities::new(10, 100)));
        let driver = Stack::from_options(&options).unwrap().apply(recorder);
        assert_eq!(
            driver.layers(),
            ["trace", "validate", "sweep", "expiry", "retry"]
        );
        let never = LayerOptions::new().with_sweep_interval(Duration::ZERO);
        let recorder: Arc<dyn Driver> = Arc::new(Recorder::new(Capabilities::new(10, 100)));
        let driver = Stack::from_options(&never).unwrap().apply(recorder);
        assert_eq!(driver.layers(), ["trace", "validate"]);
    }
}

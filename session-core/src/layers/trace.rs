//! A `tracing` span per driver operation, written once.

use std::{future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use tracing::Instrument;

use super::Layer;
use crate::{Capabilities, Driver, DriverError, Entry, ListPage, PutOptions, Version};

/// Runs every operation in a `session.driver` span (debug level) with the driver's name and the
/// operation, and ends it with an event that gives the outcome (`ok`, or the error kind and
/// whether it is retryable) and the latency in microseconds. Keys, values and versions are
/// never recorded: keys are derived from session ids.
///
/// When no subscriber listens at debug level, it costs a check per operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl Layer for TraceLayer {
    fn layer(&self, inner: Arc<dyn Driver>) -> Arc<dyn Driver> {
        Arc::new(Traced { inner })
    }
}

struct Traced {
    inner: Arc<dyn Driver>,
}

impl Traced {
    async fn traced<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, DriverError>>,
    ) -> Result<T, DriverError> {
        let span = tracing::debug_span!("session.driver", driver = self.inner.name(), operation);
        if span.is_disabled() {
            return call.await;
        }
        let started = Started::now();
        let result = call.instrument(span.clone()).await;
        let latency_us = started.elapsed().as_micros() as u64;
        span.in_scope(|| match &result {
            Ok(_) => tracing::debug!(outcome = "ok", latency_us),
            Err(e) => tracing::debug!(
                outcome = ?e.kind(),
                retryable = e.is_retryable(),
                latency_us,
                error = %e
            ),
        });
        result
    }
}

/// `Instant` where the platform has one (not in a Cloudflare Worker, where time only moves
/// across I/O anyway).
#[cfg(not(target_arch = "wasm32"))]
struct Started(std::time::Instant);

#[cfg(not(target_arch = "wasm32"))]
impl Started {
    fn now() -> Self {
        Self(std::time::Instant::now())
    }
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

#[cfg(target_arch = "wasm32")]
struct Started(u64);

#[cfg(target_arch = "wasm32")]
impl Started {
    fn now() -> Self {
        Self(crate::now_millis())
    }
    fn elapsed(&self) -> Duration {
        Duration::from_millis(crate::now_millis().saturating_sub(self.0))
    }
}

#[async_trait]
impl Driver for Traced {
    forward_identity!("trace");
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.traced("get", self.inner.get(key)).await
    }
    async fn get_latest(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.traced("get_latest", self.inner.get_latest(key)).await
    }
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        self.traced("put", self.inner.put(key, value, options))
            .await
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.traced("delete", self.inner.delete(key)).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        self.traced("touch", self.inner.touch(key, ttl)).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        self.traced("list", self.inner.list(prefix, cursor)).await
    }
    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        self.traced("clear", self.inner.clear(prefix)).await
    }
    async fn sweep(&self) -> Result<u64, DriverError> {
        self.traced("sweep", self.inner.sweep()).await
    }
}

//! A time limit on every driver operation, written once.

use std::{future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;

use super::Layer;
use crate::{Capabilities, Driver, DriverError, Entry, ListPage, PutOptions, Version};

/// Bounds every operation (except `clear`, which may touch any number of keys) by `limit`: a
/// backend that does not answer in time gives a retryable
/// [`DriverError::Unavailable`](crate::DriverError) ("timed out") instead of a request that
/// hangs. A conditional write that times out may or may not have been applied; the session
/// layer reads again before it writes again.
///
/// The registry applies it when a config has a `timeout` option (`"redis://host?timeout=2s"`).
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    limit: Duration,
}

impl TimeoutLayer {
    /// Operations fail after `limit`.
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl Layer for TimeoutLayer {
    fn layer(&self, inner: Arc<dyn Driver>) -> Arc<dyn Driver> {
        Arc::new(TimedOut {
            inner,
            limit: self.limit,
        })
    }
}

struct TimedOut {
    inner: Arc<dyn Driver>,
    limit: Duration,
}

impl TimedOut {
    async fn bounded<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, DriverError>>,
    ) -> Result<T, DriverError> {
        match tokio::time::timeout(self.limit, call).await {
            Ok(result) => result,
            Err(_) => Err(DriverError::timeout(
                &format!("{} {operation}", self.inner.name()),
                self.limit,
            )),
        }
    }
}

#[async_trait]
impl Driver for TimedOut {
    forward_identity!("timeout");
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.bounded("get", self.inner.get(key)).await
    }
    async fn get_latest(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.bounded("get", self.inner.get_latest(key)).await
    }
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        self.bounded("put", self.inner.put(key, value, options))
            .await
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.bounded("delete", self.inner.delete(key)).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        self.bounded("touch", self.inner.touch(key, ttl)).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        self.bounded("list", self.inner.list(prefix, cursor)).await
    }
    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        self.inner.clear(prefix).await
    }
    async fn sweep(&self) -> Result<u64, DriverError> {
        self.inner.sweep().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testing::Recorder;

    #[tokio::test]
    async fn a_slow_backend_times_out_retryably() {
        let recorder = Arc::new(Recorder::new(Capabilities::new(100, 100)));
        let driver = TimeoutLayer::new(Duration::from_millis(50)).layer(recorder.clone());
        assert!(driver.get("k").await.unwrap().is_none());
        recorder.set_delay(Duration::from_secs(5));
        let err = driver.get("k").await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(
            err.to_string(),
            "backend unavailable: recorder get timed out after 50ms"
        );
    }
}

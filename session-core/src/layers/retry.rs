//! Retries of idempotent operations, written once.

use std::{future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;

use super::Layer;
use crate::{Capabilities, Driver, DriverError, Entry, ListPage, PutOptions, Version, WriteMode};

/// Tries an operation again when it fails with a retryable error (a dropped connection, a
/// timeout, a throttled request), after a full-jitter exponential backoff, up to `retries`
/// more times. A backend's `Retry-After` ([`DriverError::retry_after`]) is honoured: the
/// wait is at least that long, and a wait longer than the backoff's maximum is not made (the
/// error goes back to the caller at once).
///
/// Only idempotent operations are repeated: `get`, `delete`, `touch`, `list`, `clear` and
/// overwriting `put`s. A conditional write (create-only, update-only, compare-and-swap) is
/// never sent twice: if the first attempt was applied but its answer lost, a second would fail
/// its condition against the first and report a conflict that did not happen. The session
/// layer handles conditional failures itself (it reloads and runs the request's operations
/// again).
///
/// The registry applies it when a config has a `retries` option (`"s3://b?retries=3"`).
#[derive(Debug, Clone, Copy)]
pub struct RetryLayer {
    retries: u32,
    base: Duration,
    max: Duration,
}

impl RetryLayer {
    /// Up to `retries` more attempts, waiting a random time up to 25 ms, 50 ms, 100 ms, ...
    /// (at most 1 s) before each.
    pub fn new(retries: u32) -> Self {
        Self {
            retries,
            base: Duration::from_millis(25),
            max: Duration::from_secs(1),
        }
    }

    /// Sets the backoff: the first wait is up to `base`, each next one up to twice the last,
    /// never over `max`.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base = base;
        self.max = max;
        self
    }
}

impl Layer for RetryLayer {
    fn layer(&self, inner: Arc<dyn Driver>) -> Arc<dyn Driver> {
        Arc::new(Retried {
            inner,
            policy: *self,
        })
    }
}

struct Retried {
    inner: Arc<dyn Driver>,
    policy: RetryLayer,
}

impl Retried {
    async fn retried<T, F, Fut>(&self, operation: &'static str, call: F) -> Result<T, DriverError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, DriverError>>,
    {
        let mut attempt = 0u32;
        loop {
            match call().await {
                // A backend that asks for a longer wait than this layer would ever make is
                // answered at once: the caller can pass the wait on (a 503's `Retry-After`).
                Err(e)
                    if e.is_retryable()
                        && attempt < self.policy.retries
                        && e.retry_after().is_none_or(|asked| asked <= self.policy.max) =>
                {
                    attempt += 1;
                    let window = self
                        .policy
                        .base
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(self.policy.max);
                    let wait = window
                        .mul_f64(rand::random::<f64>())
                        .max(e.retry_after().unwrap_or_default());
                    crate::metrics::store_retry(self.inner.name(), operation);
                    tracing::debug!(
                        driver = self.inner.name(),
                        operation,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %e,
                        "retrying a driver operation"
                    );
                    tokio::time::sleep(wait).await;
                }
                result => return result,
            }
        }
    }
}

#[async_trait]
impl Driver for Retried {
    forward_identity!("retry");
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.retried("get", || self.inner.get(key)).await
    }
    async fn get_latest(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.retried("get", || self.inner.get_latest(key)).await
    }
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        if options.mode != WriteMode::Overwrite {
            return self.inner.put(key, value, options).await;
        }
        self.retried("put", || {
            self.inner.put(key, value.clone(), options.clone())
        })
        .await
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.retried("delete", || self.inner.delete(key)).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        self.retried("touch", || self.inner.touch(key, ttl)).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        self.retried("list", || self.inner.list(prefix, cursor))
            .await
    }
    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        self.retried("clear", || self.inner.clear(prefix)).await
    }
    async fn sweep(&self) -> Result<u64, DriverError> {
        self.retried("sweep", || self.inner.sweep()).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{ErrorKind, testing::Recorder};

    fn flaky() -> (Arc<Recorder>, Arc<dyn Driver>) {
        let recorder = Arc::new(Recorder::new(
            Capabilities::new(100, 100)
                .with_create_only()
                .with_compare_and_swap(),
        ));
        let driver = RetryLayer::new(3)
            .backoff(Duration::from_millis(1), Duration::from_millis(2))
            .layer(recorder.clone());
        (recorder, driver)
    }

    fn dropped() -> DriverError {
        DriverError::transient("connection reset", std::io::Error::other("reset"))
    }

    #[tokio::test]
    async fn idempotent_operations_are_retried_until_they_succeed() {
        let (recorder, driver) = flaky();
        recorder.fail_next([dropped(), dropped()]);
        driver
            .put("k", Bytes::from_static(b"v"), PutOptions::new())
            .await
            .unwrap();
        recorder.fail_next([dropped()]);
        assert!(driver.get("k").await.unwrap().is_some());
        assert_eq!(recorder.calls().len(), 5);
        // Four failures: the first try and three retries, then the error.
        recorder.fail_next([dropped(), dropped(), dropped(), dropped()]);
        assert!(driver.delete("k").await.unwrap_err().is_retryable());
        assert_eq!(recorder.calls().len(), 9);
    }

    #[tokio::test]
    async fn a_conditional_write_is_never_sent_twice() {
        let (recorder, driver) = flaky();
        for mode in [
            WriteMode::CreateOnly,
            WriteMode::IfVersion(Version::from_u64(1)),
        ] {
            recorder.fail_next([dropped()]);
            let err = driver
                .put("k", Bytes::from_static(b"v"), PutOptions::new().mode(mode))
                .await
                .unwrap_err();
            assert!(err.is_retryable());
        }
        assert_eq!(recorder.calls().len(), 2, "{:?}", recorder.calls());
    }

    #[tokio::test]
    async fn errors_that_cannot_succeed_later_are_not_retried() {
        let (recorder, driver) = flaky();
        recorder.fail_next([DriverError::config("bad credentials")]);
        assert_eq!(driver.get("k").await.unwrap_err().kind(), ErrorKind::Config);
        assert_eq!(recorder.calls().len(), 1);
    }

    #[tokio::test]
    async fn a_retry_after_is_waited_for_or_passed_on() {
        let recorder = Arc::new(Recorder::new(Capabilities::new(100, 100)));
        let driver = RetryLayer::new(2)
            .backoff(Duration::from_millis(1), Duration::from_millis(200))
            .layer(recorder.clone());
        let throttled = |wait| dropped().with_retry_after(wait);
        recorder.fail_next([throttled(Duration::from_millis(80))]);
        let started = std::time::Instant::now();
        assert!(driver.get("k").await.unwrap().is_none());
        assert!(
            started.elapsed() >= Duration::from_millis(80),
            "waited as asked"
        );
        assert_eq!(recorder.calls().len(), 2);
        // Longer than the layer ever waits: the caller gets the error, and the wait, at once.
        recorder.fail_next([throttled(Duration::from_secs(30))]);
        let err = driver.get("k").await.unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(recorder.calls().len(), 3);
    }
}

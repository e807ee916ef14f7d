//! A `tracing` span per driver operation, written once.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use tracing::Instrument;

use super::{Call, Layer};
use crate::{Capabilities, Driver, Entry, ListPage, PutOptions, Version, metrics};

/// Runs every operation in a `session.driver` span (debug level) with the driver's name and the
/// operation, and ends it with an event that gives the outcome (`ok`, or the error kind and
/// whether it is retryable) and the latency in microseconds. With the `metrics` feature it
/// also counts the operation and records its latency ([`crate::metrics`]). Keys, values and
/// versions are never recorded: keys are derived from session ids.
///
/// When no subscriber listens at debug level and the `metrics` feature is off, it costs a
/// check per operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl Layer for TraceLayer {
    fn layer(&self, inner: Arc<dyn Driver>) -> Arc<dyn Driver> {
        Arc::new(Traced {
            name: Arc::from(inner.name()),
            inner,
        })
    }
}

struct Traced {
    inner: Arc<dyn Driver>,
    /// The driver's name, shared by the metrics' labels (no copy per operation).
    name: Arc<str>,
}

impl Traced {
    /// `call` in a span, or `call` itself when nobody listens (no future of this layer's own).
    fn traced<'c, T: Send + 'c>(
        &'c self,
        operation: &'static str,
        call: Call<'c, T>,
    ) -> Call<'c, T> {
        let span = crate::spans::debug(|| {
            tracing::debug_span!("session.driver", driver = self.inner.name(), operation)
        });
        if span.is_none() && !metrics::enabled() {
            return call;
        }
        let span = span.unwrap_or_else(tracing::Span::none);
        Box::pin(async move {
            let started = Started::now();
            let result = call.instrument(span.clone()).await;
            let elapsed = started.elapsed();
            metrics::store_operation(
                &self.name,
                operation,
                result.as_ref().map(|_| ()),
                elapsed.as_secs_f64(),
            );
            let latency_us = elapsed.as_micros() as u64;
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
        })
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
        Self(crate::clock::now_millis())
    }
    fn elapsed(&self) -> Duration {
        Duration::from_millis(crate::clock::now_millis().saturating_sub(self.0))
    }
}

#[async_trait]
impl Driver for Traced {
    forward_identity!("trace");
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn get<'a, 'b, 'c>(&'a self, key: &'b str) -> Call<'c, Option<Entry>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.traced("get", self.inner.get(key))
    }
    fn get_latest<'a, 'b, 'c>(&'a self, key: &'b str) -> Call<'c, Option<Entry>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.traced("get_latest", self.inner.get_latest(key))
    }
    fn put<'a, 'b, 'c>(
        &'a self,
        key: &'b str,
        value: Bytes,
        options: PutOptions,
    ) -> Call<'c, Version>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.traced("put", self.inner.put(key, value, options))
    }
    fn delete<'a, 'b, 'c>(&'a self, key: &'b str) -> Call<'c, ()>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.traced("delete", self.inner.delete(key))
    }
    fn touch<'a, 'b, 'c>(&'a self, key: &'b str, ttl: Duration) -> Call<'c, bool>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.traced("touch", self.inner.touch(key, ttl))
    }
    fn list<'a, 'b, 'd, 'c>(
        &'a self,
        prefix: &'b str,
        cursor: Option<&'d str>,
    ) -> Call<'c, ListPage>
    where
        'a: 'c,
        'b: 'c,
        'd: 'c,
        Self: 'c,
    {
        self.traced("list", self.inner.list(prefix, cursor))
    }
    fn clear<'a, 'b, 'c>(&'a self, prefix: &'b str) -> Call<'c, u64>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.traced("clear", self.inner.clear(prefix))
    }
    fn sweep<'a, 'c>(&'a self) -> Call<'c, u64>
    where
        'a: 'c,
        Self: 'c,
    {
        self.traced("sweep", self.inner.sweep())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{
        DriverError,
        testing::{Collect, Recorder},
    };

    #[tokio::test]
    async fn each_operation_is_a_span_ending_with_its_outcome_and_never_the_key() {
        let (collect, _guard) = Collect::install();
        let recorder = Arc::new(Recorder::new(Capabilities::new(100, 100)));
        let driver = TraceLayer.layer(recorder.clone());
        driver.get("secret-key").await.unwrap();
        recorder.fail_next([DriverError::config("bad credentials")]);
        driver.delete("secret-key").await.unwrap_err();
        let lines = collect.lines.lock().unwrap().clone();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(
            lines[0],
            r#"span session.driver driver="recorder" operation="get""#
        );
        assert!(
            lines[1].starts_with(r#"event outcome="ok" latency_us="#),
            "{lines:?}"
        );
        assert_eq!(
            lines[2],
            r#"span session.driver driver="recorder" operation="delete""#
        );
        assert!(
            lines[3].starts_with("event outcome=Config retryable=false"),
            "{lines:?}"
        );
        assert!(!lines.concat().contains("secret-key"));
    }
}

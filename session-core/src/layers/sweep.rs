//! Background sweeping of expired entries, written once (feature `tokio`).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

use super::Layer;
use crate::{Capabilities, Driver, ErrorKind, PeriodicTask};

/// Calls [`Driver::sweep`] every `interval` on the Tokio runtime the layer is applied on, for as
/// long as the layered driver lives. Backends that keep the expiry beside the value (files,
/// SQLite, object stores) otherwise keep expired entries until something deletes them.
///
/// The registry applies it when a config has a `sweep_interval` option
/// (`"fs:///var/sessions?sweep_interval=10m"`), or when the driver asks for it in its
/// [`layer_defaults`](Driver::layer_defaults) (the fs, SQLite, S3 and object-store builders'
/// `sweep_interval`). Run it in one process of a deployment: every sweeper reads every entry.
/// Applied outside a Tokio runtime, it logs a warning and does not sweep; a driver that
/// cannot sweep stops the task after its first answer.
#[derive(Debug, Clone, Copy)]
pub struct SweepLayer {
    interval: Duration,
}

impl SweepLayer {
    /// Sweeps every `interval` (the first after one interval).
    pub fn new(interval: Duration) -> Self {
        Self { interval }
    }
}

impl Layer for SweepLayer {
    fn layer(&self, inner: Arc<dyn Driver>) -> Arc<dyn Driver> {
        let task = PeriodicTask::spawn(
            Arc::downgrade(&inner),
            self.interval,
            "sweep_interval",
            "sweep",
            |driver: Arc<dyn Driver>| async move {
                match driver.sweep().await {
                    Ok(swept) => Ok(Some(swept)),
                    Err(e) if e.kind() == ErrorKind::Unsupported => Ok(None),
                    Err(e) => Err(e),
                }
            },
        );
        let task = match task {
            Ok(task) => Some(task),
            Err(e) => {
                tracing::warn!(error = %e, driver = inner.name(), "not sweeping");
                None
            }
        };
        Arc::new(Swept { inner, _task: task })
    }
}

struct Swept {
    inner: Arc<dyn Driver>,
    _task: Option<PeriodicTask>,
}

// Nothing to do per call: the calls go straight through, without a future of this layer's.
#[async_trait]
impl Driver for Swept {
    forward_identity!("sweep");
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    forward_calls!();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use bytes::Bytes;

    use crate::{PutOptions, layers::ExpiryLayer, testing::Recorder};

    #[tokio::test]
    async fn sweeps_while_the_driver_lives() {
        let backend = Arc::new(Recorder::new(Capabilities::new(100, 100).with_list()));
        let expiring = ExpiryLayer::new().layer(backend.clone());
        let driver = SweepLayer::new(Duration::from_millis(20)).layer(expiring);
        assert_eq!(driver.layers(), ["sweep", "expiry"]);
        let options = PutOptions::new().ttl(Duration::from_millis(1));
        driver
            .put("k", Bytes::from_static(b"v"), options)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(backend.get("k").await.unwrap().is_none(), "swept");
        drop(driver);
        let sweeps = backend
            .calls()
            .iter()
            .filter(|c| c.starts_with("list"))
            .count();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let after = backend
            .calls()
            .iter()
            .filter(|c| c.starts_with("list"))
            .count();
        assert_eq!(sweeps, after, "no sweep after the driver is dropped");
    }

    #[test]
    fn outside_a_runtime_it_does_not_sweep_but_works() {
        let backend = Arc::new(Recorder::new(Capabilities::new(100, 100).with_list()));
        let expiring = ExpiryLayer::new().layer(backend.clone());
        let driver = SweepLayer::new(Duration::from_millis(1)).layer(expiring);
        assert_eq!(driver.layers(), ["sweep", "expiry"]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let options = PutOptions::new().ttl(Duration::from_millis(1));
            driver
                .put("k", Bytes::from_static(b"v"), options)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        });
        // Calls went through; no sweep ever ran (it would have listed).
        assert_eq!(backend.calls(), ["put k ttl=None mode=Overwrite"]);
    }
}

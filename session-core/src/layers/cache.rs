//! The read cache as a layer: [`CacheLayer`] around a driver (the cache and its invalidation
//! source are in [`crate::read_cache`]).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;

use super::Layer;
use crate::{
    Capabilities, Driver, DriverError, Entry, ListPage, PutOptions, Version, WriteMode, metrics,
    read_cache::{CacheLayer, Lookup, Ticket},
};

impl Layer for CacheLayer {
    fn layer(&self, inner: Arc<dyn Driver>) -> Arc<dyn Driver> {
        Arc::new(Cached {
            inner,
            layer: self.clone(),
        })
    }
}

struct Cached {
    inner: Arc<dyn Driver>,
    layer: CacheLayer,
}

impl Cached {
    /// A ticket for a read of `key`, turning the invalidations on first when the cache asks.
    async fn ticket(&self, key: &str) -> Option<Ticket> {
        let cache = &self.layer.cache;
        match cache.lookup(key.as_bytes(), self.layer.clock.now()) {
            Lookup::Hit(_) => cache.ticket(key.as_bytes()),
            Lookup::Miss(ticket) => Some(ticket),
            Lookup::Off(None) => None,
            Lookup::Off(Some(epoch)) => {
                self.enable(epoch).await;
                cache.ticket(key.as_bytes())
            }
        }
    }

    async fn enable(&self, epoch: u64) {
        let outcome = match self.layer.source.enable().await {
            Ok(on) => {
                if !on {
                    tracing::warn!(
                        driver = self.inner.name(),
                        "invalidations are not available; the read cache is off"
                    );
                }
                Some(on)
            }
            Err(e) if !e.is_retryable() => {
                tracing::warn!(driver = self.inner.name(), error = %e, "invalidations refused; the read cache is off");
                Some(false)
            }
            Err(e) => {
                tracing::debug!(driver = self.inner.name(), error = %e, "could not turn invalidations on yet");
                None
            }
        };
        self.layer.cache.tracking_result(epoch, outcome);
    }

    /// Reads the backend and fills the cache with what it read.
    async fn read(
        &self,
        key: &str,
        ticket: Option<Ticket>,
        latest: bool,
    ) -> Result<Option<Entry>, DriverError> {
        let sent = self.layer.clock.now();
        let entry = if latest {
            self.inner.get_latest(key).await?
        } else {
            self.inner.get(key).await?
        };
        if let (Some(entry), Some(ticket)) = (&entry, ticket) {
            let round_trip = self
                .layer
                .clock
                .now()
                .duration_since(sent)
                .unwrap_or_default();
            self.layer
                .cache
                .fill(ticket, key.as_bytes(), entry.clone(), round_trip);
        }
        Ok(entry)
    }
}

#[async_trait]
impl Driver for Cached {
    forward_identity!("cache");
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let cache = &self.layer.cache;
        let ticket = match cache.lookup(key.as_bytes(), self.layer.clock.now()) {
            Lookup::Hit(entry) => {
                metrics::cache_lookup(self.inner.name(), "hit");
                return Ok(Some(entry));
            }
            Lookup::Miss(ticket) => {
                metrics::cache_lookup(self.inner.name(), "miss");
                Some(ticket)
            }
            Lookup::Off(None) => {
                metrics::cache_lookup(self.inner.name(), "off");
                None
            }
            Lookup::Off(Some(epoch)) => {
                metrics::cache_lookup(self.inner.name(), "off");
                self.enable(epoch).await;
                cache.ticket(key.as_bytes())
            }
        };
        self.read(key, ticket, false).await
    }
    async fn get_latest(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let ticket = self.ticket(key).await;
        self.read(key, ticket, true).await
    }
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        let cache = &self.layer.cache;
        // A new session (create-only) is not kept: most are never read again.
        let keep = options.mode != WriteMode::CreateOnly && self.layer.source.watches_own_writes();
        let ticket = keep.then(|| cache.ticket(key.as_bytes())).flatten();
        let now = self.layer.clock.now();
        let expires_at = options.ttl.and_then(|ttl| now.checked_add(ttl));
        let written = self.inner.put(key, value.clone(), options).await;
        let record = match (&written, ticket) {
            (Ok(version), Some(_)) => Some(Entry {
                value,
                version: version.clone(),
                expires_at,
            }),
            _ => None,
        };
        cache.wrote(ticket, key.as_bytes(), record);
        written
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        let deleted = self.inner.delete(key).await;
        self.layer.cache.wrote(None, key.as_bytes(), None);
        deleted
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        let touched = self.inner.touch(key, ttl).await;
        self.layer.cache.wrote(None, key.as_bytes(), None);
        touched
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        self.inner.list(prefix, cursor).await
    }
    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        let cleared = self.inner.clear(prefix).await;
        self.layer.cache.flush();
        cleared
    }
    async fn sweep(&self) -> Result<u64, DriverError> {
        self.inner.sweep().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Capabilities,
        layers::{Invalidations, Layer, ReadCache},
    };

    /// A source whose invalidations are switched on by the test.
    struct Switch {
        on: std::sync::atomic::AtomicBool,
        asked: std::sync::atomic::AtomicU32,
    }

    #[async_trait]
    impl Invalidations for Switch {
        async fn enable(&self) -> Result<bool, DriverError> {
            self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match self.on.load(std::sync::atomic::Ordering::SeqCst) {
                true => Ok(true),
                false => Err(DriverError::timeout("enable", Duration::from_millis(1))),
            }
        }
        fn watches_own_writes(&self) -> bool {
            true
        }
    }

    fn layered(
        on: bool,
    ) -> (
        Arc<crate::testing::Recorder>,
        Arc<ReadCache>,
        Arc<dyn Driver>,
    ) {
        let backend = Arc::new(crate::testing::Recorder::new(
            Capabilities::new(100, 1000)
                .with_create_only()
                .with_compare_and_swap(),
        ));
        let cache = Arc::new(ReadCache::new(1 << 20));
        let source = Arc::new(Switch {
            on: on.into(),
            asked: 0.into(),
        });
        let driver = CacheLayer::new(cache.clone(), source).layer(backend.clone());
        (backend, cache, driver)
    }

    fn gets(backend: &crate::testing::Recorder) -> usize {
        backend
            .calls()
            .iter()
            .filter(|c| c.starts_with("get"))
            .count()
    }

    #[tokio::test]
    async fn hits_need_no_backend_call_and_invalidations_and_failures_drop_entries() {
        let (backend, cache, driver) = layered(true);
        assert_eq!(driver.layers(), ["cache"]);
        let v = Bytes::from_static(b"v");
        // Create-only writes are not kept; a read fills the cache.
        let created = driver
            .put(
                "k",
                v.clone(),
                PutOptions::new().mode(WriteMode::CreateOnly),
            )
            .await
            .unwrap();
        assert_eq!(driver.get("k").await.unwrap().unwrap().version, created);
        assert_eq!(gets(&backend), 1);
        assert_eq!(driver.get("k").await.unwrap().unwrap().value, "v");
        assert_eq!(gets(&backend), 1, "a hit");
        // A compare-and-swap keeps what it wrote: the next read is local and sees it.
        let cas = PutOptions::new().mode(WriteMode::IfVersion(created));
        let written = driver
            .put("k", Bytes::from_static(b"w"), cas)
            .await
            .unwrap();
        let entry = driver.get("k").await.unwrap().unwrap();
        assert_eq!(
            (entry.value, entry.version),
            (Bytes::from_static(b"w"), written.clone())
        );
        assert_eq!(gets(&backend), 1);
        // get_latest always asks the backend.
        driver.get_latest("k").await.unwrap();
        assert_eq!(gets(&backend), 2);
        // Changed elsewhere: the source invalidates, the next read asks the backend.
        cache.invalidate(b"k");
        driver.get("k").await.unwrap();
        assert_eq!(gets(&backend), 3);
        // A failed write (a conflict) drops the key.
        let stale = PutOptions::new().mode(WriteMode::IfVersion(Version::from_u64(999)));
        assert!(driver.put("k", v.clone(), stale).await.is_err());
        driver.get("k").await.unwrap();
        assert_eq!(gets(&backend), 4);
        driver.delete("k").await.unwrap();
        assert!(driver.get("k").await.unwrap().is_none());
        // Lost invalidations: empty and off until enabled again (the next read does it).
        driver.put("j", v, PutOptions::new()).await.unwrap();
        cache.disconnected();
        assert_eq!(cache.usage(), (0, 0));
        driver.get("j").await.unwrap();
        driver.get("j").await.unwrap();
        assert_eq!(gets(&backend), 6, "one read re-enabled, the next was a hit");
    }

    #[tokio::test]
    async fn a_cached_read_expires_by_the_backend_s_deadline_not_the_reply_s() {
        let (backend, _, _) = layered(true);
        let clock = Arc::new(crate::ManualClock::starting_now());
        let mut layer = CacheLayer::new(
            Arc::new(ReadCache::new(1 << 20)),
            Arc::new(Switch {
                on: true.into(),
                asked: 0.into(),
            }),
        );
        layer.clock = clock.clone();
        let driver = layer.layer(backend.clone());
        driver
            .put("k", Bytes::from_static(b"v"), PutOptions::new())
            .await
            .unwrap();
        // The backend says 100 ms are left; its reply arrives 60 ms after the read was sent.
        backend.reply_with_ttl(
            clock.clone(),
            Duration::from_millis(60),
            Duration::from_millis(100),
        );
        let reported = driver.get("k").await.unwrap().unwrap().expires_at;
        assert_eq!(gets(&backend), 1);
        // The caller still sees what the driver reported.
        assert_eq!(
            reported,
            Some(crate::Clock::now(&*clock) + Duration::from_millis(100))
        );
        // 50 ms after the reply (110 ms after the backend measured): the backend's deadline
        // has passed, so the cache must not answer.
        backend.reply_with_ttl(clock.clone(), Duration::ZERO, Duration::from_millis(100));
        clock.advance(Duration::from_millis(50));
        driver.get("k").await.unwrap();
        assert_eq!(
            gets(&backend),
            2,
            "expired in the cache by the backend's deadline"
        );
        // Read with no round trip, the cached entry lives its whole time.
        clock.advance(Duration::from_millis(50));
        let hit = driver.get("k").await.unwrap().unwrap();
        assert_eq!(gets(&backend), 2, "a hit");
        assert_eq!(
            hit.expires_at,
            Some(crate::Clock::now(&*clock) + Duration::from_millis(50)),
            "a hit reports the driver's expiry, not the cache's shorter one"
        );
    }

    #[tokio::test]
    async fn without_invalidations_every_read_goes_to_the_backend() {
        let (backend, _, driver) = layered(false);
        driver
            .put("k", Bytes::from_static(b"v"), PutOptions::new())
            .await
            .unwrap();
        for _ in 0..3 {
            assert!(driver.get("k").await.unwrap().is_some());
        }
        assert_eq!(gets(&backend), 3);
    }
}

//! A key prefix, written once for every driver.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;

use super::Layer;
use crate::{Capabilities, Driver, DriverError, Entry, ListPage, PutOptions, Version};

/// Stores every key under a fixed prefix, so that several applications (or environments) share
/// one backend without seeing each other's keys: `get("k")` reads `"{prefix}k"`, listings
/// return keys without the prefix, and `clear("")` clears only this prefix. The declared
/// `max_key_len` shrinks by the prefix's length.
///
/// ```
/// use std::sync::Arc;
/// use session_kit_core::{Driver, PutOptions, bytes::Bytes, layers::{Layer, PrefixLayer}};
/// use session_kit_memory::MemoryDriver;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let shared = Arc::new(MemoryDriver::new());
/// let app = PrefixLayer::new("app-a/").layer(shared.clone());
/// app.put("k", Bytes::from_static(b"v"), PutOptions::new()).await?;
/// assert!(shared.get("app-a/k").await?.is_some());
/// assert_eq!(app.list("", None).await?.keys, ["k"]);
/// # Ok::<(), session_kit_core::DriverError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct PrefixLayer {
    prefix: Arc<str>,
}

impl PrefixLayer {
    /// Keys are stored as `prefix` followed by the key.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into().into(),
        }
    }
}

impl Layer for PrefixLayer {
    fn layer(&self, inner: Arc<dyn Driver>) -> Arc<dyn Driver> {
        let mut caps = inner.capabilities().clone();
        caps.max_key_len = caps.max_key_len.saturating_sub(self.prefix.len());
        Arc::new(Prefixed {
            inner,
            prefix: Arc::clone(&self.prefix),
            caps,
        })
    }
}

struct Prefixed {
    inner: Arc<dyn Driver>,
    prefix: Arc<str>,
    caps: Capabilities,
}

impl Prefixed {
    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }
}

#[async_trait]
impl Driver for Prefixed {
    forward_identity!("prefix");
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.inner.get(&self.key(key)).await
    }
    async fn get_latest(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.inner.get_latest(&self.key(key)).await
    }
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        self.inner.put(&self.key(key), value, options).await
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.inner.delete(&self.key(key)).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        self.inner.touch(&self.key(key), ttl).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let mut page = self.inner.list(&self.key(prefix), cursor).await?;
        for key in &mut page.keys {
            match key.strip_prefix(&*self.prefix) {
                Some(stripped) => *key = stripped.to_owned(),
                None => {
                    return Err(DriverError::permanent(
                        "the driver listed a key outside the requested prefix",
                        None,
                    ));
                }
            }
        }
        Ok(page)
    }
    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        self.inner.clear(&self.key(prefix)).await
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
    async fn every_operation_is_prefixed_and_listings_are_not() {
        let recorder = Arc::new(Recorder::new(Capabilities::new(100, 100).with_list()));
        let driver = PrefixLayer::new("app/").layer(recorder.clone());
        assert_eq!(driver.capabilities().max_key_len, 96);
        assert_eq!(driver.native_capabilities().max_key_len, 100);
        driver
            .put("a/1", Bytes::from_static(b"v"), PutOptions::new())
            .await
            .unwrap();
        driver.get("a/1").await.unwrap().unwrap();
        driver.touch("a/1", Duration::from_secs(1)).await.unwrap();
        assert_eq!(driver.list("a/", None).await.unwrap().keys, ["a/1"]);
        driver.delete("a/1").await.unwrap();
        assert_eq!(
            recorder.calls(),
            [
                "put app/a/1 ttl=None mode=Overwrite",
                "get app/a/1",
                "touch app/a/1 1s",
                "list app/a/ None",
                "delete app/a/1",
            ]
        );
    }
}

//! Argument checks, written once for every driver.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;

use super::{Call, Layer, refused};
use crate::{
    BelowMinTtl, Capabilities, Driver, DriverError, Entry, ListPage, PutOptions, Version,
    check_key, check_put,
};

/// Refuses what the driver below does not declare, before it reaches the backend: an empty or
/// too long key ([`DriverError::InvalidKey`]), a value over the maximum
/// ([`DriverError::ValueTooLarge`]), an undeclared write mode, TTL, `touch` or `list`
/// ([`DriverError::Unsupported`]). A TTL below the declared minimum is rounded up or refused,
/// as declared, so the driver receives only TTLs it accepts.
///
/// The registry and [`SessionStorage`](crate::SessionStorage) apply it to every driver, so a
/// driver implements backend semantics only.
///
/// ```
/// use std::sync::Arc;
/// use session_kit_core::{Driver, ErrorKind, layers::{Layer, ValidateLayer}};
/// use session_kit_memory::MemoryDriver;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let driver = ValidateLayer.layer(Arc::new(MemoryDriver::new()));
/// assert_eq!(driver.get("").await.unwrap_err().kind(), ErrorKind::InvalidKey);
/// assert_eq!(driver.layers(), ["validate"]);
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidateLayer;

impl Layer for ValidateLayer {
    fn layer(&self, inner: Arc<dyn Driver>) -> Arc<dyn Driver> {
        Arc::new(Validated { inner })
    }
}

struct Validated {
    inner: Arc<dyn Driver>,
}

impl Validated {
    fn caps(&self) -> &Capabilities {
        self.inner.capabilities()
    }

    fn touch_ttl(&self, ttl: Duration) -> Result<Duration, DriverError> {
        if !self.caps().touch {
            return Err(DriverError::unsupported("touch"));
        }
        match self.caps().ttl {
            Some(support) if ttl < support.min => match support.below_min {
                BelowMinTtl::RoundUp => Ok(support.min),
                BelowMinTtl::Reject => Err(DriverError::unsupported(format!(
                    "a TTL of {ttl:?}, below the minimum of {:?}",
                    support.min
                ))),
            },
            _ => Ok(ttl),
        }
    }
}

/// The checks run before the inner driver's future is created, and that future is returned
/// as it is: a valid call costs no future of this layer's own (a refused one allocates its
/// error's).
#[async_trait]
impl Driver for Validated {
    forward_identity!("validate");
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn get<'a, 'b, 'c>(&'a self, key: &'b str) -> Call<'c, Option<Entry>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        match check_key(key, self.caps()) {
            Ok(()) => self.inner.get(key),
            Err(e) => refused(e),
        }
    }
    fn get_latest<'a, 'b, 'c>(&'a self, key: &'b str) -> Call<'c, Option<Entry>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        match check_key(key, self.caps()) {
            Ok(()) => self.inner.get_latest(key),
            Err(e) => refused(e),
        }
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
        match check_put(key, &value, &options, self.caps()) {
            Ok(ttl) => self.inner.put(key, value, options.ttl_opt(ttl)),
            Err(e) => refused(e),
        }
    }
    fn delete<'a, 'b, 'c>(&'a self, key: &'b str) -> Call<'c, ()>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        match check_key(key, self.caps()) {
            Ok(()) => self.inner.delete(key),
            Err(e) => refused(e),
        }
    }
    fn touch<'a, 'b, 'c>(&'a self, key: &'b str, ttl: Duration) -> Call<'c, bool>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        match check_key(key, self.caps()).and_then(|()| self.touch_ttl(ttl)) {
            Ok(ttl) => self.inner.touch(key, ttl),
            Err(e) => refused(e),
        }
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        if !self.caps().list {
            return Err(DriverError::unsupported("list"));
        }
        self.inner.list(prefix, cursor).await
    }
    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        if !self.caps().list {
            return Err(DriverError::unsupported("clear"));
        }
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
    use crate::{ErrorKind, TtlSupport, WriteMode, testing::Recorder};

    fn caps() -> Capabilities {
        Capabilities::new(8, 4)
            .with_ttl(TtlSupport::with_min(
                Duration::from_secs(60),
                Duration::from_secs(1),
                BelowMinTtl::RoundUp,
            ))
            .with_create_only()
    }

    fn kind<T>(result: Result<T, DriverError>) -> ErrorKind {
        result.map(|_| ()).unwrap_err().kind()
    }

    #[tokio::test]
    async fn refusals_never_reach_the_driver() {
        let recorder = Arc::new(Recorder::new(caps()));
        let driver = ValidateLayer.layer(recorder.clone());
        assert_eq!(kind(driver.get("").await), ErrorKind::InvalidKey);
        assert_eq!(kind(driver.get("123456789").await), ErrorKind::InvalidKey);
        assert_eq!(kind(driver.delete("").await), ErrorKind::InvalidKey);
        let put = |v: &'static [u8], o: PutOptions| driver.put("k", Bytes::from_static(v), o);
        assert_eq!(
            kind(put(b"12345", PutOptions::new()).await),
            ErrorKind::ValueTooLarge
        );
        let cas = PutOptions::new().mode(WriteMode::IfVersion(Version::from_u64(1)));
        assert_eq!(kind(put(b"v", cas).await), ErrorKind::Unsupported);
        assert_eq!(
            kind(driver.touch("k", Duration::from_secs(1)).await),
            ErrorKind::Unsupported
        );
        assert_eq!(kind(driver.list("", None).await), ErrorKind::Unsupported);
        assert_eq!(kind(driver.clear("").await), ErrorKind::Unsupported);
        assert!(recorder.calls().is_empty(), "{:?}", recorder.calls());
    }

    #[tokio::test]
    async fn short_ttls_reach_the_driver_rounded_up() {
        let recorder = Arc::new(Recorder::new(caps()));
        let driver = ValidateLayer.layer(recorder.clone());
        let options = PutOptions::new()
            .ttl(Duration::from_secs(5))
            .mode(WriteMode::CreateOnly);
        driver
            .put("k", Bytes::from_static(b"v"), options)
            .await
            .unwrap();
        assert_eq!(recorder.calls(), ["put k ttl=Some(60s) mode=CreateOnly"]);
    }
}

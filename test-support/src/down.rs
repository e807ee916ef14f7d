//! A store that is down.

use std::time::Duration;

use session_kit_core::{
    Capabilities, Driver, DriverError, Entry, PutOptions, Version, async_trait, bytes::Bytes,
};

/// A driver whose every call fails as a store that is down does: a retryable timeout.
#[derive(Debug)]
pub struct DownDriver(Capabilities);

impl Default for DownDriver {
    fn default() -> Self {
        Self(Capabilities::new(256, 1 << 20))
    }
}

fn down(operation: &str) -> DriverError {
    DriverError::timeout(operation, Duration::from_millis(5))
}

#[async_trait]
impl Driver for DownDriver {
    fn name(&self) -> &str {
        "down"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.0
    }
    async fn get(&self, _: &str) -> Result<Option<Entry>, DriverError> {
        Err(down("get"))
    }
    async fn put(&self, _: &str, _: Bytes, _: PutOptions) -> Result<Version, DriverError> {
        Err(down("put"))
    }
    async fn delete(&self, _: &str) -> Result<(), DriverError> {
        Err(down("delete"))
    }
}

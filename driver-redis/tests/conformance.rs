//! Certifies the Redis driver against a real `redis-server` started by this test binary.

mod common;

use std::sync::Arc;

use session_kit_core::Driver;
use session_kit_redis::{RedisConfig, RedisDriver};

session_kit_conformance::conformance_tests!(|| async {
    let driver = RedisDriver::connect(RedisConfig::new(common::shared().url())).await?;
    Ok(Arc::new(driver) as Arc<dyn Driver>)
});

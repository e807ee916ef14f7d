//! Certifies the Redis driver against a real `redis-server` started by this test binary.

mod common;

use std::sync::Arc;

use session_core::Driver;
use session_driver_redis::{RedisConfig, RedisDriver};

session_conformance::conformance_tests!(|| async {
    let driver = RedisDriver::connect(RedisConfig::new(common::shared().url())).await?;
    Ok(Arc::new(driver) as Arc<dyn Driver>)
});

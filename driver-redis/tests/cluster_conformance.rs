//! Certifies the Redis driver against a real three-primary Redis Cluster started by this test
//! binary (`redis-server --cluster-enabled yes` and `redis-cli --cluster create`).

mod common;

use std::sync::Arc;

use session_kit_core::Driver;
use session_kit_redis::{RedisConfig, RedisDriver};

session_kit_conformance::conformance_tests!(|| async {
    let mut config = RedisConfig::new(common::shared_cluster().url());
    config.cluster = true;
    Ok(Arc::new(RedisDriver::connect(config).await?) as Arc<dyn Driver>)
});

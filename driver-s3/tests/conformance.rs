//! Certifies the S3 driver against a real S3 implementation (moto) started by this test binary.

mod common;

use std::sync::Arc;

use session_kit_core::Driver;
use session_kit_s3::S3Driver;

session_kit_conformance::conformance_tests!(|| async {
    let mut config = common::config();
    config.prefix = "sessions/".into();
    Ok(Arc::new(S3Driver::connect(config).await?) as Arc<dyn Driver>)
});

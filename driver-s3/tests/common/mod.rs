//! Driver configs for buckets on the moto server this test binary starts.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use session_kit_s3::S3Config;

pub(crate) use session_test_support::moto;

/// A driver config for a fresh bucket on the shared moto server.
pub(crate) fn config() -> S3Config {
    let moto = moto();
    let mut config = S3Config::new(moto.bucket());
    config.endpoint = Some(moto.endpoint());
    config.region = Some("us-east-1".into());
    config.access_key_id = Some("test".into());
    config.secret_access_key = Some("test".into());
    // moto is a Python emulator: on a loaded 2-core CI machine one page of a large listing
    // took longer than the default 10 s / 3 attempts, and with other test binaries running
    // beside this one (scripts/parallel-tests) longer than 30 s / 3 once. Production keeps
    // the default.
    config.operation_timeout = Some(std::time::Duration::from_secs(90));
    config
}

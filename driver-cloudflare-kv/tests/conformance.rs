//! Certifies the REST driver against Cloudflare's KV API served by a Worker on Miniflare
//! (workerd's real KV binding), started by this test binary on a free loopback port.
//!
//! KV's 60-second minimum TTL makes the expiry checks slow: they run when
//! `SESSION_CONFORMANCE_SLOW=1` (as `scripts/test` does), and are reported as skipped, with
//! that reason, otherwise.

mod common;

use std::sync::Arc;

use session_kit_cloudflare_kv::CloudflareKvDriver;
use session_kit_core::Driver;

session_kit_conformance::conformance_tests!(|| async {
    let driver = CloudflareKvDriver::connect(common::miniflare_rest().config()).await?;
    Ok(Arc::new(driver) as Arc<dyn Driver>)
});

//! Certifies the object_store driver over object_store's S3 client against moto, started by
//! this test binary on a free loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use session_kit_core::Driver;
use session_kit_object_store::ObjectStoreDriver;
use session_test_support::moto;

session_kit_conformance::conformance_tests!(|| async {
    let moto = moto();
    let store = AmazonS3Builder::new()
        .with_bucket_name(moto.bucket())
        .with_endpoint(moto.endpoint())
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .build()
        .unwrap();
    let driver = ObjectStoreDriver::builder(Arc::new(store)).build();
    Ok(Arc::new(driver) as Arc<dyn Driver>)
});

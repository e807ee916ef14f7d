//! Certifies the object_store driver over object_store's in-memory store.

use std::sync::Arc;

use object_store::memory::InMemory;
use session_kit_core::Driver;
use session_kit_object_store::ObjectStoreDriver;

session_kit_conformance::conformance_tests!(|| async {
    let driver = ObjectStoreDriver::builder(Arc::new(InMemory::new())).build();
    Ok(Arc::new(driver) as Arc<dyn Driver>)
});

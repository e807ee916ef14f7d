//! Certifies `MigrateFromLayer` with the published conformance suite: an app moving its
//! sessions from one memory store to another is served by a driver that keeps the whole
//! contract.

use std::sync::Arc;

use session_kit_core::layers::{Layer, MigrateFromLayer};
use session_kit_memory::MemoryDriver;

session_kit_conformance::conformance_tests!(|| async {
    let old = Arc::new(MemoryDriver::new());
    Ok(MigrateFromLayer::new(old).layer(Arc::new(MemoryDriver::new())))
});

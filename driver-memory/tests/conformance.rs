//! Certifies the memory driver with the published conformance suite.

use std::sync::Arc;

use session_kit_core::Driver;
use session_kit_memory::MemoryDriver;

session_kit_conformance::conformance_tests!(|| async {
    Ok(Arc::new(MemoryDriver::new()) as Arc<dyn Driver>)
});

//! Certifies the memory driver with the published conformance suite.

use std::sync::Arc;

use session_core::Driver;
use session_driver_memory::MemoryDriver;

session_conformance::conformance_tests!(|| async {
    Ok(Arc::new(MemoryDriver::new()) as Arc<dyn Driver>)
});

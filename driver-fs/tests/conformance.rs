//! Certifies the fs driver with the published conformance suite, each test in its own
//! temporary directory.

use std::sync::Arc;

use session_kit_core::Driver;
use session_kit_fs::FsDriver;

session_kit_conformance::conformance_tests!(|| async {
    // Leaked on purpose: the directory must outlive the driver, and the OS temp dir is cleaned.
    let dir = tempfile::tempdir()
        .map_err(|e| session_kit_core::DriverError::config(e.to_string()))?
        .keep();
    Ok(Arc::new(FsDriver::builder(dir).build()?) as Arc<dyn Driver>)
});

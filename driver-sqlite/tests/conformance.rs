//! Certifies the SQLite driver with the published conformance suite, each test on its own
//! database file.

use std::sync::Arc;

use session_kit_core::Driver;
use session_kit_sqlite::SqliteDriver;

session_kit_conformance::conformance_tests!(|| async {
    // Kept on purpose: the file must outlive the driver, and the OS temp dir is cleaned.
    let dir = tempfile::tempdir()
        .map_err(|e| session_kit_core::DriverError::config(e.to_string()))?
        .keep();
    Ok(Arc::new(SqliteDriver::builder(dir.join("sessions.db")).build()?) as Arc<dyn Driver>)
});

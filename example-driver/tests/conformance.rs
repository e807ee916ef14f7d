//! Certifies the driver in `cargo test`: one test per conformance check (those this driver's
//! capabilities make irrelevant show as ignored).

use std::sync::Arc;

use session_example_driver::BTreeDriver;
use session_kit_core::Driver;

session_kit_conformance::conformance_tests!(|| async {
    Ok(Arc::new(BTreeDriver::new()) as Arc<dyn Driver>)
});

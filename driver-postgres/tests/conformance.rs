//! Certifies the PostgreSQL driver against a real server started by this test binary (each
//! test on a table of its own), with its read cache on (`scripts/test` certifies the default
//! configuration, without it, through the conformance command line).

use std::sync::Arc;

use session_kit_core::Driver;
use session_kit_postgres::{PostgresConfig, PostgresDriver};
use session_test_support::sql::{fresh_table, shared_postgres};

session_kit_conformance::conformance_tests!(|| async {
    let mut config = PostgresConfig::new(shared_postgres().url());
    config.table = fresh_table("conformance");
    config.pool_size = Some(8);
    config.local_cache = Some(1 << 20);
    Ok(Arc::new(PostgresDriver::connect(config).await?) as Arc<dyn Driver>)
});

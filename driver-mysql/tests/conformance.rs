//! Certifies the MySQL/MariaDB driver against a real MariaDB server started by this test
//! binary (each test on a table of its own).

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use session_core::Driver;
use session_driver_mysql::{MysqlConfig, MysqlDriver};
use session_test_support::sql::shared_mariadb;

static TABLES: AtomicU32 = AtomicU32::new(0);

session_conformance::conformance_tests!(|| async {
    let mut config = MysqlConfig::new(shared_mariadb().url());
    config.table = format!(
        "conformance_{}_{}",
        std::process::id(),
        TABLES.fetch_add(1, Ordering::Relaxed)
    );
    config.pool_size = Some(8);
    Ok(Arc::new(MysqlDriver::connect(config).await?) as Arc<dyn Driver>)
});

//! Certifies the MySQL/MariaDB driver against a real MariaDB server started by this test
//! binary (each test on a table of its own).

use std::sync::Arc;

use session_kit_core::Driver;
use session_kit_mysql::{MysqlConfig, MysqlDriver};
use session_test_support::sql::{fresh_table, shared_mariadb};

session_kit_conformance::conformance_tests!(|| async {
    let mut config = MysqlConfig::new(shared_mariadb().url());
    config.table = fresh_table("conformance");
    config.pool_size = Some(8);
    Ok(Arc::new(MysqlDriver::connect(config).await?) as Arc<dyn Driver>)
});

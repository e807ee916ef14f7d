//! The driver's options (from a config string, serde or code) and its registration.

use std::{fmt, sync::Arc, time::Duration};

use serde::Deserialize;
use session_kit_core::driver::flexible;
use session_kit_core::{Driver, DriverConfig, DriverError, Registry};

use crate::{MysqlDriver, SCHEMES};

/// Registers `mysql` (and `mariadb`):
/// `"mysql://user:password@host:3306/app?table=sessions"`.
pub fn register(registry: &mut Registry) {
    for scheme in SCHEMES {
        registry.register(*scheme, |config: DriverConfig| async move {
            let config = MysqlConfig::from_driver_config(&config)?;
            Ok(Arc::new(MysqlDriver::connect(config).await?) as Arc<dyn Driver>)
        });
    }
}

/// How often a driver opened by config deletes expired rows, unless its `sweep_interval`
/// option says otherwise: 10 minutes.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(600);
/// The default `operation_timeout`.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Options of the MySQL/MariaDB driver. In a config string they sit in the URL's query
/// beside `mysql_async`'s own connection parameters (`require_ssl`, `socket`,
/// `prefer_socket`, `tcp_keepalive`, `compression`, ...), which go to the connection unchanged.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// The server URL with connection parameters (taken from the config string). Required.
    #[serde(default)]
    pub url: Option<String>,
    /// The database of the table (default: the URL's).
    #[serde(default)]
    pub schema: Option<String>,
    /// The table (default `sessions`).
    #[serde(default = "default_table")]
    pub table: String,
    /// Create the table if missing when the driver starts (default `true`); `false` expects
    /// [`MysqlDriver::migrate`] to have run.
    #[serde(default = "yes", deserialize_with = "flexible::bool")]
    pub auto_migrate: bool,
    /// Index `expires_at` (default `false`): sweeps use it instead of scanning the table, but
    /// every write that moves a deadline also updates the index.
    #[serde(default, deserialize_with = "flexible::bool")]
    pub expiry_index: bool,
    /// Most connections in the pool (default 16).
    #[serde(default, deserialize_with = "flexible::opt_u64")]
    pub pool_size: Option<u64>,
    /// Longest wait for any operation, connection included (default 5 s): the timeout
    /// layer, and the server's lock wait limit (`innodb_lock_wait_timeout`, whole seconds).
    #[serde(default, deserialize_with = "flexible::opt_duration")]
    pub operation_timeout: Option<Duration>,
    /// A PEM file of certificate authorities to trust for TLS, besides the public web roots
    /// (feature `tls`, with `require_ssl=true`).
    #[serde(default)]
    pub tls_ca_file: Option<String>,
}

/// The option names of this driver (the rest of a URL's query is the client's).
pub const OPTION_NAMES: [&str; 7] = [
    "schema",
    "table",
    "auto_migrate",
    "expiry_index",
    "pool_size",
    "operation_timeout",
    "tls_ca_file",
];

fn default_table() -> String {
    "sessions".into()
}

fn yes() -> bool {
    true
}

impl fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("MysqlConfig")
            .field("url", &self.url.as_deref().map(redact))
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("auto_migrate", &self.auto_migrate)
            .field("expiry_index", &self.expiry_index)
            .field("pool_size", &self.pool_size)
            .field("operation_timeout", &self.operation_timeout)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

/// `url` as [`DriverConfig::redacted`] shows it: no password, no query values.
pub(crate) fn redact(url: &str) -> String {
    DriverConfig::new(url).redacted()
}

impl MysqlConfig {
    /// A config for `url` with default options.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            schema: None,
            table: default_table(),
            auto_migrate: true,
            expiry_index: false,
            pool_size: None,
            operation_timeout: None,
            tls_ca_file: None,
        }
    }

    /// Reads the config from a registry config: this driver's options from the URL's query
    /// and the explicit options; the URL keeps the client's parameters (`mariadb://` is read
    /// as `mysql://`).
    pub fn from_driver_config(config: &DriverConfig) -> Result<Self, DriverError> {
        let (mut my, url): (Self, _) = config.options_beside_url(&OPTION_NAMES)?;
        if let Some(url) = url {
            let url = match url.strip_prefix("mariadb:") {
                Some(rest) => format!("mysql:{rest}"),
                None => url,
            };
            my.url.get_or_insert(url);
        }
        if my.url.is_none() {
            return Err(DriverError::config(
                "option `url`: write mysql://user:password@host:port/database",
            ));
        }
        Ok(my)
    }

    pub(crate) fn operation_timeout(&self) -> Duration {
        self.operation_timeout.unwrap_or(DEFAULT_OPERATION_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn our_options_and_client_parameters_are_split() {
        let c = MysqlConfig::from_driver_config(&DriverConfig::new(
            "mariadb://app:hunter2@127.0.0.1:3306/app?table=web_sessions&tcp_keepalive=10000\
             &expiry_index=1&operation_timeout=2s",
        ))
        .unwrap();
        assert_eq!(c.table, "web_sessions");
        assert!(c.expiry_index);
        assert_eq!(c.operation_timeout, Some(Duration::from_secs(2)));
        assert_eq!(
            c.url.as_deref(),
            Some("mysql://app:hunter2@127.0.0.1:3306/app?tcp_keepalive=10000")
        );
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("hunter2") && dbg.contains("REDACTED"),
            "{dbg}"
        );
        let bad = MysqlConfig::from_driver_config(&DriverConfig::new("mysql://db/app?pool_size=x"))
            .err()
            .unwrap()
            .to_string();
        assert!(bad.contains("pool_size"), "{bad}");
    }
}

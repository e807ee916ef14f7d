//! The driver's options (from a config string, serde or code) and its registration.

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use serde::Deserialize;
use session_kit_core::driver::flexible;
use session_kit_core::{Driver, DriverConfig, DriverError, Registry};

use crate::{PostgresDriver, SCHEMES};

/// Registers `postgres` and `postgresql`:
/// `"postgres://user:password@host:5432/app?table=sessions&sslmode=require"`.
pub fn register(registry: &mut Registry) {
    for scheme in SCHEMES {
        registry.register(*scheme, |config: DriverConfig| async move {
            let config = PostgresConfig::from_driver_config(&config)?;
            Ok(Arc::new(PostgresDriver::connect(config).await?) as Arc<dyn Driver>)
        });
    }
}

/// How often a driver opened by config deletes expired rows, unless its `sweep_interval`
/// option says otherwise: 10 minutes.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(600);
/// The default `operation_timeout`.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// The default `connect_timeout` (also a libpq parameter, in whole seconds there).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Options of the PostgreSQL driver. In a config string they sit in the URL's query beside
/// libpq's own parameters (`sslmode`, `application_name`, `connect_timeout`, `options`, ...),
/// which go to the connection unchanged.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// The server URL with libpq parameters (taken from the config string). Required.
    #[serde(default)]
    pub url: Option<String>,
    /// The schema of the table (default `public`; created if missing).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// The table (default `sessions`).
    #[serde(default = "default_table")]
    pub table: String,
    /// Create the table if missing when the driver starts (default `true`); `false` expects
    /// [`PostgresDriver::migrate`] to have run (for example from a deploy step).
    #[serde(default = "yes", deserialize_with = "flexible::bool")]
    pub auto_migrate: bool,
    /// Create the table `UNLOGGED` (default `false`): faster writes, but a crash or failover
    /// of the server empties it (everyone is logged out) and replicas do not have it.
    #[serde(default, deserialize_with = "flexible::bool")]
    pub unlogged: bool,
    /// Index `expires_at` (default `false`): sweeps use it instead of scanning the table, but
    /// every write that moves a deadline then also updates the index and cannot be a HOT
    /// update. See the crate documentation for the measurement.
    #[serde(default, deserialize_with = "flexible::bool")]
    pub expiry_index: bool,
    /// The table's fill factor, 10 to 100 (default 90): room left in each page so that an
    /// updated row fits beside the old one (a HOT update).
    #[serde(default, deserialize_with = "flexible::opt_u64")]
    pub fillfactor: Option<u64>,
    /// Most connections in the pool (default 16).
    #[serde(default, deserialize_with = "flexible::opt_u64")]
    pub pool_size: Option<u64>,
    /// Longest wait for any operation, connection included (default 5 s): the timeout
    /// layer, and the server's `statement_timeout` unless the URL's `options` set one.
    #[serde(default, deserialize_with = "flexible::opt_duration")]
    pub operation_timeout: Option<Duration>,
    /// A PEM file of certificate authorities to trust for TLS, besides the public web roots
    /// (feature `tls`).
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// Bytes of sessions kept in this process, invalidated by the table's notifications
    /// (default 0: off). Turning it on installs notification triggers on the table, which
    /// every later write pays for. See the crate documentation.
    #[serde(default, deserialize_with = "flexible::opt_u64")]
    pub local_cache: Option<u64>,
}

/// The option names of this driver (the rest of a URL's query is libpq's).
pub const OPTION_NAMES: [&str; 10] = [
    "schema",
    "table",
    "auto_migrate",
    "unlogged",
    "expiry_index",
    "fillfactor",
    "pool_size",
    "operation_timeout",
    "tls_ca_file",
    "local_cache",
];

fn default_schema() -> String {
    "public".into()
}

fn default_table() -> String {
    "sessions".into()
}

fn yes() -> bool {
    true
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("PostgresConfig")
            .field("url", &self.url.as_deref().map(redact))
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("auto_migrate", &self.auto_migrate)
            .field("unlogged", &self.unlogged)
            .field("expiry_index", &self.expiry_index)
            .field("fillfactor", &self.fillfactor)
            .field("pool_size", &self.pool_size)
            .field("operation_timeout", &self.operation_timeout)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("local_cache", &self.local_cache)
            .finish()
    }
}

/// `url` as [`DriverConfig::redacted`] shows it: no password, no query values (a `password=`
/// parameter is libpq's too).
pub(crate) fn redact(url: &str) -> String {
    DriverConfig::new(url).redacted()
}

impl PostgresConfig {
    /// A config for `url` (a libpq URL) with default options.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            schema: default_schema(),
            table: default_table(),
            auto_migrate: true,
            unlogged: false,
            expiry_index: false,
            fillfactor: None,
            pool_size: None,
            operation_timeout: None,
            tls_ca_file: None,
            local_cache: None,
        }
    }

    /// Reads the config from a registry config: this driver's options from the URL's query
    /// and the explicit options; the URL keeps libpq's parameters.
    pub fn from_driver_config(config: &DriverConfig) -> Result<Self, DriverError> {
        let (mut pg, url): (Self, _) = config.options_beside_url(&OPTION_NAMES)?;
        if let Some(url) = url {
            pg.url.get_or_insert(url);
        }
        if pg.url.is_none() {
            return Err(DriverError::config(
                "option `url`: write postgres://user:password@host:port/database",
            ));
        }
        Ok(pg)
    }

    /// The connection settings: the URL as libpq reads it, with a connect timeout and a
    /// statement timeout when it sets none, and this process's writer id (which the table's
    /// trigger reports, so that the read cache skips its own writes).
    pub(crate) fn connection(&self, writer: &str) -> Result<tokio_postgres::Config, DriverError> {
        let url = self.url.as_deref().ok_or_else(|| {
            DriverError::config("option `url`: write postgres://user:password@host:port/database")
        })?;
        // libpq's parser; its errors name the parameter, never the password.
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| DriverError::config(format!("option `url` ({}): {e}", redact(url))))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        let mut options = config.get_options().unwrap_or_default().to_owned();
        if !options.contains("statement_timeout") {
            let ms = self.operation_timeout().as_millis();
            options.push_str(&format!(" -c statement_timeout={ms}"));
        }
        options.push_str(&format!(" -c {}={writer}", crate::sql::WRITER_SETTING));
        config.options(options.trim());
        if config.get_application_name().is_none() {
            config.application_name("session-kit-postgres");
        }
        Ok(config)
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
    fn our_options_and_libpq_parameters_are_split() {
        let c = PostgresConfig::from_driver_config(&DriverConfig::new(
            "postgres://app:hunter2@127.0.0.1:5432/app?table=web_sessions&sslmode=disable\
             &application_name=shop&unlogged=true&operation_timeout=2s",
        ))
        .unwrap();
        assert_eq!(c.table, "web_sessions");
        assert!(c.unlogged);
        assert_eq!(c.operation_timeout, Some(Duration::from_secs(2)));
        assert_eq!(
            c.url.as_deref(),
            Some("postgres://app:hunter2@127.0.0.1:5432/app?sslmode=disable&application_name=shop")
        );
        let pg = c.connection("w1").unwrap();
        assert_eq!(pg.get_application_name(), Some("shop"));
        assert_eq!(
            pg.get_options(),
            Some("-c statement_timeout=2000 -c session_driver.writer=w1")
        );
        assert_eq!(pg.get_connect_timeout(), Some(&DEFAULT_CONNECT_TIMEOUT));
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("hunter2") && dbg.contains("REDACTED"),
            "{dbg}"
        );

        // A misspelt parameter is libpq's problem, and named.
        let typo = PostgresConfig::from_driver_config(&DriverConfig::new(
            "postgresql://app:hunter2@db/app?sslmod=require",
        ))
        .unwrap()
        .connection("w1")
        .unwrap_err()
        .to_string();
        assert!(
            typo.contains("sslmod") && !typo.contains("hunter2"),
            "{typo}"
        );
        // A bad value of our own option is ours.
        let bad = PostgresConfig::from_driver_config(&DriverConfig::new(
            "postgres://db/app?pool_size=many",
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(bad.contains("pool_size"), "{bad}");
        // Explicit options beside a URL.
        let c = PostgresConfig::from_driver_config(
            &DriverConfig::new("postgres://db/app").with_option("schema", "auth"),
        )
        .unwrap();
        assert_eq!(c.schema, "auth");
    }
}

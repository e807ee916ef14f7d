//! Options of the driver opened by name, and its registration.

use std::{path::PathBuf, sync::Arc, time::Duration};

use serde::Deserialize;
use session_kit_core::driver::flexible;
use session_kit_core::{Driver, DriverConfig, DriverError, Registry};

use crate::{NAME, SqliteDriver};

/// Registers `sqlite`: `"sqlite:///var/lib/app/sessions.db"`, `"sqlite:data/sessions.db"`,
/// or `{ driver = "sqlite", path = "...", synchronous = "full" }`.
pub fn register(registry: &mut Registry) {
    registry.register(NAME, |config: DriverConfig| async move {
        let config = SqliteConfig::from_driver_config(&config)?;
        Ok(Arc::new(config.build()?) as Arc<dyn Driver>)
    });
}

/// How commits reach the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Durable across application crashes; the last commits may be lost on power loss.
    #[default]
    Normal,
    /// Every commit is flushed to disk before it returns.
    Full,
}

/// Options of the SQLite driver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file (created if missing). Required.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The table (default `sessions`).
    #[serde(default = "default_table")]
    pub table: String,
    /// How long a writer waits for another process's write lock (default 5 s).
    #[serde(default = "default_busy", deserialize_with = "flexible::opt_duration")]
    pub busy_timeout: Option<Duration>,
    /// `normal` (default) or `full`.
    #[serde(default)]
    pub synchronous: Synchronous,
    /// Most writes committed in one transaction (default 512).
    #[serde(default, deserialize_with = "flexible::opt_u64")]
    pub max_batch: Option<u64>,
}

pub(crate) fn default_table() -> String {
    "sessions".into()
}

fn default_busy() -> Option<Duration> {
    Some(Duration::from_secs(5))
}

/// How often a driver opened by config sweeps, unless its `sweep_interval` option (a layer
/// option, see [`session_kit_core::LayerOptions`]) says otherwise: 10 minutes.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(600);

impl SqliteConfig {
    /// Reads the config from a registry config: the URL path (if any) is the database file.
    pub fn from_driver_config(config: &DriverConfig) -> Result<Self, DriverError> {
        let mut sqlite: Self = config.options()?;
        if let Some(url) = config.url()? {
            if url.host_str().is_some_and(|h| !h.is_empty()) {
                return Err(DriverError::config(
                    "option `driver`: write sqlite:///absolute/path.db or sqlite:relative/path.db",
                ));
            }
            if !url.path().is_empty() && sqlite.path.is_none() {
                sqlite.path = Some(PathBuf::from(url.path()));
            }
        }
        Ok(sqlite)
    }

    /// Opens the database and builds the driver.
    pub fn build(self) -> Result<SqliteDriver, DriverError> {
        let path = self
            .path
            .ok_or_else(|| DriverError::config("option `path`: the database file is required"))?;
        let mut builder = SqliteDriver::builder(path)
            .table(self.table)
            .synchronous(self.synchronous)
            .busy_timeout(self.busy_timeout.unwrap_or_default());
        if let Some(batch) = self.max_batch {
            builder = builder.max_batch(usize::try_from(batch).unwrap_or(usize::MAX));
        }
        builder.sweep_interval(DEFAULT_SWEEP_INTERVAL).build()
    }
}

//! Options of the driver opened by name, and its registration.

use std::{path::PathBuf, sync::Arc, time::Duration};

use serde::Deserialize;
use session_kit_core::driver::flexible;
use session_kit_core::{Driver, DriverConfig, DriverError, Registry};

use crate::{FsDriver, NAME};

/// Registers `fs`: `"fs"` (base `./.sessions`), `"fs:///var/lib/app/sessions"`,
/// `"fs:relative/dir"`, or `{ driver = "fs", base = "...", durable = true }`.
pub fn register(registry: &mut Registry) {
    registry.register(NAME, |config: DriverConfig| async move {
        let fs_config = FsConfig::from_driver_config(&config)?;
        Ok(Arc::new(fs_config.build()?) as Arc<dyn Driver>)
    });
}

/// Options of the fs driver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsConfig {
    /// Base directory, created if missing (default `.sessions` in the working directory).
    #[serde(default = "default_base")]
    pub base: PathBuf,
    /// fsync every write before returning (default false).
    #[serde(default, deserialize_with = "flexible::bool")]
    pub durable: bool,
}

/// How often a driver opened by config sweeps, unless its `sweep_interval` option (a layer
/// option, see [`session_kit_core::LayerOptions`]) says otherwise: 10 minutes.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(600);

fn default_base() -> PathBuf {
    PathBuf::from(".sessions")
}

impl FsConfig {
    /// Reads the config from a registry config: the URL path (if any) is the base directory.
    pub fn from_driver_config(config: &DriverConfig) -> Result<Self, DriverError> {
        let mut fs_config: Self = config.options()?;
        if let Some(url) = config.url()? {
            if url.host_str().is_some_and(|h| !h.is_empty()) {
                return Err(DriverError::config(format!(
                    "option `driver`: `{}` has a host; write fs:///absolute/path or fs:relative/path",
                    url.scheme()
                )));
            }
            if !url.path().is_empty() && !config.options.contains_key("base") {
                fs_config.base = PathBuf::from(url.path());
            }
        }
        Ok(fs_config)
    }

    /// Builds the driver, asking to be swept every [`DEFAULT_SWEEP_INTERVAL`].
    pub fn build(self) -> Result<FsDriver, DriverError> {
        FsDriver::builder(self.base)
            .durable(self.durable)
            .sweep_interval(DEFAULT_SWEEP_INTERVAL)
            .build()
    }
}

//! The driver's options: from a config string, serde or code.

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use serde::Deserialize;
use session_kit_core::driver::flexible;
use session_kit_core::{Driver, DriverConfig, DriverError, Registry};

use crate::{RedisDriver, SCHEMES};

/// Default size of the local cache, in bytes.
pub const DEFAULT_LOCAL_CACHE: u64 = 16 * 1024 * 1024;

/// Registers every scheme in [`SCHEMES`].
pub fn register(registry: &mut Registry) {
    for scheme in SCHEMES {
        registry.register(*scheme, |config: DriverConfig| async move {
            let config = RedisConfig::from_driver_config(&config)?;
            Ok(Arc::new(RedisDriver::connect(config).await?) as Arc<dyn Driver>)
        });
    }
}

/// Options of the Redis driver.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// The server URL (taken from the config string when it is a URL).
    #[serde(default)]
    pub url: Option<String>,
    /// Connect to a Redis Cluster (implied by `redis+cluster://`).
    #[serde(default, deserialize_with = "flexible::bool")]
    pub cluster: bool,
    /// Prepended to every key, so several apps can share one Redis (default none).
    #[serde(default)]
    pub prefix: String,
    /// Longest wait for a connection (default 2 s).
    #[serde(
        default = "default_connect",
        deserialize_with = "flexible::opt_duration"
    )]
    pub connect_timeout: Option<Duration>,
    /// Longest wait for any operation (default 1 s).
    #[serde(
        default = "default_command",
        deserialize_with = "flexible::opt_duration"
    )]
    pub command_timeout: Option<Duration>,
    /// Bytes of sessions kept locally, invalidated by Redis (default 16 MiB; 0 = off). See
    /// the crate documentation.
    #[serde(
        default = "default_local_cache",
        deserialize_with = "flexible::opt_u64"
    )]
    pub local_cache: Option<u64>,
    /// With `rediss://` (feature `tls`): a PEM file of the authorities to trust for the
    /// server's certificate, instead of the Web PKI roots (a private CA, a managed Redis's
    /// bundle).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

pub(crate) fn default_local_cache() -> Option<u64> {
    Some(DEFAULT_LOCAL_CACHE)
}

pub(crate) fn default_connect() -> Option<Duration> {
    Some(Duration::from_secs(2))
}

pub(crate) fn default_command() -> Option<Duration> {
    Some(Duration::from_secs(1))
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("RedisConfig")
            .field("url", &self.url.as_deref().map(redact))
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("local_cache", &self.local_cache)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

/// `url` with any password replaced.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable>".into(),
    }
}

impl RedisConfig {
    /// A config for `url` with default options.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            cluster: false,
            prefix: String::new(),
            connect_timeout: default_connect(),
            command_timeout: default_command(),
            local_cache: default_local_cache(),
            tls_ca_file: None,
        }
    }

    /// Reads the config from a registry config (the URL, minus the query that held options).
    pub fn from_driver_config(config: &DriverConfig) -> Result<Self, DriverError> {
        let mut redis: Self = config.options()?;
        if let Some(mut url) = config.url()? {
            url.set_query(None);
            if url.scheme() == "redis+cluster" {
                redis.cluster = true;
            }
            redis.url.get_or_insert_with(|| url.to_string());
        }
        Ok(redis)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn config_from_urls_and_debug_hides_passwords() {
        let c = RedisConfig::from_driver_config(&DriverConfig::new(
            "redis://:hunter2@127.0.0.1:6379/2?prefix=app:&command_timeout=250ms",
        ))
        .unwrap();
        assert_eq!(c.prefix, "app:");
        assert_eq!(c.command_timeout, Some(Duration::from_millis(250)));
        assert_eq!(c.local_cache, Some(DEFAULT_LOCAL_CACHE));
        assert_eq!(c.url.as_deref(), Some("redis://:hunter2@127.0.0.1:6379/2"));
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("hunter2") && dbg.contains("REDACTED"),
            "{dbg}"
        );
        let c =
            RedisConfig::from_driver_config(&DriverConfig::new("redis+cluster://127.0.0.1:7000"))
                .unwrap();
        assert!(c.cluster);
        let c =
            RedisConfig::from_driver_config(&DriverConfig::new("redis://x?local_cache=0")).unwrap();
        assert_eq!(c.local_cache, Some(0));
        let err = RedisConfig::from_driver_config(&DriverConfig::new("redis://x?bogus=1"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("bogus"));
    }
}

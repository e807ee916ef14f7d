//! Choosing a driver by name: [`DriverConfig`] (from a string, serde or the environment) and the
//! [`Registry`] of driver factories.

use std::{collections::BTreeMap, fmt, future::Future, pin::Pin, sync::Arc};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use url::Url;

use crate::{Driver, DriverError, LayerOptions, layers::Stack};

/// Which driver to use and its options.
///
/// `driver` is a registered name (`"memory"`, `"fs"`) or a URL whose scheme is one
/// (`"fs:///var/lib/app/sessions"`, `"redis://127.0.0.1:6379"`); URL query parameters become
/// options. Other fields are driver options, so it deserialises from TOML, JSON or YAML:
///
/// ```
/// use session_kit_core::DriverConfig;
///
/// let from_string = DriverConfig::parse("fs:///var/lib/app/sessions?durable=true")?;
/// assert_eq!(from_string.name(), "fs");
///
/// let from_json: DriverConfig =
///     serde_json::from_str(r#"{ "driver": "fs", "base": "/var/lib/app/sessions" }"#).unwrap();
/// assert_eq!(from_json.name(), "fs");
/// assert_eq!(from_json.options["base"], "/var/lib/app/sessions");
/// # Ok::<(), session_kit_core::DriverError>(())
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverConfig {
    /// A driver name or URL.
    pub driver: String,
    /// Driver-specific options.
    #[serde(flatten)]
    pub options: Map<String, Value>,
}

impl DriverConfig {
    /// A config naming a driver (or URL) with no options.
    pub fn new(driver: impl Into<String>) -> Self {
        Self {
            driver: driver.into(),
            options: Map::new(),
        }
    }

    /// Adds an option.
    pub fn with_option(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// Parses a config string: a name, a URL, or a JSON object such as
    /// `{"driver":"fs","base":"/tmp/s"}`.
    pub fn parse(config: &str) -> Result<Self, DriverError> {
        let config = config.trim();
        if config.starts_with('{') {
            return serde_json::from_str(config)
                .map_err(|e| DriverError::config(format!("driver config is not valid JSON: {e}")));
        }
        if config.is_empty() {
            return Err(DriverError::config("the driver config string is empty"));
        }
        Ok(Self::new(config))
    }

    /// Reads the config string from the environment variable `var`, and options from
    /// variables named `{var}_{OPTION}` (`SESSION_DRIVER_BASE=/tmp/s` sets `base`).
    pub fn from_env(var: &str) -> Result<Self, DriverError> {
        let value = std::env::var(var)
            .map_err(|_| DriverError::config(format!("environment variable {var} is not set")))?;
        let mut config = Self::parse(&value)?;
        let prefix = format!("{var}_");
        for (name, value) in std::env::vars() {
            if let Some(option) = name.strip_prefix(&prefix) {
                config
                    .options
                    .insert(option.to_ascii_lowercase(), Value::String(value));
            }
        }
        Ok(config)
    }

    /// The driver name: the URL scheme, or the whole string when it is not a URL.
    pub fn name(&self) -> &str {
        match self.driver.split_once(':') {
            Some((scheme, _)) => scheme,
            None => &self.driver,
        }
    }

    /// The config string safe to log: a URL's password and query values are replaced.
    pub fn redacted(&self) -> String {
        let Ok(Some(mut url)) = self.url() else {
            return self.driver.clone();
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("REDACTED"));
        }
        let keys: Vec<String> = url.query_pairs().map(|(k, _)| format!("{k}=…")).collect();
        url.set_query(None);
        let mut out = url.to_string();
        if !keys.is_empty() {
            out.push('?');
            out.push_str(&keys.join("&"));
        }
        out
    }

    /// The URL, when `driver` is one.
    pub fn url(&self) -> Result<Option<Url>, DriverError> {
        if !self.driver.contains(':') {
            return Ok(None);
        }
        Url::parse(&self.driver)
            .map(Some)
            .map_err(|e| DriverError::config(format!("option `driver`: not a valid URL: {e}")))
    }

    /// Takes the [layer options](LayerOptions) (`timeout`, `retries`) out of the URL query and
    /// the explicit options, so that the driver's own options never see them.
    pub fn take_layer_options(&mut self) -> Result<LayerOptions, DriverError> {
        let mut taken = Map::new();
        if let Some(mut url) = self.url()? {
            let (layer, rest): (Vec<_>, Vec<_>) = url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .partition(|(k, _)| LayerOptions::NAMES.contains(&k.as_str()));
            if !layer.is_empty() {
                for (k, v) in layer {
                    taken.insert(k, Value::String(v));
                }
                if rest.is_empty() {
                    url.set_query(None);
                } else {
                    url.query_pairs_mut().clear().extend_pairs(rest);
                }
                self.driver = url.to_string();
            }
        }
        for name in LayerOptions::NAMES {
            if let Some(value) = self.options.remove(name) {
                taken.insert(name.to_owned(), value);
            }
        }
        serde_path_to_error::deserialize(Value::Object(taken)).map_err(|e| {
            let path = e.path().to_string();
            DriverError::config(format!("option `{path}`: {}", e.inner()))
        })
    }

    /// For a driver whose URL also carries its client library's own parameters (libpq's
    /// `sslmode`, ...): the options named in `names` as a typed config (from the URL's query
    /// and the explicit options, as [`options`](Self::options) reads them), and the URL with
    /// the other parameters only, for the client (`None` when the config is not a URL).
    ///
    /// ```
    /// use session_kit_core::DriverConfig;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Mine { table: Option<String> }
    ///
    /// let config = DriverConfig::new("postgres://db/app?table=web&sslmode=require");
    /// let (mine, url) = config.options_beside_url::<Mine>(&["table"])?;
    /// assert_eq!(mine.table.as_deref(), Some("web"));
    /// assert_eq!(url.as_deref(), Some("postgres://db/app?sslmode=require"));
    /// # Ok::<(), session_kit_core::DriverError>(())
    /// ```
    pub fn options_beside_url<C: DeserializeOwned>(
        &self,
        names: &[&str],
    ) -> Result<(C, Option<String>), DriverError> {
        let Some(mut url) = self.url()? else {
            return Ok((self.options()?, None));
        };
        let (ours, theirs): (Vec<_>, Vec<_>) = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .partition(|(k, _)| names.contains(&k.as_str()));
        let mut options_only = url.clone();
        options_only.set_query(None);
        if !ours.is_empty() {
            options_only.query_pairs_mut().extend_pairs(ours);
        }
        let options = Self {
            driver: options_only.to_string(),
            options: self.options.clone(),
        }
        .options()?;
        url.set_query(None);
        if !theirs.is_empty() {
            url.query_pairs_mut().extend_pairs(theirs);
        }
        Ok((options, Some(url.to_string())))
    }

    /// The options as a typed config: URL query parameters overlaid by explicit options.
    /// Errors name the offending option. String values from URLs and the environment are
    /// accepted for numbers and booleans by the [`flexible`](crate::driver::flexible) deserialisers.
    pub fn options<C: DeserializeOwned>(&self) -> Result<C, DriverError> {
        let mut merged = Map::new();
        if let Some(url) = self.url()? {
            for (k, v) in url.query_pairs() {
                merged.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
        merged.extend(self.options.clone());
        serde_path_to_error::deserialize(Value::Object(merged)).map_err(|e| {
            let path = e.path().to_string();
            DriverError::config(format!("option `{path}`: {}", e.inner()))
        })
    }
}

impl fmt::Debug for DriverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs and options may hold credentials: show the scheme and option names only.
        f.debug_struct("DriverConfig")
            .field("driver", &self.name())
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A future that opens a driver.
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<Arc<dyn Driver>, DriverError>> + Send>>;

/// Builds a driver from a [`DriverConfig`]. Any `Fn(DriverConfig) -> impl Future` is one.
pub trait DriverFactory: Send + Sync + 'static {
    /// Opens a driver (connecting to its backend if it has one).
    fn open(&self, config: DriverConfig) -> OpenFuture;
}

impl<F, Fut> DriverFactory for F
where
    F: Fn(DriverConfig) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Arc<dyn Driver>, DriverError>> + Send + 'static,
{
    fn open(&self, config: DriverConfig) -> OpenFuture {
        Box::pin(self(config))
    }
}

/// Maps driver names and URL schemes to factories.
///
/// Each driver crate exports `register(&mut Registry)`; the `session-kit` facade registers the
/// built-in drivers enabled by its cargo features. Third-party drivers register the same way:
///
/// ```
/// use std::sync::Arc;
/// use session_kit_core::{Driver, DriverConfig, DriverError, Registry};
///
/// # async fn example() -> Result<(), DriverError> {
/// let mut registry = Registry::new();
/// session_kit_memory::register(&mut registry);
/// let driver: Arc<dyn Driver> = registry.open("memory").await?;
///
/// let unknown = registry.open("nosuch://x").await.err().unwrap();
/// assert!(unknown.to_string().contains("memory"), "lists the known names");
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(example()).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<String, Arc<dyn DriverFactory>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `factory` under `name` (also used as URL scheme), replacing any earlier one.
    pub fn register(&mut self, name: impl Into<String>, factory: impl DriverFactory) -> &mut Self {
        self.factories.insert(name.into(), Arc::new(factory));
        self
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    /// Opens the driver a config string names.
    pub async fn open(&self, config: &str) -> Result<Arc<dyn Driver>, DriverError> {
        self.open_config(DriverConfig::parse(config)?).await
    }

    /// Opens the driver a config names, in the [standard layers](crate::layers::Stack::from_options)
    /// (validation and tracing, and a timeout or retries when the config's `timeout` or
    /// `retries` options or the driver's [defaults](Driver::layer_defaults) ask for them; the
    /// driver never sees those two options).
    pub async fn open_config(
        &self,
        mut config: DriverConfig,
    ) -> Result<Arc<dyn Driver>, DriverError> {
        let name = config.name().to_ascii_lowercase();
        let Some(factory) = self.factories.get(&name) else {
            return Err(DriverError::config(format!(
                "unknown driver `{name}`; drivers compiled in: {}",
                self.names().join(", ")
            )));
        };
        let options = config.take_layer_options()?;
        let driver = factory.open(config).await?;
        // The config's options first, the driver's defaults for the rest.
        let stack = Stack::from_options(&options.or(driver.layer_defaults()))?;
        Ok(stack.apply(driver))
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Registry").field(&self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::flexible;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        #[serde(default, deserialize_with = "flexible::bool")]
        durable: bool,
        #[serde(default, deserialize_with = "flexible::opt_u64")]
        capacity: Option<u64>,
        #[serde(default, deserialize_with = "flexible::opt_duration")]
        interval: Option<Duration>,
    }

    #[test]
    fn layer_options_are_taken_out_of_urls_and_options() {
        let mut config =
            DriverConfig::parse("redis://h:1/0?timeout=2s&prefix=a&retries=3").unwrap();
        let layer = config.take_layer_options().unwrap();
        assert_eq!(layer.timeout, Some(std::time::Duration::from_secs(2)));
        assert_eq!(layer.retries, Some(3));
        assert_eq!(config.driver, "redis://h:1/0?prefix=a");

        let mut config = DriverConfig::new("memory").with_option("retries", 2);
        assert_eq!(config.take_layer_options().unwrap().retries, Some(2));
        assert!(config.options.is_empty());

        // Untouched when there are none: no URL normalisation.
        let mut config = DriverConfig::parse("fs:///tmp/x?durable=1").unwrap();
        assert_eq!(
            config.take_layer_options().unwrap(),
            LayerOptions::default()
        );
        assert_eq!(config.driver, "fs:///tmp/x?durable=1");

        let mut bad = DriverConfig::parse("memory:?timeout=soon").unwrap();
        let err = bad.take_layer_options().unwrap_err().to_string();
        assert!(err.contains("option `timeout`"), "{err}");
    }

    #[tokio::test]
    async fn the_registry_opens_drivers_in_the_standard_layers() {
        use crate::{Capabilities, testing::Recorder};
        let mut registry = Registry::new();
        registry.register("rec", |config: DriverConfig| async move {
            // The driver never sees the layer options.
            assert_eq!(config.driver, "rec://x?mine=1");
            Ok(Arc::new(Recorder::new(Capabilities::new(10, 10))) as Arc<dyn Driver>)
        });
        let plain = registry.open("rec://x?mine=1").await.unwrap();
        assert_eq!(plain.layers(), ["trace", "validate"]);
        #[cfg(feature = "tokio")]
        {
            let layered = registry
                .open("rec://x?mine=1&timeout=1s&retries=2")
                .await
                .unwrap();
            assert_eq!(layered.layers(), ["trace", "validate", "retry", "timeout"]);
        }
    }

    #[test]
    fn names_come_from_the_scheme() {
        assert_eq!(DriverConfig::new("memory").name(), "memory");
        assert_eq!(DriverConfig::new("fs:///a/b").name(), "fs");
        assert_eq!(
            DriverConfig::new("redis+unix:///tmp/r.sock").name(),
            "redis+unix"
        );
        assert!(DriverConfig::parse("  ").is_err());
        assert!(DriverConfig::parse("{not json").is_err());
    }

    #[test]
    fn url_query_and_options_merge_with_options_winning() {
        let c = DriverConfig::parse("fs:///x?durable=true&capacity=5&interval=2s").unwrap();
        let d: Demo = c.options().unwrap();
        assert_eq!(
            d,
            Demo {
                durable: true,
                capacity: Some(5),
                interval: Some(Duration::from_secs(2))
            }
        );
        let c = c.with_option("durable", false).with_option("interval", 250);
        let d: Demo = c.options().unwrap();
        assert!(!d.durable);
        assert_eq!(d.interval, Some(Duration::from_millis(250)));
    }

    #[test]
    fn invalid_options_name_the_option() {
        let err = DriverConfig::parse("fs:///x?capacity=lots")
            .unwrap()
            .options::<Demo>()
            .unwrap_err();
        assert!(err.to_string().contains("capacity"), "{err}");
        let err = DriverConfig::new("fs")
            .with_option("bogus", 1)
            .options::<Demo>()
            .unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn redacted_hides_passwords_and_query_values() {
        let c = DriverConfig::new("redis://user:hunter2@127.0.0.1:6379/0?token=s3cret&prefix=a");
        let shown = c.redacted();
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(
            shown.contains("127.0.0.1:6379") && shown.contains("token=…"),
            "{shown}"
        );
        assert_eq!(DriverConfig::new("memory").redacted(), "memory");
    }

    #[test]
    fn debug_hides_credentials() {
        let c = DriverConfig::new("redis://user:hunter2@127.0.0.1/").with_option("token", "s3cret");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("s3cret"), "{dbg}");
    }
}

//! The driver's options: from a config string, serde or code, with credentials, region and
//! endpoint falling back to the standard environment variables.

use std::{fmt, sync::Arc, time::Duration};

use serde::Deserialize;
use session_kit_core::driver::flexible;
use session_kit_core::{Driver, DriverConfig, DriverError, Registry};

use crate::{S3Driver, SCHEMES};

/// Registers every scheme in [`SCHEMES`].
pub fn register(registry: &mut Registry) {
    for scheme in SCHEMES {
        registry.register(*scheme, |config: DriverConfig| async move {
            let config = S3Config::from_driver_config(&config)?;
            Ok(Arc::new(S3Driver::connect(config).await?) as Arc<dyn Driver>)
        });
    }
}

/// Options of the S3 driver (see the crate documentation).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (the host of an `s3://` URL). It must exist.
    #[serde(default)]
    pub bucket: String,
    /// Prepended to every object name (the path of an `s3://` URL), for example `sessions/`.
    #[serde(default)]
    pub prefix: String,
    /// The region (default `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// An S3-compatible endpoint such as `http://127.0.0.1:9000` (default
    /// `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, else AWS).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`); default: on when an endpoint is set.
    #[serde(default, deserialize_with = "flexible::opt_bool")]
    pub path_style: Option<bool>,
    /// Access key id (default `AWS_ACCESS_KEY_ID`).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key (default `AWS_SECRET_ACCESS_KEY`). Never printed.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials (default `AWS_SESSION_TOKEN`). Never printed.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Longest wait for a connection (default 2 s).
    #[serde(
        default = "default_connect",
        deserialize_with = "flexible::opt_duration"
    )]
    pub connect_timeout: Option<Duration>,
    /// Longest wait for one operation, retries included (default 10 s); each attempt gets at
    /// most a third of it.
    #[serde(
        default = "default_operation",
        deserialize_with = "flexible::opt_duration"
    )]
    pub operation_timeout: Option<Duration>,
    /// Tries per operation, the first included (default 3; 1 disables retries).
    #[serde(default, deserialize_with = "flexible::opt_u64")]
    pub max_attempts: Option<u64>,
    /// Sweep expired objects this often in the background (default off: run one sweeper per
    /// deployment, or rely on a lifecycle rule). The driver asks for session-kit-core's sweep
    /// layer; in a config string, `sweep_interval` is that layer's option.
    #[serde(default, deserialize_with = "flexible::opt_duration")]
    pub sweep_interval: Option<Duration>,
}

pub(crate) fn default_connect() -> Option<Duration> {
    Some(Duration::from_secs(2))
}

pub(crate) fn default_operation() -> Option<Duration> {
    Some(Duration::from_secs(10))
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "REDACTED"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "REDACTED"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("sweep_interval", &self.sweep_interval)
            .finish()
    }
}

impl S3Config {
    /// A config for `bucket` with default options.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: String::new(),
            region: None,
            endpoint: None,
            path_style: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            connect_timeout: default_connect(),
            operation_timeout: default_operation(),
            max_attempts: None,
            sweep_interval: None,
        }
    }

    /// Reads the config from a registry config: `s3://bucket/prefix?option=value`.
    pub fn from_driver_config(config: &DriverConfig) -> Result<Self, DriverError> {
        let mut s3: Self = config.options()?;
        if let Some(url) = config.url()? {
            if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
                s3.bucket = host.to_owned();
            }
            let path = url.path().trim_start_matches('/');
            if !path.is_empty() && s3.prefix.is_empty() {
                s3.prefix = percent_decode(path)?;
            }
        }
        Ok(s3)
    }
}

pub(crate) fn percent_decode(path: &str) -> Result<String, DriverError> {
    let mut out = Vec::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = path
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| DriverError::config("option `prefix`: bad percent-escape"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| DriverError::config("option `prefix`: not UTF-8"))
}

/// Credentials, region and endpoint: the config's, else the standard environment variables
/// (read through `env`, so tests can pass their own).
pub(crate) struct Resolved {
    pub(crate) access_key: String,
    pub(crate) secret: String,
    pub(crate) token: Option<String>,
    pub(crate) region: String,
    pub(crate) endpoint: Option<String>,
}

impl Resolved {
    pub(crate) fn new(
        config: &S3Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, DriverError> {
        let first = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
        let access_key = config
            .access_key_id
            .clone()
            .or_else(|| first(&["AWS_ACCESS_KEY_ID"]));
        let secret = config
            .secret_access_key
            .clone()
            .or_else(|| first(&["AWS_SECRET_ACCESS_KEY"]));
        let (Some(access_key), Some(secret)) = (access_key, secret) else {
            return Err(DriverError::config(
                "options `access_key_id` and `secret_access_key`: required (or set \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
            ));
        };
        Ok(Self {
            access_key,
            secret,
            token: config
                .session_token
                .clone()
                .or_else(|| first(&["AWS_SESSION_TOKEN"])),
            region: config
                .region
                .clone()
                .or_else(|| first(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
                .unwrap_or_else(|| "us-east-1".into()),
            endpoint: config
                .endpoint
                .clone()
                .or_else(|| first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_config() {
        let config = DriverConfig::parse(
            "s3://my-bucket/app/sessions%20x/?region=eu-west-1&endpoint=http://127.0.0.1:9000&path_style=false&max_attempts=5",
        )
        .unwrap();
        let s3 = S3Config::from_driver_config(&config).unwrap();
        assert_eq!(s3.bucket, "my-bucket");
        assert_eq!(s3.prefix, "app/sessions x/");
        assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.path_style, Some(false));
        assert_eq!(s3.max_attempts, Some(5));
    }

    #[test]
    fn credentials_region_and_endpoint_fall_back_to_the_environment() {
        let vars = [
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "secret-env"),
            ("AWS_DEFAULT_REGION", "eu-north-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ];
        let env = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        };
        let resolved = Resolved::new(&S3Config::new("b"), env).unwrap();
        assert_eq!(resolved.access_key, "AKIDENV");
        assert_eq!(resolved.secret, "secret-env");
        assert_eq!(resolved.region, "eu-north-1");
        assert_eq!(resolved.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(resolved.token, None);

        let mut config = S3Config::new("b");
        config.access_key_id = Some("AKIDCONFIG".into());
        config.region = Some("us-west-2".into());
        let resolved = Resolved::new(&config, env).unwrap();
        assert_eq!(resolved.access_key, "AKIDCONFIG");
        assert_eq!(resolved.region, "us-west-2");

        let e = Resolved::new(&S3Config::new("b"), |_| None).err().unwrap();
        assert_eq!(e.kind(), session_kit_core::ErrorKind::Config);
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
        let empty = |_: &str| Some(String::new());
        assert!(
            Resolved::new(&S3Config::new("b"), empty).is_err(),
            "empty variables count as unset"
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let mut s3 = S3Config::new("b");
        s3.secret_access_key = Some("wJalrXUtnFEMI".into());
        s3.session_token = Some("FwoGZXIvYXdzE".into());
        let shown = format!("{s3:?}");
        assert!(!shown.contains("wJalrXUtnFEMI") && !shown.contains("FwoGZXIvYXdzE"));
        assert!(shown.contains("REDACTED"));
    }

    #[test]
    fn unknown_options_are_named() {
        let config = DriverConfig::parse("s3://b/?regoin=x").unwrap();
        let e = S3Config::from_driver_config(&config).unwrap_err();
        assert!(e.to_string().contains("regoin"), "{e}");
    }
}

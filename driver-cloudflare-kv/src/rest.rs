//! The REST API transport: Cloudflare's v4 KV endpoints over HTTPS.

use std::{fmt, sync::Arc, time::Duration};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use session_kit_core::driver::flexible;
use session_kit_core::{
    Driver, DriverConfig, DriverError, LayerOptions, Registry, async_trait, bytes::Bytes,
};

use crate::{CloudflareKvDriver, KvDriver, KvPage, PAGE, Transport, sealed};

/// The registry name of the REST driver.
pub const NAME: &str = "cloudflare-kv";
/// URL schemes the REST driver registers.
pub const SCHEMES: &[&str] = &["cloudflare-kv"];
const DEFAULT_BASE: &str = "https://api.cloudflare.com/client/v4";

/// Registers every scheme in [`SCHEMES`].
pub fn register(registry: &mut Registry) {
    for scheme in SCHEMES {
        registry.register(*scheme, |config: DriverConfig| async move {
            let config = CloudflareKvConfig::from_driver_config(&config)?;
            Ok(Arc::new(CloudflareKvDriver::connect(config).await?) as Arc<dyn Driver>)
        });
    }
}

/// Options of the REST driver: `cloudflare-kv://ACCOUNT_ID/NAMESPACE_ID?option=value`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflareKvConfig {
    /// The account id (the host of the URL).
    #[serde(default)]
    pub account_id: String,
    /// The KV namespace id (the path of the URL).
    #[serde(default)]
    pub namespace_id: String,
    /// An API token with `Workers KV Storage: Edit` (default `CLOUDFLARE_API_TOKEN`). Never
    /// printed.
    #[serde(default)]
    pub api_token: Option<String>,
    /// The API base (default `https://api.cloudflare.com/client/v4`; tests point it at a local
    /// Worker).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Prepended to every key, so several apps can share a namespace.
    #[serde(default)]
    pub prefix: String,
    /// Longest wait for one HTTP request (default 5 s).
    #[serde(
        default = "default_timeout",
        deserialize_with = "flexible::opt_duration"
    )]
    pub request_timeout: Option<Duration>,
    /// Tries per operation for 429, 5xx and connection errors (default 3), with full-jitter
    /// backoff. The driver asks for them as a retry layer ([`Driver::layer_defaults`]), which
    /// the registry and `SessionStorage` apply; a driver used directly sends each request once.
    #[serde(default, deserialize_with = "flexible::opt_u64")]
    pub max_attempts: Option<u64>,
}

fn default_timeout() -> Option<Duration> {
    Some(Duration::from_secs(5))
}

impl fmt::Debug for CloudflareKvConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareKvConfig")
            .field("account_id", &self.account_id)
            .field("namespace_id", &self.namespace_id)
            .field("api_token", &self.api_token.as_ref().map(|_| "REDACTED"))
            .field("base_url", &self.base_url)
            .field("prefix", &self.prefix)
            .field("request_timeout", &self.request_timeout)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl CloudflareKvConfig {
    /// A config for a namespace, with the token from `CLOUDFLARE_API_TOKEN` unless set.
    pub fn new(account_id: impl Into<String>, namespace_id: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
            namespace_id: namespace_id.into(),
            api_token: None,
            base_url: None,
            prefix: String::new(),
            request_timeout: default_timeout(),
            max_attempts: None,
        }
    }

    /// Reads the config from a registry config.
    pub fn from_driver_config(config: &DriverConfig) -> Result<Self, DriverError> {
        let mut kv: Self = config.options()?;
        if let Some(url) = config.url()? {
            if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
                kv.account_id = host.to_owned();
            }
            let path = url.path().trim_matches('/');
            if !path.is_empty() {
                kv.namespace_id = path.to_owned();
            }
        }
        Ok(kv)
    }
}

/// The REST API transport (see [`CloudflareKvConfig`]).
pub struct RestApi {
    client: reqwest::Client,
    /// `.../accounts/{account}/storage/kv/namespaces/{namespace}`.
    base: url::Url,
    token: String,
    attempts: u32,
}

impl sealed::Sealed for RestApi {}

impl KvDriver<RestApi> {
    /// Builds the client and checks the namespace and token with one listing call.
    pub async fn connect(config: CloudflareKvConfig) -> Result<Self, DriverError> {
        for (name, value) in [
            ("account_id", &config.account_id),
            ("namespace_id", &config.namespace_id),
        ] {
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(DriverError::config(format!(
                    "option `{name}`: required, letters, digits and dashes \
                     (cloudflare-kv://ACCOUNT_ID/NAMESPACE_ID)"
                )));
            }
        }
        let token = api_token(&config, |name| std::env::var(name).ok())?;
        let base = config.base_url.as_deref().unwrap_or(DEFAULT_BASE);
        let base = url::Url::parse(&format!(
            "{}/accounts/{}/storage/kv/namespaces/{}",
            base.trim_end_matches('/'),
            config.account_id,
            config.namespace_id
        ))
        .map_err(|e| DriverError::config(format!("option `base_url`: {e}")))?;
        let timeout = config.request_timeout.unwrap_or(Duration::from_secs(5));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .build()
            .map_err(|e| DriverError::config(format!("building the HTTP client: {e}")))?;
        let attempts = u32::try_from(config.max_attempts.unwrap_or(3).clamp(1, 10)).unwrap_or(3);
        let transport = RestApi {
            client,
            base,
            token,
            attempts,
        };
        // Fail now, not on the first request, when the token or namespace is wrong.
        transport.list_page("", None, 10).await?;
        KvDriver::with_transport(transport, config.prefix)
    }
}

/// The token: the config's, else `CLOUDFLARE_API_TOKEN` (read through `env`, so tests can pass
/// their own).
fn api_token(
    config: &CloudflareKvConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, DriverError> {
    config
        .api_token
        .clone()
        .or_else(|| env("CLOUDFLARE_API_TOKEN"))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            DriverError::config("option `api_token`: required (or set CLOUDFLARE_API_TOKEN)")
        })
}

/// Cloudflare's response envelope (errors only; values come back raw).
#[derive(Deserialize, Default)]
struct Envelope {
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    result: Vec<ListedKey>,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
struct ListedKey {
    name: String,
    #[serde(default)]
    expiration: Option<u64>,
}

#[derive(Deserialize)]
struct ResultInfo {
    #[serde(default)]
    cursor: Option<String>,
}

/// The "key not found" error code of the values endpoint.
const KEY_NOT_FOUND: i64 = 10009;

impl RestApi {
    fn url(&self, path: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(path);
        }
        url
    }

    /// Sends one request. Throttling (429), server errors and connection failures come back as
    /// retryable errors: the retry layer (see [`Transport::layer_defaults`]) tries again.
    async fn send(
        &self,
        what: &'static str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Bytes), DriverError> {
        match build().bearer_auth(&self.token).send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                    .map(std::time::Duration::from_secs);
                match response.bytes().await {
                    Ok(body)
                        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() =>
                    {
                        let error = api_error(what, status, &body);
                        Err(match retry_after {
                            Some(wait) => error.with_retry_after(wait),
                            None => error,
                        })
                    }
                    Ok(body) => Ok((status, body)),
                    Err(e) => Err(transport_error(what, e)),
                }
            }
            Err(e) => Err(transport_error(what, e)),
        }
    }

    async fn list_page(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KvPage, DriverError> {
        let mut url = self.url(&["keys"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &limit.to_string());
            if !prefix.is_empty() {
                query.append_pair("prefix", prefix);
            }
            if let Some(cursor) = cursor {
                query.append_pair("cursor", cursor);
            }
        }
        let (status, body) = self.send("list", || self.client.get(url.clone())).await?;
        if !status.is_success() {
            return Err(api_error("list", status, &body));
        }
        let listing: Listing = serde_json::from_slice(&body).map_err(|e| {
            DriverError::permanent("cloudflare kv list: unreadable response", Some(Box::new(e)))
        })?;
        Ok(KvPage {
            keys: listing
                .result
                .into_iter()
                .map(|k| (k.name, k.expiration))
                .collect(),
            cursor: listing
                .result_info
                .and_then(|i| i.cursor)
                .filter(|c| !c.is_empty()),
        })
    }
}

#[async_trait]
impl Transport for RestApi {
    /// `max_attempts` (default 3) as retries of the retry layer: every KV write overwrites, so
    /// every request can be sent again.
    fn layer_defaults(&self) -> LayerOptions {
        LayerOptions::new().with_retries(self.attempts - 1)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, DriverError> {
        let url = self.url(&["values", key]);
        let (status, body) = self.send("get", || self.client.get(url.clone())).await?;
        if status == StatusCode::NOT_FOUND && error_codes(&body).contains(&KEY_NOT_FOUND) {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(api_error("get", status, &body));
        }
        Ok(Some(body))
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl_secs: Option<u64>,
    ) -> Result<(), DriverError> {
        let mut url = self.url(&["values", key]);
        if let Some(ttl) = ttl_secs {
            url.query_pairs_mut()
                .append_pair("expiration_ttl", &ttl.to_string());
        }
        let body = Bytes::from(value);
        let (status, response) = self
            .send("put", || {
                self.client
                    .request(Method::PUT, url.clone())
                    .header("content-type", "application/octet-stream")
                    .body(body.clone())
            })
            .await?;
        if !status.is_success() {
            return Err(api_error("put", status, &response));
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        let url = self.url(&["values", key]);
        let (status, body) = self
            .send("delete", || self.client.delete(url.clone()))
            .await?;
        if status.is_success()
            || (status == StatusCode::NOT_FOUND && error_codes(&body).contains(&KEY_NOT_FOUND))
        {
            return Ok(());
        }
        Err(api_error("delete", status, &body))
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<KvPage, DriverError> {
        self.list_page(prefix, cursor, PAGE).await
    }
}

fn error_codes(body: &[u8]) -> Vec<i64> {
    serde_json::from_slice::<Envelope>(body)
        .unwrap_or_default()
        .errors
        .iter()
        .map(|e| e.code)
        .collect()
}

/// Maps an API error to the core's kinds, with the status and Cloudflare's error codes.
fn api_error(what: &str, status: StatusCode, body: &[u8]) -> DriverError {
    let envelope: Envelope = serde_json::from_slice(body).unwrap_or_default();
    let detail: Vec<String> = envelope
        .errors
        .iter()
        .map(|e| {
            let message: String = e.message.chars().take(120).collect();
            format!("{} {message}", e.code)
        })
        .collect();
    let message = format!(
        "cloudflare kv {what}: HTTP {} [{}]",
        status.as_u16(),
        detail.join("; ")
    );
    match status.as_u16() {
        401 | 403 | 404 => DriverError::config(message),
        413 => DriverError::permanent(message, None),
        429 | 500..=599 => DriverError::unavailable(message, true, None),
        _ => DriverError::permanent(message, None),
    }
}

/// A request that got no answer, with the client's error as the cause (without the URL, which
/// names the account and namespace).
fn transport_error(what: &str, e: reqwest::Error) -> DriverError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    DriverError::unavailable(
        format!("cloudflare kv {what}: {kind}"),
        true,
        Some(Box::new(e.without_url())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_config_and_redaction() {
        let config = DriverConfig::parse(
            "cloudflare-kv://0123abcd/ns-42?api_token=tok-SECRET&prefix=app:&max_attempts=2",
        )
        .unwrap();
        let kv = CloudflareKvConfig::from_driver_config(&config).unwrap();
        assert_eq!(kv.account_id, "0123abcd");
        assert_eq!(kv.namespace_id, "ns-42");
        assert_eq!(kv.prefix, "app:");
        assert_eq!(kv.max_attempts, Some(2));
        assert!(!format!("{kv:?}").contains("tok-SECRET"));
        assert!(!config.redacted().contains("tok-SECRET"));
    }

    #[test]
    fn the_token_falls_back_to_the_environment() {
        let env = |name: &str| (name == "CLOUDFLARE_API_TOKEN").then(|| "from-env".to_owned());
        let mut config = CloudflareKvConfig::new("a", "n");
        assert_eq!(api_token(&config, env).unwrap(), "from-env");
        config.api_token = Some("from-config".into());
        assert_eq!(api_token(&config, env).unwrap(), "from-config");
        let e = api_token(&CloudflareKvConfig::new("a", "n"), |_| None).unwrap_err();
        assert!(e.to_string().contains("CLOUDFLARE_API_TOKEN"), "{e}");
        assert!(api_token(&CloudflareKvConfig::new("a", "n"), |_| Some(String::new())).is_err());
    }

    #[test]
    fn api_errors_map_to_kinds() {
        let body =
            br#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#;
        let e = api_error("get", StatusCode::FORBIDDEN, body);
        assert_eq!(e.kind(), session_kit_core::ErrorKind::Config);
        assert!(e.to_string().contains("10000"), "{e}");
        assert!(api_error("get", StatusCode::SERVICE_UNAVAILABLE, b"").is_retryable());
        assert!(!api_error("put", StatusCode::BAD_REQUEST, b"").is_retryable());
        assert_eq!(
            error_codes(br#"{"errors":[{"code":10009,"message":"x"}]}"#),
            [10009]
        );
    }
}

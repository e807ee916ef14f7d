//! An S3 session driver, for apps that run where there is object storage but no disk or Redis.
//!
//! * **Conditional writes**: create-only is `PutObject` with `If-None-Match: *`, compare-and-swap
//!   is `PutObject` with `If-Match: <ETag>` (the ETag is the entry's version). A server that
//!   answers `412 Precondition Failed` (or `409` for a concurrent conditional write) refused the
//!   write; nothing is ever written twice. Works on AWS S3 and on servers that implement
//!   conditional writes (moto, MinIO, R2); the conformance suite fails a server that ignores them.
//! * **Versions**: the ETag is an MD5 of the body, so two writes of the same bytes would share
//!   one: the body is an 8-byte random write nonce followed by the value, so every write has a
//!   version of its own (no ABA in compare-and-swap).
//! * **Expiry**: S3 has no per-object TTL. The expiry is kept with the object (metadata
//!   `x-amz-meta-session-expires-at`, Unix milliseconds) and enforced on every read and listing;
//!   [`S3Driver::sweep`] (in the background with option `sweep_interval`, session-kit-core's
//!   sweep layer) deletes expired objects through `ListObjectsV2` pages. Keep a bucket
//!   lifecycle rule as a backstop, see below. A compare-and-swap with a version read while the
//!   entry was alive fails once the entry has expired (the version carries the expiry).
//! * **Keys** are escaped with [`session_kit_core::driver::escape_key`] (`[A-Za-z0-9_:-]` and `=XX`), so
//!   any key is a plain object name under the configured prefix and a prefix listing is a
//!   `ListObjectsV2` prefix. An S3 object name is at most 1024 bytes, so a key may be
//!   `(1024 - prefix length) / 3` bytes long.
//! * **Bounded**: every call has a connect timeout (the SDK's) and a per-attempt timeout
//!   (`operation_timeout` split over `max_attempts`, session-kit-core's timeout layer); reads,
//!   overwrites, deletes and listings are tried at most `max_attempts` times with jittered
//!   backoff after throttling, 5xx and I/O errors (the retry layer; the SDK's own retries are
//!   off, so a conditional write is never sent twice). Errors map to the core's kinds: 412/409
//!   are conflicts, 5xx, throttling and timeouts are retryable, 403 and a missing bucket are
//!   configuration errors.
//!
//! Every option, its default and its environment fallback: see Configuration below.
//!
//! ```no_run
//! # async fn example() -> Result<(), session_kit_core::DriverError> {
//! use session_kit_s3::{S3Config, S3Driver};
//!
//! let mut config = S3Config::new("my-bucket");
//! config.prefix = "sessions/".into();
//! config.region = Some("eu-west-1".into());
//! let driver = S3Driver::connect(config).await?;
//! # Ok(()) }
//! ```
//!
//! # Reclaiming space: a lifecycle rule
//!
//! Expired sessions are invisible at once but stay in the bucket until a sweep deletes them.
//! Run the sweeper in one process, and add a lifecycle rule that expires objects under the
//! prefix some time after the longest session lifetime (for example 31 days for 30-day
//! "remember me" sessions; a session that stays active is rewritten, which restarts S3's
//! clock, at least once per idle period):
//!
//! ```json
//! {"Rules": [{"ID": "expire-sessions", "Status": "Enabled",
//!             "Filter": {"Prefix": "sessions/"}, "Expiration": {"Days": 31}}]}
//! ```
//!
//! `aws s3api put-bucket-lifecycle-configuration --bucket my-bucket --lifecycle-configuration file://rule.json`
#![doc = include_str!("../docs.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
mod object;

use std::{fmt, sync::Arc, time::Duration};

use aws_sdk_s3::{
    Client,
    config::{BehaviorVersion, Credentials, Region, retry::RetryConfig, timeout::TimeoutConfig},
    primitives::ByteStream,
};
use futures::{StreamExt, TryStreamExt};
use session_kit_core::driver::{
    deadline_after, escape_key, from_unix_millis, unescape_key, unix_millis,
};
use session_kit_core::{
    Capabilities, Clock, Driver, DriverError, Entry, LayerOptions, ListPage, PutOptions,
    SystemClock, TtlSupport, Version, WriteMode, async_trait, bytes::Bytes,
};

pub use crate::config::{S3Config, register};
use crate::{
    config::Resolved,
    error::{s3_error, status},
    object::{Head, body, head_of, parse_version, version},
};

/// The registry name of this driver.
pub const NAME: &str = "s3";
/// URL schemes this driver registers.
pub const SCHEMES: &[&str] = &["s3"];
/// Largest value accepted, in bytes (sessions are small; S3 itself takes far more).
pub const MAX_VALUE_SIZE: usize = 5 * 1024 * 1024;
/// Longest S3 object name, in bytes.
const MAX_OBJECT_NAME: usize = 1024;
/// The user metadata entry that holds the expiry (Unix milliseconds).
const EXPIRES_AT: &str = "session-expires-at";

/// Objects listed per `ListObjectsV2` page.
const PAGE: i32 = 1000;
/// Bytes of random nonce before the value in every object body.
const NONCE: usize = 8;
/// Concurrent `HeadObject` calls while filtering a listing by expiry.
const HEAD_CONCURRENCY: usize = 16;

/// The S3 driver. See the crate documentation.
pub struct S3Driver {
    inner: Arc<Inner>,
    caps: Capabilities,
    layers: LayerOptions,
}

struct Inner {
    client: Client,
    bucket: String,
    prefix: String,
    /// The clock expiry is set and checked by.
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for S3Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Driver")
            .field("bucket", &self.inner.bucket)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl S3Driver {
    /// Builds the client and checks that the bucket answers (failing within the timeouts).
    pub async fn connect(config: S3Config) -> Result<Self, DriverError> {
        if config.bucket.is_empty() {
            return Err(DriverError::config(
                "option `bucket`: required (s3://BUCKET/prefix)",
            ));
        }
        if config.prefix.len() + 3 > MAX_OBJECT_NAME {
            return Err(DriverError::config(format!(
                "option `prefix`: {} bytes leaves no room in a {MAX_OBJECT_NAME}-byte object name",
                config.prefix.len()
            )));
        }
        let Resolved {
            access_key,
            secret,
            token,
            region,
            endpoint,
        } = Resolved::new(&config, |name| std::env::var(name).ok())?;
        let operation = config.operation_timeout.unwrap_or(Duration::from_secs(10));
        let attempts = u32::try_from(config.max_attempts.unwrap_or(3).clamp(1, 10)).unwrap_or(3);
        // Time limits per attempt and retries are layers (Driver::layer_defaults); the SDK
        // keeps the connect timeout, a transport setting.
        let layers = LayerOptions::new()
            .with_timeout(operation / attempts)
            .with_retries(attempts - 1)
            .with_sweep_interval_opt(config.sweep_interval);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout.unwrap_or(Duration::from_secs(2)))
            .build();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(Credentials::new(
                access_key,
                secret,
                token,
                None,
                "session-kit-s3",
            ))
            .timeout_config(timeouts)
            .retry_config(RetryConfig::disabled())
            .force_path_style(config.path_style.unwrap_or(endpoint.is_some()));
        if let Some(endpoint) = endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let inner = Arc::new(Inner {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket,
            prefix: config.prefix,
            clock: Arc::new(SystemClock),
        });
        inner
            .client
            .head_bucket()
            .bucket(&inner.bucket)
            .send()
            .await
            .map_err(|e| s3_error("HeadBucket", e))?;
        let max_key_len = (MAX_OBJECT_NAME - inner.prefix.len()) / 3;
        Ok(Self {
            inner,
            layers,
            caps: Capabilities::new(max_key_len, MAX_VALUE_SIZE)
                .with_ttl(TtlSupport::exact(Duration::from_millis(1)))
                .with_create_only()
                .with_compare_and_swap()
                .with_list(),
        })
    }

    /// Deletes every expired object under the prefix and returns how many it deleted.
    ///
    /// Pages through `ListObjectsV2`, reads each object's expiry with `HeadObject` (16 at a
    /// time), and deletes the expired ones only if they were not rewritten meanwhile
    /// (`If-Match` on the ETag where the server supports conditional deletes).
    pub async fn sweep(&self) -> Result<u64, DriverError> {
        self.inner.sweep().await
    }

    /// Sets and checks expiry by `clock` (the system clock by default). Share a
    /// [`ManualClock`](session_kit_core::ManualClock) with the session storage to test expiry
    /// without sleeping.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        let inner = Arc::new(Inner {
            client: self.inner.client.clone(),
            bucket: self.inner.bucket.clone(),
            prefix: self.inner.prefix.clone(),
            clock,
        });
        Self { inner, ..self }
    }
}

impl Inner {
    fn now(&self) -> u64 {
        unix_millis(self.clock.now())
    }

    fn object(&self, key: &str) -> String {
        format!("{}{}", self.prefix, escape_key(key))
    }

    /// The object's ETag and expiry, or `None` when it does not exist.
    async fn head(&self, object: &str) -> Result<Option<Head>, DriverError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(object)
            .send()
            .await
        {
            Ok(out) => head_of(out.e_tag(), out.metadata()).map(Some),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(s3_error("HeadObject", e)),
        }
    }

    /// One `PutObject` under a condition.
    async fn put_object(
        &self,
        object: &str,
        value: Bytes,
        expires_at: Option<u64>,
        condition: Condition<'_>,
    ) -> Result<Version, DriverError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(object)
            .content_type("application/octet-stream")
            .body(ByteStream::from(body(&value)));
        if let Some(at) = expires_at {
            request = request.metadata(EXPIRES_AT, at.to_string());
        }
        request = match condition {
            Condition::None => request,
            Condition::Absent => request.if_none_match("*"),
            Condition::ETag(etag) => request.if_match(etag),
        };
        let out = request.send().await.map_err(|e| match status(&e) {
            Some(412 | 409) => DriverError::Conflict,
            // If-Match on a missing object.
            Some(404) if matches!(condition, Condition::ETag(_)) => DriverError::Conflict,
            _ => s3_error("PutObject", e),
        })?;
        let etag = out.e_tag().ok_or_else(|| {
            DriverError::permanent("S3 answered a PutObject without an ETag", None)
        })?;
        Ok(version(etag, expires_at))
    }

    /// One page of object names under `prefix` (this driver's prefix included).
    async fn list_page(
        &self,
        prefix: &str,
        cursor: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), DriverError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(PAGE)
            .set_continuation_token(cursor.map(str::to_owned))
            .send()
            .await
            .map_err(|e| s3_error("ListObjectsV2", e))?;
        let names = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        let next = if out.is_truncated() == Some(true) {
            out.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok((names, next))
    }

    async fn sweep(&self) -> Result<u64, DriverError> {
        let mut cursor: Option<String> = None;
        let mut deleted = 0u64;
        loop {
            let (names, next) = self.list_page(&self.prefix, cursor.as_deref()).await?;
            let now = self.now();
            let expired: Vec<(String, String)> = futures::stream::iter(names)
                .map(|name| async move {
                    Ok::<_, DriverError>(match self.head(&name).await? {
                        Some(head) if head.expired(now) => Some((name, head.etag)),
                        _ => None,
                    })
                })
                .buffer_unordered(HEAD_CONCURRENCY)
                .try_filter_map(|x| async move { Ok(x) })
                .try_collect()
                .await?;
            for (name, etag) in expired {
                match self
                    .client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&name)
                    .if_match(etag)
                    .send()
                    .await
                {
                    Ok(_) => deleted += 1,
                    // Rewritten (or deleted) since we looked: leave it.
                    Err(e) if matches!(status(&e), Some(412 | 409 | 404)) => {}
                    Err(e) => return Err(s3_error("DeleteObject", e)),
                }
            }
            match next {
                Some(n) => cursor = Some(n),
                None => {
                    tracing::debug!(deleted, "s3 sweep done");
                    return Ok(deleted);
                }
            }
        }
    }
}

/// The precondition of a `PutObject`.
#[derive(Clone, Copy)]
enum Condition<'a> {
    None,
    Absent,
    ETag(&'a str),
}

#[async_trait]
impl Driver for S3Driver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn layer_defaults(&self) -> LayerOptions {
        self.layers.clone()
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let inner = &self.inner;
        let out = match inner
            .client
            .get_object()
            .bucket(&inner.bucket)
            .key(inner.object(key))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(s3_error("GetObject", e)),
        };
        let head = head_of(out.e_tag(), out.metadata())?;
        if head.expired(self.inner.now()) {
            return Ok(None);
        }
        let value = out
            .body
            .collect()
            .await
            .map_err(|e| DriverError::transient("reading an S3 object body", e))?
            .into_bytes();
        if value.len() < NONCE {
            return Err(DriverError::corrupt(
                "an S3 object without this driver's header",
            ));
        }
        let value = value.slice(NONCE..);
        Ok(Some(Entry {
            value,
            version: version(&head.etag, head.expires_at),
            expires_at: head.expires_at.map(from_unix_millis),
        }))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        let ttl = options.ttl;
        let expires_at = ttl.map(|ttl| deadline_after(self.inner.clock.now(), ttl));
        let inner = &self.inner;
        let object = inner.object(key);
        match &options.mode {
            WriteMode::Overwrite => {
                inner
                    .put_object(&object, value, expires_at, Condition::None)
                    .await
            }
            WriteMode::IfVersion(version) => {
                let (etag, version_expires_at) = parse_version(version);
                // The version names an object that has expired since: absent, whatever
                // S3 still holds, so no write can match it.
                if version_expires_at.is_some_and(|at| at <= self.inner.now()) {
                    return Err(DriverError::Conflict);
                }
                inner
                    .put_object(&object, value, expires_at, Condition::ETag(etag))
                    .await
            }
            WriteMode::CreateOnly => {
                match inner
                    .put_object(&object, value.clone(), expires_at, Condition::Absent)
                    .await
                {
                    Err(DriverError::Conflict) => {}
                    other => return other,
                }
                // An expired object that no sweep has deleted yet counts as absent: replace it,
                // unless someone else does first.
                match inner.head(&object).await? {
                    Some(head) if head.expired(self.inner.now()) => inner
                        .put_object(&object, value, expires_at, Condition::ETag(&head.etag))
                        .await
                        .map_err(|e| match e {
                            DriverError::Conflict => DriverError::AlreadyExists,
                            e => e,
                        }),
                    _ => Err(DriverError::AlreadyExists),
                }
            }
            WriteMode::UpdateOnly => Err(DriverError::unsupported("write mode UpdateOnly")),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        let inner = &self.inner;
        inner
            .client
            .delete_object()
            .bucket(&inner.bucket)
            .key(inner.object(key))
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let inner = &self.inner;
        let (names, next) = inner.list_page(&inner.object(prefix), cursor).await?;
        let now = self.inner.now();
        let keys: Vec<String> = futures::stream::iter(names)
            .map(|name| async move {
                let Some(key) = name.strip_prefix(&inner.prefix).and_then(unescape_key) else {
                    tracing::debug!("s3 list: skipping an object this driver did not write");
                    return Ok(None);
                };
                Ok::<_, DriverError>(match inner.head(&name).await? {
                    Some(head) if !head.expired(now) => Some(key),
                    _ => None,
                })
            })
            .buffer_unordered(HEAD_CONCURRENCY)
            .try_filter_map(|x| async move { Ok(x) })
            .try_collect()
            .await?;
        Ok(ListPage { keys, cursor: next })
    }

    async fn sweep(&self) -> Result<u64, DriverError> {
        S3Driver::sweep(self).await
    }
}

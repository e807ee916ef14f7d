//! Web sessions for Rust apps, over pluggable storage drivers.
//!
//! A cookie identifies a visitor; their session data (a user id, a cart, flash messages) lives
//! in a store behind it, or sealed inside the cookie. `session-kit` is the one crate to add: it
//! re-exports everything from [`session_kit_core`] (the [`Session`] API, [`SessionStorage`],
//! cookies and keys, the [`Driver`] trait) and, by cargo feature, the built-in drivers, all
//! selectable by a config string. The framework integrations are `session-kit-axum` and
//! `session-kit-actix`.
//!
//! **New here? Start with the [guide]**: [getting started](guide::getting_started) builds an
//! axum app with sessions in Redis and a configuration file, step by step.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use serde::{Deserialize, Serialize};
//! use session_kit::{Keyring, SessionStorage};
//! use session_kit_axum::{Session, SessionFailure, SessionLayer};
//!
//! #[derive(Clone, Default, Serialize, Deserialize)]
//! struct Visits {
//!     count: u64,
//! }
//!
//! async fn count(session: Session<Visits>) -> Result<String, SessionFailure> {
//!     // Concurrent requests of one visitor all keep their increment.
//!     let n = session.update(|v| { v.count += 1; v.count }).await?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! # async fn app() -> Result<Router, Box<dyn std::error::Error>> {
//! // "memory", "fs:///var/lib/app/sessions", "redis://...", "postgres://...", "cookie", ...
//! let config = std::env::var("SESSION_DRIVER").unwrap_or_else(|_| "memory".into());
//! let storage: SessionStorage<Visits> = session_kit::storage(&config)
//!     .await?
//!     .keyring(Keyring::from_env("SESSION_SECRET")?) // newest secret; older in SESSION_SECRET_1, ...
//!     .build()?;
//! let app = Router::new().route("/", get(count)).layer(SessionLayer::new(storage));
//! # Ok(app) }
//! ```
//!
//! # Drivers and features
//!
//! | feature | driver | config string |
//! |---|---|---|
//! | (always) | cookie-only sessions, no store ([`storage`] only) | `cookie` |
//! | `memory` (default) | [`drivers::memory`] | `memory`, `memory:?capacity=100000` |
//! | `fs` (default) | [`drivers::fs`] | `fs`, `fs:///var/lib/app/sessions`, `fs:data/sessions?durable=true` |
//! | `sqlite` | `drivers::sqlite` | `sqlite:///var/lib/app/sessions.db`, `sqlite:sessions.db?synchronous=full` |
//! | `redis` (`redis-cluster`, `redis-tls`) | `drivers::redis` | `redis://127.0.0.1:6379?prefix=app:`, `redis+unix:///run/redis.sock`; `redis+cluster://10.0.0.1:7000`; `rediss://...` |
//! | `postgres` (`postgres-tls`) | `drivers::postgres` | `postgres://app:secret@db:5432/app?table=sessions`, `postgresql:///app?host=/run/postgresql` |
//! | `mysql` (`mysql-tls`) | `drivers::mysql` | `mysql://app:secret@db:3306/app?table=sessions`, `mariadb://...` |
//! | `s3` | `drivers::s3` | `s3://bucket/sessions/?region=eu-west-1`, `s3://bucket/?endpoint=http://127.0.0.1:9000` |
//! | `cloudflare-kv` | `drivers::cloudflare_kv` | `cloudflare-kv://ACCOUNT_ID/NAMESPACE_ID?prefix=app:` (token in `CLOUDFLARE_API_TOKEN`) |
//! | `object-store` | `drivers::object_store` | none: wrap any `object_store::ObjectStore` in code |
//! | `all-drivers` | every driver above, Redis Cluster included | |
//! | `metrics` | counters and latencies through the `metrics` facade ([`metrics`], [observability](guide::observability)) | |
//! | `aws-lc` (default) | cookie-only sessions sealed by `aws-lc-rs` (assembly, built with a C compiler; not on wasm32) instead of the pure-Rust `aes-gcm-siv`: the same AES-256-GCM-SIV and cookies, a seal and an open 2.4 times faster | |
//!
//! [Choosing a driver](guide::choosing_a_driver) compares them; each driver's page lists every
//! option and its default. An unknown name is an error that lists the drivers compiled in:
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let driver = session_kit::open("memory").await?;
//! assert_eq!(driver.name(), "memory");
//!
//! let err = session_kit::open("nosuch").await.err().unwrap();
//! assert!(err.to_string().contains("drivers compiled in: "));
//! assert!(err.to_string().contains("memory"));
//! # Ok::<(), session_kit::DriverError>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::sync::Arc;

pub use session_kit_core::*;

pub mod guide;

/// The built-in drivers compiled in.
pub mod drivers {
    #[cfg(feature = "cloudflare-kv")]
    pub use session_kit_cloudflare_kv as cloudflare_kv;
    #[cfg(feature = "fs")]
    pub use session_kit_fs as fs;
    #[cfg(feature = "memory")]
    pub use session_kit_memory as memory;
    #[cfg(feature = "mysql")]
    pub use session_kit_mysql as mysql;
    #[cfg(feature = "object-store")]
    pub use session_kit_object_store as object_store;
    #[cfg(feature = "postgres")]
    pub use session_kit_postgres as postgres;
    #[cfg(feature = "redis")]
    pub use session_kit_redis as redis;
    #[cfg(feature = "s3")]
    pub use session_kit_s3 as s3;
    #[cfg(feature = "sqlite")]
    pub use session_kit_sqlite as sqlite;
}

/// A registry holding every built-in driver enabled by features. Add your own with
/// [`Registry::register`].
pub fn registry() -> Registry {
    #[allow(unused_mut)]
    let mut registry = Registry::new();
    #[cfg(feature = "memory")]
    session_kit_memory::register(&mut registry);
    #[cfg(feature = "fs")]
    session_kit_fs::register(&mut registry);
    #[cfg(feature = "sqlite")]
    session_kit_sqlite::register(&mut registry);
    #[cfg(feature = "redis")]
    session_kit_redis::register(&mut registry);
    #[cfg(feature = "postgres")]
    session_kit_postgres::register(&mut registry);
    #[cfg(feature = "mysql")]
    session_kit_mysql::register(&mut registry);
    #[cfg(feature = "s3")]
    session_kit_s3::register(&mut registry);
    #[cfg(feature = "cloudflare-kv")]
    session_kit_cloudflare_kv::register(&mut registry);
    registry
}

/// Opens the driver a config string names (`"memory"`, `"fs:///var/lib/app/sessions"`, or a
/// JSON object such as `{"driver":"fs","base":"/tmp/s"}`).
pub async fn open(config: &str) -> Result<Arc<dyn Driver>, DriverError> {
    registry().open(config).await
}

/// The builder of a [`SessionStorage`] on the storage a config string names: any driver
/// [`open`] knows, or `cookie` for cookie-only sessions (sealed in the cookie, no store), so
/// that one setting such as `SESSION_DRIVER` picks any kind of storage. Add the keyring (for
/// example [`Keyring::from_env`]) and the rest of the options, then `build()`.
///
/// ```
/// use session_kit::{DynamicData, Keyring};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// for config in ["cookie", "memory"] {
///     let storage = session_kit::storage::<DynamicData>(config)
///         .await?
///         .keyring(Keyring::from_secrets(["a secret of at least 32 bytes, for the doc"])?)
///         .build()?;
///     let session = storage.get_session(None);
///     assert!(session.is_new().await?);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn storage<T: SessionData + Default>(
    config: &str,
) -> Result<SessionStorageBuilder<T>, DriverError> {
    if is_cookie_only(config) {
        return Ok(SessionStorage::cookie_only());
    }
    Ok(SessionStorage::builder(open(config).await?))
}

/// [`storage`] for a serde config (`{ driver = "cookie" }` for cookie-only sessions).
pub async fn storage_config<T: SessionData + Default>(
    config: DriverConfig,
) -> Result<SessionStorageBuilder<T>, DriverError> {
    if is_cookie_only(&config.driver) {
        if !config.options.is_empty() {
            return Err(DriverError::config(
                "cookie-only sessions take no driver options (set cookie options on the builder)",
            ));
        }
        return Ok(SessionStorage::cookie_only());
    }
    Ok(SessionStorage::builder(open_config(config).await?))
}

/// `cookie` (or `cookie:`) names cookie-only sessions.
fn is_cookie_only(config: &str) -> bool {
    matches!(config.trim(), "cookie" | "cookie:")
}

/// Opens the driver a serde config names (for example a `[session]` table of your TOML).
pub async fn open_config(config: DriverConfig) -> Result<Arc<dyn Driver>, DriverError> {
    registry().open_config(config).await
}

/// The README's code, compiled as doctests so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

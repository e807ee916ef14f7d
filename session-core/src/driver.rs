//! The API of a driver author: the storage contract, a tiny, object-safe async key-value
//! [`Driver`], and what implementing one takes (argument and condition helpers, key escaping,
//! the value header of stores without expiry, time helpers, registration by name, Tokio
//! helpers with feature `tokio`). An app needs none of it beyond what the crate root
//! re-exports.
//!
//! ```
//! use session_kit_core::driver::{
//!     Capabilities, Driver, DriverError, Entry, PutOptions, Version, async_trait, bytes::Bytes,
//!     check_condition, escape_key,
//! };
//! # let _ = (escape_key("k"), check_condition);
//! ```

#[cfg(feature = "tokio")]
pub use crate::periodic::{PeriodicTask, blocking};
pub use crate::{
    capabilities::{BelowMinTtl, Capabilities, Consistency, LayerOptions, TtlSupport},
    clock::{deadline_after, deadline_millis, from_unix_millis, now_millis, unix_millis},
    config::{DriverConfig, DriverFactory, OpenFuture, Registry},
    contract::{
        Driver, check_condition, check_identifier, check_key, check_put, check_value,
        effective_ttl, escape_key, prefix_upper_bound, unescape_key,
    },
    entry::{Entry, ListPage, PutOptions, Version, WriteMode},
    error::{BoxError, DriverError, ErrorKind},
    header::ValueHeader,
};
pub use async_trait::async_trait;
pub use bytes;

/// Deserialisers that accept either native JSON values or strings (from URLs and env vars),
/// for a driver's own config struct.
pub mod flexible {
    pub use crate::flexible::*;
}

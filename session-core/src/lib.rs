//! Web sessions over pluggable storage drivers, as a sans-IO core.
//!
//! * [`Driver`]: a tiny async key-value contract (get with version and expiry, conditional
//!   put with TTL, delete, touch, list) with [`Capabilities`] declared as data. Drivers live in
//!   their own crates (`session-kit-memory`, `session-kit-fs`, ...) and are chosen by
//!   name through a [`Registry`].
//! * [`SessionStorage`]: Remix-style `get_session(cookie header)` → [`Session`] →
//!   `commit_session` → `Set-Cookie`, and `destroy_session`. Framework middleware is a thin
//!   layer over these three calls.
//!
//! What the session layer guarantees, whatever the driver:
//!
//! * **Cost**: reading the cookie does no I/O. An untouched session costs no driver call and
//!   sends no `Set-Cookie`; a read-only request costs one `get`; a changed one a `get` and a
//!   `put`. Sliding expiry is a throttled `touch`, never a write per request.
//! * **Safety**: 256-bit ids from the OS CSPRNG, signed cookies (HMAC-SHA256 under a rotating
//!   [`Keyring`]), records stored under a hash of the id. A forged, tampered, unknown or
//!   expired cookie gives a fresh session with a new id; new sessions are written create-only.
//! * **No lost updates**: a request's changes are operations (`update` closures, keys set by
//!   `set`/`insert`); commits of one session in one process are combined into one store write,
//!   and a compare-and-swap write that meets another process's change runs them again on the
//!   newer record, so N concurrent `update(|d| d.visits += 1)` add exactly N. See
//!   [`Session`] for what a handler sees, and [`ConcurrentWrites`] for plain writes and
//!   exclusive requests.
//! * **Expiry**: idle and absolute timeouts are stored in the record and enforced on every
//!   load, and handed to drivers with native TTL.
//!
//! The crate root is the API of an app; [`driver`] is the API of a driver author (like
//! OpenDAL's `raw`): the [`Driver`] trait, whose documentation is the contract (keys and values
//! byte-exact, versions never reused, conditions atomic with the write, an expired entry absent
//! for every operation, which clock sets expiry, what `clear` counts), argument and condition
//! helpers, key escaping, the value header, time helpers and registration. Certify a driver
//! with the `session-kit-conformance` crate. [`layers`] holds what every driver gets written once.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use serde::{Deserialize, Serialize};
//! use session_kit_core::{CookieOptions, Keyring, SessionStorage};
//! use session_kit_memory::MemoryDriver;
//!
//! #[derive(Clone, Default, Serialize, Deserialize)]
//! struct Visit {
//!     count: u64,
//!     user: Option<String>,
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let storage = SessionStorage::<Visit>::builder(Arc::new(MemoryDriver::new()))
//!     .keyring(Keyring::from_secrets(["a secret of at least thirty-two bytes"])?)
//!     .cookie(CookieOptions::new().name("sid"))
//!     .build()?;
//!
//! // First request: no cookie.
//! let session = storage.get_session(None);
//! session.update(|v| v.count += 1).await?;
//! let set_cookie = storage.commit_session(&session).await?.expect("a new session sets a cookie");
//!
//! // The browser sends the cookie back.
//! let cookie = set_cookie.as_str().split(';').next().unwrap();
//! let session = storage.get_session(Some(cookie));
//! assert_eq!(session.read(|v| v.count).await?, 1);
//! // Read-only: nothing to send.
//! assert!(storage.commit_session(&session).await?.is_none());
//! # Ok::<(), session_kit_core::SessionError>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
mod b64;
mod capabilities;
mod cipher;
mod clock;
mod combine;
mod commit;
mod commit_after;
mod config;
mod contract;
mod cookie;
mod cookie_memo;
mod csrf;
mod decoded;
pub mod driver;
mod entry;
mod error;
mod exclusive;
mod field_diff;
mod flexible;
mod header;
mod id;
mod intent;
mod key_hash;
mod keys;
pub mod layers;
mod memo;
pub mod metrics;
mod model;
#[cfg(feature = "tokio")]
mod periodic;
mod random;
mod read_cache;
mod record;
mod sealed;
mod session;
mod spans;
mod storage;
#[cfg(test)]
mod testing;
mod transport;
mod user_index;
mod users;

pub use capabilities::{BelowMinTtl, Capabilities, Consistency, LayerOptions, TtlSupport};
pub use clock::{Clock, ManualClock, SystemClock};
pub use commit_after::CommitAfter;
pub use config::{DriverConfig, Registry};
pub use contract::Driver;
pub use cookie::{CookieOptions, SameSite, SetCookie};
pub use csrf::{
    CSRF_FIELD, CSRF_HEADER, csrf_header, csrf_input, origin_allows, origin_allows_request,
};
pub use entry::{Entry, ListPage, PutOptions, Version, WriteMode};
pub use error::{BoxError, DriverError, ErrorKind, Report, SessionError};
pub use id::SessionId;
pub use keys::{Key, Keyring};
pub use model::{ConcurrentWrites, DynamicData, SessionData};
pub use record::{ExpiryPolicy, Lifetime};
pub use session::Session;
pub use storage::{SessionStorage, SessionStorageBuilder};
pub use transport::{HeaderTransport, ResponseHeaders, valid_header_value};
pub use users::UserSession;

// Driver-author items, public under `driver`, by short path inside the crate.
pub(crate) use clock::{deadline_after, from_unix_millis, unix_millis};
pub(crate) use contract::{check_key, check_put};
pub(crate) use header::ValueHeader;
#[cfg(feature = "tokio")]
pub(crate) use periodic::PeriodicTask;

/// Re-exported so drivers implement [`Driver`] with the same macro version.
pub use async_trait::async_trait;
/// Re-exported: values are [`bytes::Bytes`].
pub use bytes;

//! Typed errors: [`DriverError`] for the storage contract, [`SessionError`] for the session layer.

use std::time::Duration;

/// A boxed error source, kept for `Error::source` chains.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a [`Driver`](crate::Driver) call, as a kind the caller can act on.
///
/// Messages never contain credentials or stored values: drivers build them from
/// operation names, key lengths and backend error codes only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The key is empty, too long, or contains something this backend cannot store.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// Why the key was refused.
        reason: String,
    },
    /// The value is larger than the driver's declared `max_value_size`.
    #[error("value too large: {size} bytes, the limit is {limit}")]
    ValueTooLarge {
        /// Size of the refused value in bytes.
        size: usize,
        /// The driver's limit in bytes.
        limit: usize,
    },
    /// A create-only write found the key already present; nothing was written.
    #[error("key already exists")]
    AlreadyExists,
    /// A compare-and-swap found another version, or an update-only write found no key;
    /// nothing was written.
    #[error("write condition failed: the key is missing or has another version")]
    Conflict,
    /// The driver does not support this operation or option (see its capabilities).
    #[error("unsupported by this driver: {operation}")]
    Unsupported {
        /// The operation or option that was refused.
        operation: String,
    },
    /// The backend could not be reached or failed to answer.
    #[error("backend unavailable: {message}")]
    Unavailable {
        /// What failed (no credentials, no values).
        message: String,
        /// Whether the same call may succeed if tried again.
        retryable: bool,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The driver's configuration is invalid or the backend refused our credentials.
    #[error("configuration error: {message}")]
    Config {
        /// Which option is wrong and why.
        message: String,
    },
}

/// The kind of a [`DriverError`], for matching without the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`DriverError::InvalidKey`].
    InvalidKey,
    /// See [`DriverError::ValueTooLarge`].
    ValueTooLarge,
    /// See [`DriverError::AlreadyExists`].
    AlreadyExists,
    /// See [`DriverError::Conflict`].
    Conflict,
    /// See [`DriverError::Unsupported`].
    Unsupported,
    /// See [`DriverError::Unavailable`].
    Unavailable,
    /// See [`DriverError::Config`].
    Config,
}

impl DriverError {
    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidKey { .. } => ErrorKind::InvalidKey,
            Self::ValueTooLarge { .. } => ErrorKind::ValueTooLarge,
            Self::AlreadyExists => ErrorKind::AlreadyExists,
            Self::Conflict => ErrorKind::Conflict,
            Self::Unsupported { .. } => ErrorKind::Unsupported,
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::Config { .. } => ErrorKind::Config,
        }
    }

    /// Whether retrying the same call may succeed (a timeout, a dropped connection).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable {
                retryable: true,
                ..
            }
        )
    }

    /// An [`InvalidKey`](Self::InvalidKey) error.
    pub fn invalid_key(reason: impl Into<String>) -> Self {
        Self::InvalidKey {
            reason: reason.into(),
        }
    }

    /// An [`Unsupported`](Self::Unsupported) error.
    pub fn unsupported(operation: impl Into<String>) -> Self {
        Self::Unsupported {
            operation: operation.into(),
        }
    }

    /// A [`Config`](Self::Config) error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
        }
    }

    /// A retryable [`Unavailable`](Self::Unavailable) error wrapping `source`.
    pub fn transient(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            message: message.into(),
            retryable: true,
            source: Some(source.into()),
        }
    }

    /// A non-retryable [`Unavailable`](Self::Unavailable) error (for example corrupt stored data).
    pub fn permanent(message: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::Unavailable {
            message: message.into(),
            retryable: false,
            source,
        }
    }

    /// A retryable [`Unavailable`](Self::Unavailable) error for an operation that exceeded `limit`.
    pub fn timeout(operation: &str, limit: Duration) -> Self {
        Self::Unavailable {
            message: format!("{operation} timed out after {limit:?}"),
            retryable: true,
            source: None,
        }
    }
}

/// What went wrong in the session layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The storage driver failed; see [`DriverError::is_retryable`].
    #[error("session store: {0}")]
    Driver(#[from] DriverError),
    /// The session data could not be serialised (for example a map with non-string keys).
    #[error("session data could not be serialised: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A flash or dynamic value could not be read as the requested type.
    #[error("session value `{key}` has another type: {source}")]
    Deserialize {
        /// The session key that was read.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// Concurrent requests kept changing the session; the commit gave up after this many tries.
    #[error("session commit gave up after {attempts} conflicting concurrent writes")]
    Contention {
        /// How many compare-and-swap attempts were made.
        attempts: u32,
    },
    /// The storage or a key was configured wrongly (for example a secret shorter than 32 bytes).
    #[error("session configuration: {0}")]
    Config(String),
    /// A cookie-only session grew past what a browser keeps: the whole `Set-Cookie` would be
    /// `size` bytes, over the `limit` (4096). Store less, or use a driver-backed storage.
    #[error("the session cookie would be {size} bytes, over the browser limit of {limit}")]
    CookieTooLarge {
        /// Size of the `Set-Cookie` value.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The session was committed through a storage other than the one that created it.
    #[error("this session belongs to another SessionStorage")]
    ForeignSession,
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
    /// A cookie attribute (name, path, domain) contains characters not allowed in a header.
    #[error("invalid cookie attribute: {0}")]
    InvalidCookie(String),
    /// A closure given to [`Session::update`](crate::Session::update) panicked when it ran
    /// again on a session record that a concurrent request had changed; this request's
    /// changes were not saved (the other requests' were).
    #[error("a session update closure panicked when re-applied to concurrently changed data")]
    UpdatePanicked,
    /// A concurrent request destroyed the session (or it expired) before this request's
    /// changes could be saved; nothing was saved. From
    /// [`Session::update_and_save`](crate::Session::update_and_save), which must not return a
    /// value that was never stored.
    #[error("the session was destroyed by a concurrent request before this change was saved")]
    Vanished,
    /// With [`ConcurrentWrites::Exclusive`](crate::ConcurrentWrites::Exclusive): other
    /// requests held the session for longer than this request could wait.
    #[error("the session stayed busy with other requests for {waited:?}")]
    Busy {
        /// How long this request waited.
        waited: Duration,
    },
}

/// The text of an error that one commit met on behalf of several (see
/// [`SessionError::replicate`]): the first keeps the original, the others this copy.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Replicated(String);

impl DriverError {
    /// The same error for another request of a combined write: same kind and message, the
    /// cause as text.
    fn replicate(&self) -> Self {
        match self {
            Self::InvalidKey { reason } => Self::invalid_key(reason.clone()),
            Self::ValueTooLarge { size, limit } => Self::ValueTooLarge {
                size: *size,
                limit: *limit,
            },
            Self::AlreadyExists => Self::AlreadyExists,
            Self::Conflict => Self::Conflict,
            Self::Unsupported { operation } => Self::unsupported(operation.clone()),
            Self::Unavailable {
                message,
                retryable,
                source,
            } => Self::Unavailable {
                message: message.clone(),
                retryable: *retryable,
                source: source
                    .as_ref()
                    .map(|s| Box::new(Replicated(s.to_string())) as BoxError),
            },
            Self::Config { message } => Self::config(message.clone()),
        }
    }
}

impl SessionError {
    /// Whether retrying the whole request may succeed (store timeouts, contention). The
    /// framework integrations answer such errors with `503 Service Unavailable` and a
    /// `Retry-After` header instead of `500`.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Driver(e) => e.is_retryable(),
            Self::Contention { .. } | Self::Busy { .. } => true,
            _ => false,
        }
    }

    /// The same error for another request whose changes were written in the same store write
    /// (see `Session::update`): same variant and retryability, the cause as text.
    pub(crate) fn replicate(&self) -> Self {
        match self {
            Self::Driver(e) => Self::Driver(e.replicate()),
            Self::Serialize(e) => {
                Self::Serialize(<serde_json::Error as serde::ser::Error>::custom(e))
            }
            Self::Deserialize { key, source } => Self::Deserialize {
                key: key.clone(),
                source: <serde_json::Error as serde::de::Error>::custom(source),
            },
            Self::Contention { attempts } => Self::Contention {
                attempts: *attempts,
            },
            Self::Config(m) => Self::Config(m.clone()),
            Self::CookieTooLarge { size, limit } => Self::CookieTooLarge {
                size: *size,
                limit: *limit,
            },
            Self::ForeignSession => Self::ForeignSession,
            Self::Random(m) => Self::Random(m.clone()),
            Self::InvalidCookie(m) => Self::InvalidCookie(m.clone()),
            Self::UpdatePanicked => Self::UpdatePanicked,
            Self::Vanished => Self::Vanished,
            Self::Busy { waited } => Self::Busy { waited: *waited },
        }
    }
}

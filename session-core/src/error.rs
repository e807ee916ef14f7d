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
    /// A stored value is not what this driver writes (a truncated or foreign value, an
    /// unreadable header): reading it again gives the same answer.
    #[error("corrupt stored data: {message}")]
    Corrupt {
        /// What is wrong with it (never the data itself).
        message: String,
    },
    /// The driver does not support this operation or option (see its capabilities).
    #[error("unsupported by this driver: {operation}")]
    Unsupported {
        /// The operation or option that was refused.
        operation: String,
    },
    /// The backend could not be reached or failed to answer. Build one with
    /// [`transient`](Self::transient), [`permanent`](Self::permanent),
    /// [`timeout`](Self::timeout) or [`unavailable`](Self::unavailable).
    #[error("backend unavailable: {message}")]
    #[non_exhaustive]
    Unavailable {
        /// What failed (no credentials, no values).
        message: String,
        /// Whether the same call may succeed if tried again.
        retryable: bool,
        /// How long the backend asked callers to wait before trying again (an HTTP
        /// `Retry-After`); the retry layer waits at least this long.
        retry_after: Option<Duration>,
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
    /// See [`DriverError::Corrupt`].
    Corrupt,
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
            Self::Corrupt { .. } => ErrorKind::Corrupt,
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

    /// A [`Corrupt`](Self::Corrupt) error.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::Corrupt {
            message: message.into(),
        }
    }

    /// A [`Config`](Self::Config) error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
        }
    }

    /// An [`Unavailable`](Self::Unavailable) error.
    pub fn unavailable(
        message: impl Into<String>,
        retryable: bool,
        source: Option<BoxError>,
    ) -> Self {
        Self::Unavailable {
            message: message.into(),
            retryable,
            retry_after: None,
            source,
        }
    }

    /// A retryable [`Unavailable`](Self::Unavailable) error wrapping `source`.
    pub fn transient(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::unavailable(message, true, Some(source.into()))
    }

    /// A non-retryable [`Unavailable`](Self::Unavailable) error (the backend refused the call
    /// for good, or answered something this driver cannot use).
    pub fn permanent(message: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::unavailable(message, false, source)
    }

    /// A retryable [`Unavailable`](Self::Unavailable) error for an operation that exceeded `limit`.
    pub fn timeout(operation: &str, limit: Duration) -> Self {
        Self::unavailable(format!("{operation} timed out after {limit:?}"), true, None)
    }

    /// This error with the wait the backend asked for (an HTTP `Retry-After`); no effect on
    /// other kinds.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        if let Self::Unavailable { retry_after, .. } = &mut self {
            *retry_after = Some(wait);
        }
        self
    }

    /// The wait the backend asked for before a retry, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What went wrong in the session layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The storage driver failed; see [`DriverError::is_retryable`]. The message names the
    /// driver and what the session layer asked of it; [`report`](Self::report) adds the
    /// causes.
    #[error("session store: {driver} {operation}: {source}")]
    Driver {
        /// The driver's name (`"redis"`, `"fs"`).
        driver: String,
        /// What the session layer was doing: `load`, `create`, `write`, `touch`, `delete`,
        /// `lease`.
        operation: &'static str,
        /// The driver's error, with its cause.
        #[source]
        source: DriverError,
    },
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
    /// An invariant of this crate did not hold (a bug: please report it with the message).
    #[error("internal error in the session layer: {0}")]
    Internal(&'static str),
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
    /// A state-changing request without a valid request-forgery token of its session
    /// ([`Session::require_csrf`](crate::Session::require_csrf)), or from another site. The
    /// integrations answer `403 Forbidden`.
    #[error("request refused: {0}")]
    RequestForgery(&'static str),
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
            Self::Corrupt { message } => Self::corrupt(message.clone()),
            Self::Unsupported { operation } => Self::unsupported(operation.clone()),
            Self::Unavailable {
                message,
                retryable,
                retry_after,
                source,
            } => Self::Unavailable {
                message: message.clone(),
                retryable: *retryable,
                retry_after: *retry_after,
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
            Self::Driver { source, .. } => source.is_retryable(),
            Self::Contention { .. } | Self::Busy { .. } => true,
            _ => false,
        }
    }

    /// A driver's error in the session layer's context: `driver` failed while the session layer
    /// did `operation`. Built on the error path only (the driver's name is copied then).
    pub(crate) fn store(driver: &str, operation: &'static str, source: DriverError) -> Self {
        Self::Driver {
            driver: driver.to_owned(),
            operation,
            source,
        }
    }

    /// How long the backend asked callers to wait before trying again, if it said (a
    /// throttled HTTP store's `Retry-After`): what a `503`'s `Retry-After` should say.
    pub fn retry_after(&self) -> Option<Duration> {
        self.driver_error().and_then(DriverError::retry_after)
    }

    /// The driver's error, if a driver failed.
    pub fn driver_error(&self) -> Option<&DriverError> {
        match self {
            Self::Driver { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The error with every cause, for logs: `session store: redis load: backend unavailable:
    /// redis: Io: Connection refused (os error 111)`. Causes are the drivers' and libraries'
    /// own errors, which carry no credentials or session data.
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }

    /// The same error for another request whose changes were written in the same store write
    /// (see `Session::update`): same variant and retryability, the cause as text.
    pub(crate) fn replicate(&self) -> Self {
        match self {
            Self::Driver {
                driver,
                operation,
                source,
            } => Self::Driver {
                driver: driver.clone(),
                operation,
                source: source.replicate(),
            },
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
            Self::Internal(m) => Self::Internal(m),
            Self::Busy { waited } => Self::Busy { waited: *waited },
            Self::RequestForgery(why) => Self::RequestForgery(why),
        }
    }
}

/// [`SessionError::report`]: an error and its causes, joined by `: `.
#[derive(Debug)]
pub struct Report<'a>(&'a SessionError);

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut shown = self.0.to_string();
        let mut cause = std::error::Error::source(self.0);
        while let Some(error) = cause {
            let text = error.to_string();
            // A wrapper that repeats its cause's text adds nothing.
            if !shown.ends_with(&text) {
                write!(f, ": {text}")?;
                shown = text;
            }
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_names_the_driver_and_the_operation_and_reports_its_causes() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = SessionError::store(
            "redis",
            "load",
            DriverError::transient("redis: Io", refused),
        );
        assert!(error.is_retryable());
        assert_eq!(
            error.to_string(),
            "session store: redis load: backend unavailable: redis: Io"
        );
        assert_eq!(
            error.report().to_string(),
            "session store: redis load: backend unavailable: redis: Io: refused"
        );
        assert!(error.driver_error().is_some());
        let corrupt = SessionError::store("fs", "load", DriverError::corrupt("no header"));
        assert!(!corrupt.is_retryable());
        assert_eq!(
            corrupt.driver_error().map(DriverError::kind),
            Some(ErrorKind::Corrupt)
        );
    }
}

//! Redis errors mapped to the core's kinds.

use redis::{ErrorKind as RedisErrorKind, RedisError};
use session_core::DriverError;

/// Maps Redis errors to the core's kinds: connection trouble and cluster reconfiguration are
/// retryable; authentication and configuration are not.
pub(crate) fn redis_error(e: &RedisError) -> DriverError {
    let retryable = e.is_timeout()
        || e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            RedisErrorKind::Server(_) if e.is_cluster_error()
        );
    if matches!(
        e.kind(),
        RedisErrorKind::AuthenticationFailed | RedisErrorKind::InvalidClientConfig
    ) {
        return DriverError::config(format!(
            "Redis refused the configuration: {}",
            e.kind_name()
        ));
    }
    DriverError::Unavailable {
        message: format!("redis: {}", e.kind_name()),
        retryable,
        source: None,
    }
}

pub(crate) trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for RedisError {
    /// The error's category and code, never its full text (which may echo arguments).
    fn kind_name(&self) -> String {
        match self.code() {
            Some(code) => format!("{:?} ({code})", self.kind()),
            None => format!("{:?}", self.kind()),
        }
    }
}

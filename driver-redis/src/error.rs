//! Redis errors mapped to the core's kinds.

use redis::{ErrorKind as RedisErrorKind, RedisError};
use session_kit_core::DriverError;

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
    // Connection trouble is said in full (an OS error: no arguments, no data); other errors
    // by their category only.
    let message = if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() {
        format!("redis: {}: {e}", e.kind_name())
    } else {
        format!("redis: {}", e.kind_name())
    };
    DriverError::unavailable(message, retryable, None)
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

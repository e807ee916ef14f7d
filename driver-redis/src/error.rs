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
    // Connection trouble is said in full (an OS error: no arguments, no data); a server's
    // refusal (it has an error code) with the code and Redis's own words (`OOM command not allowed when used memory
    // > 'maxmemory'`, `READONLY You can't write against a read only replica`), which name no
    // argument, cut to 200 characters; other errors (a reply that did not parse may quote
    // the reply, hence values) by their category only.
    let message = if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() {
        format!("redis: {}: {e}", e.kind_name())
    } else if let Some(refusal) = server_refusal(e) {
        format!("redis: {refusal}")
    } else {
        format!("redis: {}", e.kind_name())
    };
    DriverError::unavailable(message, retryable, None)
}

/// The first server error in `e` (a reply, or one of a pipeline's replies), as Redis said it:
/// its code and message, cut to 200 characters.
fn server_refusal(e: &RedisError) -> Option<String> {
    let errors = e.clone().into_server_errors()?;
    let (_, first) = errors.first()?;
    let text = match first.details() {
        Some(detail) => format!("{} {detail}", first.code()),
        None => first.code().to_owned(),
    };
    Some(text.chars().take(200).collect())
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

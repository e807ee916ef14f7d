//! Redis errors mapped to the core's kinds.

use redis::{ErrorKind as RedisErrorKind, RedisError, RetryMethod};
use session_kit_core::DriverError;

/// Maps Redis errors to the core's kinds: what the `redis` crate itself would retry is
/// retryable (connection trouble, a cluster without a reachable node, a cluster being
/// reconfigured or down, a server still loading its data or failing over); authentication
/// and configuration are configuration errors; the rest (a script error, a refused command)
/// are not retryable.
pub(crate) fn redis_error(e: &RedisError) -> DriverError {
    // Any I/O error (timeouts, refused and dropped connections, TLS failures that carry no
    // `io::Error`, which the crate would not retry), and what the crate retries.
    let retryable = e.is_io_error() || !matches!(e.retry_method(), RetryMethod::NoRetry);
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

#[cfg(test)]
mod tests {
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    use super::redis_error;

    fn retryable(kind: ErrorKind) -> bool {
        redis_error(&RedisError::from((kind, "test"))).is_retryable()
    }

    #[test]
    fn what_waiting_or_reconnecting_can_fix_is_retryable() {
        // Every node of a cluster unreachable (it is restarting, say): seen in
        // http-tests' outage test as a 500 before this was retryable.
        assert!(retryable(ErrorKind::ClusterConnectionNotFound));
        for server in [
            ServerErrorKind::ClusterDown,
            ServerErrorKind::TryAgain,
            ServerErrorKind::MasterDown,
            ServerErrorKind::BusyLoading,
            ServerErrorKind::ReadOnly,
        ] {
            assert!(retryable(ErrorKind::Server(server)), "{server:?}");
        }
        assert!(retryable(ErrorKind::Io));
    }

    #[test]
    fn refusals_and_bad_configuration_are_not_retryable() {
        for kind in [
            ErrorKind::Server(ServerErrorKind::ResponseError),
            ErrorKind::Server(ServerErrorKind::NoScript),
            ErrorKind::Server(ServerErrorKind::CrossSlot),
            ErrorKind::UnexpectedReturnType,
            ErrorKind::Client,
            ErrorKind::AuthenticationFailed,
            ErrorKind::InvalidClientConfig,
        ] {
            assert!(!retryable(kind), "{kind:?}");
        }
    }
}

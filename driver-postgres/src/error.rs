//! PostgreSQL errors as the core's kinds, without credentials.

use deadpool_postgres::PoolError;
use session_kit_core::DriverError;
use tokio_postgres::error::SqlState;

/// Maps a statement's error: what another attempt may fix (a dropped connection, a
/// serialization failure, a deadlock, a cancelled statement, a server shutting down or out of
/// connections) is retryable; authentication failures are configuration errors; the rest is
/// permanent.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> DriverError {
    if let Some(code) = e.code().cloned() {
        let message = format!("postgres: {} ({})", e, code.code());
        return classify(&code, message, e);
    }
    // No SQL state: the connection broke (I/O, closed socket, TLS) or a reply did not parse.
    let retryable = e.is_closed() || std::error::Error::source(&e).is_some();
    DriverError::unavailable(format!("postgres: {e}"), retryable, Some(Box::new(e)))
}

fn classify(code: &SqlState, message: String, e: tokio_postgres::Error) -> DriverError {
    if *code == SqlState::INVALID_PASSWORD
        || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        || *code == SqlState::INVALID_CATALOG_NAME
        || *code == SqlState::INSUFFICIENT_PRIVILEGE
        || *code == SqlState::UNDEFINED_TABLE
    {
        return DriverError::config(message);
    }
    let class = &code.code()[..2];
    let retryable = *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::QUERY_CANCELED
        || *code == SqlState::LOCK_NOT_AVAILABLE
        // 08: connection exceptions; 53: insufficient resources (too many connections, disk
        // full); 57: operator intervention (shutdown, "cannot connect now"); 58: system errors.
        || matches!(class, "08" | "53" | "57" | "58");
    DriverError::unavailable(message, retryable, Some(Box::new(e)))
}

/// Maps a failure to get a pooled connection: a timeout, or the connection attempt's error.
pub(crate) fn pool_error(e: PoolError) -> DriverError {
    match e {
        PoolError::Backend(e) => pg_error(e),
        PoolError::Timeout(kind) => DriverError::unavailable(
            format!("postgres: no connection within the connect timeout ({kind:?})"),
            true,
            None,
        ),
        PoolError::Closed => {
            DriverError::permanent("postgres: the connection pool is closed", None)
        }
        other => DriverError::unavailable(format!("postgres: {other}"), true, None),
    }
}

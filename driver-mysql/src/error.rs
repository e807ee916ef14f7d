//! MySQL and MariaDB errors as the core's kinds, without credentials.

use mysql_async::{DriverError as ClientError, Error};
use session_kit_core::DriverError;

/// Server error codes another attempt may get past: deadlock (1213), lock wait timeout
/// (1205), too many connections (1040, 1203), server shutting down (1053), statement time
/// limits (MySQL 3024, MariaDB 1969), query interrupted (1317), read-only during a failover
/// (1290, 1836).
const RETRYABLE: [u16; 10] = [1213, 1205, 1040, 1203, 1053, 3024, 1969, 1317, 1290, 1836];
/// Codes that mean the configuration is wrong: access denied (1044, 1045, 1142, 1227),
/// unknown database (1049), missing table (1146).
const CONFIG: [u16; 6] = [1044, 1045, 1142, 1227, 1049, 1146];

/// Maps a client error: broken connections and the codes in `RETRYABLE` are retryable,
/// those in `CONFIG` configuration errors, the rest permanent.
pub(crate) fn mysql_error(e: Error) -> DriverError {
    match &e {
        Error::Server(server) if CONFIG.contains(&server.code) => {
            DriverError::config(format!("mysql: {} ({})", server.message, server.code))
        }
        Error::Server(server) => DriverError::unavailable(
            format!("mysql: {} ({})", server.message, server.code),
            RETRYABLE.contains(&server.code),
            Some(Box::new(e)),
        ),
        Error::Url(url) => DriverError::config(format!("option `url`: {url}")),
        Error::Io(_) => DriverError::transient(format!("mysql: {e}"), e),
        Error::Driver(
            ClientError::ConnectionClosed
            | ClientError::PoolDisconnected
            | ClientError::PacketOutOfOrder,
        ) => DriverError::transient(format!("mysql: {e}"), e),
        _ => DriverError::permanent(format!("mysql: {e}"), Some(Box::new(e))),
    }
}

//! SQLite errors as the core's kinds.

use rusqlite::ErrorCode;
use session_kit_core::DriverError;

/// Maps SQLite errors: busy/locked and I/O may pass on retry, the rest will not.
pub(crate) fn sql_error(e: &rusqlite::Error) -> DriverError {
    let retryable = matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
        )
    );
    DriverError::unavailable(format!("sqlite: {e}"), retryable, None)
}

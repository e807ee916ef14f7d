//! File-system errors as the core's kinds.

use std::io;

use session_kit_core::DriverError;

/// Maps I/O errors: resource exhaustion and interruptions may pass, the rest will not.
pub(crate) fn io_error(e: io::Error) -> DriverError {
    let retryable = matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::StorageFull
            | io::ErrorKind::QuotaExceeded
    );
    DriverError::unavailable(
        format!("file system: {}", e.kind()),
        retryable,
        Some(Box::new(e)),
    )
}

//! object_store's errors as the core's kinds.

use session_kit_core::DriverError;

/// Maps an object_store error to the core's kinds. The message names the operation and the
/// error class; the store's own text (which may name paths) stays in the source.
pub(crate) fn store_error(operation: &str, e: object_store::Error) -> DriverError {
    use object_store::Error as E;
    match e {
        E::NotImplemented | E::NotSupported { .. } => {
            DriverError::unsupported(format!("object store {operation}"))
        }
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => DriverError::config(format!(
            "object store {operation}: access denied (check the store's credentials)"
        )),
        E::UnknownConfigurationKey { .. } => DriverError::config(format!(
            "object store {operation}: unknown configuration key"
        )),
        E::InvalidPath { .. } => DriverError::permanent(
            format!("object store {operation}: invalid path"),
            Some(Box::new(e)),
        ),
        other => DriverError::transient(format!("object store {operation} failed"), other),
    }
}

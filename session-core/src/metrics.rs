//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`): the
//! app installs any recorder (Prometheus, StatsD, OpenTelemetry, ...) and the session layer
//! reports what it does. Without the feature every call here compiles to nothing.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `session_loads_total` | counter | `outcome`: `found`, `new` (no cookie), `not_found` (a valid cookie whose record is gone: expired, destroyed or unknown), `revoked` (refused by the user's not-before stamp), `invalid` (a cookie that does not verify or open) | sessions loaded (once per request that uses its session) |
//! | `session_commits_total` | counter | `outcome`: `nothing`, `create`, `regenerate`, `update`, `touch`, `resign`, `destroy`, `vanished` (destroyed by a concurrent request meanwhile) | commits of sessions the request used, by what they wrote (a request that never touched its session is not counted) |
//! | `session_conflicts_merged_total` | counter | | compare-and-swap writes that met another process's change and were merged (the operations run again on the newer record) |
//! | `session_errors_total` | counter | `during`: `load`, `commit`; `kind`: `store_unavailable`, `store_config`, `store_other`, `contention`, `busy`, `cookie_too_large`, `request_forgery`, `serialize`, `other` | errors returned to the app |
//! | `session_store_operations_total` | counter | `driver`, `operation` (`get`, `put`, `delete`, `touch`, ...), `outcome` (`ok` or the driver error kind: `conflict`, `unavailable`, ...) | driver operations, as the app's storage calls them (retries inside are counted apart) |
//! | `session_store_operation_duration_seconds` | histogram | `driver`, `operation` | their latency |
//! | `session_store_retries_total` | counter | `driver`, `operation` | attempts made again by the retry layer |
//! | `session_cache_lookups_total` | counter | `driver`, `result`: `hit`, `miss`, `off` | reads of the read-cache layer (Redis's local cache, PostgreSQL's `local_cache`) |
//!
//! Labels never carry ids, keys or values. Call [`describe`] once after installing the
//! recorder to give each metric its help text and unit.

/// `session_loads_total`.
pub const LOADS: &str = "session_loads_total";
/// `session_commits_total`.
pub const COMMITS: &str = "session_commits_total";
/// `session_conflicts_merged_total`.
pub const CONFLICTS_MERGED: &str = "session_conflicts_merged_total";
/// `session_errors_total`.
pub const ERRORS: &str = "session_errors_total";
/// `session_store_operations_total`.
pub const STORE_OPERATIONS: &str = "session_store_operations_total";
/// `session_store_operation_duration_seconds`.
pub const STORE_DURATION: &str = "session_store_operation_duration_seconds";
/// `session_store_retries_total`.
pub const STORE_RETRIES: &str = "session_store_retries_total";
/// `session_cache_lookups_total`.
pub const CACHE_LOOKUPS: &str = "session_cache_lookups_total";

/// Gives every metric its description and unit in the installed recorder (Prometheus shows
/// them as `# HELP`). Does nothing without the `metrics` feature.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{Unit, describe_counter, describe_histogram};
        describe_counter!(LOADS, Unit::Count, "Sessions loaded, by outcome");
        describe_counter!(COMMITS, Unit::Count, "Session commits, by what they wrote");
        describe_counter!(
            CONFLICTS_MERGED,
            Unit::Count,
            "Compare-and-swap session writes that met a concurrent change and merged it"
        );
        describe_counter!(ERRORS, Unit::Count, "Session errors returned to the app");
        describe_counter!(STORE_OPERATIONS, Unit::Count, "Session store operations");
        describe_histogram!(
            STORE_DURATION,
            Unit::Seconds,
            "Latency of session store operations"
        );
        describe_counter!(
            STORE_RETRIES,
            Unit::Count,
            "Session store operations retried"
        );
        describe_counter!(CACHE_LOOKUPS, Unit::Count, "Session read-cache lookups");
    }
}

#[cfg(feature = "metrics")]
use crate::ErrorKind;
use crate::{DriverError, SessionError};

/// A session load's outcome.
#[inline]
pub(crate) fn load(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(LOADS, "outcome" => outcome).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// A commit's outcome.
#[inline]
pub(crate) fn commit(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(COMMITS, "outcome" => outcome).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// A compare-and-swap conflict that the commit merged.
#[inline]
pub(crate) fn conflict_merged() {
    #[cfg(feature = "metrics")]
    metrics::counter!(CONFLICTS_MERGED).increment(1);
}

/// An error returned to the app while `during` (`load`, `commit`).
#[inline]
pub(crate) fn error(during: &'static str, error: &SessionError) {
    #[cfg(feature = "metrics")]
    metrics::counter!(ERRORS, "during" => during, "kind" => session_error_kind(error)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (during, error);
}

/// A driver operation's outcome and latency.
#[inline]
pub(crate) fn store_operation(
    driver: &std::sync::Arc<str>,
    operation: &'static str,
    outcome: Result<(), &DriverError>,
    seconds: f64,
) {
    #[cfg(feature = "metrics")]
    {
        let outcome = match outcome {
            Ok(()) => "ok",
            Err(e) => driver_error_kind(e.kind()),
        };
        // Shared, not copied: a reference count per label.
        let driver = || metrics::SharedString::from(std::sync::Arc::clone(driver));
        metrics::counter!(STORE_OPERATIONS, "driver" => driver(), "operation" => operation, "outcome" => outcome)
            .increment(1);
        metrics::histogram!(STORE_DURATION, "driver" => driver(), "operation" => operation)
            .record(seconds);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (driver, operation, outcome, seconds);
}

/// An operation the retry layer (which needs the `tokio` feature) makes again.
#[cfg(feature = "tokio")]
#[inline]
pub(crate) fn store_retry(driver: &str, operation: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(STORE_RETRIES, "driver" => driver.to_owned(), "operation" => operation)
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (driver, operation);
}

/// A read-cache lookup: `hit`, `miss` or `off`.
#[inline]
pub(crate) fn cache_lookup(driver: &str, result: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(CACHE_LOOKUPS, "driver" => driver.to_owned(), "result" => result)
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (driver, result);
}

/// Whether this build reports metrics (the `metrics` feature, which any crate of the build can
/// turn on): the trace layer then times and counts every store operation, which costs each
/// operation a boxed future and its label lists: 4 allocations of its own, made even when no
/// recorder is installed (an installed recorder may add its own).
#[inline]
pub fn enabled() -> bool {
    cfg!(feature = "metrics")
}

#[cfg(feature = "metrics")]
fn driver_error_kind(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidKey => "invalid_key",
        ErrorKind::ValueTooLarge => "value_too_large",
        ErrorKind::AlreadyExists => "already_exists",
        ErrorKind::Conflict => "conflict",
        ErrorKind::Corrupt => "corrupt",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Config => "config",
    }
}

#[cfg(feature = "metrics")]
fn session_error_kind(error: &SessionError) -> &'static str {
    match error {
        SessionError::Driver { source, .. } => match source.kind() {
            ErrorKind::Unavailable => "store_unavailable",
            ErrorKind::Config => "store_config",
            _ => "store_other",
        },
        SessionError::Contention { .. } => "contention",
        SessionError::Busy { .. } => "busy",
        SessionError::CookieTooLarge { .. } => "cookie_too_large",
        SessionError::RequestForgery(_) => "request_forgery",
        SessionError::Serialize(_) | SessionError::Deserialize { .. } => "serialize",
        _ => "other",
    }
}

//! The debug spans of the hot path, made only when a subscriber listens at debug level.

use tracing::{Span, level_filters::LevelFilter};

/// `span()` when a subscriber listens at debug level and enables it, else `None`.
///
/// `LevelFilter::current()` is one atomic load, the most verbose level any subscriber wants
/// (off when none is set). `debug_span!` alone checks the callsite too, but first builds the
/// span's fields and, with `tracing`'s `log` feature (which actix-web turns on), offers them to
/// `log`: some 150 instructions per span per request, spent for nobody. With no `tracing`
/// subscriber these spans therefore do not reach `log` either.
#[inline]
pub(crate) fn debug(span: impl FnOnce() -> Span) -> Option<Span> {
    if tracing::level_filters::STATIC_MAX_LEVEL < LevelFilter::DEBUG
        || LevelFilter::current() < LevelFilter::DEBUG
    {
        return None;
    }
    Some(span()).filter(|span| !span.is_disabled())
}

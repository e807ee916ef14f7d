//! S3 errors mapped to the core's kinds.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use session_kit_core::DriverError;

/// The HTTP status of a service error, if the server answered.
pub(crate) fn status<E, R: HttpStatus>(e: &SdkError<E, R>) -> Option<u16> {
    e.raw_response().map(HttpStatus::status_code)
}

pub(crate) trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Maps an SDK error to the core's kinds, with the operation, status and S3 error code only
/// (never a request, which may carry values, nor a signature). When no answer came, the SDK's
/// error is kept as the cause (`connection refused`, a DNS failure: what an operator needs).
pub(crate) fn s3_error<
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
>(
    operation: &str,
    e: SdkError<E, R>,
) -> DriverError {
    let status = status(&e);
    let code = e.code().unwrap_or("").to_owned();
    let message = match status {
        Some(status) => format!("S3 {operation}: HTTP {status} {code}"),
        None => format!("S3 {operation}: {}", describe(&e)),
    };
    match (status, code.as_str()) {
        (Some(403), _) | (_, "NoSuchBucket" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
            DriverError::config(message)
        }
        (Some(404), _) => DriverError::config(message),
        (Some(429 | 500..=599), _) => DriverError::unavailable(message, true, None),
        (None, _) => DriverError::unavailable(message, true, Some(Box::new(e))),
        (Some(_), _) => DriverError::permanent(message, None),
    }
}

pub(crate) fn describe<E, R>(e: &SdkError<E, R>) -> &'static str {
    match e {
        SdkError::TimeoutError(_) => "timed out",
        SdkError::DispatchFailure(_) => "could not reach the server",
        SdkError::ResponseError(_) => "unreadable response",
        SdkError::ConstructionFailure(_) => "could not build the request",
        _ => "failed",
    }
}

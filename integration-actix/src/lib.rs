//! Sessions for actix-web: the same [`SessionStorage`] as every other integration, behind a
//! middleware and an extractor.
//!
//! [`SessionMiddleware`] reads the session cookie (no I/O), puts a [`session_kit_core::Session`]
//! in the request extensions, runs the handler, then commits: `Set-Cookie` only when something
//! changed or the cookie must be refreshed. Handlers take the [`Session`] extractor. A handler
//! may also save early with [`session_kit_core::Session::save`]: the middleware still sends the
//! cookie. Failures that retrying may fix are answered `503` with `Retry-After`.
//!
//! ```
//! use actix_web::{App, web};
//! use serde::{Deserialize, Serialize};
//! use session_kit_actix::{Session, SessionFailure, SessionMiddleware};
//! use session_kit::{Keyring, SessionStorage};
//!
//! #[derive(Clone, Default, Serialize, Deserialize)]
//! struct Visits { count: u64 }
//!
//! async fn count(session: Session<Visits>) -> Result<String, SessionFailure> {
//!     let n = session.update(|v| { v.count += 1; v.count }).await?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! # async fn app() -> Result<(), Box<dyn std::error::Error>> {
//! // Any config string: "fs:///var/lib/app/sessions", "redis://...", "cookie", ...
//! let storage: SessionStorage<Visits> = session_kit::storage("memory")
//!     .await?
//!     .keyring(Keyring::from_secrets(["a secret of at least thirty-two bytes"])?)
//!     .build()?;
//! let app = App::new()
//!     .wrap(SessionMiddleware::new(storage))
//!     .route("/", web::get().to(count));
//! # Ok(()) }
//! ```
//!
//! session-kit's guide runs requests through this middleware step by step, with logins, flash
//! messages and error handling: [actix-web](https://docs.rs/session-kit/latest/session_kit/guide/actix/index.html).
#![deny(unsafe_code)]
#![deny(missing_docs)]

use std::{
    fmt,
    future::Future,
    ops::Deref,
    pin::Pin,
    rc::Rc,
    sync::Arc,
    task::{Context, Poll},
};

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError,
    body::{EitherBody, MessageBody},
    dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
    http::{
        StatusCode,
        header::{self, HeaderMap, HeaderName, HeaderValue},
    },
};
use session_kit_core::{
    CommitAfter, DynamicData, ResponseHeaders, SessionData, SessionError, SessionStorage,
};

type ErrorHandler = Arc<dyn Fn(&SessionError) -> HttpResponse + Send + Sync>;

/// A plain-text 500 with no internal detail: the default answer to a session failure that
/// retrying will not fix.
pub fn internal_error_response() -> HttpResponse {
    HttpResponse::InternalServerError()
        .content_type("text/plain; charset=utf-8")
        .body("Internal Server Error")
}

/// A plain-text 503 with `Retry-After: 1`: the default answer to a session failure that may
/// pass when the request is sent again (the store timed out or is down, or other processes
/// kept changing the session: [`SessionError::is_retryable`]).
pub fn unavailable_response() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::RETRY_AFTER, "1"))
        .body("Service Unavailable")
}

/// The default answer to `error`: [`forbidden_response`] for a request refused as a forgery
/// ([`SessionError::RequestForgery`]), [`unavailable_response`] when it is retryable, else
/// [`internal_error_response`].
///
/// The `503`'s `Retry-After` is the backend's own when it gave one (a throttled store),
/// else one second.
pub fn error_response(error: &SessionError) -> HttpResponse {
    if let SessionError::RequestForgery(_) = error {
        return forbidden_response();
    }
    if error.is_retryable() {
        let mut response = unavailable_response();
        if let Some(wait) = error.retry_after() {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs.max(1)));
        }
        response
    } else {
        internal_error_response()
    }
}

/// A plain-text 403: the answer to a request refused as a cross-site forgery.
pub fn forbidden_response() -> HttpResponse {
    HttpResponse::Forbidden()
        .content_type("text/plain; charset=utf-8")
        .body("Forbidden")
}

fn log_failure(error: &SessionError, during: &str) {
    if let SessionError::RequestForgery(why) = error {
        // The client's doing, not the server's: no error-level alarm.
        tracing::warn!(reason = why, "request refused as a possible forgery");
        return;
    }
    tracing::error!(error = %error.report(), retryable = error.is_retryable(), "session {during} failed");
}

/// Loads and commits sessions of one [`SessionStorage`] around an actix-web service.
pub struct SessionMiddleware<T = DynamicData> {
    storage: SessionStorage<T>,
    on_error: ErrorHandler,
}

impl<T> Clone for SessionMiddleware<T> {
    fn clone(&self) -> Self {
        Self {
            storage: self.storage.clone(),
            on_error: Arc::clone(&self.on_error),
        }
    }
}

impl<T> fmt::Debug for SessionMiddleware<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl<T: SessionData> SessionMiddleware<T> {
    /// A middleware over `storage`.
    pub fn new(storage: SessionStorage<T>) -> Self {
        Self {
            storage,
            on_error: Arc::new(error_response),
        }
    }

    /// The response sent instead of the handler's when the session cannot be committed.
    /// The error is logged first. Default: [`error_response`] (503 with `Retry-After` when
    /// retrying may help, else 500).
    pub fn on_error<F>(mut self, handler: F) -> Self
    where
        F: Fn(&SessionError) -> HttpResponse + Send + Sync + 'static,
    {
        self.on_error = Arc::new(handler);
        self
    }
}

impl<S, B, T> Transform<S, ServiceRequest> for SessionMiddleware<T>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    T: SessionData,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = SessionService<S, T>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(SessionService {
            service: Rc::new(service),
            middleware: Rc::new(self.clone()),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around the app.
pub struct SessionService<S, T> {
    service: Rc<S>,
    /// Shared with each request's future without atomic reference counts (a worker's
    /// requests stay on its thread).
    middleware: Rc<SessionMiddleware<T>>,
}

impl<S, B, T> Service<ServiceRequest> for SessionService<S, T>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    T: SessionData,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, T, B>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        // actix-web has its own header types: hand the core the token, or the Cookie headers'
        // bytes.
        let storage = &self.middleware.storage;
        let token = storage.header_transport().and_then(|transport| {
            request
                .headers()
                .get_all(transport.request_header().as_str())
                .find_map(|v| transport.token_in(v.as_bytes()))
        });
        let session = match token {
            Some(token) => storage.get_session_from_token(Some(token)),
            None => storage.get_session_from_raw(
                request
                    .headers()
                    .get_all(header::COOKIE)
                    .map(HeaderValue::as_bytes),
            ),
        };
        request.extensions_mut().insert(session.clone());
        ResponseFuture {
            inner: CommitAfter::new(
                self.service.call(request),
                Rc::clone(&self.middleware),
                |middleware| &middleware.storage,
                session,
            ),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`SessionService`] call: the app's response, then the session's commit
    /// ([`CommitAfter`]), its headers added to the response.
    pub struct ResponseFuture<F, T, B> {
        #[pin]
        inner: CommitAfter<F, Rc<SessionMiddleware<T>>, T, ServiceResponse<B>>,
    }
}

impl<F, T, B> Future for ResponseFuture<F, T, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    T: SessionData,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (middleware, response, committed) = std::task::ready!(self.project().inner.poll(cx))?;
        Poll::Ready(Ok(respond(&middleware, response, committed)))
    }
}

/// The response with the commit's headers (`Set-Cookie`, or the header transport's token for
/// a session that came in it), or the error response when the commit failed.
fn respond<B, T>(
    middleware: &SessionMiddleware<T>,
    mut response: ServiceResponse<B>,
    committed: Result<ResponseHeaders, SessionError>,
) -> ServiceResponse<EitherBody<B>> {
    match committed.and_then(|headers| append(headers, response.response_mut().headers_mut())) {
        Ok(()) => response.map_into_left_body(),
        Err(error) => {
            // The response is replaced, with whatever headers were appended.
            log_failure(&error, "commit");
            let (request, _) = response.into_parts();
            let replacement = (middleware.on_error)(&error);
            ServiceResponse::new(request, replacement).map_into_right_body()
        }
    }
}

/// Appends the commit's headers to actix-web's header map, the values' bytes handed over
/// rather than copied.
fn append(headers: ResponseHeaders, target: &mut HeaderMap) -> Result<(), SessionError> {
    for (name, value) in headers.into_pairs() {
        // Same names, but actix-web's own header types.
        let name = match name.as_str() == "set-cookie" {
            true => Ok(header::SET_COOKIE),
            false => HeaderName::from_bytes(name.as_str().as_bytes()),
        };
        let (name, value) = name
            .ok()
            .zip(header_value(value))
            .ok_or_else(|| SessionError::InvalidCookie("not a valid header".into()))?;
        target.append(name, value);
    }
    Ok(())
}

/// `value` as a header value, when every byte may appear in one (the check
/// `HeaderValue::from_maybe_shared` makes), its bytes handed over.
fn header_value(value: String) -> Option<HeaderValue> {
    if !session_kit_core::valid_header_value(value.as_bytes()) {
        return None;
    }
    let bytes = actix_web::web::Bytes::from(value);
    // SAFETY: not a memory-safety contract: `from_maybe_shared_unchecked` skips the byte
    // check that `valid_header_value` just made (the same predicate, without an early exit,
    // so it runs over many bytes at once: the `http` crate's loop took about 8 instructions
    // per byte, 1,500 per sealed `Set-Cookie`). Debug builds check again.
    #[allow(unsafe_code)]
    let value = unsafe { HeaderValue::from_maybe_shared_unchecked(bytes) };
    Some(value)
}

/// The session of the current request, as an actix-web extractor. Derefs to
/// [`session_kit_core::Session`], so every session method is available.
pub struct Session<T = DynamicData>(session_kit_core::Session<T>);

impl<T> Clone for Session<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T> Deref for Session<T> {
    type Target = session_kit_core::Session<T>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> Session<T> {
    /// The core session.
    pub fn into_inner(self) -> session_kit_core::Session<T> {
        self.0
    }
}

impl<T: SessionData> FromRequest for Session<T> {
    type Error = SessionFailure;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            request
                .extensions()
                .get::<session_kit_core::Session<T>>()
                .cloned()
                .map(Session)
                .ok_or(SessionFailure(Failure::MissingMiddleware(
                    std::any::type_name::<T>(),
                ))),
        )
    }
}

/// A session failure inside a handler, answered with [`error_response`] after logging it
/// (503 with `Retry-After` when retrying may help, else 500). Convert from [`SessionError`]
/// with `?`.
#[derive(Debug)]
pub struct SessionFailure(Failure);

#[derive(Debug)]
enum Failure {
    Session(SessionError),
    MissingMiddleware(&'static str),
}

impl SessionFailure {
    /// The session error, or `None` when the route lacks a [`SessionMiddleware`].
    pub fn error(&self) -> Option<&SessionError> {
        match &self.0 {
            Failure::Session(e) => Some(e),
            Failure::MissingMiddleware(_) => None,
        }
    }
}

impl fmt::Display for SessionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Failure::Session(e) => e.fmt(f),
            Failure::MissingMiddleware(t) => write!(
                f,
                "no SessionMiddleware for session data {t} wraps this route"
            ),
        }
    }
}

impl std::error::Error for SessionFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error().map(|e| e as _)
    }
}

impl From<SessionError> for SessionFailure {
    fn from(error: SessionError) -> Self {
        Self(Failure::Session(error))
    }
}

impl ResponseError for SessionFailure {
    fn status_code(&self) -> StatusCode {
        match self.error() {
            Some(e) if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match &self.0 {
            Failure::Session(e) => {
                log_failure(e, "access");
                error_response(e)
            }
            Failure::MissingMiddleware(_) => {
                tracing::error!("{self}");
                internal_error_response()
            }
        }
    }
}

/// Refuses state-changing requests (`POST`, `PUT`, `PATCH`, `DELETE`, ...) that a browser
/// says come from another site, with `403 Forbidden`, before any handler runs: the
/// `Sec-Fetch-Site` / `Origin` check of [`session_kit_core::origin_allows`]. It needs no
/// session, so it covers login forms (no session yet) too; pair it with the session-bound
/// token ([`session_kit_core::Session::require_csrf`]) in handlers of logged-in users.
///
/// ```
/// use actix_web::{App, web};
/// use session_kit_actix::CsrfMiddleware;
///
/// let app = App::new()
///     .wrap(CsrfMiddleware::new().trust_origin("https://admin.example.com"))
///     .route("/login", web::post().to(|| async { "ok" }));
/// ```
#[derive(Debug, Clone, Default)]
pub struct CsrfMiddleware {
    trusted: Arc<Vec<String>>,
}

impl CsrfMiddleware {
    /// Same-origin requests only (and non-browser clients, which send no `Origin`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accepts requests from `origin` (`scheme://host[:port]`).
    pub fn trust_origin(mut self, origin: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.trusted).push(origin.into());
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for CsrfMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = CsrfService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(CsrfService {
            service: Rc::new(service),
            trusted: Arc::clone(&self.trusted),
        }))
    }
}

/// The service [`CsrfMiddleware`] wraps around the app.
pub struct CsrfService<S> {
    service: Rc<S>,
    trusted: Arc<Vec<String>>,
}

impl<S, B> Service<ServiceRequest> for CsrfService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let headers = request.headers();
        let allowed = session_kit_core::origin_allows_request(
            request.method().as_str(),
            |name| headers.get(name).map(HeaderValue::as_bytes),
            &self.trusted,
        );
        if !allowed {
            tracing::warn!(method = %request.method(), "cross-site request refused");
            let (request, _) = request.into_parts();
            let refused = ServiceResponse::new(request, forbidden_response());
            return Box::pin(async move { Ok(refused.map_into_right_body()) });
        }
        let service = Rc::clone(&self.service);
        Box::pin(async move { Ok(service.call(request).await?.map_into_left_body()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check `header_value` makes before skipping actix-web's is the same check, byte for
    /// byte: a value the `http` crate refuses is refused here too (never sent unchecked).
    #[test]
    fn header_values_are_checked_as_actix_web_checks_them() {
        for b in 0..=u8::MAX {
            let value = format!("a{}b", char::from(b));
            let ours = session_kit_core::valid_header_value(&[b'a', b, b'b']);
            let theirs = HeaderValue::from_bytes(&[b'a', b, b'b']).is_ok();
            assert_eq!(ours, theirs, "byte {b:#04x}");
            if b.is_ascii() {
                assert_eq!(header_value(value).is_some(), theirs, "byte {b:#04x}");
            }
        }
        let cookie = "session=abc; HttpOnly; Path=/";
        let value = header_value(cookie.to_owned());
        assert_eq!(
            value.as_ref().map(HeaderValue::as_bytes),
            Some(cookie.as_bytes())
        );
        assert!(header_value("session=abc\r\nSet-Cookie: admin=1".to_owned()).is_none());
    }
}

//! Sessions for axum and any `http` 1.x tower service.
//!
//! [`SessionLayer`] reads the session cookie of each request (no I/O), puts a
//! [`session_kit_core::Session`] in the request extensions, runs the inner service, then commits:
//! `Set-Cookie` is added only when something changed or the cookie must be refreshed, and a
//! route that never touches the session costs no store call. A handler may also save early
//! with [`session_kit_core::Session::save`] (before streaming a body, say): the layer still sends
//! the cookie. Failures that retrying may fix are answered `503` with `Retry-After`. Handlers take the [`Session`]
//! extractor and return [`SessionFailure`] (or their own error) from session calls.
//!
//! ```
//! use axum::{Router, routing::get};
//! use serde::{Deserialize, Serialize};
//! use session_kit_axum::{Session, SessionFailure, SessionLayer};
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
//! let app: Router = Router::new().route("/", get(count)).layer(SessionLayer::new(storage));
//! # Ok(()) }
//! ```
//!
//! Several sessions per request: add one layer per storage. Extractors find a session by its
//! data type, so give each storage its own type (a long-lived `Prefs` beside the login `Auth`).
//!
//! session-kit's guide runs requests through this layer step by step, with logins, flash
//! messages and error handling: [axum](https://docs.rs/session-kit/latest/session_kit/guide/axum/index.html).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    ops::Deref,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum_core::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::{HeaderValue, Request, StatusCode, header, request::Parts};
use session_kit_core::{
    CommitAfter, DynamicData, ResponseHeaders, SessionData, SessionError, SessionStorage,
};
use tower_layer::Layer;
use tower_service::Service;

type ErrorHandler = Arc<dyn Fn(&SessionError) -> http::Response<String> + Send + Sync>;

/// Loads and commits sessions of one [`SessionStorage`] around an inner service.
pub struct SessionLayer<T = DynamicData> {
    /// Shared with every service the layer makes and each request's future: axum applies a
    /// router's layers to a handler for each request, so making a service must not allocate.
    shared: Arc<Shared<T>>,
}

/// What a layer, its services and their requests share.
struct Shared<T> {
    storage: SessionStorage<T>,
    on_error: ErrorHandler,
}

impl<T> Clone for SessionLayer<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for SessionLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("storage", &self.shared.storage)
            .finish_non_exhaustive()
    }
}

/// A plain-text 500 with no internal detail: the default answer to a session failure that
/// retrying will not fix.
pub fn internal_error_response() -> http::Response<String> {
    plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// A plain-text 503 with `Retry-After: 1`: the default answer to a session failure that may
/// pass when the request is sent again (the store timed out or is down, or other processes
/// kept changing the session: [`SessionError::is_retryable`]).
pub fn unavailable_response() -> http::Response<String> {
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The default answer to `error`: [`forbidden_response`] for a request refused as a forgery
/// ([`SessionError::RequestForgery`]), [`unavailable_response`] when it is retryable, else
/// [`internal_error_response`].
///
/// The `503`'s `Retry-After` is the backend's own when it gave one (a throttled store),
/// else one second.
pub fn error_response(error: &SessionError) -> http::Response<String> {
    if let SessionError::RequestForgery(_) = error {
        return forbidden_response();
    }
    if error.is_retryable() {
        let mut response = unavailable_response();
        if let Some(wait) = error.retry_after() {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    } else {
        internal_error_response()
    }
}

/// A plain-text 403: the answer to a request refused as a cross-site forgery.
pub fn forbidden_response() -> http::Response<String> {
    plain(StatusCode::FORBIDDEN, "Forbidden")
}

fn plain(status: StatusCode, text: &str) -> http::Response<String> {
    let mut response = http::Response::new(text.to_owned());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn log_failure(error: &SessionError, during: &str) {
    if let SessionError::RequestForgery(why) = error {
        // The client's doing, not the server's: no error-level alarm.
        tracing::warn!(reason = why, "request refused as a possible forgery");
        return;
    }
    tracing::error!(error = %error.report(), retryable = error.is_retryable(), "session {during} failed");
}

impl<T: SessionData> SessionLayer<T> {
    /// A layer over `storage`.
    pub fn new(storage: SessionStorage<T>) -> Self {
        Self {
            shared: Arc::new(Shared {
                storage,
                on_error: Arc::new(error_response),
            }),
        }
    }

    /// The response sent instead of the handler's when the session cannot be committed
    /// (the store is down, the cookie would be too large, ...). The error is logged first.
    /// Default: [`error_response`] (503 with `Retry-After` when retrying may help, else 500).
    pub fn on_error<F>(self, handler: F) -> Self
    where
        F: Fn(&SessionError) -> http::Response<String> + Send + Sync + 'static,
    {
        Self {
            shared: Arc::new(Shared {
                storage: self.shared.storage.clone(),
                on_error: Arc::new(handler),
            }),
        }
    }
}

impl<S, T> Layer<S> for SessionLayer<T> {
    type Service = SessionService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            layer: Arc::clone(&self.shared),
        }
    }
}

/// The service [`SessionLayer`] produces.
pub struct SessionService<S, T> {
    inner: S,
    /// One reference count for the service's clones and each request's future (the router
    /// clones the service per request).
    layer: Arc<Shared<T>>,
}

impl<S: Clone, T> Clone for SessionService<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: Arc::clone(&self.layer),
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for SessionService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S, T>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    T: SessionData,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, T, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's usual pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let session = self
            .layer
            .storage
            .get_session_from_headers(request.headers());
        request.extensions_mut().insert(session.clone());
        ResponseFuture {
            inner: CommitAfter::new(
                inner.call(request),
                Arc::clone(&self.layer),
                |layer| &layer.storage,
                session,
            ),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`SessionService`] call: the inner service's response, then the
    /// session's commit ([`CommitAfter`]), its headers added to the response.
    pub struct ResponseFuture<F, T, B> {
        #[pin]
        inner: CommitAfter<F, Arc<Shared<T>>, T, http::Response<B>>,
    }
}

impl<F, T, B, E> Future for ResponseFuture<F, T, B>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    T: SessionData,
    B: From<String>,
{
    type Output = Result<http::Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (layer, response, committed) = std::task::ready!(self.project().inner.poll(cx))?;
        Poll::Ready(Ok(respond(&layer, response, committed)))
    }
}

/// The response with the commit's headers (`Set-Cookie`, or the header transport's token for
/// a session that came in it), or the error response when the commit failed.
fn respond<T, ResBody: From<String>>(
    layer: &Shared<T>,
    mut response: http::Response<ResBody>,
    committed: Result<ResponseHeaders, SessionError>,
) -> http::Response<ResBody> {
    match committed.and_then(|headers| headers.append_to(response.headers_mut())) {
        Ok(()) => response,
        Err(error) => {
            log_failure(&error, "commit");
            (layer.on_error)(&error).map(ResBody::from)
        }
    }
}

/// The session of the current request, as an axum extractor. Derefs to
/// [`session_kit_core::Session`], so every session method is available.
///
/// Extraction fails (a logged 500) only when no [`SessionLayer`] for `T` wraps the route.
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

impl<S: Send + Sync, T: SessionData> FromRequestParts<S> for Session<T> {
    type Rejection = SessionFailure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<session_kit_core::Session<T>>()
            .cloned()
            .map(Session)
            .ok_or(SessionFailure(Failure::MissingLayer(
                std::any::type_name::<T>(),
            )))
    }
}

impl<S: Send + Sync, T: SessionData> OptionalFromRequestParts<S> for Session<T> {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<session_kit_core::Session<T>>()
            .cloned()
            .map(Session))
    }
}

/// A session failure inside a handler, answered with [`error_response`] after logging it
/// (503 with `Retry-After` when retrying may help, else 500). Convert from [`SessionError`]
/// with `?`; match on [`SessionFailure::error`] to answer differently.
#[derive(Debug)]
pub struct SessionFailure(Failure);

#[derive(Debug)]
enum Failure {
    Session(SessionError),
    MissingLayer(&'static str),
}

impl SessionFailure {
    /// The session error, or `None` when the route lacks a [`SessionLayer`].
    pub fn error(&self) -> Option<&SessionError> {
        match &self.0 {
            Failure::Session(e) => Some(e),
            Failure::MissingLayer(_) => None,
        }
    }
}

impl fmt::Display for SessionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Failure::Session(e) => e.fmt(f),
            Failure::MissingLayer(t) => {
                write!(f, "no SessionLayer for session data {t} wraps this route")
            }
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

impl IntoResponse for SessionFailure {
    fn into_response(self) -> Response {
        let response = match &self.0 {
            Failure::Session(e) => {
                log_failure(e, "access");
                error_response(e)
            }
            Failure::MissingLayer(_) => {
                tracing::error!("{self}");
                internal_error_response()
            }
        };
        response.map(Into::into)
    }
}

/// Refuses state-changing requests (`POST`, `PUT`, `PATCH`, `DELETE`, ...) that a browser
/// says come from another site, with `403 Forbidden`, before any handler runs: the
/// `Sec-Fetch-Site` / `Origin` check of [`session_kit_core::origin_allows`]. It needs no
/// session, so it covers login forms (no session yet) too; pair it with the session-bound
/// token ([`session_kit_core::Session::require_csrf`]) in handlers of logged-in users.
///
/// ```
/// use axum::{Router, routing::post};
/// use session_kit_axum::CsrfLayer;
///
/// let app: Router = Router::new()
///     .route("/login", post(|| async { "ok" }))
///     .layer(CsrfLayer::new().trust_origin("https://admin.example.com"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct CsrfLayer {
    trusted: Arc<Vec<String>>,
}

impl CsrfLayer {
    /// Same-origin requests only (and non-browser clients, which send no `Origin`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accepts requests from `origin` (`scheme://host[:port]`, for example a sibling
    /// subdomain that posts to this app).
    pub fn trust_origin(mut self, origin: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.trusted).push(origin.into());
        self
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = CsrfService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CsrfService {
            inner,
            trusted: Arc::clone(&self.trusted),
        }
    }
}

/// The service of [`CsrfLayer`].
#[derive(Debug, Clone)]
pub struct CsrfService<S> {
    inner: S,
    trusted: Arc<Vec<String>>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CsrfService<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let headers = request.headers();
        let allowed = session_kit_core::origin_allows_request(
            request.method().as_str(),
            |name| headers.get(name).map(HeaderValue::as_bytes),
            &self.trusted,
        );
        if !allowed {
            tracing::warn!(method = %request.method(), "cross-site request refused");
            return Box::pin(async { Ok(forbidden_response().map(ResBody::from)) });
        }
        Box::pin(self.inner.call(request))
    }
}

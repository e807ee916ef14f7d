//! Routes, handlers and the middleware stack of the demo site.
//!
//! What a visitor can rely on, and the tests check over HTTP:
//! * reading a page (`GET`, `HEAD`) never stores a session or changes its data (a `GET` only
//!   consumes the flash message it shows; a `HEAD` leaves it);
//! * every form is checked twice against request forgery: the browser's `Sec-Fetch-Site` /
//!   `Origin` ([`CsrfLayer`], which covers the login form too) and, once a session is stored,
//!   its token;
//! * pages showing session data are never cached (`Cache-Control: no-store`), and every
//!   response carries a strict Content-Security-Policy and the usual security headers;
//! * request bodies are capped at 16 KiB and requests at the request timeout.

use std::{sync::Arc, time::Duration};

use axum::{
    Form, Json, Router,
    body::Body,
    extract::{DefaultBodyLimit, FromRequestParts, Query, Request},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use session_kit::{
    CookieOptions, DriverConfig, ExpiryPolicy, Keyring, Lifetime, SessionError, SessionStorage,
    csrf_header,
    driver::{Consistency, Driver},
};
use session_kit_axum::{CsrfLayer, Session, SessionFailure, SessionLayer};
use tower_http::{set_header::SetResponseHeaderLayer, timeout::TimeoutLayer};

use crate::{
    cost::{self, TallyDriver},
    model::{
        CATALOG, DEMO_EMAIL, DEMO_PASSWORD, DemoSession, RequestFacts, StorageInfo, StoreInfo,
    },
    pages::{self, Frame},
};

const HOUR: Duration = Duration::from_secs(3600);
/// The memory driver's bound unless the config sets one.
const MEMORY_CAPACITY: u64 = 10_000;
/// Largest request body (the forms are a few hundred bytes).
const MAX_BODY: usize = 16 * 1024;
/// Nothing inline, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

type Page = Result<Html<String>, SessionFailure>;

/// What the handlers share.
pub(crate) struct App {
    storage: SessionStorage<DemoSession>,
    pub(crate) info: StorageInfo,
}

/// The router on the driver named by `driver` (`cookie` for cookie-only sessions), with the
/// session layer's metrics on `GET /metrics` (Prometheus's text format).
pub(crate) async fn router(
    driver: &str,
    keyring: Keyring,
    metrics: PrometheusHandle,
    request_timeout: Duration,
) -> Result<(Router, Arc<App>), String> {
    let key_id = keyring.keys().first().map(|k| k.id()).unwrap_or_default();
    let keys = keyring.len();
    let (builder, store, config) = if driver.trim() == "cookie" {
        (SessionStorage::cookie_only(), None, "cookie".to_owned())
    } else {
        let mut config = DriverConfig::parse(driver).map_err(|e| format!("session driver: {e}"))?;
        let mut capacity = None;
        if config.name() == "memory" {
            // Unbounded, every visitor who submits a form would cost memory until the
            // session expires.
            let options: session_kit::drivers::memory::MemoryConfig = config
                .options()
                .map_err(|e| format!("session driver: {e}"))?;
            if options.capacity.is_none() {
                config = config.with_option("capacity", MEMORY_CAPACITY);
            }
            capacity = Some(options.capacity.unwrap_or(MEMORY_CAPACITY));
        }
        let shown = config.redacted();
        let opened = session_kit::open_config(config)
            .await
            .map_err(|e| format!("session driver: {e}"))?;
        let store = store_info(opened.as_ref(), capacity);
        let tallied: Arc<dyn Driver> = Arc::new(TallyDriver::new(opened));
        (SessionStorage::builder(tallied), Some(store), shown)
    };
    let storage = builder
        .keyring(keyring)
        // Short by default; "remember me" gives a session its own long lifetime.
        .expiry(
            ExpiryPolicy::new()
                .idle_timeout(Some(2 * HOUR))
                .absolute_timeout(Some(12 * HOUR)),
        )
        // Served over plain http://127.0.0.1: browsers would not send a Secure cookie back.
        .cookie(
            CookieOptions::new()
                .name("demo_session")
                .insecure_for_local_development(),
        )
        .build()
        .map_err(|e| format!("session storage: {e}"))?;
    let info = StorageInfo {
        config,
        store,
        cookie_name: storage.cookie_options().cookie_name().to_owned(),
        key_id,
        keys,
    };
    let app = Arc::new(App {
        storage: storage.clone(),
        info,
    });
    let router = Router::new()
        .route("/", get(home))
        .route("/count", post(count))
        .route("/api/count", get(api_count).post(api_increment))
        .route("/two-tabs", get(two_tabs))
        .route("/login", get(login_page).post(login))
        .route("/dashboard", get(dashboard))
        .route("/sessions", get(sessions))
        .route("/sessions/revoke", post(revoke))
        .route("/sessions/revoke-others", post(revoke_others))
        .route("/sessions/revoke-all", post(revoke_all))
        .route("/cart", get(cart_page))
        .route("/cart/add", post(cart_add))
        .route("/cart/remove", post(cart_remove))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(storage))
        // Outside the session layer, so that the final commit is tallied too.
        .layer(middleware::from_fn(cost::track))
        // Outside the session layer: a scrape is not a visit, a stylesheet needs no session.
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/static/demo.css", get(stylesheet))
        .route("/static/two-tabs.js", get(script))
        .with_state(app.clone())
        // Cross-site state changes are refused before any handler runs.
        .layer(CsrfLayer::new())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(security_header(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::REFERRER_POLICY, "same-origin"))
        .layer(security_header(
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ))
        // Pages show session data: never kept by a browser or proxy cache (static files say
        // otherwise themselves).
        .layer(security_header(header::CACHE_CONTROL, "no-store"))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(middleware::from_fn(error_pages));
    Ok((router, app))
}

/// Refusals as pages that say what happened (the layers answer in plain text, or nothing).
async fn error_pages(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let explanation = match status {
        StatusCode::FORBIDDEN => {
            "This request was refused: it came from another site, or without this page's \
             request-forgery token. Nothing was changed."
        }
        StatusCode::REQUEST_TIMEOUT => "The request took too long and was cut off.",
        StatusCode::PAYLOAD_TOO_LARGE => "The request was too large.",
        _ => return response,
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let page = pages::refused(
        status.as_str(),
        status.canonical_reason().unwrap_or_default(),
        explanation,
    );
    Response::from_parts(parts, Body::from(page.0))
}

fn security_header(
    name: header::HeaderName,
    value: &'static str,
) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// The store's facts for the panel.
fn store_info(driver: &dyn Driver, capacity: Option<u64>) -> StoreInfo {
    let caps = driver.capabilities();
    let mut can = Vec::new();
    let mut cannot = Vec::new();
    let mut either = |yes: bool, what: String| match yes {
        true => can.push(what),
        false => cannot.push(what),
    };
    either(
        caps.compare_and_swap,
        "compare-and-swap (concurrent changes merged, never lost)".into(),
    );
    either(
        caps.ttl.is_some(),
        match caps.ttl {
            Some(ttl) => format!("expire entries (within {:?})", ttl.granularity),
            None => "expire entries".into(),
        },
    );
    either(caps.touch, "extend an expiry without a rewrite".into());
    either(
        caps.list,
        "list sessions (devices, log out everywhere)".into(),
    );
    match caps.consistency {
        Consistency::Strong => can.push("read its own writes".into()),
        Consistency::Eventual { max_staleness } => {
            cannot.push(format!(
                "read its own writes (up to {max_staleness:?} stale)"
            ));
        }
    }
    StoreInfo {
        driver: driver.name().to_owned(),
        layers: driver.layers(),
        can,
        cannot,
        can_list: caps.list,
        capacity,
    }
}

async fn stylesheet() -> impl IntoResponse {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../static/demo.css"),
    )
}

async fn script() -> impl IntoResponse {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../static/two-tabs.js"),
    )
}

fn static_file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
}

/// What every page handler starts from: the app, the session, the request's method and
/// headers.
struct Visit {
    app: Arc<App>,
    session: Session<DemoSession>,
    method: Method,
    headers: HeaderMap,
}

impl FromRequestParts<Arc<App>> for Visit {
    type Rejection = SessionFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            session: Session::from_request_parts(parts, app).await?,
            app: app.clone(),
            method: parts.method.clone(),
            headers: parts.headers.clone(),
        })
    }
}

impl Visit {
    /// A flash message: a `GET` shows and consumes it, a `HEAD` (which must not change the
    /// session) leaves it for the `GET`.
    async fn flash(&self, key: &str) -> Result<Option<String>, SessionError> {
        match self.method == Method::HEAD {
            true => self.session.peek_flash(key).await,
            false => self.session.take_flash(key).await,
        }
    }

    /// Checks a state-changing request's token. A visitor with no stored session has nothing
    /// to forge against (and no token yet): the origin check ([`CsrfLayer`]) still ran.
    async fn check_csrf(&self, token: Option<&str>) -> Result<(), SessionError> {
        if self.session.is_new().await? {
            return Ok(());
        }
        self.session.require_csrf(token).await
    }

    /// Saves the session now (so the panel can tell what this request cost), then what the
    /// page needs around its body.
    async fn frame(&self) -> Result<Frame<'_>, SessionError> {
        let session = &self.session;
        let token = match session.is_new().await? {
            true => None,
            false => Some(session.csrf_token().await?),
        };
        session.save().await?;
        let stored = !session.is_new().await?;
        let request = RequestFacts {
            cookie_bytes: cookie_len(&self.headers, &self.app.info.cookie_name),
            stored,
            id_hash: match self.app.info.store {
                Some(_) => session.id_hash().await?,
                None => None,
            },
            user: session.read(|s| s.user.clone()).await?,
            operations: cost::so_far(),
            merged: session.merged_concurrent_changes().await,
        };
        Ok(Frame {
            storage: &self.app.info,
            request,
            token,
        })
    }

    async fn user(&self) -> Result<Option<String>, SessionError> {
        self.session.read(|s| s.user.clone()).await
    }
}

/// The length of the session cookie among the request's `Cookie` headers.
fn cookie_len(headers: &HeaderMap, name: &str) -> Option<usize> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value.len())
        })
}

async fn home(visit: Visit) -> Page {
    let state = visit.session.data().await?;
    let notice = visit.flash("notice").await?;
    let frame = visit.frame().await?;
    Ok(pages::home(&state, notice.as_deref(), &frame))
}

#[derive(Deserialize)]
struct TokenForm {
    csrf_token: Option<String>,
}

async fn count(visit: Visit, Form(form): Form<TokenForm>) -> Result<Redirect, SessionFailure> {
    visit.check_csrf(form.csrf_token.as_deref()).await?;
    // An operation, not a value: concurrent increments each count.
    visit.session.update(|s| s.count += 1).await?;
    Ok(Redirect::to("/"))
}

async fn two_tabs(visit: Visit) -> Page {
    let count = visit.session.read(|s| s.count).await?;
    let frame = visit.frame().await?;
    Ok(pages::two_tabs(count, &frame))
}

#[derive(Serialize)]
struct CountReply {
    count: u64,
    /// This request's commit merged a concurrent request's change.
    merged: bool,
    /// Store operations this request made, its final commit excepted (none, normally).
    operations: usize,
    /// The session's request-forgery token (for a script that started without one).
    csrf: Option<String>,
}

async fn api_count(visit: Visit) -> Result<Json<CountReply>, SessionFailure> {
    let count = visit.session.read(|s| s.count).await?;
    let csrf = match visit.session.is_new().await? {
        true => None,
        false => Some(visit.session.csrf_token().await?),
    };
    Ok(Json(CountReply {
        count,
        merged: false,
        operations: cost::so_far().len(),
        csrf,
    }))
}

async fn api_increment(visit: Visit) -> Result<Json<CountReply>, SessionFailure> {
    visit.check_csrf(csrf_header(&visit.headers)).await?;
    // Saved now, so the reply tells what the write cost and whether it was merged.
    let count = visit
        .session
        .update_and_save(|s| {
            s.count += 1;
            s.count
        })
        .await?;
    Ok(Json(CountReply {
        count,
        merged: visit.session.merged_concurrent_changes().await,
        operations: cost::so_far().len(),
        csrf: Some(visit.session.csrf_token().await?),
    }))
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Where a login may send the browser afterwards: only this site's own pages.
fn after_login(next: Option<&str>) -> &'static str {
    match next {
        Some("/sessions") => "/sessions",
        Some("/two-tabs") => "/two-tabs",
        _ => "/dashboard",
    }
}

async fn login_page(visit: Visit, Query(query): Query<LoginQuery>) -> Page {
    let error = visit.flash("error").await?;
    let notice = visit.flash("notice").await?.or_else(|| {
        query
            .next
            .as_ref()
            .map(|_| "Please log in to see that page.".to_owned())
    });
    let frame = visit.frame().await?;
    Ok(pages::login(
        error.as_deref(),
        notice.as_deref(),
        query.next.as_deref(),
        &frame,
    ))
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    remember: Option<String>,
    next: Option<String>,
    csrf_token: Option<String>,
}

async fn login(visit: Visit, Form(form): Form<LoginForm>) -> Result<Redirect, SessionFailure> {
    visit.check_csrf(form.csrf_token.as_deref()).await?;
    let session = &visit.session;
    if form.email != DEMO_EMAIL || form.password != DEMO_PASSWORD {
        session.flash("error", "Invalid email or password.").await?;
        return Ok(Redirect::to("/login"));
    }
    // A new id on login: a session id planted before login is worthless afterwards.
    session.regenerate().await?;
    let remember = form.remember.is_some();
    let email = form.email;
    session.bind_user(email.as_str()).await?;
    session
        .set_user_label("device", device(&visit.headers))
        .await?;
    session
        .update(move |s| {
            s.user = Some(email.clone());
            s.remember = remember;
        })
        .await?;
    if remember {
        session
            .set_lifetime(Lifetime::new(Some(30 * 24 * HOUR), Some(90 * 24 * HOUR)))
            .await?;
    }
    Ok(Redirect::to(after_login(form.next.as_deref())))
}

/// "Chrome on Linux", from the `User-Agent` (a label for the devices page, not a fingerprint).
fn device(headers: &HeaderMap) -> String {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let browser = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .into_iter()
    .find_map(|(needle, name)| agent.contains(needle).then_some(name))
    .unwrap_or("A browser");
    let system = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find_map(|(needle, name)| agent.contains(needle).then_some(name));
    match system {
        Some(system) => format!("{browser} on {system}"),
        None => browser.to_owned(),
    }
}

/// The signed-in user, or a redirect to the login page (which writes nothing: the reason
/// travels in the URL, not in a flash that would store a session for an anonymous visitor).
async fn signed_in(visit: &Visit, page: &str) -> Result<Result<String, Redirect>, SessionError> {
    Ok(match visit.user().await? {
        Some(user) => Ok(user),
        None => Err(Redirect::to(&format!("/login?next={page}"))),
    })
}

async fn dashboard(visit: Visit) -> Result<Response, SessionFailure> {
    if let Err(to_login) = signed_in(&visit, "/dashboard").await? {
        return Ok(to_login.into_response());
    }
    let state = visit.session.data().await?;
    let frame = visit.frame().await?;
    Ok(pages::dashboard(&state, &frame).into_response())
}

async fn sessions(visit: Visit) -> Result<Response, SessionFailure> {
    let user = match signed_in(&visit, "/sessions").await? {
        Ok(user) => user,
        Err(to_login) => return Ok(to_login.into_response()),
    };
    let notice = visit.flash("notice").await?;
    let listed = match visit.app.info.store.as_ref().is_some_and(|s| s.can_list) {
        true => Some(visit.app.storage.user_sessions(&user).await?),
        false => None,
    };
    let frame = visit.frame().await?;
    Ok(pages::sessions(listed.as_deref(), notice.as_deref(), &frame).into_response())
}

#[derive(Deserialize)]
struct RevokeForm {
    handle: String,
    csrf_token: Option<String>,
}

async fn revoke(visit: Visit, Form(form): Form<RevokeForm>) -> Result<Redirect, SessionFailure> {
    visit.check_csrf(form.csrf_token.as_deref()).await?;
    let user = match signed_in(&visit, "/sessions").await? {
        Ok(user) => user,
        Err(to_login) => return Ok(to_login),
    };
    let notice = match visit
        .app
        .storage
        .revoke_session(&user, &form.handle)
        .await?
    {
        true => "That device is logged out.",
        false => "That session had ended already.",
    };
    if visit.session.id_hash().await?.as_deref() == Some(form.handle.as_str()) {
        visit.session.destroy().await;
        return Ok(Redirect::to("/"));
    }
    visit.session.flash("notice", notice).await?;
    Ok(Redirect::to("/sessions"))
}

async fn revoke_others(
    visit: Visit,
    Form(form): Form<TokenForm>,
) -> Result<Redirect, SessionFailure> {
    visit.check_csrf(form.csrf_token.as_deref()).await?;
    let user = match signed_in(&visit, "/sessions").await? {
        Ok(user) => user,
        Err(to_login) => return Ok(to_login),
    };
    let n = visit
        .app
        .storage
        .revoke_user_except(&user, &visit.session)
        .await?;
    visit
        .session
        .flash("notice", format!("Logged out on {n} other device(s)."))
        .await?;
    Ok(Redirect::to("/sessions"))
}

async fn revoke_all(visit: Visit, Form(form): Form<TokenForm>) -> Result<Redirect, SessionFailure> {
    visit.check_csrf(form.csrf_token.as_deref()).await?;
    let user = match signed_in(&visit, "/sessions").await? {
        Ok(user) => user,
        Err(to_login) => return Ok(to_login),
    };
    let n = visit.app.storage.revoke_user(&user).await?;
    // This device's record is gone with the others; the cookie goes too.
    visit.session.destroy().await;
    visit
        .session
        .flash(
            "notice",
            format!("You have been logged out everywhere ({n} session(s) ended)."),
        )
        .await?;
    Ok(Redirect::to("/"))
}

async fn cart_page(visit: Visit) -> Page {
    let state = visit.session.data().await?;
    let frame = visit.frame().await?;
    Ok(pages::cart(&state, &frame))
}

#[derive(Deserialize)]
struct CartForm {
    item: String,
    csrf_token: Option<String>,
}

async fn cart_add(visit: Visit, Form(form): Form<CartForm>) -> Result<Redirect, SessionFailure> {
    visit.check_csrf(form.csrf_token.as_deref()).await?;
    if CATALOG.iter().any(|(id, _)| *id == form.item) {
        // Kept as an operation: two tabs adding items at once both count.
        let item = form.item;
        visit
            .session
            .update(move |s| *s.cart.entry(item.clone()).or_default() += 1)
            .await?;
    }
    Ok(Redirect::to("/cart"))
}

async fn cart_remove(visit: Visit, Form(form): Form<CartForm>) -> Result<Redirect, SessionFailure> {
    visit.check_csrf(form.csrf_token.as_deref()).await?;
    if visit.session.is_new().await? {
        // Nothing to remove from a cart that does not exist: store nothing.
        return Ok(Redirect::to("/cart"));
    }
    let item = form.item;
    visit
        .session
        .update(move |s| {
            if let Some(n) = s.cart.get_mut(&item) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    s.cart.remove(&item);
                }
            }
        })
        .await?;
    Ok(Redirect::to("/cart"))
}

async fn logout(visit: Visit, Form(form): Form<TokenForm>) -> Result<Redirect, SessionFailure> {
    visit.check_csrf(form.csrf_token.as_deref()).await?;
    if visit.session.is_new().await? {
        // No session to end: store nothing (a fresh one would hold only the notice).
        return Ok(Redirect::to("/"));
    }
    visit.session.destroy().await;
    // Changes after destroy start a new, anonymous session: it carries only this notice.
    visit
        .session
        .flash("notice", "You have been logged out.")
        .await?;
    Ok(Redirect::to("/"))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn devices_are_named_from_the_user_agent() {
        let agent = |ua: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::USER_AGENT, HeaderValue::from_static(ua));
            super::device(&headers)
        };
        assert_eq!(
            agent(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
            ),
            "Chrome on Linux"
        );
        assert_eq!(
            agent(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1"
            ),
            "Safari on iPhone"
        );
        assert_eq!(agent("curl/8.5.0"), "curl");
        assert_eq!(super::device(&HeaderMap::new()), "A browser");
    }

    #[test]
    fn logins_only_redirect_to_this_sites_pages() {
        assert_eq!(super::after_login(Some("/sessions")), "/sessions");
        assert_eq!(
            super::after_login(Some("https://evil.example/")),
            "/dashboard"
        );
        assert_eq!(super::after_login(Some("//evil.example")), "/dashboard");
        assert_eq!(super::after_login(None), "/dashboard");
    }

    #[test]
    fn the_session_cookie_is_measured_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; demo_session=abcdef"),
        );
        assert_eq!(super::cookie_len(&headers, "demo_session"), Some(6));
        assert_eq!(super::cookie_len(&headers, "other"), None);
    }
}

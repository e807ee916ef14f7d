//! The session layer at the HTTP level, through a real axum router.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::{
    Form, Router,
    body::Body,
    extract::State,
    response::{IntoResponse, Redirect},
    routing::{get, post},
};
use http::{Request, StatusCode, header};
use serde::{Deserialize, Serialize};
use session_kit_axum::{Session, SessionFailure, SessionLayer};
use session_kit_core::layers::{CallCounts, CountingDriver};
use session_kit_core::{CookieOptions, Driver, Keyring, SessionStorage};
use session_kit_memory::MemoryDriver;
use tokio::sync::Barrier;
use tower::ServiceExt;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Auth {
    count: u64,
    user: Option<String>,
    a: Option<String>,
    b: Option<String>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Prefs {
    theme: Option<String>,
}

#[derive(Deserialize)]
struct Login {
    password: String,
}

async fn count(session: Session<Auth>) -> Result<String, SessionFailure> {
    Ok(session
        .update(|s| {
            s.count += 1;
            s.count
        })
        .await?
        .to_string())
}

async fn peek(session: Session<Auth>) -> Result<String, SessionFailure> {
    Ok(session.read(|s| s.count).await?.to_string())
}

async fn login(
    session: Session<Auth>,
    Form(form): Form<Login>,
) -> Result<Redirect, SessionFailure> {
    if form.password != "right" {
        session.flash("error", "Invalid email/password").await?;
        return Ok(Redirect::to("/login"));
    }
    session.regenerate().await?;
    session.update(|s| s.user = Some("ada".into())).await?;
    Ok(Redirect::to("/me"))
}

async fn login_page(session: Session<Auth>) -> Result<String, SessionFailure> {
    Ok(session
        .take_flash::<String>("error")
        .await?
        .unwrap_or_default())
}

async fn me(session: Session<Auth>) -> Result<String, SessionFailure> {
    Ok(session
        .read(|s| s.user.clone())
        .await?
        .unwrap_or_else(|| "anonymous".into()))
}

async fn logout(session: Session<Auth>) -> Redirect {
    session.destroy().await;
    Redirect::to("/")
}

async fn set_key(
    State(barrier): State<Arc<Barrier>>,
    session: Session<Auth>,
    path: axum::extract::Path<String>,
) -> Result<(), SessionFailure> {
    session.read(|_| ()).await?; // both requests load the same version...
    barrier.wait().await; // ...before either commits
    let key = path.0;
    session
        .update(move |s| {
            if key == "a" {
                s.a = Some("A".into())
            } else {
                s.b = Some("B".into())
            }
        })
        .await?;
    Ok(())
}

async fn prefs(auth: Session<Auth>, prefs: Session<Prefs>) -> Result<String, SessionFailure> {
    prefs.update(|p| p.theme = Some("dark".into())).await?;
    let user = auth.read(|a| a.user.clone()).await?;
    Ok(format!("{user:?}"))
}

struct App {
    router: Router,
    counts: Arc<CountingDriver<MemoryDriver>>,
}

fn storage<T: session_kit_core::SessionData + Default>(
    driver: Arc<dyn Driver>,
    name: &str,
) -> SessionStorage<T> {
    SessionStorage::builder(driver)
        .keyring(Keyring::from_secrets(["axum test secret of 32 bytes or more"]).unwrap())
        .cookie(CookieOptions::new().name(name))
        .namespace(format!("{name}:"))
        .build()
        .unwrap()
}

fn app() -> App {
    let counts = Arc::new(CountingDriver::new(MemoryDriver::new()));
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/count", get(count))
        .route("/peek", get(peek))
        .route("/login", get(login_page).post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/set/{key}", post(set_key))
        .route("/prefs", get(prefs))
        .with_state(Arc::new(Barrier::new(2)))
        .layer(SessionLayer::new(storage::<Prefs>(counts.clone(), "prefs")))
        .layer(SessionLayer::new(storage::<Auth>(counts.clone(), "sid")));
    App { router, counts }
}

struct Reply {
    status: StatusCode,
    set_cookies: Vec<String>,
    body: String,
}

impl Reply {
    /// The `name=value` of the cookie named `name`, if it was set (not removed).
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies
            .iter()
            .filter(|c| c.starts_with(&format!("{name}=")) && !c.contains("Max-Age=0"))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .next()
    }
}

async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Reply {
    send_raw(router, method, uri, cookie.map(str::as_bytes), form).await
}

/// [`send`] with a `Cookie` header of any bytes (browsers send what sites set).
async fn send_raw(
    router: &Router,
    method: &str,
    uri: &str,
    cookie: Option<&[u8]>,
    form: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, http::HeaderValue::from_bytes(c).unwrap());
    }
    let body = match form {
        Some(f) => {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(f.to_owned())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let set_cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        set_cookies,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

#[tokio::test]
async fn visit_counter() {
    let app = app();
    let r = send(&app.router, "GET", "/count", None, None).await;
    assert_eq!(r.body, "1");
    let c = r.cookie("sid").unwrap();
    let r = send(&app.router, "GET", "/count", Some(&c), None).await;
    assert_eq!(r.body, "2");
    assert_eq!(
        send(&app.router, "GET", "/peek", Some(&c), None).await.body,
        "2"
    );
}

#[tokio::test]
async fn wrong_login_flashes_once_and_right_login_regenerates() {
    let app = app();
    let r = send(&app.router, "GET", "/count", None, None).await;
    let anon = r.cookie("sid").unwrap();

    let r = send(
        &app.router,
        "POST",
        "/login",
        Some(&anon),
        Some("password=wrong"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&app.router, "GET", "/login", Some(&anon), None)
            .await
            .body,
        "Invalid email/password"
    );
    assert_eq!(
        send(&app.router, "GET", "/login", Some(&anon), None)
            .await
            .body,
        "",
        "shown once"
    );

    let r = send(
        &app.router,
        "POST",
        "/login",
        Some(&anon),
        Some("password=right"),
    )
    .await;
    let logged_in = r.cookie("sid").expect("a new cookie on login");
    assert_ne!(logged_in, anon, "the id changed");
    assert_eq!(
        send(&app.router, "GET", "/me", Some(&logged_in), None)
            .await
            .body,
        "ada"
    );
    assert_eq!(
        send(&app.router, "GET", "/me", Some(&anon), None)
            .await
            .body,
        "anonymous",
        "the old id no longer loads"
    );
    assert_eq!(
        send(&app.router, "GET", "/peek", Some(&logged_in), None)
            .await
            .body,
        "1",
        "data moved"
    );
}

#[tokio::test]
async fn logout_destroys_the_session_and_clears_the_cookie() {
    let app = app();
    let r = send(&app.router, "POST", "/login", None, Some("password=right")).await;
    let c = r.cookie("sid").unwrap();
    let r = send(&app.router, "POST", "/logout", Some(&c), None).await;
    let removal = r
        .set_cookies
        .iter()
        .find(|s| s.starts_with("sid="))
        .unwrap();
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert_eq!(
        send(&app.router, "GET", "/me", Some(&c), None).await.body,
        "anonymous"
    );
}

#[tokio::test]
async fn driver_calls_per_request() {
    let app = app();
    let c = send(&app.router, "GET", "/count", None, None)
        .await
        .cookie("sid")
        .unwrap();
    app.counts.take_counts();

    let r = send(&app.router, "GET", "/health", Some(&c), None).await;
    assert!(r.set_cookies.is_empty());
    assert_eq!(
        app.counts.take_counts(),
        CallCounts::default(),
        "untouched: no call"
    );

    let r = send(&app.router, "GET", "/peek", Some(&c), None).await;
    assert!(r.set_cookies.is_empty());
    assert_eq!(
        app.counts.take_counts(),
        CallCounts {
            get: 1,
            ..Default::default()
        },
        "read-only"
    );

    let r = send(&app.router, "GET", "/count", Some(&c), None).await;
    assert!(
        r.set_cookies.is_empty(),
        "changed within the refresh window: the browser's cookie is still current"
    );
    assert_eq!(
        app.counts.take_counts(),
        CallCounts {
            get: 1,
            put: 1,
            ..Default::default()
        },
        "changed"
    );

    let r = send(&app.router, "GET", "/count", None, None).await;
    assert_eq!(r.set_cookies.len(), 1);
    assert_eq!(
        app.counts.take_counts(),
        CallCounts {
            put: 1,
            ..Default::default()
        },
        "new visitor"
    );

    send(&app.router, "GET", "/peek", None, None).await;
    assert_eq!(
        app.counts.take_counts(),
        CallCounts::default(),
        "new visitor, read-only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_requests_on_one_session_both_keep_their_change() {
    let app = app();
    let c = send(&app.router, "GET", "/count", None, None)
        .await
        .cookie("sid")
        .unwrap();
    let (ra, rb) = tokio::join!(
        send(&app.router, "POST", "/set/a", Some(&c), None),
        send(&app.router, "POST", "/set/b", Some(&c), None),
    );
    assert_eq!((ra.status, rb.status), (StatusCode::OK, StatusCode::OK));
    let counts = app.counts.take_counts();
    assert!(
        counts.put >= 3,
        "one write conflicted and was merged: {counts:?}"
    );
    let storage = storage::<Auth>(app.counts.clone(), "sid");
    let data = storage.get_session(Some(&c)).data().await.unwrap();
    assert_eq!(
        (data.a.as_deref(), data.b.as_deref(), data.count),
        (Some("A"), Some("B"), 1)
    );
}

#[tokio::test]
async fn two_named_sessions_in_one_request() {
    let app = app();
    let login = send(&app.router, "POST", "/login", None, Some("password=right"))
        .await
        .cookie("sid")
        .unwrap();
    let r = send(&app.router, "GET", "/prefs", Some(&login), None).await;
    assert_eq!(r.body, "Some(\"ada\")");
    let prefs = r
        .cookie("prefs")
        .expect("the prefs session sets its own cookie");
    assert!(r.cookie("sid").is_none(), "the login session was only read");
    let both = format!("{login}; {prefs}");
    let r = send(&app.router, "GET", "/prefs", Some(&both), None).await;
    assert!(
        r.set_cookies.is_empty(),
        "nothing changed: {:?}",
        r.set_cookies
    );
}

/// An app on the fs driver with one committed session; returns its cookie and the base dir.
async fn broken_store_app(custom: bool) -> (Router, String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("s");
    let fs = Arc::new(session_kit_fs::FsDriver::builder(&base).build().unwrap());
    let mut layer = SessionLayer::new(storage::<Auth>(fs, "sid"));
    if custom {
        layer = layer.on_error(|e| {
            let mut r =
                http::Response::new(format!("try again later (retryable: {})", e.is_retryable()));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        });
    }
    let router = Router::new()
        .route("/count", get(count))
        .route("/peek", get(peek))
        .layer(layer);
    let c = send(&router, "GET", "/count", None, None)
        .await
        .cookie("sid")
        .unwrap();
    (router, c, base, dir)
}

/// Breaks the store for real: its base directory becomes a file.
fn break_store(base: &std::path::Path) {
    std::fs::remove_dir_all(base).unwrap();
    std::fs::write(base, b"not a directory").unwrap();
}

#[tokio::test]
async fn store_failures_are_a_plain_500_by_default_and_customisable() {
    let (router, c, base, _dir) = broken_store_app(false).await;
    break_store(&base);
    // In the handler (load fails):
    let r = send(&router, "GET", "/peek", Some(&c), None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body, "Internal Server Error", "not empty, no detail");
    // In the layer (commit fails): the handler's response is replaced.
    let r = send(&router, "GET", "/count", None, None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.set_cookies.is_empty());

    let (router, _, base, _dir) = broken_store_app(true).await;
    break_store(&base);
    let r = send(&router, "GET", "/count", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body, "try again later (retryable: false)");
}

#[tokio::test]
async fn a_route_without_the_layer_fails_loudly() {
    let router: Router = Router::new().route("/count", get(count));
    let r = send(&router, "GET", "/count", None, None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body, "Internal Server Error");
}

#[tokio::test]
async fn optional_extraction_and_into_response() {
    async fn maybe(session: Option<Session<Auth>>) -> impl IntoResponse {
        if session.is_some() { "yes" } else { "no" }
    }
    let bare: Router = Router::new().route("/", get(maybe));
    assert_eq!(send(&bare, "GET", "/", None, None).await.body, "no");
    let app = app();
    let layered = Router::new()
        .route("/", get(maybe))
        .layer(SessionLayer::new(storage::<Auth>(
            app.counts.clone(),
            "sid",
        )));
    assert_eq!(send(&layered, "GET", "/", None, None).await.body, "yes");
}

#[tokio::test]
async fn cookie_only_sessions_through_the_layer() {
    let storage = SessionStorage::<Auth>::cookie_only()
        .keyring(Keyring::from_secrets(["axum test secret of 32 bytes or more"]).unwrap())
        .cookie(CookieOptions::new().name("sid"))
        .build()
        .unwrap();
    let router = Router::new()
        .route("/count", get(count))
        .route("/login", get(login_page).post(login))
        .route("/me", get(me))
        .layer(SessionLayer::new(storage));
    let c = send(&router, "GET", "/count", None, None)
        .await
        .cookie("sid")
        .unwrap();
    let r = send(&router, "GET", "/count", Some(&c), None).await;
    assert_eq!(r.body, "2");
    let c = r.cookie("sid").unwrap();
    let r = send(&router, "POST", "/login", Some(&c), Some("password=wrong")).await;
    let c = r.cookie("sid").unwrap();
    let r = send(&router, "GET", "/login", Some(&c), None).await;
    assert_eq!(r.body, "Invalid email/password");
    let c = r
        .cookie("sid")
        .expect("consuming the flash re-seals the cookie");
    assert_eq!(
        send(&router, "GET", "/login", Some(&c), None).await.body,
        "",
        "shown once"
    );
    let r = send(&router, "POST", "/login", Some(&c), Some("password=right")).await;
    assert_eq!(
        send(&router, "GET", "/me", Some(&r.cookie("sid").unwrap()), None)
            .await
            .body,
        "ada"
    );
}

#[tokio::test]
async fn a_neighbour_cookie_with_non_ascii_bytes_does_not_cost_the_session() {
    let app = app();
    let c = send(&app.router, "GET", "/count", None, None)
        .await
        .cookie("sid")
        .unwrap();
    // UTF-8 and Latin-1 in another cookie of the site: the session is still found.
    for (n, neighbour) in [&b"lang=fran\xc3\xa7ais"[..], b"lang=fran\xe7ais"]
        .iter()
        .enumerate()
    {
        let header = [*neighbour, b"; ", c.as_bytes()].concat();
        let r = send_raw(&app.router, "GET", "/count", Some(&header), None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, (n + 2).to_string(), "same session, counted on");
    }
    // Our own cookie with a value we cannot use: a fresh session, and the cookie is removed.
    let big = format!("sid={}", "A".repeat(5000));
    for bad in [&b"sid=caf\xe9"[..], big.as_bytes()] {
        let r = send_raw(&app.router, "GET", "/peek", Some(bad), None).await;
        assert_eq!(r.body, "0");
        assert!(
            r.set_cookies
                .iter()
                .any(|c| c.starts_with("sid=;") && c.contains("Max-Age=0")),
            "{:?}",
            r.set_cookies
        );
    }
}

#[tokio::test]
async fn save_inside_a_handler_still_sends_the_cookie() {
    async fn early(session: Session<Auth>) -> Result<String, SessionFailure> {
        session.update(|s| s.count += 1).await?;
        // As before streaming a body: the record is written now.
        session.save().await?;
        Ok("saved".into())
    }
    let app = app();
    let router = Router::new()
        .route("/early", get(early))
        .route("/peek", get(peek))
        .layer(SessionLayer::new(storage::<Auth>(
            app.counts.clone(),
            "sid",
        )));
    let r = send(&router, "GET", "/early", None, None).await;
    assert_eq!(r.body, "saved");
    let c = r
        .cookie("sid")
        .expect("the new session's cookie reaches the browser");
    assert_eq!(app.counts.counts().put, 1, "one write, by the save");
    assert_eq!(
        send(&router, "GET", "/peek", Some(&c), None).await.body,
        "1"
    );
}

#[tokio::test]
async fn retryable_failures_are_503_with_retry_after() {
    let down = Arc::new(session_test_support::DownDriver::default());
    let router = Router::new()
        .route("/count", get(count))
        .route("/peek", get(peek))
        .layer(SessionLayer::new(storage::<Auth>(down, "sid")));
    // A correctly signed cookie (same key), so that the load reaches the store.
    let minted = storage::<Auth>(Arc::new(MemoryDriver::new()), "sid");
    let s = minted.get_session(None);
    s.update(|a| a.count = 1).await.unwrap();
    let set = minted.commit_session(&s).await.unwrap().unwrap();
    let c = set.as_str().split(';').next().unwrap();
    // In the layer's commit (a new session's write) and in the handler (the load).
    for (uri, cookie) in [("/count", None), ("/peek", Some(c))] {
        let mut req = Request::builder().uri(uri);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        let response = router
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}

#[test]
fn a_throttled_store_s_retry_after_reaches_the_503() {
    use std::time::Duration;
    let throttled = session_kit_core::SessionError::Driver {
        driver: "cloudflare-kv".into(),
        operation: "load",
        source: session_kit_core::DriverError::transient("throttled", std::io::Error::other("429"))
            .with_retry_after(Duration::from_millis(4500)),
    };
    let response = session_kit_axum::error_response(&throttled);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "5", "rounded up");
    let contention = session_kit_core::SessionError::Contention { attempts: 3 };
    let response = session_kit_axum::error_response(&contention);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
}

/// What the CHANGELOG promises of the layer's per-request future: it does not carry a store
/// commit's state (boxed only when a commit writes), and stays under 1 KiB for a store as for
/// a cookie-only storage (glibc's allocator consolidates its free lists on every allocation of
/// 1 KiB or more, which the earlier 2.3 KB future paid on every request). Measured on the
/// future the layer hands to the server (no longer boxed: it is embedded in the server's).
#[tokio::test]
async fn the_request_future_stays_under_a_kilobyte_whatever_the_storage() {
    use tower::{Layer, Service};
    let cookie_only = SessionStorage::<Auth>::cookie_only()
        .keyring(Keyring::from_secrets(["axum test secret of 32 bytes or more"]).unwrap())
        .build()
        .unwrap();
    let store = storage::<Auth>(Arc::new(MemoryDriver::new()), "sid");
    let inner = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
    });
    let mut cookie_svc = SessionLayer::new(cookie_only).layer(inner);
    let mut store_svc = SessionLayer::new(store).layer(inner);
    let cookie_future = cookie_svc.call(Request::new(Body::empty()));
    let store_future = store_svc.call(Request::new(Body::empty()));
    let (cookie_size, store_size) = (size_of_val(&cookie_future), size_of_val(&store_future));
    println!("request future: cookie-only {cookie_size} bytes, store {store_size} bytes");
    assert!(cookie_size < 1024, "{cookie_size} bytes");
    assert!(store_size < 1024, "{store_size} bytes");
    assert_eq!(cookie_future.await.unwrap().status(), StatusCode::OK);
}

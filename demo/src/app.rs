//! Routes and handlers of the demo site.

use std::time::Duration;

use axum::{
    Form, Router,
    extract::Request,
    middleware::{self, Next},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use session_kit::{CookieOptions, ExpiryPolicy, Keyring, Lifetime};
use session_kit_axum::{Session, SessionFailure, SessionLayer};

use crate::{
    model::{CATALOG, DEMO_EMAIL, DEMO_PASSWORD, DemoSession},
    pages,
};

const HOUR: Duration = Duration::from_secs(3600);

type Page = Result<Html<String>, SessionFailure>;

/// The router on the driver named by `driver` (`cookie` for cookie-only sessions), with the
/// session layer's metrics on `GET /metrics` (Prometheus's text format).
pub(crate) async fn router(
    driver: &str,
    keyring: Keyring,
    metrics: PrometheusHandle,
) -> Result<Router, String> {
    let builder = session_kit::storage::<DemoSession>(driver)
        .await
        .map_err(|e| format!("session driver: {e}"))?;
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
    Ok(Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route(
            "/dashboard",
            get(dashboard).route_layer(middleware::from_fn(require_login)),
        )
        .route("/cart", get(cart_page))
        .route("/cart/add", post(cart_add))
        .route("/cart/remove", post(cart_remove))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(storage))
        // Outside the session layer: a scrape is not a visit.
        .route("/metrics", get(move || async move { metrics.render() })))
}

async fn home(session: Session<DemoSession>) -> Page {
    let state = session
        .update(|s| {
            s.visits += 1;
            s.clone()
        })
        .await?;
    let notice = session.take_flash::<String>("notice").await?;
    Ok(pages::home(&state, notice.as_deref()))
}

/// The guard: anonymous visitors are sent to the login page.
async fn require_login(
    session: Session<DemoSession>,
    request: Request,
    next: Next,
) -> Result<Response, SessionFailure> {
    if session.read(|s| s.user.is_some()).await? {
        return Ok(next.run(request).await);
    }
    session
        .flash("notice", "Please log in to see your dashboard.")
        .await?;
    Ok(Redirect::to("/login").into_response())
}

async fn login_page(session: Session<DemoSession>) -> Page {
    let error = session.take_flash::<String>("error").await?;
    let notice = session.take_flash::<String>("notice").await?;
    let user = session.read(|s| s.user.clone()).await?;
    Ok(pages::login(
        user.as_deref(),
        error.as_deref(),
        notice.as_deref(),
    ))
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    remember: Option<String>,
}

async fn login(
    session: Session<DemoSession>,
    Form(form): Form<LoginForm>,
) -> Result<Redirect, SessionFailure> {
    if form.email != DEMO_EMAIL || form.password != DEMO_PASSWORD {
        session.flash("error", "Invalid email or password.").await?;
        return Ok(Redirect::to("/login"));
    }
    // A new id on login: a session id planted before login is worthless afterwards.
    session.regenerate().await?;
    let remember = form.remember.is_some();
    let email = form.email;
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
    Ok(Redirect::to("/dashboard"))
}

async fn dashboard(session: Session<DemoSession>) -> Page {
    let state = session.data().await?;
    Ok(pages::dashboard(&state))
}

async fn cart_page(session: Session<DemoSession>) -> Page {
    let state = session.data().await?;
    Ok(pages::cart(&state))
}

#[derive(Deserialize)]
struct CartForm {
    item: String,
}

async fn cart_add(
    session: Session<DemoSession>,
    Form(form): Form<CartForm>,
) -> Result<Redirect, SessionFailure> {
    if CATALOG.iter().any(|(id, _)| *id == form.item) {
        // Kept as an operation: two tabs adding items at once both count.
        let item = form.item;
        session
            .update(move |s| *s.cart.entry(item.clone()).or_default() += 1)
            .await?;
    }
    Ok(Redirect::to("/cart"))
}

async fn cart_remove(
    session: Session<DemoSession>,
    Form(form): Form<CartForm>,
) -> Result<Redirect, SessionFailure> {
    let item = form.item;
    session
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

async fn logout(session: Session<DemoSession>) -> Result<Redirect, SessionFailure> {
    session.destroy().await;
    // Changes after destroy start a new, anonymous session: it carries only this notice.
    session.flash("notice", "You have been logged out.").await?;
    Ok(Redirect::to("/"))
}

//! The server the concurrency tests drive over HTTP:
//! `contention-server --framework axum|actix --driver CONFIG --secret SECRET
//! [--previous-secret SECRET] [--concurrent-writes merge|last-write-wins|exclusive]
//! [--header-transport bearer|NAME] [--idle-timeout MILLISECONDS] [--migrate-from CONFIG]
//! [--exclusive-lease MILLISECONDS]`.
//!
//! It prints `listening PORT` once it accepts connections on 127.0.0.1. Routes, each changing
//! one session the way apps do:
//! * `POST /incr`: `update(|v| v.visits += 1)`, answers the count this request saw;
//! * `POST /incr-exact`: `update_and_save`, answers the count that was saved;
//! * `POST /cart/{item}`: pushes `item` to a list kept in one field;
//! * `POST /count`: reads the count, then writes it back plus one (`data` then `set`: the
//!   handler style of most session libraries, per-key last writer wins);
//! * `GET /state`: the session data as JSON;
//! * `GET /csrf`: a request-forgery token of the session; `POST /csrf/form` (form field
//!   `csrf_token`) and `POST /csrf/fetch` (header `x-csrf-token`): `/incr` once the token is
//!   checked;
//! * `POST /login/{user}`: a new id bound to `user`, labelled with the `x-device` header;
//!   `GET /devices`: the user's sessions as JSON; `POST /logout-everywhere`,
//!   `POST /logout-others`: revoke all, or all but this one (answer: how many);
//! * `POST /logout`: destroys the session (without reading it);
//! * `GET /metrics`: the session layer's metrics in Prometheus's text format.
//!
//! Every route is behind the origin check (`CsrfLayer`, `CsrfMiddleware`): state-changing
//! requests a browser marks as cross-site are refused with 403.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use session_kit::{
    ConcurrentWrites, CookieOptions, ExpiryPolicy, HeaderTransport, Keyring, SessionError,
    SessionStorage,
};

/// The session of every route.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Visit {
    visits: u64,
    cart: Vec<String>,
}

struct Options {
    framework: String,
    driver: String,
    secret: String,
    /// A retired secret that still verifies (key rotation).
    previous_secret: Option<String>,
    concurrent_writes: ConcurrentWrites,
    header_transport: Option<HeaderTransport>,
    /// The expiry policy's idle timeout instead of the default.
    idle_timeout: Option<std::time::Duration>,
    /// The store the app used before `driver`: its sessions move on their next request.
    migrate_from: Option<String>,
    /// With `--concurrent-writes exclusive`: the lease instead of the default.
    exclusive_lease: Option<std::time::Duration>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        framework: "axum".into(),
        driver: "memory".into(),
        secret: "a test secret that is at least 32 bytes long".into(),
        previous_secret: None,
        concurrent_writes: ConcurrentWrites::Merge,
        header_transport: None,
        idle_timeout: None,
        migrate_from: None,
        exclusive_lease: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--framework" => options.framework = value,
            "--driver" => options.driver = value,
            "--secret" => options.secret = value,
            "--previous-secret" => options.previous_secret = Some(value),
            "--concurrent-writes" => {
                options.concurrent_writes = match value.as_str() {
                    "merge" => ConcurrentWrites::Merge,
                    "last-write-wins" => ConcurrentWrites::LastWriteWins,
                    "exclusive" => ConcurrentWrites::Exclusive,
                    other => return Err(format!("unknown --concurrent-writes {other:?}")),
                }
            }
            "--header-transport" => {
                options.header_transport = Some(match value.as_str() {
                    "bearer" => HeaderTransport::bearer(),
                    name => HeaderTransport::header(name).map_err(|e| e.to_string())?,
                })
            }
            "--idle-timeout" | "--exclusive-lease" => {
                let ms = value.parse().map_err(|e| format!("{arg} {value}: {e}"))?;
                let duration = Some(std::time::Duration::from_millis(ms));
                match arg.as_str() {
                    "--idle-timeout" => options.idle_timeout = duration,
                    _ => options.exclusive_lease = duration,
                }
            }
            "--migrate-from" => options.migrate_from = Some(value),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

async fn storage(options: &Options) -> Result<SessionStorage<Visit>, String> {
    let driver = session_kit::open(&options.driver)
        .await
        .map_err(|e| format!("--driver {}: {e}", options.driver))?;
    let builder = SessionStorage::<Visit>::builder(driver)
        .keyring(
            Keyring::from_secrets(
                std::iter::once(options.secret.as_str()).chain(options.previous_secret.as_deref()),
            )
            .map_err(|e| e.to_string())?,
        )
        .cookie(CookieOptions::new().insecure_for_local_development())
        .concurrent_writes(options.concurrent_writes);
    let builder = match options.idle_timeout {
        Some(idle) => builder.expiry(ExpiryPolicy::new().idle_timeout(Some(idle))),
        None => builder,
    };
    let builder = match options.exclusive_lease {
        Some(lease) => builder.exclusive_lease(lease),
        None => builder,
    };
    let builder = match &options.migrate_from {
        Some(old) => builder.migrate_from(
            session_kit::open(old)
                .await
                .map_err(|e| format!("--migrate-from {old}: {e}"))?,
        ),
        None => builder,
    };
    match &options.header_transport {
        Some(transport) => builder.header_transport(transport.clone()),
        None => builder,
    }
    .build()
    .map_err(|e| e.to_string())
}

/// The process's metrics recorder, rendered by `GET /metrics`.
fn prometheus() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("metrics recorder: {e}"))?;
    session_kit::metrics::describe();
    Ok(handle)
}

fn main() -> ExitCode {
    // Diagnostics on stderr, as `RUST_LOG` asks (none by default: tests read no logs).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = options().and_then(|options| match options.framework.as_str() {
        "axum" => with_axum::run(options, prometheus()?),
        "actix" => with_actix::run(options, prometheus()?),
        other => Err(format!("unknown framework {other:?}: axum or actix")),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("contention-server: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What every route does to the session, whatever the framework.
mod routes {
    use super::*;

    pub(crate) async fn incr(s: &session_kit::Session<Visit>) -> Result<String, SessionError> {
        let seen = s
            .update(|v| {
                v.visits += 1;
                v.visits
            })
            .await?;
        Ok(seen.to_string())
    }

    pub(crate) async fn incr_exact(
        s: &session_kit::Session<Visit>,
    ) -> Result<String, SessionError> {
        let saved = s
            .update_and_save(|v| {
                v.visits += 1;
                v.visits
            })
            .await?;
        Ok(saved.to_string())
    }

    pub(crate) async fn cart(
        s: &session_kit::Session<Visit>,
        item: String,
    ) -> Result<String, SessionError> {
        let len = s
            .update(move |v| {
                v.cart.push(item.clone());
                v.cart.len()
            })
            .await?;
        Ok(len.to_string())
    }

    pub(crate) async fn count(s: &session_kit::Session<Visit>) -> Result<String, SessionError> {
        let mut data = s.data().await?;
        data.visits += 1;
        let seen = data.visits;
        s.set(data).await?;
        Ok(seen.to_string())
    }

    pub(crate) async fn state(s: &session_kit::Session<Visit>) -> Result<Visit, SessionError> {
        s.data().await
    }

    /// A request-forgery token (stores a new session).
    pub(crate) async fn csrf(s: &session_kit::Session<Visit>) -> Result<String, SessionError> {
        s.csrf_token().await
    }

    /// `/incr`, once `token` is checked.
    pub(crate) async fn guarded_incr(
        s: &session_kit::Session<Visit>,
        token: Option<&str>,
    ) -> Result<String, SessionError> {
        s.require_csrf(token).await?;
        incr(s).await
    }

    /// Login as `user` from `device`.
    pub(crate) async fn login(
        s: &session_kit::Session<Visit>,
        user: String,
        device: Option<String>,
    ) -> Result<String, SessionError> {
        s.regenerate().await?;
        s.bind_user(user.clone()).await?;
        s.set_user_label("device", device.unwrap_or_default())
            .await?;
        Ok(user)
    }

    /// The bound user's sessions, as JSON text.
    pub(crate) async fn devices(
        storage: &SessionStorage<Visit>,
        s: &session_kit::Session<Visit>,
    ) -> Result<String, SessionError> {
        let Some(user) = s.user().await? else {
            return Ok("[]".into());
        };
        let current = s.id_hash().await?;
        let listed: Vec<serde_json::Value> = storage
            .user_sessions(&user)
            .await?
            .into_iter()
            .map(|d| {
                serde_json::json!({
                    "id_hash": d.id_hash,
                    "current": Some(&d.id_hash) == current.as_ref(),
                    "labels": d.labels,
                })
            })
            .collect();
        Ok(serde_json::Value::from(listed).to_string())
    }

    /// Logs out: the session is destroyed (its record deleted without being read).
    pub(crate) async fn logout(s: &session_kit::Session<Visit>) {
        s.destroy().await;
    }

    /// Revokes the user's sessions (`others`: all but this one).
    pub(crate) async fn logout_all(
        storage: &SessionStorage<Visit>,
        s: &session_kit::Session<Visit>,
        others: bool,
    ) -> Result<String, SessionError> {
        let Some(user) = s.user().await? else {
            return Ok("0".into());
        };
        let revoked = if others {
            storage.revoke_user_except(&user, s).await?
        } else {
            storage.revoke_user(&user).await?
        };
        Ok(revoked.to_string())
    }

    /// The form of `POST /csrf/form`.
    #[derive(serde::Deserialize)]
    pub(crate) struct TokenForm {
        pub(crate) csrf_token: Option<String>,
    }
}

mod with_axum {
    use axum::{
        Form, Json, Router,
        extract::Path,
        http::HeaderMap,
        routing::{get, post},
    };
    use session_kit_axum::{CsrfLayer, Session, SessionFailure, SessionLayer};

    use super::*;

    pub(crate) fn run(options: Options, metrics: PrometheusHandle) -> Result<(), String> {
        let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let storage = storage(&options).await?;
            let app = Router::new()
                .route(
                    "/incr",
                    post(|s: Session<Visit>| async move {
                        routes::incr(&s).await.map_err(SessionFailure::from)
                    }),
                )
                .route(
                    "/incr-exact",
                    post(|s: Session<Visit>| async move {
                        routes::incr_exact(&s).await.map_err(SessionFailure::from)
                    }),
                )
                .route(
                    "/cart/{item}",
                    post(|s: Session<Visit>, Path(item): Path<String>| async move {
                        routes::cart(&s, item).await.map_err(SessionFailure::from)
                    }),
                )
                .route(
                    "/count",
                    post(|s: Session<Visit>| async move {
                        routes::count(&s).await.map_err(SessionFailure::from)
                    }),
                )
                .route(
                    "/state",
                    get(|s: Session<Visit>| async move {
                        routes::state(&s)
                            .await
                            .map(Json)
                            .map_err(SessionFailure::from)
                    }),
                )
                .route(
                    "/csrf",
                    get(|s: Session<Visit>| async move {
                        routes::csrf(&s).await.map_err(SessionFailure::from)
                    }),
                )
                .route(
                    "/csrf/form",
                    post(
                        |s: Session<Visit>, Form(form): Form<routes::TokenForm>| async move {
                            routes::guarded_incr(&s, form.csrf_token.as_deref())
                                .await
                                .map_err(SessionFailure::from)
                        },
                    ),
                )
                .route(
                    "/csrf/fetch",
                    post(|s: Session<Visit>, headers: HeaderMap| async move {
                        let token = session_kit::csrf_header(&headers);
                        routes::guarded_incr(&s, token)
                            .await
                            .map_err(SessionFailure::from)
                    }),
                )
                .route(
                    "/login/{user}",
                    post(
                        |s: Session<Visit>, Path(user): Path<String>, headers: HeaderMap| async move {
                            let device = headers
                                .get("x-device")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            routes::login(&s, user, device)
                                .await
                                .map_err(SessionFailure::from)
                        },
                    ),
                )
                .route("/devices", {
                    let storage = storage.clone();
                    get(|s: Session<Visit>| async move {
                        routes::devices(&storage, &s)
                            .await
                            .map_err(SessionFailure::from)
                    })
                })
                .route(
                    "/logout",
                    post(|s: Session<Visit>| async move {
                        routes::logout(&s).await;
                        "ok"
                    }),
                )
                .route("/logout-everywhere", {
                    let storage = storage.clone();
                    post(|s: Session<Visit>| async move {
                        routes::logout_all(&storage, &s, false)
                            .await
                            .map_err(SessionFailure::from)
                    })
                })
                .route("/logout-others", {
                    let storage = storage.clone();
                    post(|s: Session<Visit>| async move {
                        routes::logout_all(&storage, &s, true)
                            .await
                            .map_err(SessionFailure::from)
                    })
                })
                .layer(SessionLayer::new(storage))
                .route("/metrics", get(move || async move { metrics.render() }))
                .layer(CsrfLayer::new());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let port = listener.local_addr().map_err(|e| e.to_string())?.port();
            println!("listening {port}");
            axum::serve(listener, app).await.map_err(|e| e.to_string())
        })
    }
}

mod with_actix {
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    use session_kit_actix::{CsrfMiddleware, Session, SessionFailure, SessionMiddleware};

    use super::*;

    async fn incr(s: Session<Visit>) -> Result<String, SessionFailure> {
        Ok(routes::incr(&s).await?)
    }

    async fn incr_exact(s: Session<Visit>) -> Result<String, SessionFailure> {
        Ok(routes::incr_exact(&s).await?)
    }

    async fn cart(s: Session<Visit>, item: web::Path<String>) -> Result<String, SessionFailure> {
        Ok(routes::cart(&s, item.into_inner()).await?)
    }

    async fn count(s: Session<Visit>) -> Result<String, SessionFailure> {
        Ok(routes::count(&s).await?)
    }

    async fn state(s: Session<Visit>) -> Result<HttpResponse, SessionFailure> {
        Ok(HttpResponse::Ok().json(routes::state(&s).await?))
    }

    async fn login(
        s: Session<Visit>,
        user: web::Path<String>,
        request: HttpRequest,
    ) -> Result<String, SessionFailure> {
        let device = request
            .headers()
            .get("x-device")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(routes::login(&s, user.into_inner(), device).await?)
    }

    async fn devices(
        s: Session<Visit>,
        storage: web::Data<SessionStorage<Visit>>,
    ) -> Result<String, SessionFailure> {
        Ok(routes::devices(&storage, &s).await?)
    }

    async fn logout(s: Session<Visit>) -> &'static str {
        routes::logout(&s).await;
        "ok"
    }

    async fn logout_everywhere(
        s: Session<Visit>,
        storage: web::Data<SessionStorage<Visit>>,
    ) -> Result<String, SessionFailure> {
        Ok(routes::logout_all(&storage, &s, false).await?)
    }

    async fn logout_others(
        s: Session<Visit>,
        storage: web::Data<SessionStorage<Visit>>,
    ) -> Result<String, SessionFailure> {
        Ok(routes::logout_all(&storage, &s, true).await?)
    }

    async fn csrf(s: Session<Visit>) -> Result<String, SessionFailure> {
        Ok(routes::csrf(&s).await?)
    }

    async fn csrf_form(
        s: Session<Visit>,
        form: web::Form<routes::TokenForm>,
    ) -> Result<String, SessionFailure> {
        Ok(routes::guarded_incr(&s, form.csrf_token.as_deref()).await?)
    }

    async fn csrf_fetch(s: Session<Visit>, request: HttpRequest) -> Result<String, SessionFailure> {
        let token = request
            .headers()
            .get(session_kit::CSRF_HEADER)
            .and_then(|v| v.to_str().ok());
        Ok(routes::guarded_incr(&s, token).await?)
    }

    pub(crate) fn run(options: Options, metrics: PrometheusHandle) -> Result<(), String> {
        actix_web::rt::System::new().block_on(async {
            let storage = storage(&options).await?;
            let server = HttpServer::new(move || {
                let metrics = metrics.clone();
                App::new()
                    .route(
                        "/metrics",
                        web::get().to(move || {
                            let text = metrics.render();
                            async move { text }
                        }),
                    )
                    .wrap(SessionMiddleware::new(storage.clone()))
                    .wrap(CsrfMiddleware::new())
                    .app_data(web::Data::new(storage.clone()))
                    .route("/login/{user}", web::post().to(login))
                    .route("/devices", web::get().to(devices))
                    .route("/logout", web::post().to(logout))
                    .route("/logout-everywhere", web::post().to(logout_everywhere))
                    .route("/logout-others", web::post().to(logout_others))
                    .route("/csrf", web::get().to(csrf))
                    .route("/csrf/form", web::post().to(csrf_form))
                    .route("/csrf/fetch", web::post().to(csrf_fetch))
                    .route("/incr", web::post().to(incr))
                    .route("/incr-exact", web::post().to(incr_exact))
                    .route("/cart/{item}", web::post().to(cart))
                    .route("/count", web::post().to(count))
                    .route("/state", web::get().to(state))
            })
            .workers(2)
            .bind(("127.0.0.1", 0))
            .map_err(|e| e.to_string())?;
            let port = server
                .addrs()
                .first()
                .map(|a| a.port())
                .ok_or("no address")?;
            println!("listening {port}");
            server.run().await.map_err(|e| e.to_string())
        })
    }
}

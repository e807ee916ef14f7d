//! `session-http-bench-ours <app> <addr> [backend]`: bare axum (the ceiling) or this project's
//! axum integration on one driver, with the benchmark handlers; or the same on actix-web.
//! Apps: bare, ours-memory, ours-redis, ours-redis-lww (last write wins, the peers'
//! guarantee, instead of merging concurrent commits), ours-sqlite, ours-postgres,
//! ours-postgres-cached (`local_cache` on), ours-mysql (backend `URL#table`), ours-fs, ours-cookie; bare-actix,
//! ours-actix-cookie, ours-actix-redis, ours-actix-redis-lww (framework-matched against
//! actix-session).
//! `session-http-bench-ours --in-process <app> <requests>`: an app without I/O (bare,
//! ours-memory, ours-cookie, bare-actix, ours-actix-cookie) called without sockets (see
//! `in_process.rs`).
//!
//! Handlers (identical in every app): `GET /count` reads the integer `count` from the session,
//! then stores it plus one (the peers' get-then-insert style: concurrent requests on one
//! session may overwrite each other's increment, never fail); `GET /incr` increments it with
//! `update` (an operation: concurrent increments are all kept); `GET /read` only reads it;
//! `GET /static` never touches the session (a route under the layer that serves none).

use std::{net::SocketAddr, time::Duration};

use axum::{Router, routing::get};
use serde::{Deserialize, Serialize};
use session_kit::{CookieOptions, ExpiryPolicy, Keyring, SessionStorage};
use session_kit_axum::{Session, SessionFailure, SessionLayer};

type Fail = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Counter {
    count: u64,
}

async fn count(session: Session<Counter>) -> Result<String, SessionFailure> {
    let n = session.read(|c| c.count).await? + 1;
    session.update(move |c| c.count = n).await?;
    Ok(n.to_string())
}

async fn incr(session: Session<Counter>) -> Result<String, SessionFailure> {
    Ok(session
        .update(|c| {
            c.count += 1;
            c.count
        })
        .await?
        .to_string())
}

async fn read(session: Session<Counter>) -> Result<String, SessionFailure> {
    Ok(session.read(|c| c.count).await?.to_string())
}

#[path = "../../in_process.rs"]
mod in_process;

fn main() -> Result<(), Fail> {
    let args: Vec<String> = std::env::args().collect();
    if let (Some("--in-process"), Some(app), Some(n)) =
        (args.get(1).map(String::as_str), args.get(2), args.get(3))
    {
        return in_process_main(app, n.parse()?);
    }
    let (app, addr) = match (args.get(1), args.get(2)) {
        (Some(app), Some(addr)) => (app.clone(), addr.parse::<SocketAddr>()?),
        _ => return Err(
            "usage: session-http-bench-ours <app> <addr> [backend] | --in-process <app> <requests>"
                .into(),
        ),
    };
    let backend = args.get(3).cloned().unwrap_or_default();
    if app.contains("actix") {
        return actix_main(&app, addr, backend);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(axum_main(&app, addr, backend))
}

fn storage(
    builder: session_kit::SessionStorageBuilder<Counter>,
) -> Result<SessionStorage<Counter>, Fail> {
    Ok(builder
        .keyring(Keyring::from_secrets([
            "benchmark secret of at least 32 bytes",
        ])?)
        .cookie(CookieOptions::new().insecure_for_local_development())
        // Like the peers' setup: one day of inactivity, no absolute limit.
        .expiry(
            ExpiryPolicy::new()
                .idle_timeout(Some(Duration::from_secs(86_400)))
                .absolute_timeout(None),
        )
        .build()?)
}

async fn actix_count(
    session: session_kit_actix::Session<Counter>,
) -> Result<String, session_kit_actix::SessionFailure> {
    let n = session.read(|c| c.count).await? + 1;
    session.update(move |c| c.count = n).await?;
    Ok(n.to_string())
}

async fn actix_incr(
    session: session_kit_actix::Session<Counter>,
) -> Result<String, session_kit_actix::SessionFailure> {
    Ok(session
        .update(|c| {
            c.count += 1;
            c.count
        })
        .await?
        .to_string())
}

async fn actix_read(
    session: session_kit_actix::Session<Counter>,
) -> Result<String, session_kit_actix::SessionFailure> {
    Ok(session.read(|c| c.count).await?.to_string())
}

/// The actix-web app without sessions.
macro_rules! bare_actix_app {
    () => {
        actix_web::App::new()
            .route("/count", actix_web::web::get().to(|| async { "1" }))
            .route("/incr", actix_web::web::get().to(|| async { "1" }))
            .route("/read", actix_web::web::get().to(|| async { "1" }))
            .route("/static", actix_web::web::get().to(|| async { "1" }))
    };
}

/// The actix-web app with the session middleware over `storage`.
macro_rules! actix_app {
    ($storage:expr) => {
        actix_web::App::new()
            .wrap(session_kit_actix::SessionMiddleware::new($storage))
            .route("/count", actix_web::web::get().to(actix_count))
            .route("/incr", actix_web::web::get().to(actix_incr))
            .route("/read", actix_web::web::get().to(actix_read))
            .route("/static", actix_web::web::get().to(|| async { "1" }))
    };
}

/// The storage of an actix-web app without I/O (`None` for bare-actix); the Redis apps open
/// their backend on the runtime, in `actix_main`.
fn actix_storage(app: &str) -> Result<Option<SessionStorage<Counter>>, Fail> {
    match app {
        "bare-actix" => Ok(None),
        "ours-actix-cookie" => Ok(Some(storage(SessionStorage::<Counter>::cookie_only())?)),
        other => Err(format!("unknown app {other}").into()),
    }
}

/// The same handlers and storage on actix-web (one worker per core, as actix-web defaults).
fn actix_main(app: &str, addr: SocketAddr, backend: String) -> Result<(), Fail> {
    use actix_web::HttpServer;

    actix_web::rt::System::new().block_on(async move {
        let storage = match app {
            "ours-actix-redis" => Some(storage(SessionStorage::builder(
                session_kit::open(&backend).await?,
            ))?),
            "ours-actix-redis-lww" => Some(storage(
                SessionStorage::builder(session_kit::open(&backend).await?)
                    .concurrent_writes(session_kit::ConcurrentWrites::LastWriteWins),
            )?),
            other => actix_storage(other)?,
        };
        let server = match storage {
            None => HttpServer::new(|| bare_actix_app!()).bind(addr)?.run(),
            Some(storage) => HttpServer::new(move || actix_app!(storage.clone()))
                .bind(addr)?
                .run(),
        };
        println!("ready");
        server.await?;
        Ok(())
    })
}

/// `--in-process`: the app's service called directly, `n` requests per path, on one thread
/// (see `in_process.rs`). Apps without I/O only: bare, ours-memory, ours-cookie, and their
/// actix-web counterparts.
fn in_process_main(app: &str, n: usize) -> Result<(), Fail> {
    if app.contains("actix") {
        let storage = actix_storage(app)?;
        return actix_web::rt::System::new().block_on(async move {
            match storage {
                None => {
                    in_process::measure_actix(
                        actix_web::test::init_service(bare_actix_app!()).await,
                        true,
                        n,
                    )
                    .await
                }
                Some(storage) => {
                    in_process::measure_actix(
                        actix_web::test::init_service(actix_app!(storage)).await,
                        false,
                        n,
                    )
                    .await
                }
            }
        });
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            in_process::measure_axum(axum_router(app, String::new()).await?, app == "bare", n).await
        })
}

/// The axum app: bare, or the session layer over one driver.
async fn axum_router(app: &str, backend: String) -> Result<Router, Fail> {
    if app == "bare" {
        return Ok(Router::new()
            .route("/count", get(|| async { "1" }))
            .route("/incr", get(|| async { "1" }))
            .route("/read", get(|| async { "1" }))
            .route("/static", get(|| async { "1" })));
    }
    let builder = match app {
        "ours-cookie" => SessionStorage::<Counter>::cookie_only(),
        "ours-memory" => {
            SessionStorage::builder(session_kit::open("memory:?capacity=200000").await?)
        }
        "ours-redis" => SessionStorage::builder(session_kit::open(&backend).await?),
        "ours-redis-lww" => SessionStorage::builder(session_kit::open(&backend).await?)
            .concurrent_writes(session_kit::ConcurrentWrites::LastWriteWins),
        "ours-sqlite" => {
            SessionStorage::builder(session_kit::open(&format!("sqlite:{backend}")).await?)
        }
        // `URL#table`: a fresh table per run; `-cached` with the PostgreSQL read cache.
        "ours-postgres" | "ours-postgres-cached" | "ours-mysql" => {
            let (url, table) = backend.split_once('#').ok_or("backend: URL#table")?;
            let cache = if app.ends_with("-cached") {
                "&local_cache=16777216"
            } else {
                ""
            };
            SessionStorage::builder(
                session_kit::open(&format!("{url}?table={table}{cache}")).await?,
            )
        }
        "ours-fs" => SessionStorage::builder(session_kit::open(&format!("fs:{backend}")).await?),
        other => return Err(format!("unknown app {other}").into()),
    };
    let storage = storage(builder)?;
    Ok(Router::new()
        .route("/count", get(count))
        .route("/incr", get(incr))
        .route("/read", get(read))
        .route("/static", get(|| async { "1" }))
        .layer(SessionLayer::new(storage)))
}

async fn axum_main(app: &str, addr: SocketAddr, backend: String) -> Result<(), Fail> {
    let router = axum_router(app, backend).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("ready");
    axum::serve(listener, router).await?;
    Ok(())
}

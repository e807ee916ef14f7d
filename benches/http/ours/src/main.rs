//! `session-http-bench-ours <app> <addr> [backend]`: bare axum (the ceiling) or this project's
//! axum integration on one driver, with the benchmark handlers; or the same on actix-web.
//! Apps: bare, ours-memory, ours-redis, ours-redis-lww (last write wins, the peers'
//! guarantee, instead of merging concurrent commits), ours-sqlite, ours-fs, ours-cookie; bare-actix,
//! ours-actix-cookie, ours-actix-redis, ours-actix-redis-lww (framework-matched against
//! actix-session).
//!
//! Handlers (identical in every app): `GET /count` reads the integer `count` from the session,
//! increments it and stores it; `GET /read` only reads it.

use std::{net::SocketAddr, time::Duration};

use axum::{Router, routing::get};
use serde::{Deserialize, Serialize};
use session_axum::{Session, SessionFailure, SessionLayer};
use session_kit::{CookieOptions, ExpiryPolicy, Keyring, SessionStorage};

type Fail = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Counter {
    count: u64,
}

async fn count(session: Session<Counter>) -> Result<String, SessionFailure> {
    Ok(session.update(|c| { c.count += 1; c.count }).await?.to_string())
}

async fn read(session: Session<Counter>) -> Result<String, SessionFailure> {
    Ok(session.read(|c| c.count).await?.to_string())
}

fn main() -> Result<(), Fail> {
    let args: Vec<String> = std::env::args().collect();
    let (app, addr) = match (args.get(1), args.get(2)) {
        (Some(app), Some(addr)) => (app.clone(), addr.parse::<SocketAddr>()?),
        _ => return Err("usage: session-http-bench-ours <app> <addr> [backend]".into()),
    };
    let backend = args.get(3).cloned().unwrap_or_default();
    if app.contains("actix") {
        return actix_main(&app, addr, backend);
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(axum_main(&app, addr, backend))
}

fn storage(builder: session_kit::SessionStorageBuilder<Counter>) -> Result<SessionStorage<Counter>, Fail> {
    Ok(builder
        .keyring(Keyring::from_secrets(["benchmark secret of at least 32 bytes"])?)
        .cookie(CookieOptions::new().insecure_for_local_development())
        // Like the peers' setup: one day of inactivity, no absolute limit.
        .expiry(ExpiryPolicy::new().idle_timeout(Some(Duration::from_secs(86_400))).absolute_timeout(None))
        .build()?)
}

/// The same handlers and storage on actix-web (one worker per core, as actix-web defaults).
fn actix_main(app: &str, addr: SocketAddr, backend: String) -> Result<(), Fail> {
    use actix_web::{App, HttpServer, web};

    async fn count(session: session_actix::Session<Counter>) -> Result<String, session_actix::SessionFailure> {
        Ok(session.update(|c| { c.count += 1; c.count }).await?.to_string())
    }

    async fn read(session: session_actix::Session<Counter>) -> Result<String, session_actix::SessionFailure> {
        Ok(session.read(|c| c.count).await?.to_string())
    }

    actix_web::rt::System::new().block_on(async move {
        let storage = match app {
            "bare-actix" => None,
            "ours-actix-cookie" => Some(storage(SessionStorage::<Counter>::cookie_only())?),
            "ours-actix-redis" => Some(storage(SessionStorage::builder(session_kit::open(&backend).await?))?),
            "ours-actix-redis-lww" => Some(storage(
                SessionStorage::builder(session_kit::open(&backend).await?)
                    .concurrent_writes(session_kit::ConcurrentWrites::LastWriteWins),
            )?),
            other => return Err(format!("unknown app {other}").into()),
        };
        let server = match storage {
            None => HttpServer::new(|| {
                App::new().route("/count", web::get().to(|| async { "1" })).route("/read", web::get().to(|| async { "1" }))
            })
            .bind(addr)?
            .run(),
            Some(storage) => HttpServer::new(move || {
                App::new()
                    .wrap(session_actix::SessionMiddleware::new(storage.clone()))
                    .route("/count", web::get().to(count))
                    .route("/read", web::get().to(read))
            })
            .bind(addr)?
            .run(),
        };
        println!("ready");
        server.await?;
        Ok(())
    })
}

async fn axum_main(app: &str, addr: SocketAddr, backend: String) -> Result<(), Fail> {
    let router = if app == "bare" {
        Router::new().route("/count", get(|| async { "1" })).route("/read", get(|| async { "1" }))
    } else {
        let builder = match app {
            "ours-cookie" => SessionStorage::<Counter>::cookie_only(),
            "ours-memory" => SessionStorage::builder(session_kit::open("memory:?capacity=200000").await?),
            "ours-redis" => SessionStorage::builder(session_kit::open(&backend).await?),
            "ours-redis-lww" => SessionStorage::builder(session_kit::open(&backend).await?)
                .concurrent_writes(session_kit::ConcurrentWrites::LastWriteWins),
            "ours-sqlite" => SessionStorage::builder(session_kit::open(&format!("sqlite:{backend}")).await?),
            "ours-fs" => SessionStorage::builder(session_kit::open(&format!("fs:{backend}")).await?),
            other => return Err(format!("unknown app {other}").into()),
        };
        let storage = storage(builder)?;
        Router::new().route("/count", get(count)).route("/read", get(read)).layer(SessionLayer::new(storage))
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("ready");
    axum::serve(listener, router).await?;
    Ok(())
}

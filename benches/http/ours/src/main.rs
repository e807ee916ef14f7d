//! `session-http-bench-ours <app> <addr> [backend]`: bare axum (the ceiling) or this project's
//! axum integration on one driver, with the benchmark handlers.
//! Apps: bare, ours-memory, ours-redis, ours-sqlite, ours-fs, ours-cookie.
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

#[tokio::main]
async fn main() -> Result<(), Fail> {
    let args: Vec<String> = std::env::args().collect();
    let (app, addr) = match (args.get(1), args.get(2)) {
        (Some(app), Some(addr)) => (app.as_str(), addr.parse::<SocketAddr>()?),
        _ => return Err("usage: session-http-bench-ours <app> <addr> [backend]".into()),
    };
    let backend = args.get(3).cloned().unwrap_or_default();
    let router = if app == "bare" {
        Router::new().route("/count", get(|| async { "1" })).route("/read", get(|| async { "1" }))
    } else {
        let builder = match app {
            "ours-cookie" => SessionStorage::<Counter>::cookie_only(),
            "ours-memory" => SessionStorage::builder(session_kit::open("memory:?capacity=200000").await?),
            "ours-redis" => SessionStorage::builder(session_kit::open(&backend).await?),
            "ours-sqlite" => SessionStorage::builder(session_kit::open(&format!("sqlite:{backend}")).await?),
            "ours-fs" => SessionStorage::builder(session_kit::open(&format!("fs:{backend}")).await?),
            other => return Err(format!("unknown app {other}").into()),
        };
        let storage = builder
            .keyring(Keyring::from_secrets(["benchmark secret of at least 32 bytes"])?)
            .cookie(CookieOptions::new().insecure_for_local_development())
            // Like the peers' setup: one day of inactivity, no absolute limit.
            .expiry(ExpiryPolicy::new().idle_timeout(Some(Duration::from_secs(86_400))).absolute_timeout(None))
            .build()?;
        Router::new().route("/count", get(count)).route("/read", get(read)).layer(SessionLayer::new(storage))
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("ready");
    axum::serve(listener, router).await?;
    Ok(())
}

//! Runs `N` `/count` (or `/read`) requests through the axum integration in-process (no sockets),
//! for `valgrind --tool=callgrind`: `cargo build --profile bench -p session-benches --example
//! request_profile` then `valgrind --tool=callgrind target/release/examples/request_profile
//! memory 20000 [count|read|new|static]` (apps: bare, memory, cookie; `static`: a route under
//! the layer whose handler never touches the session). Every request carries the
//! cookie of the session the first `/count` created, except with `new`: `/count` without a
//! cookie, a new visitor each time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use axum::{Router, body::Body, routing::get};
use http::Request;
use serde::{Deserialize, Serialize};
use session_kit_axum::{Session, SessionFailure, SessionLayer};
use session_kit_core::{CookieOptions, ExpiryPolicy, Keyring, SessionStorage};
use session_kit_memory::MemoryDriver;
use tower::ServiceExt;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Counter {
    count: u64,
}

async fn read(session: Session<Counter>) -> Result<String, SessionFailure> {
    Ok(session.read(|c| c.count).await?.to_string())
}

async fn count(session: Session<Counter>) -> Result<String, SessionFailure> {
    Ok(session
        .update(|c| {
            c.count += 1;
            c.count
        })
        .await?
        .to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let app = args.get(1).map(String::as_str).unwrap_or("memory");
    let n: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let mode = args.get(3).map(String::as_str);
    let path = match mode {
        Some("read") => "/read",
        Some("static") => "/static",
        _ => "/count",
    };
    let new_visitors = mode == Some("new");
    let router = if app == "bare" {
        Router::new()
            .route("/count", get(|| async { "1" }))
            .route("/read", get(|| async { "1" }))
            .route("/static", get(|| async { "1" }))
    } else {
        let builder = match app {
            "cookie" => SessionStorage::<Counter>::cookie_only(),
            _ => SessionStorage::builder(Arc::new(MemoryDriver::new())),
        };
        let storage = builder
            .keyring(Keyring::from_secrets(["benchmark secret of at least 32 bytes"]).unwrap())
            .cookie(CookieOptions::new().insecure_for_local_development())
            .expiry(
                ExpiryPolicy::new()
                    .idle_timeout(Some(Duration::from_secs(86_400)))
                    .absolute_timeout(None),
            )
            .build()
            .unwrap();
        Router::new()
            .route("/count", get(count))
            .route("/read", get(read))
            .route("/static", get(|| async { "1" }))
            .layer(SessionLayer::new(storage))
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let first = router
            .clone()
            .oneshot(Request::get("/count").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let cookie = first
            .headers()
            .get("set-cookie")
            .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
            .unwrap_or_default();
        for _ in 0..n {
            let mut request = Request::get(path);
            if !new_visitors {
                request = request.header("cookie", &cookie);
            }
            let response = router
                .clone()
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert!(response.status().is_success());
        }
    });
}

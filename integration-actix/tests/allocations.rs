//! Allocations the session middleware adds to a request, counted by the test binary's
//! allocator (one test in this file, so nothing else allocates while it counts).

#![allow(clippy::unwrap_used)]

use std::{alloc::System, sync::Arc};

use actix_web::{
    App, HttpResponse,
    dev::{Service, ServiceResponse},
    http::header,
    test, web,
};
use serde::{Deserialize, Serialize};
use session_kit_actix::{Session, SessionMiddleware};
use session_kit_core::{Keyring, SessionStorage};
use session_kit_memory::MemoryDriver;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Counter {
    n: u64,
}

async fn count(session: Session<Counter>) -> String {
    let n = session.update(|c| {
        c.n += 1;
        c.n
    });
    n.await.unwrap().to_string()
}

async fn untouched() -> HttpResponse {
    HttpResponse::Ok().body("static")
}

fn secret() -> Keyring {
    Keyring::from_secrets(["allocation test secret of 32 bytes or more"]).unwrap()
}

const REQUESTS: usize = 100;

/// Allocations of `REQUESTS` requests to `path` with `cookie` through `app`, after one
/// warm-up request; the requests are built before counting. The fewest of three counts: the
/// counter is the process's, and another thread (the test harness's) allocating during a
/// count can only add to it.
async fn allocations<S, B>(app: &S, path: &str, cookie: Option<&str>) -> u64
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let mut fewest = u64::MAX;
    for _ in 0..3 {
        fewest = fewest.min(count_allocations(app, path, cookie).await);
    }
    fewest
}

/// One count of [`allocations`].
async fn count_allocations<S, B>(app: &S, path: &str, cookie: Option<&str>) -> u64
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let request = || {
        let mut request = test::TestRequest::get().uri(path);
        if let Some(cookie) = cookie {
            request = request.insert_header((header::COOKIE, cookie));
        }
        request.to_request()
    };
    let warm_up = app.call(request()).await.unwrap();
    assert!(warm_up.status().is_success(), "{}", warm_up.status());
    drop(warm_up);
    let built: Vec<_> = (0..REQUESTS).map(|_| request()).collect();
    let region = Region::new(GLOBAL);
    for request in built {
        drop(app.call(request).await.unwrap());
    }
    region.change().allocations as u64
}

/// What the middleware itself allocates for a request that never touches its session, with
/// a cookie or without, on a store or cookie-only: the session's handle (its state, behind an
/// `Arc`) and the request extension that carries it to handlers, and nothing else. No boxed
/// future, and a signed cookie's memo entry is shared, not copied, until the session loads.
/// A sealed cookie-only value is copied, one allocation (the value is opened only if the
/// handler asks).
/// Counted against the same app without the middleware.
#[actix_web::test]
async fn an_untouched_session_costs_its_handle_and_nothing_else() {
    let bare = test::init_service(App::new().route("/untouched", web::get().to(untouched))).await;
    let baseline = allocations(&bare, "/untouched", None).await;
    let stored = SessionStorage::builder(Arc::new(MemoryDriver::new()))
        .keyring(secret())
        .build()
        .unwrap();
    let cookie_only = SessionStorage::cookie_only()
        .keyring(secret())
        .build()
        .unwrap();
    // (storage, allocations per request without a cookie, with one)
    for (name, storage, expected) in [
        ("store", stored, [2, 2]),
        ("cookie-only", cookie_only, [2, 3]),
    ] {
        let app = test::init_service(
            App::new()
                .wrap(SessionMiddleware::<Counter>::new(storage))
                .route("/untouched", web::get().to(untouched))
                .route("/count", web::get().to(count)),
        )
        .await;
        let response = app
            .call(test::TestRequest::get().uri("/count").to_request())
            .await
            .unwrap();
        let set = response.headers().get(header::SET_COOKIE).unwrap();
        let set = set.to_str().unwrap();
        let cookie = set.split(';').next().unwrap().to_owned();
        for (cookie, expected) in [None, Some(cookie.as_str())].into_iter().zip(expected) {
            let layered = allocations(&app, "/untouched", cookie).await;
            let per_request = (layered - baseline) as f64 / REQUESTS as f64;
            assert_eq!(
                per_request,
                expected as f64,
                "{name}, cookie: {}: {layered} allocations against {baseline} without sessions",
                cookie.is_some()
            );
        }
    }
}

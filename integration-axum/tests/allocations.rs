//! Allocations the session layer adds to a request, counted by the test binary's allocator
//! (one test in this file, so nothing else allocates while it counts).

#![allow(clippy::unwrap_used)]

use std::{
    alloc::System,
    future::Future,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use axum::{Router, body::Body, routing::get};
use http::Request;
use serde::{Deserialize, Serialize};
use session_kit_axum::{Session, SessionLayer};
use session_kit_core::{Keyring, SessionStorage};
use session_kit_memory::MemoryDriver;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Polls a future that completes at once (no I/O: the memory driver, or no store at all).
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the app answers without I/O"),
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Counter {
    n: u64,
}

/// One request to `app`, answered without I/O.
fn call(app: &mut Router, request: Request<Body>) -> http::Response<axum::body::Body> {
    let ready = now(ServiceExt::<Request<Body>>::ready(app)).unwrap();
    now(ready.call(request)).unwrap()
}

/// The routes, with their state given (as `axum::serve` does once per connection: without it,
/// a router used as a service builds each route's handler service again on every request).
fn routes() -> Router {
    let routes: Router = Router::new()
        .route("/untouched", get(|| async { "static" }))
        .route(
            "/count",
            get(|session: Session<Counter>| async move {
                let n = session.update(|c| {
                    c.n += 1;
                    c.n
                });
                n.await.unwrap().to_string()
            }),
        );
    routes.with_state(())
}

fn with_sessions(storage: SessionStorage<Counter>) -> Router {
    routes().layer(SessionLayer::new(storage)).with_state(())
}

fn secret() -> Keyring {
    Keyring::from_secrets(["allocation test secret of 32 bytes or more"]).unwrap()
}

/// Allocations of `requests` requests to `path` with `cookie`, after one warm-up request: the
/// fewest of three counts. The counter is the process's, and another thread (the test
/// harness's) allocating during a count can only add to it: once it put 4 allocations into a
/// baseline of 1,100.
fn allocations(app: &mut Router, path: &str, cookie: Option<&str>, requests: u64) -> u64 {
    (0..3)
        .map(|_| count_allocations(app, path, cookie, requests))
        .min()
        .unwrap_or(u64::MAX)
}

/// One count of [`allocations`].
fn count_allocations(app: &mut Router, path: &str, cookie: Option<&str>, requests: u64) -> u64 {
    let request = || {
        let mut builder = Request::get(path);
        if let Some(cookie) = cookie {
            builder = builder.header(http::header::COOKIE, cookie);
        }
        builder.body(Body::empty()).unwrap()
    };
    let mut send = |request| {
        let response = call(app, request);
        assert!(response.status().is_success(), "{}", response.status());
        response
    };
    drop(send(request()));
    let built: Vec<_> = (0..requests).map(|_| request()).collect();
    let region = Region::new(GLOBAL);
    for request in built {
        drop(send(request));
    }
    region.change().allocations as u64
}

/// The cookie a `/count` request to `app` sets (a new session).
fn new_session(app: &mut Router) -> String {
    let response = call(app, Request::get("/count").body(Body::empty()).unwrap());
    let set = response.headers()[http::header::SET_COOKIE]
        .to_str()
        .unwrap();
    set.split(';').next().unwrap().to_owned()
}

const REQUESTS: u64 = 100;

/// What the layer itself allocates for a request that never touches its session, with a
/// cookie or without, on a store or cookie-only: the session's handle (its state, behind an
/// `Arc`) and the request extension that carries it to handlers, and nothing else. No boxed
/// future, and a signed cookie's memo entry is shared, not copied, until the session loads.
/// A sealed cookie-only value is copied, one allocation (the headers go to the handler, and
/// the value is opened only if the handler asks). Counted against the same routes under a layer that does
/// nothing (axum boxes any layered route's future). Then the hot path: what `/count` on a
/// stored session allocates beyond that.
#[test]
fn what_an_untouched_request_and_a_count_allocate() {
    let mut baseline_app = routes()
        .layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r))
        .with_state(());
    let baseline = allocations(&mut baseline_app, "/untouched", None, REQUESTS);
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
        let mut app = with_sessions(storage);
        let cookie = new_session(&mut app);
        for (cookie, expected) in [None, Some(cookie.as_str())].into_iter().zip(expected) {
            let layered = allocations(&mut app, "/untouched", cookie, REQUESTS);
            let per_request = (layered - baseline) as f64 / REQUESTS as f64;
            assert_eq!(
                per_request,
                expected as f64,
                "{name}, cookie: {}: {layered} allocations against {baseline} without sessions",
                cookie.is_some()
            );
        }
    }

    // The hot path, pinned so that an allocation more shows: `/count` on a stored session
    // (load, `update`, commit by compare-and-swap), over an untouched request of the same app.
    // 12: the driver's boxed get and put futures (2), the recorded `update` (1: operations
    // are held inline), the field diff (2: the changed key and its list), the commit's future
    // (1, boxed only when the store is written), the record's copy with the change (2: its
    // map and key), its encoding (2: the JSON and its `Bytes`), the decoded record kept for
    // the next request (1), and the handler's answer (1). The storage key is shared with the
    // cookie memo, not copied. With the `metrics` feature (on in a workspace build: the demo
    // asks for it), each of the two store operations costs 4 more: its timed future and the
    // label lists of its counter and histogram (the driver's name in them is shared).
    let mut app = with_sessions(
        SessionStorage::builder(Arc::new(MemoryDriver::new()))
            .keyring(secret())
            .build()
            .unwrap(),
    );
    let cookie = new_session(&mut app);
    let untouched = allocations(&mut app, "/untouched", Some(&cookie), REQUESTS);
    let counted = allocations(&mut app, "/count", Some(&cookie), REQUESTS);
    let per_request = (counted - untouched) as f64 / REQUESTS as f64;
    let expected = match session_kit_core::metrics::enabled() {
        true => 20.0,
        false => 12.0,
    };
    assert_eq!(
        per_request, expected,
        "/count over /untouched: {counted} allocations against {untouched}"
    );
}

//! The in-process measurement shared by both benchmark binaries (`--in-process <app> <n>`):
//! the app's service is called directly, without sockets, so the figure is the CPU cost of the
//! framework plus the session layer, free of the kernel and of `wrk`, which dominate the HTTP
//! load test on a shared 2-core machine. Included with `#[path]` by `ours` and `peers`.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    future::Future,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

/// Counts heap allocations (the binaries' global allocator): the in-process figures report
/// allocations per request beside the time.
pub struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Sessions cycled through, as in the HTTP load test.
const SESSIONS: usize = 256;
/// Each path is timed this many times; the fastest repetition is kept (the one the machine's
/// other work disturbed least).
const REPETITIONS: usize = 5;

type Fail = Box<dyn std::error::Error + Send + Sync>;

/// The scenarios: (name in the output, path, whether the request carries a session cookie).
/// Without a cookie, `/count` is a new visitor (a new session is written) and `/read` a
/// request that never stores anything. `/static` never touches the session (a route under
/// the layer that serves no session data: the layer's fixed cost), sent with a cookie.
const SCENARIOS: [(&str, &str, bool); 6] = [
    ("/count", "/count", true),
    ("/read", "/read", true),
    ("/count new", "/count", false),
    ("/read new", "/read", false),
    // As a browser does: each request carries the cookie its session's last response set
    // (cookie-only sessions get a new cookie on every change; `/count` above, like `wrk`,
    // keeps sending the first one).
    ("/count latest", "/count", true),
    ("/static", "/static", true),
];

/// Creates the sessions with `/count` requests, then times `n` requests per scenario (with a
/// cookie: each carrying one of the sessions' cookies in turn). A `bare` app (no sessions)
/// gets a cookie it ignores, like in the load test; any other app must set a cookie on each
/// `/count`, or the measurement fails (rather than timing an app whose sessions broke). `send(path, cookie,
/// want_cookie)` makes one request and, when `want_cookie`, returns the `name=value` of the
/// response's `Set-Cookie`. Prints `{"/count": ns, "/count allocs": per request, ...,
/// "requests": n, "repetitions": r}` (nanoseconds and heap allocations per request, and how
/// they were measured, for the report to state). `IN_PROCESS_ONLY=/read` runs one scenario
/// (for a profiler).
pub async fn measure<F, Fut>(mut send: F, bare: bool, n: usize) -> Result<(), Fail>
where
    F: FnMut(&'static str, Option<String>, bool) -> Fut,
    Fut: Future<Output = Result<Option<String>, Fail>>,
{
    let only = std::env::var("IN_PROCESS_ONLY").ok();
    let mut cookies = Vec::with_capacity(SESSIONS);
    if bare {
        cookies.push("x=1".to_owned());
    } else {
        for _ in 0..SESSIONS {
            cookies.extend(send("/count", None, true).await?);
        }
        if cookies.len() < SESSIONS {
            return Err(format!(
                "/count set {} cookies for {SESSIONS} requests",
                cookies.len()
            )
            .into());
        }
    }
    let cookie = |i: usize, with: bool| with.then(|| cookies[i % cookies.len()].clone());
    let mut out = Vec::new();
    for (name, path, with_cookie) in SCENARIOS {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        for i in 0..n / 10 {
            send(path, cookie(i, with_cookie), false).await?;
        }
        let mut best = f64::INFINITY;
        let mut allocations = u64::MAX;
        for _ in 0..REPETITIONS {
            // The cookies are cloned outside the timed loop: the request's own allocations
            // are what is counted.
            let latest = name.ends_with("latest");
            let batch: Vec<Option<String>> = (0..n).map(|i| cookie(i, with_cookie)).collect();
            let mut current = cookies.clone();
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            let start = Instant::now();
            for (i, c) in batch.into_iter().enumerate() {
                if latest {
                    let slot = i % current.len();
                    let sent = Some(std::mem::take(&mut current[slot]));
                    let set = send(path, sent.clone(), true).await?;
                    current[slot] = set.or(sent).unwrap_or_default();
                } else {
                    send(path, c, false).await?;
                }
            }
            best = best.min(start.elapsed().as_nanos() as f64 / n as f64);
            allocations = allocations.min(ALLOCATIONS.load(Ordering::Relaxed) - before);
        }
        out.push(format!("\"{name}\": {best:.1}"));
        out.push(format!(
            "\"{name} allocs\": {:.2}",
            allocations as f64 / n as f64
        ));
    }
    out.push(format!("\"requests\": {n}, \"repetitions\": {REPETITIONS}"));
    println!("{{{}}}", out.join(", "));
    Ok(())
}

/// [`measure`] over an axum router, on the current (single) thread.
pub async fn measure_axum(router: axum::Router, bare: bool, n: usize) -> Result<(), Fail> {
    use ::tower::ServiceExt;
    use axum::body::Body;
    // As `axum::serve` does once per connection: without it, a router called as a service
    // builds each route's handler service again (applying every layer) on every request.
    let router: axum::Router = router.with_state(());
    measure(
        |path, cookie, want_cookie| {
            let router = router.clone();
            async move {
                let mut request = axum::http::Request::get(path);
                if let Some(cookie) = cookie {
                    request = request.header(axum::http::header::COOKIE, cookie);
                }
                let response = router.oneshot(request.body(Body::empty())?).await?;
                if !response.status().is_success() {
                    return Err(format!("{path}: status {}", response.status()).into());
                }
                let header = response.headers().get(axum::http::header::SET_COOKIE);
                Ok(want_cookie.then(|| pair(header?.to_str().ok()?)).flatten())
            }
        },
        bare,
        n,
    )
    .await
}

/// [`measure`] over an actix-web app, on the current (single) thread.
pub async fn measure_actix<S, B>(app: S, bare: bool, n: usize) -> Result<(), Fail>
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
{
    use actix_web::test::{TestRequest, call_service};
    let app = std::rc::Rc::new(app);
    measure(
        |path, cookie, want_cookie| {
            let app = std::rc::Rc::clone(&app);
            async move {
                let mut request = TestRequest::get().uri(path);
                if let Some(cookie) = cookie {
                    request = request.insert_header((actix_web::http::header::COOKIE, cookie));
                }
                let response = call_service(&*app, request.to_request()).await;
                if !response.status().is_success() {
                    return Err(format!("{path}: status {}", response.status()).into());
                }
                let header = response.headers().get(actix_web::http::header::SET_COOKIE);
                Ok(want_cookie.then(|| pair(header?.to_str().ok()?)).flatten())
            }
        },
        bare,
        n,
    )
    .await
}

/// The `name=value` of a `Set-Cookie` header value.
fn pair(set_cookie: &str) -> Option<String> {
    Some(set_cookie.split(';').next()?.to_owned())
}

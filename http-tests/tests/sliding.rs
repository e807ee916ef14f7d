//! Sliding expiry over real HTTP: requests that read or change a session keep it alive. The
//! idle deadline moves only once it is due for a refresh (a quarter of the idle timeout by
//! default): a read commits without a store write until then, a change is written but sends no
//! cookie; the request that finds it due extends it and sends the cookie again.

mod common;

use std::{thread::sleep, time::Duration};

use common::{new_session, on_store, server_args};
use session_test_support::{HttpResponse, http_exchange};

const IDLE_MS: u64 = 1500;

fn state(port: u16, cookie: &str) -> HttpResponse {
    let r = http_exchange(port, "GET", "/state", &[("Cookie", cookie)], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

/// Requests with `method` on `path` every 150 ms for three times the idle timeout: the
/// session lives on; the requests that came due for a refresh sent the cookie again (the same
/// id), the others none; left alone past the idle timeout, it expires. `/incr` also counts the
/// writes, all of which must be in the session.
fn requests_keep_the_session_alive(framework: &str, driver: &str, method: &str, path: &str) {
    let idle = IDLE_MS.to_string();
    let server = server_args(framework, driver, &["--idle-timeout", &idle]);
    let cookie = new_session(server.port);
    let request = || {
        let r = http_exchange(server.port, method, path, &[("Cookie", &cookie)], b"");
        assert_eq!(r.status, 200, "{framework}: {}", r.body);
        r
    };
    // Just written: the next request, read or write, sends no cookie (the browser's is
    // current, and the idle deadline is not due for a refresh).
    let r = request();
    assert!(
        r.header_values("set-cookie").is_empty(),
        "{framework} {method} {path}: {:?}",
        r.headers
    );
    // A refresh is due 375 ms after the last one: about every third request.
    let rounds = 3 * IDLE_MS / 150;
    let mut refreshed = 0;
    for round in 0..rounds {
        sleep(Duration::from_millis(150));
        let r = request();
        // The session is alive and has every write: `/incr` answers the visits counted so
        // far, `/state` shows the cart of the first request.
        let alive = match path {
            "/incr" => r.body == (round + 2).to_string(),
            _ => r.body.contains("first"),
        };
        assert!(alive, "{framework} {method} {path}: {}", r.body);
        let set = r.header_values("set-cookie");
        if let Some(set) = set.first() {
            assert!(
                set.starts_with(&format!("{cookie};")),
                "{framework}: the same id: {set}"
            );
            refreshed += 1;
        }
    }
    // Not every request: only those due (a quarter of the idle timeout after the last one).
    assert!(
        (2..rounds).contains(&refreshed),
        "{framework} {method} {path}: {refreshed} of {rounds} requests sent the cookie"
    );
    // Left alone past the idle timeout, it expires: the requests above are what kept it.
    sleep(Duration::from_millis(IDLE_MS + 500));
    let r = state(server.port, &cookie);
    assert!(
        !r.body.contains("first"),
        "{framework}: still alive: {}",
        r.body
    );
}

fn reads_keep_the_session_alive(framework: &str, driver: &str) {
    requests_keep_the_session_alive(framework, driver, "GET", "/state");
}

fn writes_keep_the_session_alive(framework: &str, driver: &str) {
    requests_keep_the_session_alive(framework, driver, "POST", "/incr");
}

#[test]
fn reads_keep_a_memory_session_alive() {
    on_store("memory", reads_keep_the_session_alive);
}

#[test]
fn reads_keep_a_redis_session_alive() {
    on_store("redis", reads_keep_the_session_alive);
}

#[test]
fn writes_keep_a_memory_session_alive() {
    on_store("memory", writes_keep_the_session_alive);
}

#[test]
fn writes_keep_a_redis_session_alive() {
    on_store("redis", writes_keep_the_session_alive);
}

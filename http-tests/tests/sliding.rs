//! Sliding expiry over real HTTP: requests that only read a session keep it alive. A read
//! commits without a store write until the idle deadline is due for a refresh (a quarter of
//! the idle timeout by default); then the commit extends it and sends the cookie again.

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

fn reads_keep_the_session_alive(framework: &str, driver: &str) {
    let idle = IDLE_MS.to_string();
    let server = server_args(framework, driver, &["--idle-timeout", &idle]);
    let cookie = new_session(server.port);
    // Just written: reading it sends no cookie (nothing to commit).
    let r = state(server.port, &cookie);
    assert!(
        r.header_values("set-cookie").is_empty(),
        "{framework}: {:?}",
        r.headers
    );
    // Reads every 400 ms for three times the idle timeout: the session lives on, and the
    // reads that came due for a refresh sent the cookie again.
    let mut refreshed = 0;
    for _ in 0..(3 * IDLE_MS / 400) {
        sleep(Duration::from_millis(400));
        let r = state(server.port, &cookie);
        assert!(
            r.body.contains("first"),
            "{framework}: the session expired: {}",
            r.body
        );
        let set = r.header_values("set-cookie");
        if let Some(set) = set.first() {
            assert!(
                set.starts_with(&format!("{cookie};")),
                "{framework}: the same id: {set}"
            );
            refreshed += 1;
        }
    }
    assert!(refreshed >= 2, "{framework}: {refreshed} refreshes");
    // Left alone past the idle timeout, it expires: the reads above are what kept it.
    sleep(Duration::from_millis(IDLE_MS + 500));
    let r = state(server.port, &cookie);
    assert!(
        !r.body.contains("first"),
        "{framework}: still alive: {}",
        r.body
    );
}

#[test]
fn reads_keep_a_memory_session_alive() {
    on_store("memory", reads_keep_the_session_alive);
}

#[test]
fn reads_keep_a_redis_session_alive() {
    on_store("redis", reads_keep_the_session_alive);
}

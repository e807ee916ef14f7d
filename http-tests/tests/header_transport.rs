//! API clients with `Authorization: Bearer <token>` instead of cookies, over real HTTP, against
//! axum and actix-web servers (`contention-server --header-transport bearer`) on memory, fs,
//! SQLite and Redis: the token comes in a response header, concurrent requests with it keep
//! every change, they are never answered with cookies, and browsers' cookies keep working on
//! the same storage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::thread;

use common::{cookie_set_by, on_store, server_args};
use session_test_support::http_exchange;

fn api_clients_share_one_session(framework: &str, driver: &str) {
    let server = server_args(framework, driver, &["--header-transport", "bearer"]);
    let port = server.port;

    // The first request carries nothing: it gets the token, and a cookie for browsers.
    let first = http_exchange(port, "POST", "/incr", &[], b"");
    assert_eq!(first.status, 200, "{}", first.body);
    let token = first.header_values("session-token");
    assert_eq!(token.len(), 1, "{framework} on {driver}: {:?}", first);
    let token = token[0].to_owned();
    let cookie = cookie_set_by(&first);
    assert_eq!(
        cookie.split_once('=').unwrap().1,
        token,
        "one value, two carriers"
    );

    // 8 API clients x 10 increments with the token, concurrently.
    let auth = format!("Bearer {token}");
    thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..10 {
                    let r = http_exchange(port, "POST", "/incr", &[("Authorization", &auth)], b"");
                    assert_eq!(r.status, 200, "{}", r.body);
                    assert!(
                        r.header_values("set-cookie").is_empty(),
                        "no cookies for API clients"
                    );
                    assert!(
                        r.header_values("session-token").is_empty(),
                        "the token did not change"
                    );
                }
            });
        }
    });
    let state = http_exchange(port, "GET", "/state", &[("Authorization", &auth)], b"");
    let state: serde_json::Value = serde_json::from_str(&state.body).unwrap();
    assert_eq!(
        state["visits"], 81,
        "{framework} on {driver}: every increment kept"
    );

    // A browser with the cookie: the same session, and never a token header (its cookie is
    // still current: a change within the refresh window sends no Set-Cookie either).
    let r = http_exchange(port, "POST", "/incr", &[("Cookie", &cookie)], b"");
    assert_eq!((r.status, r.body.as_str()), (200, "82"));
    assert!(r.header_values("session-token").is_empty());

    // A forged token: a fresh session, with a fresh token.
    let last = if token.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("Bearer {}{last}", &token[..token.len() - 1]);
    let r = http_exchange(port, "POST", "/incr", &[("Authorization", &forged)], b"");
    assert_eq!((r.status, r.body.as_str()), (200, "1"));
    assert_eq!(r.header_values("session-token").len(), 1);
}

#[test]
fn memory() {
    on_store("memory", api_clients_share_one_session);
}

#[test]
fn fs() {
    on_store("fs", api_clients_share_one_session);
}

#[test]
fn sqlite() {
    on_store("sqlite", api_clients_share_one_session);
}

#[test]
fn redis() {
    on_store("redis", api_clients_share_one_session);
}

//! Request-forgery defence over real HTTP, against axum and actix-web servers
//! (`contention-server`, behind `CsrfLayer` / `CsrfMiddleware`) on memory, fs, SQLite and
//! Redis: a cross-site POST is refused (with or without a session, so login forms too), a
//! same-site one passes with the session's token in a form field or a header, and a missing,
//! foreign or tampered token is refused; refused requests change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{cookie_set_by, on_store, server};
use session_test_support::{HttpResponse, http_exchange};

fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    http_exchange(port, method, path, headers, body.as_bytes())
}

fn forgery_is_refused(framework: &str, driver: &str) {
    let server = server(framework, driver);
    let port = server.port;
    let own = format!("http://127.0.0.1:{port}");
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let context = format!("{framework} on {driver}");

    // A login form with no session yet, posted from another site: refused before any handler.
    let evil = [
        ("Origin", "https://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ];
    let r = send(port, "POST", "/incr", &evil, "");
    assert_eq!(r.status, 403, "{context}: {}", r.body);
    assert!(
        r.header_values("set-cookie").is_empty(),
        "{context}: nothing stored"
    );

    // The visitor's page: a session and its token.
    let r = send(port, "GET", "/csrf", &[], "");
    assert_eq!(r.status, 200, "{context}: {}", r.body);
    let token = r.body.clone();
    let cookie = cookie_set_by(&r);

    // Same-origin, the token in the form: accepted.
    let same = [
        ("Cookie", cookie.as_str()),
        ("Origin", own.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
        form,
    ];
    let r = send(
        port,
        "POST",
        "/csrf/form",
        &same,
        &format!("csrf_token={token}"),
    );
    assert_eq!((r.status, r.body.as_str()), (200, "1"), "{context}");

    // The token in the header, from a script of the page (an older browser: Origin only).
    let fetch = [
        ("Cookie", cookie.as_str()),
        ("Origin", own.as_str()),
        ("x-csrf-token", token.as_str()),
    ];
    let r = send(port, "POST", "/csrf/fetch", &fetch, "");
    assert_eq!((r.status, r.body.as_str()), (200, "2"), "{context}");

    // The same valid cookie and token, posted from another site: refused.
    let cross = [
        ("Cookie", cookie.as_str()),
        ("Origin", "https://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
        form,
    ];
    let r = send(
        port,
        "POST",
        "/csrf/form",
        &cross,
        &format!("csrf_token={token}"),
    );
    assert_eq!(r.status, 403, "{context}");
    let r = send(port, "POST", "/incr", &cross, "");
    assert_eq!(r.status, 403, "{context}");

    // Same-origin without the token, with another session's, or tampered: refused.
    let other = send(port, "GET", "/csrf", &[], "").body;
    let last = if token.ends_with('A') { 'B' } else { 'A' };
    let tampered = format!("{}{last}", &token[..token.len() - 1]);
    for body in [
        String::new(),
        format!("csrf_token={other}"),
        format!("csrf_token={tampered}"),
    ] {
        let r = send(port, "POST", "/csrf/form", &same, &body);
        assert_eq!(r.status, 403, "{context}: {body:?} {}", r.body);
    }

    // Nothing the refused requests asked for happened.
    let r = send(port, "GET", "/state", &[("Cookie", cookie.as_str())], "");
    let state: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(state["visits"], 2, "{context}");
}

#[test]
fn memory() {
    on_store("memory", forgery_is_refused);
}

#[test]
fn fs() {
    on_store("fs", forgery_is_refused);
}

#[test]
fn sqlite() {
    on_store("sqlite", forgery_is_refused);
}

#[test]
fn redis() {
    on_store("redis", forgery_is_refused);
}

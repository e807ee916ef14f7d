//! The demo as an attacker or a careless client meets it, over real HTTP: slow and idle
//! connections, the connection limit, slow bodies, oversized bodies, forged requests, response
//! headers, and what reading a page stores (nothing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{ErrorKind, Read, Write},
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

use common::{Demo, csrf_token, set_cookie, text_of};

/// A connection that sent half a request head and nothing more.
fn slow_client(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    stream
}

/// Whether the server still holds the connection open (nothing to read, no end of stream).
fn still_open(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let open = matches!(stream.read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    open
}

/// Waits until the server closes the connection; how long that took.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buffer = Vec::new();
    match stream.read_to_end(&mut buffer) {
        Ok(_) => start.elapsed(),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => start.elapsed(),
        Err(e) => panic!("the server kept a slow client for more than {limit:?}: {e}"),
    }
}

fn memory_demo(data: &Path, extra: &[&str]) -> Demo {
    let mut args = vec!["--driver", "memory"];
    args.extend_from_slice(extra);
    Demo::start(data, &args)
}

#[test]
fn slow_and_idle_clients_are_cut_off_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let demo = memory_demo(dir.path(), &["--header-timeout", "3s"]);
    let mut slow: Vec<TcpStream> = (0..200).map(|_| slow_client(demo.port)).collect();
    let mut idle = TcpStream::connect(("127.0.0.1", demo.port)).unwrap();
    // Normal visitors are served while the slow ones hang on.
    for _ in 0..20 {
        let response = demo.request("GET", "/", None, &[], "");
        assert_eq!(response.status, 200);
    }
    let open = slow.iter().filter(|s| still_open(s)).count();
    assert_eq!(
        open, 200,
        "the slow clients were still connected while the others were served"
    );
    // Then every slow one is disconnected (the timeout is 3 s; generous margin for a busy
    // machine), and so is the connection that never sent anything.
    for stream in &mut slow {
        closed_within(stream, Duration::from_secs(30));
    }
    closed_within(&mut idle, Duration::from_secs(30));
    assert_eq!(demo.request("GET", "/", None, &[], "").status, 200);
}

#[test]
fn past_the_connection_limit_new_clients_wait_for_a_free_slot() {
    let dir = tempfile::tempdir().unwrap();
    let demo = memory_demo(
        dir.path(),
        &["--max-connections", "8", "--header-timeout", "3s"],
    );
    assert!(demo.said("limits:").contains("8 connections"));
    let mut slow: Vec<TcpStream> = (0..8).map(|_| slow_client(demo.port)).collect();
    // A ninth client: connected by the kernel, but not served while the 8 hold every slot.
    let mut waiting = TcpStream::connect(("127.0.0.1", demo.port)).unwrap();
    waiting
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut first = [0u8; 12];
    let early = waiting.read(&mut first);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "served past the connection limit: {early:?}"
    );
    // Once the header timeout frees the slots, it is served.
    waiting
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    waiting.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    for stream in &mut slow {
        closed_within(stream, Duration::from_secs(30));
    }
}

#[test]
fn a_request_whose_body_never_arrives_is_answered_408() {
    let dir = tempfile::tempdir().unwrap();
    let demo = memory_demo(dir.path(), &["--request-timeout", "1s"]);
    let mut stream = TcpStream::connect(("127.0.0.1", demo.port)).unwrap();
    stream
        .write_all(
            b"POST /cart/add HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nitem=ap",
        )
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 408");
}

#[test]
fn oversized_bodies_and_heads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let demo = memory_demo(dir.path(), &[]);
    let body = format!("email={}&password=x", "a".repeat(20_000));
    let response = demo.request("POST", "/login", None, &[], &body);
    assert_eq!(response.status, 413, "{}", response.body);
    assert!(set_cookie(&response).is_none());
    let huge = "b".repeat(20_000);
    let response = demo.request("GET", "/", None, &[("X-Huge", &huge)], "");
    assert_eq!(response.status, 431);
}

#[test]
fn every_response_carries_the_security_headers_and_pages_are_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let demo = memory_demo(dir.path(), &[]);
    for path in [
        "/",
        "/login",
        "/cart",
        "/two-tabs",
        "/dashboard",
        "/metrics",
    ] {
        let response = demo.request("GET", path, None, &[], "");
        assert!(
            [200, 303].contains(&response.status),
            "{path}: {}",
            response.status
        );
        let header = |name: &str| response.header_values(name).join(", ");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(directive), "{path}: CSP {csp:?}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: CSP {csp:?}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(header("cache-control"), "no-store", "{path}");
    }
    // Pages hold no inline script or style (the CSP would block them).
    let home = demo.request("GET", "/two-tabs", None, &[], "").body;
    assert!(!home.contains("<style") && !home.contains("<script>"));
    let css = demo.request("GET", "/static/demo.css", None, &[], "");
    assert_eq!(css.status, 200);
    assert!(css.header_values("cache-control")[0].contains("max-age"));
    assert!(css.header_values("content-type")[0].starts_with("text/css"));
}

#[test]
fn reading_pages_stores_nothing_and_head_never_changes_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The default: the fs driver, whose sessions are files we can count.
    let demo = Demo::start(&data, &[]);
    let stored = || {
        std::fs::read_dir(data.join("sessions"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    };
    for method in ["GET", "HEAD"] {
        for path in [
            "/",
            "/login",
            "/login?next=/sessions",
            "/cart",
            "/two-tabs",
            "/dashboard",
            "/sessions",
            "/api/count",
        ] {
            let response = demo.request(method, path, None, &[], "");
            assert!(
                [200, 303].contains(&response.status),
                "{method} {path}: {}",
                response.status
            );
            assert_eq!(set_cookie(&response), None, "{method} {path} set a cookie");
        }
    }
    // Nor does logging out, removing from the cart or revoking without a session.
    for path in ["/logout", "/cart/remove", "/sessions/revoke-all"] {
        let response = demo.request("POST", path, None, &[], "item=apple");
        assert_eq!(set_cookie(&response), None, "POST {path} set a cookie");
    }
    assert_eq!(
        stored(),
        0,
        "sessions stored for visitors with nothing in them"
    );

    // A visitor with a session: HEAD neither counts nor consumes the flash it would show.
    let response = demo.request("POST", "/login", None, &[], "email=x@y.z&password=no");
    let cookie = set_cookie(&response).expect("a failed login keeps its error message");
    assert_eq!(stored(), 1);
    let head = demo.request("HEAD", "/login", Some(&cookie), &[], "");
    assert_eq!(head.status, 200);
    assert_eq!(set_cookie(&head), None);
    let page = demo.request("GET", "/login", Some(&cookie), &[], "");
    assert_eq!(
        text_of(&page.body, "error").as_deref(),
        Some("Invalid email or password."),
        "the HEAD left the message for the GET"
    );
    let again = demo.request("GET", "/login", Some(&cookie), &[], "");
    assert_eq!(text_of(&again.body, "error"), None, "shown once");
    assert_eq!(stored(), 1);
}

#[test]
fn forged_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let demo = memory_demo(dir.path(), &[]);
    let cross_site = [
        ("Sec-Fetch-Site", "cross-site"),
        ("Origin", "http://evil.example"),
    ];
    // Login forgery needs no cookie: refused by the origin check, and nothing is stored.
    let forged = demo.request(
        "POST",
        "/login",
        None,
        &cross_site,
        "email=ada@example.com&password=lovelace",
    );
    assert_eq!(forged.status, 403);
    assert_eq!(set_cookie(&forged), None);
    assert!(
        text_of(&forged.body, "refused")
            .unwrap()
            .contains("came from another site"),
        "{}",
        forged.body
    );

    // A visitor with a cart.
    let first = demo.request("POST", "/cart/add", None, &[], "item=apple");
    let cookie = set_cookie(&first).unwrap();
    let page = demo.request("GET", "/cart", Some(&cookie), &[], "");
    let token = csrf_token(&page.body).expect("forms carry a token once a session is stored");
    // Cross-site, even with the token: refused.
    let body = format!("item=apple&csrf_token={token}");
    let response = demo.request("POST", "/cart/add", Some(&cookie), &cross_site, &body);
    assert_eq!(response.status, 403);
    // Same site but without the token, or with another session's token: refused.
    let same_origin = [("Sec-Fetch-Site", "same-origin")];
    let response = demo.request(
        "POST",
        "/cart/add",
        Some(&cookie),
        &same_origin,
        "item=apple",
    );
    assert_eq!(response.status, 403);
    let other = demo.request("POST", "/cart/add", None, &[], "item=fig");
    let other_cookie = set_cookie(&other).unwrap();
    let other_page = demo.request("GET", "/cart", Some(&other_cookie), &[], "");
    let other_token = csrf_token(&other_page.body).unwrap();
    let body = format!("item=apple&csrf_token={other_token}");
    let response = demo.request("POST", "/cart/add", Some(&cookie), &same_origin, &body);
    assert_eq!(response.status, 403);
    let page = demo.request("GET", "/cart", Some(&cookie), &[], "");
    assert_eq!(text_of(&page.body, "qty-apple").as_deref(), Some("1"));
    // With its own token: accepted.
    let body = format!("item=apple&csrf_token={token}");
    let response = demo.request("POST", "/cart/add", Some(&cookie), &same_origin, &body);
    assert_eq!(response.status, 303);
    let page = demo.request("GET", "/cart", Some(&cookie), &[], "");
    assert_eq!(text_of(&page.body, "qty-apple").as_deref(), Some("2"));
    assert!(
        !page.body.contains(r#"id="remove-pear""#),
        "no remove button for an item not in the cart"
    );
}

#[test]
fn the_memory_driver_is_bounded_and_the_panel_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let demo = memory_demo(dir.path(), &[]);
    assert!(
        demo.said("session driver:")
            .contains("at most 10000 sessions"),
        "{:?}",
        demo.banner
    );
    let page = demo.request("GET", "/", None, &[], "").body;
    let bound = text_of(&page, "how-bound").unwrap();
    assert!(bound.contains("at most 10000 sessions"), "{bound}");
    drop(demo);

    // A small bound, filled: old sessions are evicted, the store never holds more.
    let demo = memory_demo(dir.path(), &["--driver", "memory:?capacity=64"]);
    let cookies: Vec<String> = (0..300)
        .map(|_| set_cookie(&demo.request("POST", "/count", None, &[], "")).unwrap())
        .collect();
    let alive = cookies
        .iter()
        .filter(|c| {
            let page = demo.request("GET", "/", Some(c), &[], "").body;
            text_of(&page, "count").as_deref() == Some("1")
        })
        .count();
    assert!(
        (1..=64).contains(&alive),
        "{alive} of 300 sessions kept with a bound of 64"
    );
}

#[test]
fn the_panel_tells_what_a_request_cost() {
    let dir = tempfile::tempdir().unwrap();
    let demo = memory_demo(dir.path(), &[]);
    let page = demo.request("GET", "/", None, &[], "").body;
    assert_eq!(
        text_of(&page, "how-cost").as_deref(),
        Some("no store operations")
    );
    assert!(
        text_of(&page, "how-session")
            .unwrap()
            .starts_with("none stored")
    );
    let cookie = set_cookie(&demo.request("POST", "/count", None, &[], "")).unwrap();
    let page = demo.request("GET", "/", Some(&cookie), &[], "").body;
    assert_eq!(
        text_of(&page, "how-cost").as_deref(),
        Some("1 store operation: get")
    );
    assert!(
        text_of(&page, "how-session")
            .unwrap()
            .starts_with("stored, handle")
    );
    let cookie_text = text_of(&page, "how-cookie").unwrap();
    let value_len = cookie.len() - "demo_session=".len();
    assert!(
        cookie_text.contains(&format!("sent {value_len} bytes")),
        "{cookie_text}"
    );
    assert!(cookie_text.contains("signed session id"), "{cookie_text}");
    // The increment's own cost, as the two-tabs script sees it.
    let token = csrf_token(&page).unwrap();
    let reply = demo.request(
        "POST",
        "/api/count",
        Some(&cookie),
        &[("x-csrf-token", &token)],
        "",
    );
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(json["count"], 2);
    assert_eq!(json["operations"], 2, "a get and a compare-and-swap put");

    // Cookie-only: sealed, and no store at all.
    let demo = Demo::start(dir.path(), &["--driver", "cookie"]);
    let cookie = set_cookie(&demo.request("POST", "/count", None, &[], "")).unwrap();
    let page = demo.request("GET", "/", Some(&cookie), &[], "").body;
    assert!(text_of(&page, "how-cookie").unwrap().contains("sealed"));
    assert_eq!(
        text_of(&page, "how-store").unwrap(),
        "none: cookie-only sessions"
    );
    assert_eq!(text_of(&page, "count").as_deref(), Some("1"));
}

//! Hostile `Cookie` headers over real HTTP, sent as raw bytes on a socket to an axum and an
//! actix-web server: tampered, truncated and garbage session cookies, bytes that are not
//! UTF-8, control characters, hundreds of cookies, headers far past any size limit. Every
//! answer is below 500 (a fresh session, or the framework refusing the header with 400 or
//! 431), the server keeps answering, and a visitor's real session survives garbage sent with
//! it and beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{cart, new_session, on_store, server};
use session_test_support::{HttpResponse, try_raw_http_exchange};

/// One request with `cookies` as its `Cookie` header lines, bytes as given; `None` when the
/// server closed the connection without an answer (allowed only for headers past its size
/// limit).
fn send(port: u16, method: &str, path: &str, cookies: &[Vec<u8>]) -> Option<HttpResponse> {
    let headers: Vec<(&str, &[u8])> = cookies.iter().map(|c| ("Cookie", c.as_slice())).collect();
    try_raw_http_exchange(port, method, path, &headers, b"").ok()
}

/// Hostile variations of a real `name=value` session cookie, each a list of header lines.
fn hostile(real: &str) -> Vec<(String, Vec<Vec<u8>>)> {
    let (name, value) = real.split_once('=').unwrap();
    let mut flipped = value.as_bytes().to_vec();
    let middle = flipped.len() / 2;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    let cookie = |v: &[u8]| [name.as_bytes(), b"=", v].concat();
    let mut cases: Vec<(String, Vec<Vec<u8>>)> = vec![
        ("one character changed".into(), vec![cookie(&flipped)]),
        (
            "truncated".into(),
            vec![cookie(&value.as_bytes()[..value.len() - 5])],
        ),
        (
            "extended".into(),
            vec![cookie(format!("{value}AAAA").as_bytes())],
        ),
        ("empty".into(), vec![cookie(b"")]),
        ("not base64".into(), vec![cookie(b"!!!$$$%%%***")]),
        (
            "bytes that are not UTF-8".into(),
            vec![cookie(&[0xff, 0xfe, 0x80, 0xc3, 0x28])],
        ),
        (
            "control characters".into(),
            vec![cookie(b"\x01\x02\x7f\tabc")],
        ),
        ("no name".into(), vec![value.as_bytes().to_vec()]),
        ("only separators".into(), vec![b";;; ; =;=".to_vec()]),
        (
            "the value quoted".into(),
            vec![cookie(format!("\"{value}\"").as_bytes())],
        ),
        (
            "300 cookies of that name".into(),
            vec![
                (0..300)
                    .map(|i| format!("{name}=garbage{i}"))
                    .collect::<Vec<_>>()
                    .join("; ")
                    .into_bytes(),
            ],
        ),
        (
            "80 cookie headers".into(),
            (0..80)
                .map(|i| cookie(format!("g{i}").as_bytes()))
                .collect(),
        ),
    ];
    for size in [4 << 10, 16 << 10, 64 << 10, 1 << 20] {
        cases.push((
            format!("a {} KiB value", size >> 10),
            vec![cookie(&vec![b'A'; size])],
        ));
    }
    cases
}

/// What garbage gets: an answer below 500, and never a session: at most a new one for a
/// write.
fn garbage_gets_a_fresh_session(framework: &str, driver: &str) {
    let s = server(framework, driver);
    let real = new_session(s.port);
    for (case, lines) in hostile(&real) {
        // Bytes HTTP forbids in a header (controls other than tab) and headers past the
        // server's size limit may be refused by the framework's parser before any layer runs.
        let large = lines.iter().map(Vec::len).sum::<usize>() > 8 << 10;
        let forbidden = lines
            .iter()
            .flatten()
            .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f);
        for (method, path) in [("GET", "/state"), ("POST", "/cart/hostile")] {
            match send(s.port, method, path, &lines) {
                Some(r) => {
                    let (status, headers, body) = (r.status, &r.headers, &r.body);
                    assert!(
                        status < 500,
                        "{framework} on {driver}, {case}, {method} {path}: {status} {headers:?}"
                    );
                    if status == 200 {
                        // Answered as a fresh session: a read shows an empty cart, a write
                        // starts a new session (never the real one's id).
                        assert!(
                            !headers.iter().any(|(_, v)| v.contains(&real)),
                            "{framework} on {driver}, {case}: the real cookie came back {headers:?}"
                        );
                        if method == "GET" {
                            assert!(
                                body.contains("\"cart\":[]"),
                                "{framework} on {driver}, {case}: not a fresh session: {body}"
                            );
                        }
                    } else {
                        assert!(
                            (large || forbidden) && (status == 400 || status == 431),
                            "{framework} on {driver}, {case}, {method} {path}: {status} {headers:?}"
                        );
                    }
                }
                None => assert!(
                    large,
                    "{framework} on {driver}, {case}, {method} {path}: no answer"
                ),
            }
        }
    }
    // The server still answers, and the real session is intact: nothing above reached it.
    let kept = cart(s.port, &real);
    assert_eq!(
        kept.keys().collect::<Vec<_>>(),
        ["first"],
        "{framework} on {driver}"
    );
}

/// Garbage beside the real cookie (before it, after it, in another header line) costs the
/// visitor nothing: the session is read and written as if the garbage were not there.
fn garbage_beside_the_real_cookie_is_ignored(framework: &str, driver: &str) {
    let s = server(framework, driver);
    let real = new_session(s.port);
    let (name, _) = real.split_once('=').unwrap();
    let beside: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "garbage of the same name first",
            vec![format!("{name}=garbage; {real}").into_bytes()],
        ),
        (
            "garbage of the same name after",
            vec![format!("{real}; {name}=garbage").into_bytes()],
        ),
        (
            "garbage in an earlier header line",
            vec![
                [name.as_bytes(), b"=\xff\xfe\x80"].concat(),
                real.as_bytes().to_vec(),
            ],
        ),
        (
            "other cookies around it",
            vec![format!("theme=dark; {real}; _ga=GA1.2.3").into_bytes()],
        ),
    ];
    for (i, (case, lines)) in beside.iter().enumerate() {
        let item = format!("beside{i}");
        let r = send(s.port, "POST", &format!("/cart/{item}"), lines)
            .unwrap_or_else(|| panic!("{framework} on {driver}, {case}: no answer"));
        assert_eq!(r.status, 200, "{framework} on {driver}, {case}: {r:?}");
        // No removal, and no other session: a cookie set here is the visitor's own.
        for set in r.header_values("set-cookie") {
            assert!(
                set.starts_with(&format!("{real};")),
                "{framework} on {driver}, {case}: another cookie was set: {set}"
            );
        }
        let kept = cart(s.port, &real);
        assert!(
            kept.contains_key(&item) && kept.contains_key("first"),
            "{framework} on {driver}, {case}: the push did not reach the session: {kept:?}"
        );
    }
}

#[test]
fn hostile_cookies_on_memory() {
    on_store("memory", |framework, driver| {
        garbage_gets_a_fresh_session(framework, driver);
        garbage_beside_the_real_cookie_is_ignored(framework, driver);
    });
}

#[test]
fn hostile_cookies_on_redis() {
    on_store("redis", |framework, driver| {
        garbage_gets_a_fresh_session(framework, driver);
        garbage_beside_the_real_cookie_is_ignored(framework, driver);
    });
}

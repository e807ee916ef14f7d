//! `contention-server` processes and requests to them, for the tests of this crate.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::Path,
};

use session_test_support::{HttpResponse, Tied, http_exchange, redis::RedisServer};

pub(crate) const SECRET: &str = "a test secret that is at least 32 bytes long";

/// One `contention-server` process.
pub(crate) struct Server {
    process: Tied,
    pub(crate) port: u16,
}

impl Server {
    /// Kills the server at once (SIGKILL), as a crash would.
    pub(crate) fn crash(&mut self) {
        self.process.crash();
    }
}

pub(crate) fn server(framework: &str, driver: &str) -> Server {
    server_with(framework, driver, "merge")
}

pub(crate) fn server_with(framework: &str, driver: &str, concurrent_writes: &str) -> Server {
    server_args(
        framework,
        driver,
        &["--concurrent-writes", concurrent_writes],
    )
}

/// A server with extra arguments (`--header-transport bearer`, ...).
pub(crate) fn server_args(framework: &str, driver: &str, extra: &[&str]) -> Server {
    let args: Vec<String> = [
        "--framework",
        framework,
        "--driver",
        driver,
        "--secret",
        SECRET,
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    let mut process = Tied::spawn(
        Path::new(env!("CARGO_BIN_EXE_contention-server")),
        &args,
        &[],
    );
    let stdout = process.take_stdout().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            panic!("contention-server ({framework}, {driver}) did not start: {line:?}")
        });
    Server { process, port }
}

pub(crate) fn post(port: u16, path: &str, cookie: &str) -> HttpResponse {
    http_exchange(port, "POST", path, &[("Cookie", cookie)], b"")
}

/// A new session, through `port`: its `name=value` cookie.
pub(crate) fn new_session(port: u16) -> String {
    let r = http_exchange(port, "POST", "/cart/first", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    cookie_set_by(&r)
}

/// The `name=value` pair of the first cookie `response` set.
pub(crate) fn cookie_set_by(response: &HttpResponse) -> String {
    response
        .header_values("set-cookie")
        .first()
        .and_then(|c| c.split(';').next())
        .expect("the response sets a cookie")
        .to_owned()
}

/// Runs `check(framework, driver)` under axum and under actix-web, on a store of `kind`
/// (`memory`, `fs`, `sqlite` or `redis`) that lives for the call; both frameworks' servers
/// share it.
pub(crate) fn on_store(kind: &str, check: impl Fn(&str, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let redis = (kind == "redis").then(RedisServer::start);
    let driver = match (kind, &redis) {
        ("memory", _) => "memory".to_owned(),
        ("fs", _) => format!("fs://{}", dir.path().display()),
        ("sqlite", _) => format!("sqlite://{}/sessions.db", dir.path().display()),
        (_, Some(redis)) => redis.url(),
        (other, None) => panic!("no store kind {other:?}"),
    };
    for framework in ["axum", "actix"] {
        check(framework, &driver);
    }
}

/// The session's cart, read through `port`: each item with the number of times it is in it
/// (empty for a fresh session: the cookie names none).
pub(crate) fn cart(port: u16, cookie: &str) -> BTreeMap<String, usize> {
    let r = http_exchange(port, "GET", "/state", &[("Cookie", cookie)], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let state: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let mut times = BTreeMap::new();
    for item in state["cart"].as_array().unwrap() {
        *times.entry(item.as_str().unwrap().to_owned()).or_default() += 1;
    }
    times
}

/// Checks a cart made by [`new_session`] and then the `pushes` (each item with whether it was
/// answered `200`): no item in it twice, none that was never pushed, every push answered `200`
/// in it. A push answered otherwise may or may not be in it.
pub(crate) fn assert_pushes_kept_once<'a>(
    cart: &BTreeMap<String, usize>,
    pushes: impl IntoIterator<Item = (&'a str, bool)>,
) {
    let twice: Vec<_> = cart.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied twice: {twice:?}");
    let sent: BTreeMap<&str, bool> = pushes.into_iter().collect();
    for item in cart.keys().filter(|item| *item != "first") {
        assert!(sent.contains_key(item.as_str()), "{item} was never pushed");
    }
    let lost: Vec<_> = sent
        .iter()
        .filter(|(item, answered)| **answered && !cart.contains_key(**item))
        .collect();
    assert!(lost.is_empty(), "answered 200 but not kept: {lost:?}");
    assert!(cart.contains_key("first"), "the session's first item");
}

/// A config string for a fresh bucket on this test binary's moto (S3), reached through `port`
/// (moto's own, or a proxy's in front of it).
pub(crate) fn s3_config(port: u16) -> String {
    format!(
        "s3://{}?endpoint=http://127.0.0.1:{port}&region=us-east-1&access_key_id=test&secret_access_key=test&operation_timeout=90s",
        session_test_support::moto().bucket()
    )
}

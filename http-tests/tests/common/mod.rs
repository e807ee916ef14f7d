//! `contention-server` processes and requests to them, for the tests of this crate.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
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
    let set = r.header_values("set-cookie");
    set.first()
        .and_then(|c| c.split(';').next())
        .expect("a new session sets its cookie")
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

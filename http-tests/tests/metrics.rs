//! The session layer's metrics as an operator scrapes them: `contention-server` processes
//! (axum and actix-web) export them in Prometheus's text format on `GET /metrics`, and the
//! counts must match the requests sent, per driver (memory, fs, SQLite, Redis), with Redis's
//! local cache hits and a Redis outage's errors counted too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{new_session, post, server};
use session_test_support::{http_exchange, redis::RedisServer};

/// The value of the sample `name{labels}` in a Prometheus text exposition (0 when absent);
/// `labels` must all be present, in any order, others may be too.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

fn metrics(port: u16) -> String {
    let r = http_exchange(port, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// `increments` sequential `/incr` requests on one session, then checks what the server counted.
fn counts_match_requests(framework: &str, driver: &str, label: &str) -> String {
    let server = server(framework, driver);
    let cookie = new_session(server.port);
    let increments = 20;
    for _ in 0..increments {
        let r = post(server.port, "/incr", &cookie);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let text = metrics(server.port);
    let at = |name, labels: &[(&str, &str)]| sample(&text, name, labels);
    let context = format!("{framework} on {driver}:\n{text}");
    assert_eq!(
        at("session_loads_total", &[("outcome", "new")]),
        1.0,
        "{context}"
    );
    assert_eq!(
        at("session_loads_total", &[("outcome", "found")]),
        increments as f64,
        "{context}"
    );
    assert_eq!(
        at("session_commits_total", &[("outcome", "create")]),
        1.0,
        "{context}"
    );
    assert_eq!(
        at("session_commits_total", &[("outcome", "update")]),
        increments as f64,
        "{context}"
    );
    let gets = at(
        "session_store_operations_total",
        &[("driver", label), ("operation", "get"), ("outcome", "ok")],
    );
    assert_eq!(gets, increments as f64, "one read per request: {context}");
    // The latency summary's count, one sample per operation.
    let timed = at(
        "session_store_operation_duration_seconds_count",
        &[("driver", label), ("operation", "get")],
    );
    assert_eq!(timed, increments as f64, "{context}");
    assert_eq!(at("session_errors_total", &[]), 0.0, "{context}");
    assert!(
        text.contains("# HELP session_loads_total Sessions loaded, by outcome"),
        "described: {context}"
    );
    text
}

#[test]
fn memory() {
    for framework in ["axum", "actix"] {
        counts_match_requests(framework, "memory", "memory");
    }
}

#[test]
fn fs() {
    let dir = tempfile::tempdir().unwrap();
    for framework in ["axum", "actix"] {
        let config = format!("fs://{}/{framework}", dir.path().display());
        counts_match_requests(framework, &config, "fs");
    }
}

#[test]
fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    for framework in ["axum", "actix"] {
        let config = format!("sqlite://{}/{framework}.db", dir.path().display());
        counts_match_requests(framework, &config, "sqlite");
    }
}

/// Redis: the counts, the local cache's hits (a session this process wrote is read back from
/// it), then errors while Redis is down: answered 503 and counted by kind.
#[test]
fn redis_with_cache_hits_and_an_outage() {
    let mut redis = RedisServer::start();
    for framework in ["axum", "actix"] {
        let text = counts_match_requests(framework, &redis.url(), "redis");
        let hits = sample(
            &text,
            "session_cache_lookups_total",
            &[("driver", "redis"), ("result", "hit")],
        );
        assert!(hits >= 1.0, "{framework}: no cache hit:\n{text}");
    }

    let server = server("axum", &format!("{}?retries=2", redis.url()));
    let cookie = new_session(server.port);
    redis.kill();
    let r = post(server.port, "/incr", &cookie);
    assert_eq!(r.status, 503, "{}", r.body);
    let text = metrics(server.port);
    let errors = sample(
        &text,
        "session_errors_total",
        &[("during", "load"), ("kind", "store_unavailable")],
    );
    assert_eq!(errors, 1.0, "{text}");
    let retries = sample(
        &text,
        "session_store_retries_total",
        &[("driver", "redis"), ("operation", "get")],
    );
    assert_eq!(
        retries, 2.0,
        "two more attempts of the failed read:\n{text}"
    );
    let failed = sample(
        &text,
        "session_store_operations_total",
        &[("driver", "redis"), ("outcome", "unavailable")],
    );
    assert!(failed >= 1.0, "{text}");
}

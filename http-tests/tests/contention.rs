//! Concurrent clients sharing one session cookie, over real HTTP, against axum and actix-web
//! servers (`contention-server`) on every driver with compare-and-swap, in one server process
//! and in two processes sharing one store: every increment and every cart push must be kept,
//! and every response must be a success.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::BTreeSet, io::Write, net::TcpStream, thread, time::Duration};

use common::{new_session, post, server, server_with};
use session_test_support::{
    http_exchange,
    redis::{RedisCluster, RedisServer},
    sql::{MariaDbServer, PostgresServer, fresh_table, shared_mariadb, shared_postgres},
};

/// The session's data as JSON, through `port`.
fn state(port: u16, cookie: &str) -> serde_json::Value {
    let r = http_exchange(port, "GET", "/state", &[("Cookie", cookie)], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// `clients` threads, client `c` talking to `ports[c % ports.len()]`, each sending `rounds`
/// requests to `path(c, round)` with the one cookie. Returns every response that was not a
/// success, and the bodies of the successes.
fn hammer(
    ports: &[u16],
    cookie: &str,
    clients: usize,
    rounds: usize,
    path: fn(usize, usize) -> String,
) -> (Vec<String>, Vec<String>) {
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let port = ports[c % ports.len()];
            let cookie = cookie.to_owned();
            thread::spawn(move || {
                let (mut failures, mut bodies) = (Vec::new(), Vec::new());
                for r in 0..rounds {
                    let response = post(port, &path(c, r), &cookie);
                    if response.status == 200 {
                        bodies.push(response.body);
                    } else {
                        failures.push(format!("{}: {}", response.status, response.body));
                    }
                }
                (failures, bodies)
            })
        })
        .collect();
    let (mut failures, mut bodies) = (Vec::new(), Vec::new());
    for t in threads {
        let (f, b) = t.join().unwrap();
        failures.extend(f);
        bodies.extend(b);
    }
    (failures, bodies)
}

fn incr(_: usize, _: usize) -> String {
    "/incr".into()
}

fn incr_exact(_: usize, _: usize) -> String {
    "/incr-exact".into()
}

fn push(c: usize, r: usize) -> String {
    format!("/cart/{c}-{r}")
}

fn count(_: usize, _: usize) -> String {
    "/count".into()
}

/// The whole check on servers at `ports` (sharing one store): 8 x 50 and 32 x 20 increments
/// through `update`, 16 x 10 through `update_and_save` (each answer a distinct count), and
/// 8 x 25 cart pushes.
fn check(ports: &[u16], what: &str) {
    let cookie = new_session(ports[0]);

    let (failures, _) = hammer(ports, &cookie, 8, 50, incr);
    assert!(failures.is_empty(), "{what}, 8 x 50: {failures:?}");
    assert_eq!(state(ports[0], &cookie)["visits"], 400, "{what}, 8 x 50");

    let (failures, _) = hammer(ports, &cookie, 32, 20, incr);
    assert!(failures.is_empty(), "{what}, 32 x 20: {failures:?}");
    assert_eq!(
        state(ports[ports.len() - 1], &cookie)["visits"],
        1040,
        "{what}, 32 x 20"
    );

    let (failures, bodies) = hammer(ports, &cookie, 16, 10, incr_exact);
    assert!(failures.is_empty(), "{what}, update_and_save: {failures:?}");
    let seen: BTreeSet<u64> = bodies.iter().map(|b| b.parse().unwrap()).collect();
    assert_eq!(
        seen,
        (1041..=1200).collect::<BTreeSet<u64>>(),
        "{what}: update_and_save answers every count exactly once"
    );
    assert_eq!(
        state(ports[0], &cookie)["visits"],
        1200,
        "{what}: update_and_save"
    );

    let (failures, _) = hammer(ports, &cookie, 8, 25, push);
    assert!(failures.is_empty(), "{what}, cart: {failures:?}");
    let state = state(ports[0], &cookie);
    let cart: BTreeSet<&str> = state["cart"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(cart.len(), 201, "{what}: every pushed item is in the cart");
    assert_eq!(
        state["cart"].as_array().unwrap().len(),
        201,
        "{what}: none twice"
    );
    assert_eq!(state["visits"], 1200, "{what}: the counter kept its value");
}

/// Both frameworks, each alone on a fresh store from `driver()`.
fn one_process_each(driver: impl Fn() -> String) {
    for framework in ["axum", "actix"] {
        let config = driver();
        let s = server(framework, &config);
        check(&[s.port], &format!("{framework} on {config}"));
    }
}

/// An axum and an actix-web process sharing one store.
fn two_processes(config: &str) {
    let (a, b) = (server("axum", config), server("actix", config));
    check(&[a.port, b.port], &format!("two processes on {config}"));
}

#[test]
fn memory() {
    one_process_each(|| "memory".into());
}

#[test]
fn fs() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    one_process_each(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("fs://{}/{i}", dir.path().display())
    });
}

#[test]
fn fs_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    two_processes(&format!("fs://{}", dir.path().display()));
}

#[test]
fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    one_process_each(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("sqlite://{}/{i}.db", dir.path().display())
    });
}

#[test]
fn sqlite_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    two_processes(&format!("sqlite://{}/sessions.db", dir.path().display()));
}

#[test]
fn redis() {
    let redis = RedisServer::start();
    one_process_each(|| redis.url());
}

#[test]
fn redis_two_processes() {
    let redis = RedisServer::start();
    two_processes(&redis.url());
}

#[test]
fn redis_cluster() {
    let cluster = RedisCluster::start(3);
    one_process_each(|| cluster.url());
}

#[test]
fn redis_cluster_two_processes() {
    let cluster = RedisCluster::start(3);
    two_processes(&cluster.url());
}

/// A fresh table of the shared PostgreSQL/MariaDB server per call.
fn sql_table(url: &str, what: &str) -> String {
    format!("{url}?table={}", fresh_table(what))
}

#[test]
fn postgres() {
    one_process_each(|| sql_table(&shared_postgres().url(), "one"));
}

#[test]
fn postgres_two_processes() {
    two_processes(&sql_table(&shared_postgres().url(), "two"));
}

/// With the read cache on, two processes on one table: each one's cache learns of the
/// other's commits, and compare-and-swap reloads what it missed.
#[test]
fn postgres_cached_two_processes() {
    two_processes(&format!(
        "{}&local_cache=16777216",
        sql_table(&shared_postgres().url(), "cached")
    ));
}

#[test]
fn mysql() {
    one_process_each(|| sql_table(&shared_mariadb().url(), "one"));
}

#[test]
fn mysql_two_processes() {
    two_processes(&sql_table(&shared_mariadb().url(), "two"));
}

#[test]
fn read_then_write_handlers_never_fail_and_never_go_backwards() {
    // `data` then `set` (the handler style of most session libraries): per-key last writer
    // wins, so increments may be lost, but no request fails.
    for framework in ["axum", "actix"] {
        let s = server(framework, "memory");
        let cookie = new_session(s.port);
        let (failures, _) = hammer(&[s.port], &cookie, 8, 50, count);
        assert!(failures.is_empty(), "{framework}: {failures:?}");
        let visits = state(s.port, &cookie)["visits"].as_u64().unwrap();
        assert!((1..=400).contains(&visits), "{framework}: {visits}");
    }
}

/// With `ConcurrentWrites::Exclusive`, read-then-write handlers are exact, in one process
/// and across two sharing one store (through the store lease).
fn exclusive_is_exact(config: &str) {
    let (a, b) = (
        server_with("axum", config, "exclusive"),
        server_with("actix", config, "exclusive"),
    );
    let cookie = new_session(a.port);
    let (failures, _) = hammer(&[a.port], &cookie, 8, 25, count);
    assert!(failures.is_empty(), "one process on {config}: {failures:?}");
    assert_eq!(
        state(a.port, &cookie)["visits"],
        200,
        "one process on {config}"
    );
    let (failures, _) = hammer(&[a.port, b.port], &cookie, 8, 25, count);
    assert!(
        failures.is_empty(),
        "two processes on {config}: {failures:?}"
    );
    assert_eq!(
        state(b.port, &cookie)["visits"],
        400,
        "two processes on {config}"
    );
}

#[test]
fn exclusive_on_fs() {
    let dir = tempfile::tempdir().unwrap();
    exclusive_is_exact(&format!("fs://{}", dir.path().display()));
}

#[test]
fn exclusive_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exclusive_is_exact(&format!("sqlite://{}/sessions.db", dir.path().display()));
}

#[test]
fn exclusive_on_postgres() {
    exclusive_is_exact(&sql_table(&shared_postgres().url(), "exclusive"));
}

#[test]
fn exclusive_on_mysql() {
    exclusive_is_exact(&sql_table(&shared_mariadb().url(), "exclusive"));
}

#[test]
fn exclusive_on_redis() {
    let redis = RedisServer::start();
    exclusive_is_exact(&redis.url());
}

/// 64 clients on one session, split over two processes sharing one store: no request fails
/// on a conflict, no increment is lost.
fn sixty_four_clients(config: &str) {
    let (a, b) = (server("axum", config), server("actix", config));
    let cookie = new_session(a.port);
    let (failures, _) = hammer(&[a.port, b.port], &cookie, 64, 8, incr);
    assert!(failures.is_empty(), "64 clients on {config}: {failures:?}");
    assert_eq!(
        state(b.port, &cookie)["visits"],
        512,
        "64 clients on {config}"
    );
}

#[test]
fn sixty_four_clients_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    sixty_four_clients(&format!("sqlite://{}/sessions.db", dir.path().display()));
}

#[test]
fn sixty_four_clients_on_postgres() {
    sixty_four_clients(&sql_table(&shared_postgres().url(), "sixty_four"));
}

#[test]
fn sixty_four_clients_on_mysql() {
    sixty_four_clients(&sql_table(&shared_mariadb().url(), "sixty_four"));
}

#[test]
fn sixty_four_clients_on_redis() {
    let redis = RedisServer::start();
    sixty_four_clients(&redis.url());
}

/// 16 clients on one session, half of whose requests hang up after sending (a closed tab, a
/// proxy's timeout) at varying points of the server's work: the session still answers every
/// later request, every answered increment is kept and none is applied twice. Exercises the
/// cancellation of commits that lead or wait in a session's write combining over real
/// connections (the exact interleaving that once stalled a session is reproduced in-process:
/// `combining::a_commit_cancelled_as_it_is_handed_the_lead_passes_it_on`).
fn clients_hanging_up(config: &str) {
    for framework in ["axum", "actix"] {
        let s = server(framework, config);
        let (port, cookie) = (s.port, new_session(s.port));
        let threads: Vec<_> = (0..16)
            .map(|c| {
                let cookie = cookie.clone();
                thread::spawn(move || {
                    let (mut sent, mut answered) = (0u64, 0u64);
                    for r in 0..40 {
                        sent += 1;
                        if (c + r) % 2 == 0 {
                            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                            write!(
                                stream,
                                "POST /incr HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nContent-Length: 0\r\n\r\n"
                            )
                            .unwrap();
                            // Hang up without reading, 0-400 µs after sending.
                            thread::sleep(Duration::from_micros(((c * 37 + r * 101) % 400) as u64));
                            drop(stream);
                        } else {
                            let response = post(port, "/incr", &cookie);
                            assert_eq!(response.status, 200, "{framework}: {}", response.body);
                            answered += 1;
                        }
                    }
                    (sent, answered)
                })
            })
            .collect();
        let (mut sent, mut answered) = (0, 0);
        for t in threads {
            let (s, a) = t.join().unwrap();
            sent += s;
            answered += a;
        }
        // Each of these would time out (30 s) if the session's writes had stalled.
        for _ in 0..20 {
            let response = post(port, "/incr", &cookie);
            assert_eq!(response.status, 200, "{framework}: {}", response.body);
        }
        let visits = state(port, &cookie)["visits"].as_u64().unwrap();
        assert!(
            (answered + 20..=sent + 20).contains(&visits),
            "{framework} on {config}: {visits} visits, {answered} answered of {sent} sent, then 20"
        );
    }
}

#[test]
fn clients_hanging_up_on_memory() {
    clients_hanging_up("memory");
}

#[test]
fn clients_hanging_up_on_redis() {
    let redis = RedisServer::start();
    clients_hanging_up(&redis.url());
}

/// Redis killed under a running server: requests get `503` with `Retry-After` (never a 500 or
/// a hang), and once Redis is back the same session works again without restarting the app.
#[test]
fn a_killed_store_is_503_then_recovers() {
    killed_store_is_503_then_recovers(
        RedisServer::start(),
        false,
        RedisServer::url,
        RedisServer::kill,
        RedisServer::restart,
    );
}

/// The same with PostgreSQL stopped under a running server.
#[test]
fn a_killed_postgres_is_503_then_recovers() {
    killed_store_is_503_then_recovers(
        PostgresServer::start(),
        true,
        PostgresServer::url,
        PostgresServer::kill,
        PostgresServer::restart,
    );
}

/// The same with MariaDB killed under a running server.
#[test]
fn a_killed_mysql_is_503_then_recovers() {
    killed_store_is_503_then_recovers(
        MariaDbServer::start(),
        false,
        MariaDbServer::url,
        MariaDbServer::kill,
        MariaDbServer::restart,
    );
}

/// A store killed under a running server: requests get `503` with `Retry-After` (never a 500
/// or a hang), and once the store is back the same session works again without restarting
/// the app.
/// `keeps_data`: the store's data outlives the kill (the test Redis keeps none, the test
/// MariaDB flushes its log once a second and is killed with SIGKILL; PostgreSQL stops cleanly).
fn killed_store_is_503_then_recovers<S>(
    mut store: S,
    keeps_data: bool,
    url: fn(&S) -> String,
    kill: fn(&mut S),
    restart: fn(&mut S),
) {
    let config = url(&store);
    let s = server("axum", &config);
    let cookie = new_session(s.port);
    assert_eq!(post(s.port, "/incr", &cookie).status, 200);
    kill(&mut store);
    for path in ["/incr", "/state"] {
        let r = http_exchange(
            s.port,
            if path == "/state" { "GET" } else { "POST" },
            path,
            &[("Cookie", &cookie)],
            b"",
        );
        assert_eq!(r.status, 503, "{path} with the store down: {}", r.body);
        assert_eq!(r.header_values("retry-after"), ["1"], "{path}");
    }
    restart(&mut store);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = post(s.port, "/incr", &cookie);
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "while reconnecting: {}", r.body);
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery within 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if keeps_data {
        // Both increments answered 200 (a commit answered 503 may still have reached the
        // store just before it went down): the session survived the outage.
        let visits = state(s.port, &cookie)["visits"].as_u64().unwrap();
        assert!(visits >= 2, "the session survived the outage: {visits}");
    }
}

/// An S3 bucket (moto's): conditional writes (`If-Match` on the ETag) carry compare-and-swap.
#[test]
fn s3_two_processes() {
    two_processes(&common::s3_config(session_test_support::moto().port));
}

//! A store stopped and started again (or cut off for a while) while clients keep changing a
//! session through two server processes (axum and actix-web): every request is answered,
//! with a success or, while the store is down, `503` and `Retry-After` (never a `500`, never a
//! hang); both processes recover without a restart; every change answered with a success is
//! kept, and no change is applied twice, not even one whose answer the outage cut off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use common::{assert_pushes_kept_once, new_session, post, server, server_with};
use session_test_support::{
    HttpProxy, ProxyMode,
    redis::{RedisCluster, RedisServer},
    sql::{MariaDbServer, PostgresServer},
};

const CLIENTS: usize = 8;

/// One push to the session's cart, as a client saw it.
struct Push {
    item: String,
    status: u16,
    retry_after: bool,
    body: String,
}

/// How the clients' changes are kept from overwriting one another.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sessions {
    /// One session, changed through both processes: the store's compare-and-swap merges them.
    Shared,
    /// For a store without compare-and-swap (Cloudflare KV), which keeps the last of two writes
    /// that cross: one session per process, whose requests run one at a time
    /// (`ConcurrentWrites::Exclusive`, which on such a store holds within each process).
    PerProcessExclusive,
}

/// Clients push distinct items to a session's cart, through servers on `config`, while
/// `store` (whose data outlives a stop) is stopped for a second and started again (`what`
/// names it in the test's output).
fn pushes_survive_a_store_outage<S>(
    what: &str,
    mut store: S,
    config: &str,
    sessions: Sessions,
    stop_store: fn(&mut S),
    start_store: fn(&mut S),
) {
    let (servers, cookies): ([_; 2], Vec<String>) = match sessions {
        Sessions::Shared => {
            let servers = [server("axum", config), server("actix", config)];
            let cookie = new_session(servers[0].port);
            (servers, vec![cookie.clone(), cookie])
        }
        Sessions::PerProcessExclusive => {
            let servers = ["axum", "actix"].map(|f| server_with(f, config, "exclusive"));
            let cookies = servers.iter().map(|s| new_session(s.port)).collect();
            (servers, cookies)
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let restarted = Arc::new(AtomicBool::new(false));
    let recovered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let port = servers[c % servers.len()].port;
            let cookie = cookies[c % servers.len()].clone();
            let (stop, restarted, recovered) = (stop.clone(), restarted.clone(), recovered.clone());
            thread::spawn(move || {
                let mut pushes = Vec::new();
                let mut counted = false;
                while !stop.load(Ordering::Relaxed) {
                    let item = format!("{c}-{}", pushes.len());
                    let after_restart = restarted.load(Ordering::Relaxed);
                    let response = post(port, &format!("/cart/{item}"), &cookie);
                    if response.status == 200 && after_restart && !counted {
                        counted = true;
                        recovered.fetch_add(1, Ordering::Relaxed);
                    }
                    if response.status != 200 {
                        // The store is down: no need to spin.
                        thread::sleep(Duration::from_millis(10));
                    }
                    pushes.push(Push {
                        item,
                        status: response.status,
                        retry_after: response.header_values("retry-after") == ["1"],
                        body: response.body,
                    });
                }
                (port, pushes)
            })
        })
        .collect();

    thread::sleep(Duration::from_millis(500));
    stop_store(&mut store);
    thread::sleep(Duration::from_secs(1));
    start_store(&mut store);
    restarted.store(true, Ordering::Relaxed);
    // Every client sees a success again, through both processes, without restarting them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while recovered.load(Ordering::Relaxed) < CLIENTS && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let clients: Vec<(u16, Vec<Push>)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let pushes = || clients.iter().flat_map(|(_, pushes)| pushes);
    assert_eq!(
        recovered.load(Ordering::Relaxed),
        CLIENTS,
        "every client is answered with a success again within 30 s of the restart; the last \
         answers of each client: {:?}",
        clients
            .iter()
            .map(|(port, pushes)| {
                let last = pushes.last();
                (port, last.map(|p| p.status), last.map(|p| p.body.as_str()))
            })
            .collect::<Vec<_>>()
    );

    for push in pushes() {
        assert!(
            push.status == 200 || (push.status == 503 && push.retry_after),
            "{}: {} {} (only a success, or 503 with Retry-After: 1)",
            push.item,
            push.status,
            push.body
        );
    }
    for (port, pushes) in &clients {
        assert!(
            pushes.iter().any(|p| p.status == 503),
            "the server on port {port} answered 503 while the store was down"
        );
        assert_eq!(
            pushes.last().map(|p| p.status),
            Some(200),
            "the server on port {port} answers successes once the store is back"
        );
    }

    // Each session's cart, as each process reads it, holds the pushes sent to that session.
    let mut kept = 0;
    for (i, cookie) in cookies.iter().enumerate() {
        if cookies[..i].contains(cookie) {
            continue;
        }
        let cart = common::cart(servers[0].port, cookie);
        assert_eq!(
            cart,
            common::cart(servers[1].port, cookie),
            "both read one cart"
        );
        let sent = clients
            .iter()
            .enumerate()
            .filter(|(c, _)| cookies[c % servers.len()] == *cookie)
            .flat_map(|(_, (_, pushes))| pushes);
        assert_pushes_kept_once(&cart, sent.map(|p| (p.item.as_str(), p.status == 200)));
        kept += cart.len() - 1;
    }
    let answered = pushes().filter(|p| p.status == 200).count();
    eprintln!(
        "{what}: {} pushes, {answered} answered 200 (all kept), {} answered 503, {kept} kept in all",
        pushes().count(),
        pushes().filter(|p| p.status == 503).count(),
    );
}

#[test]
fn postgres_stopped_under_load() {
    let store = PostgresServer::start();
    let config = store.url();
    pushes_survive_a_store_outage(
        "PostgreSQL",
        store,
        &config,
        Sessions::Shared,
        PostgresServer::kill,
        PostgresServer::restart,
    );
}

/// With the read cache: what each process cached before the outage does not hide the commits
/// it missed, nor make it apply a change twice.
#[test]
fn postgres_with_local_cache_stopped_under_load() {
    let store = PostgresServer::start();
    let config = format!("{}?local_cache=16777216", store.url());
    pushes_survive_a_store_outage(
        "PostgreSQL with local_cache",
        store,
        &config,
        Sessions::Shared,
        PostgresServer::kill,
        PostgresServer::restart,
    );
}

/// MariaDB (the MySQL driver), shut down cleanly under load.
#[test]
fn mysql_stopped_under_load() {
    let store = MariaDbServer::start();
    let config = store.url();
    pushes_survive_a_store_outage(
        "MariaDB",
        store,
        &config,
        Sessions::Shared,
        MariaDbServer::stop,
        MariaDbServer::restart,
    );
}

/// Redis (its local cache on, as by default, kept by client tracking) with an append-only
/// file, stopped under load.
#[test]
fn redis_stopped_under_load() {
    let store = RedisServer::start_persistent();
    let config = store.url();
    pushes_survive_a_store_outage(
        "Redis",
        store,
        &config,
        Sessions::Shared,
        RedisServer::kill,
        RedisServer::restart,
    );
}

/// A Redis Cluster (three primaries, each with an append-only file) stopped and started again
/// whole under load: the cluster client finds the nodes and their slots again.
#[test]
fn redis_cluster_stopped_under_load() {
    let store = RedisCluster::start_persistent(3);
    let config = store.url();
    pushes_survive_a_store_outage(
        "Redis Cluster",
        store,
        &config,
        Sessions::Shared,
        RedisCluster::kill,
        RedisCluster::restart,
    );
}

/// An S3 bucket (moto's, which keeps its objects only while it runs) cut off for a second:
/// a proxy between the servers and moto closes every connection without an answer.
#[test]
fn s3_unreachable_under_load() {
    let proxy = HttpProxy::start(session_test_support::moto().port);
    let config = common::s3_config(proxy.port);
    pushes_survive_a_store_outage(
        "S3",
        proxy,
        &config,
        Sessions::Shared,
        |proxy| proxy.set_mode(ProxyMode::Cut),
        |proxy| proxy.set_mode(ProxyMode::Forward),
    );
}

/// Cloudflare KV through its REST API (Miniflare's workerd with a real KV binding), cut off by
/// a proxy that drops every connection. KV has no compare-and-swap: each process changes a
/// session of its own, one request at a time (with concurrent commits, even in one process,
/// requests that do not overlap keep the last write: the concurrency guide's table).
#[test]
fn cloudflare_kv_unreachable_under_load() {
    use session_test_support::{KV_ACCOUNT, KV_NAMESPACE, KV_TOKEN};
    let (miniflare, port) = session_test_support::miniflare_kv_rest();
    let proxy = HttpProxy::start(port);
    let config = format!(
        "cloudflare-kv://{KV_ACCOUNT}/{KV_NAMESPACE}?api_token={KV_TOKEN}&base_url=http://127.0.0.1:{}/client/v4",
        proxy.port
    );
    pushes_survive_a_store_outage(
        "Cloudflare KV",
        (proxy, miniflare),
        &config,
        Sessions::PerProcessExclusive,
        |(proxy, _)| proxy.set_mode(ProxyMode::Cut),
        |(proxy, _)| proxy.set_mode(ProxyMode::Forward),
    );
}

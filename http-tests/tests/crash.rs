//! One of two server processes on one store killed (SIGKILL, as a crash or an out-of-memory
//! kill would) while clients of one session push to its cart through both: nothing the dead
//! process left behind (a write half done, a lock, its place in a session's write combining)
//! stops the other process, which answers every request with a success; every push answered
//! `200` is kept, once; a push the crash cut off landed at most once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use common::{new_session, server_args};
use session_test_support::{
    http_exchange, redis::RedisServer, sql::fresh_table, sql::shared_postgres, try_http_exchange,
};

const CLIENTS: usize = 8;

/// What one push came to.
#[derive(Debug, PartialEq)]
enum Outcome {
    Answered(u16),
    /// The connection failed: the process died with the request in flight.
    CutOff,
}

/// The test on `config`, the servers started with `extra` arguments.
fn a_crash_leaves_the_store_usable(config: &str, extra: &[&str]) {
    let mut servers = [
        server_args("axum", config, extra),
        server_args("actix", config, extra),
    ];
    let survivor = servers[1].port;
    let cookie = new_session(survivor);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            // Even clients talk to the process that crashes.
            let port = servers[c % 2].port;
            let (cookie, stop) = (cookie.clone(), stop.clone());
            thread::spawn(move || {
                let mut pushes = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let item = format!("{c}-{}", pushes.len());
                    let path = format!("/cart/{item}");
                    let sent = try_http_exchange(port, "POST", &path, &[("Cookie", &cookie)], b"");
                    let outcome = match sent {
                        Ok(response) => Outcome::Answered(response.status),
                        Err(_) => Outcome::CutOff,
                    };
                    let cut_off = outcome == Outcome::CutOff;
                    pushes.push((item, outcome, port));
                    if cut_off {
                        break;
                    }
                }
                pushes
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    servers[0].crash();
    // The survivor goes on alone.
    thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let pushes: Vec<(String, Outcome, u16)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();

    for (item, outcome, port) in &pushes {
        match outcome {
            Outcome::Answered(status) => assert_eq!(*status, 200, "{item} through port {port}"),
            Outcome::CutOff => assert_ne!(*port, survivor, "{item}: the survivor failed"),
        }
    }
    let after_crash = pushes
        .iter()
        .filter(|(_, _, port)| *port == survivor)
        .count();
    assert!(after_crash > 0, "the survivor answered");

    let r = http_exchange(survivor, "GET", "/state", &[("Cookie", &cookie)], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let state: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let mut cart = BTreeMap::<String, usize>::new();
    for item in state["cart"].as_array().unwrap() {
        *cart.entry(item.as_str().unwrap().to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = cart.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied twice: {twice:?}");
    let sent: BTreeMap<&str, &Outcome> = pushes.iter().map(|(i, o, _)| (i.as_str(), o)).collect();
    for item in cart.keys().filter(|i| *i != "first") {
        assert!(sent.contains_key(item.as_str()), "{item} was never sent");
    }
    let lost: Vec<_> = pushes
        .iter()
        .filter(|(item, outcome, _)| *outcome == Outcome::Answered(200) && !cart.contains_key(item))
        .map(|(item, _, _)| item)
        .collect();
    assert!(lost.is_empty(), "answered 200 but not kept: {lost:?}");
    eprintln!(
        "{}: {} pushes, {} cut off by the crash, {} kept",
        config.split(':').next().unwrap_or_default(),
        pushes.len(),
        pushes
            .iter()
            .filter(|(_, o, _)| *o == Outcome::CutOff)
            .count(),
        cart.len() - 1
    );
}

#[test]
fn fs_process_crash() {
    let dir = tempfile::tempdir().unwrap();
    a_crash_leaves_the_store_usable(&format!("fs://{}", dir.path().display()), &[]);
}

#[test]
fn sqlite_process_crash() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("sqlite://{}/sessions.db", dir.path().display());
    a_crash_leaves_the_store_usable(&config, &[]);
}

#[test]
fn redis_process_crash() {
    let redis = RedisServer::start();
    a_crash_leaves_the_store_usable(&redis.url(), &[]);
}

/// With `ConcurrentWrites::Exclusive`, the crashed process held leases on the session: the
/// survivor's requests wait for them to end (a 1 s lease here; 30 s by default), then go on.
#[test]
fn redis_process_crash_with_exclusive_sessions() {
    let redis = RedisServer::start();
    let extra = [
        "--concurrent-writes",
        "exclusive",
        "--exclusive-lease",
        "1000",
    ];
    a_crash_leaves_the_store_usable(&redis.url(), &extra);
}

#[test]
fn postgres_process_crash() {
    let config = format!("{}?table={}", shared_postgres().url(), fresh_table("crash"));
    a_crash_leaves_the_store_usable(&config, &[]);
}

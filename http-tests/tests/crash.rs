//! One of two server processes on one store killed (SIGKILL, as a crash or an out-of-memory
//! kill would) while clients of one session push to its cart through both: nothing the dead
//! process left behind (a write half done, a lock, its place in a session's write combining)
//! stops the other process, which answers every request with a success; every push answered
//! `200` is kept, once; a push the crash cut off landed at most once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use common::{assert_pushes_kept_once, cart, new_session, server_args};
use session_test_support::{
    redis::RedisServer, sql::fresh_table, sql::shared_postgres, try_http_exchange,
};

const CLIENTS: usize = 8;

/// One push to the session's cart, as a client saw it.
struct Push {
    item: String,
    /// The status it was answered with; `None` when the connection failed (the process died
    /// with the request in flight, or before it).
    status: Option<u16>,
    /// Sent once the crash had happened.
    after_crash: bool,
}

/// The test on `config`, the servers started with `extra` arguments.
fn a_crash_leaves_the_store_usable(config: &str, extra: &[&str]) {
    let mut servers = [
        server_args("axum", config, extra),
        server_args("actix", config, extra),
    ];
    let (doomed, survivor) = (servers[0].port, servers[1].port);
    let cookie = new_session(survivor);
    let (stop, crashed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            // Even clients talk to the process that crashes.
            let port = servers[c % 2].port;
            let (cookie, stop, crashed) = (cookie.clone(), stop.clone(), crashed.clone());
            thread::spawn(move || {
                let mut pushes = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let item = format!("{c}-{}", pushes.len());
                    let after_crash = crashed.load(Ordering::Relaxed);
                    let path = format!("/cart/{item}");
                    let sent = try_http_exchange(port, "POST", &path, &[("Cookie", &cookie)], b"");
                    let status = sent.ok().map(|response| response.status);
                    pushes.push(Push {
                        item,
                        status,
                        after_crash,
                    });
                    if status.is_none() {
                        break;
                    }
                }
                (port, pushes)
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    servers[0].crash();
    crashed.store(true, Ordering::Relaxed);
    // The survivor goes on alone.
    thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let clients: Vec<(u16, Vec<Push>)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let pushes = || clients.iter().flat_map(|(_, pushes)| pushes);

    for (port, pushes) in &clients {
        for push in pushes.iter().filter(|p| p.status.is_some()) {
            assert_eq!(push.status, Some(200), "{} through port {port}", push.item);
        }
        let last = pushes.last().map(|p| p.status);
        if *port == doomed {
            assert_eq!(
                last,
                Some(None),
                "a client of the killed process felt the crash"
            );
        } else {
            assert!(
                pushes.iter().all(|p| p.status == Some(200)),
                "the survivor failed a request"
            );
            assert!(
                pushes.iter().any(|p| p.after_crash),
                "the survivor answered after the crash"
            );
        }
    }

    let cart = cart(survivor, &cookie);
    assert_pushes_kept_once(
        &cart,
        pushes().map(|p| (p.item.as_str(), p.status == Some(200))),
    );
    let cut_off = pushes().filter(|p| p.status.is_none()).count();
    eprintln!(
        "{}: {} pushes, {cut_off} cut off by the crash, {} kept",
        config.split(':').next().unwrap_or_default(),
        pushes().count(),
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

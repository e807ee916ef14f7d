//! An app moved from one store to another while visitors keep their sessions
//! (`SessionStorageBuilder::migrate_from`), over real HTTP: sessions made on an fs directory
//! are served, after the switch, by an axum and an actix-web process on Redis; concurrent
//! clients change them through both processes without losing a change, each session leaves
//! the old store, and a logout or "log out everywhere" reaches sessions that never moved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::BTreeMap, thread};

use common::{cart, cookie_set_by, new_session, post, server, server_args};
use session_test_support::redis::RedisServer;

const SESSIONS: usize = 5;
const CLIENTS_PER_SESSION: usize = 4;
const PUSHES: usize = 10;

#[test]
fn sessions_move_to_the_new_store_as_visitors_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let old = format!("fs://{}", dir.path().display());
    let redis = RedisServer::start();

    // Before: the app on the fs directory.
    let (carts, ada) = {
        let before = server("axum", &old);
        let carts: Vec<String> = (0..SESSIONS)
            .map(|s| {
                let cookie = new_session(before.port);
                for i in 0..3 {
                    let r = post(before.port, &format!("/cart/old-{s}-{i}"), &cookie);
                    assert_eq!(r.status, 200, "{}", r.body);
                }
                cookie
            })
            .collect();
        // Ada logs in on two devices; she also has a cart on each.
        let ada: Vec<String> = (0..2)
            .map(|_| {
                let cookie = new_session(before.port);
                let r = post(before.port, "/login/ada", &cookie);
                assert_eq!(r.status, 200, "{}", r.body);
                cookie_set_by(&r)
            })
            .collect();
        (carts, ada)
    };

    // After: two processes on Redis, moving sessions from the fs directory.
    let extra = ["--migrate-from", old.as_str()];
    let after = [
        server_args("axum", &redis.url(), &extra),
        server_args("actix", &redis.url(), &extra),
    ];
    // The last session logs out before it moves: it must not come back from the old store.
    let (logged_out, carts) = carts.split_last().unwrap();
    let r = post(after[0].port, "/logout", logged_out);
    assert_eq!(r.status, 200, "{}", r.body);
    let threads: Vec<_> = carts
        .iter()
        .enumerate()
        .flat_map(|(s, cookie)| (0..CLIENTS_PER_SESSION).map(move |c| (s, c, cookie.clone())))
        .map(|(s, c, cookie)| {
            let port = after[c % after.len()].port;
            thread::spawn(move || {
                for i in 0..PUSHES {
                    let r = post(port, &format!("/cart/new-{s}-{c}-{i}"), &cookie);
                    assert_eq!(r.status, 200, "session {s}, client {c}: {}", r.body);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    let old_only = server("axum", &old);
    for (s, cookie) in carts.iter().enumerate() {
        // What it had, and every push, each once.
        let mut expected: BTreeMap<String, usize> = [("first".to_owned(), 1)].into();
        expected.extend((0..3).map(|i| (format!("old-{s}-{i}"), 1)));
        for c in 0..CLIENTS_PER_SESSION {
            expected.extend((0..PUSHES).map(|i| (format!("new-{s}-{c}-{i}"), 1)));
        }
        for server in &after {
            assert_eq!(cart(server.port, cookie), expected, "session {s}");
        }
        assert!(
            cart(old_only.port, cookie).is_empty(),
            "session {s} left the old store"
        );
    }

    for port in [after[0].port, after[1].port, old_only.port] {
        assert!(
            cart(port, logged_out).is_empty(),
            "a logged-out session stays logged out"
        );
    }

    // Log out everywhere, from a new process: the request moves the session it comes with,
    // and the other device's session, never moved, is found in the old store.
    let r = post(after[1].port, "/logout-everywhere", &ada[0]);
    assert_eq!((r.status, r.body.as_str()), (200, "2"), "both devices");
    for cookie in &ada {
        for port in [after[0].port, after[1].port, old_only.port] {
            assert!(
                cart(port, cookie).is_empty(),
                "a revoked session stays revoked"
            );
        }
    }
}

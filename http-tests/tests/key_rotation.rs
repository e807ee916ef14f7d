//! Key rotation over real HTTP, two server processes on one store (a rolling deploy): a
//! server that signs with a new secret and still verifies the old one accepts an old cookie,
//! writes the change and re-signs the cookie (same id) even though the change keeps the idle
//! deadline, after which the browser's cookie is current and changes send none again.

mod common;

use common::{SECRET, new_session, on_store, post, server, server_args};

const NEW_SECRET: &str = "the rotated-in secret, also 32 bytes or more";

fn id_of(cookie: &str) -> &str {
    cookie.split_once('.').map_or(cookie, |(id, _)| id)
}

fn an_old_cookie_is_re_signed_by_a_change(framework: &str, driver: &str) {
    let old = server(framework, driver);
    let cookie = new_session(old.port);
    let r = post(old.port, "/incr", &cookie);
    assert_eq!((r.status, r.body.as_str()), (200, "1"));
    assert!(
        r.header_values("set-cookie").is_empty(),
        "{framework}: current cookie"
    );

    let rotated = server_args(
        framework,
        driver,
        &["--secret", NEW_SECRET, "--previous-secret", SECRET],
    );
    let r = post(rotated.port, "/incr", &cookie);
    assert_eq!((r.status, r.body.as_str()), (200, "2"), "{framework}");
    let set = r.header_values("set-cookie");
    let resigned = set
        .first()
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| {
            panic!(
                "{framework}: an old-key cookie is re-signed: {:?}",
                r.headers
            )
        })
        .to_owned();
    assert_ne!(resigned, cookie, "{framework}: a new signature");
    assert_eq!(id_of(&resigned), id_of(&cookie), "{framework}: the same id");

    // The re-signed cookie is current: the next change is written and sends none.
    let r = post(rotated.port, "/incr", &resigned);
    assert_eq!((r.status, r.body.as_str()), (200, "3"), "{framework}");
    assert!(
        r.header_values("set-cookie").is_empty(),
        "{framework}: {:?}",
        r.headers
    );
    // A server that knows only the old secret refuses the new signature: a fresh session.
    let r = post(old.port, "/incr", &resigned);
    assert_eq!((r.status, r.body.as_str()), (200, "1"), "{framework}");
}

#[test]
fn rotation_on_sqlite() {
    on_store("sqlite", an_old_cookie_is_re_signed_by_a_change);
}

#[test]
fn rotation_on_redis() {
    on_store("redis", an_old_cookie_is_re_signed_by_a_change);
}

//! The request-forgery token bound to the session, and the origin check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use session_kit_core::{DynamicData, Keyring, SessionStorage, origin_allows};
use session_kit_memory::MemoryDriver;

const OLD: &str = "the old secret, at least thirty-two bytes long";
const NEW: &str = "the new secret, at least thirty-two bytes long";

fn storage(driver: &Arc<MemoryDriver>, secrets: &[&str]) -> SessionStorage<DynamicData> {
    SessionStorage::builder(driver.clone())
        .keyring(Keyring::from_secrets(secrets).unwrap())
        .build()
        .unwrap()
}

fn cookie(set_cookie: &session_kit_core::SetCookie) -> String {
    set_cookie.as_str().split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_token_is_masked_per_call_and_verifies_on_later_requests() {
    let driver = Arc::new(MemoryDriver::new());
    let storage = storage(&driver, &[NEW]);

    // A login form for a visitor with no session yet: issuing the token stores the session.
    let session = storage.get_session(None);
    let (a, b) = (
        session.csrf_token().await.unwrap(),
        session.csrf_token().await.unwrap(),
    );
    assert_ne!(a, b, "masked anew");
    // Checks are against the stored session: from the next request on.
    assert!(!session.verify_csrf(&a).await.unwrap());
    let set_cookie = storage
        .commit_session(&session)
        .await
        .unwrap()
        .expect("stored");
    let c = cookie(&set_cookie);

    let next = storage.get_session(Some(&c));
    assert!(next.verify_csrf(&a).await.unwrap());
    assert!(next.verify_csrf(&b).await.unwrap());

    // Not another session's, not tampered, not garbage.
    let other = storage.get_session(None);
    let theirs = other.csrf_token().await.unwrap();
    storage.commit_session(&other).await.unwrap();
    assert!(!next.verify_csrf(&theirs).await.unwrap());
    let mut tampered = a.clone().into_bytes();
    tampered[50] = if tampered[50] == b'A' { b'B' } else { b'A' };
    assert!(
        !next
            .verify_csrf(std::str::from_utf8(&tampered).unwrap())
            .await
            .unwrap()
    );
    for garbage in ["", "x", &a[..85], &format!("{a}A"), "!!!!"] {
        assert!(!next.verify_csrf(garbage).await.unwrap(), "{garbage:?}");
    }

    // A session that is not stored has no valid token.
    let fresh = storage.get_session(None);
    assert!(!fresh.verify_csrf(&a).await.unwrap());
}

#[tokio::test]
async fn login_regenerates_the_token_and_rotation_keeps_it() {
    let driver = Arc::new(MemoryDriver::new());
    let before = storage(&driver, &[OLD]);
    let session = before.get_session(None);
    let anonymous = session.csrf_token().await.unwrap();
    let c = cookie(&before.commit_session(&session).await.unwrap().unwrap());

    // Login: a new id, and a token for it issued in the same request.
    let session = before.get_session(Some(&c));
    assert!(session.verify_csrf(&anonymous).await.unwrap());
    session.regenerate().await.unwrap();
    let logged_in = session.csrf_token().await.unwrap();
    let c = cookie(&before.commit_session(&session).await.unwrap().unwrap());
    let next = before.get_session(Some(&c));
    assert!(next.verify_csrf(&logged_in).await.unwrap());
    assert!(
        !next.verify_csrf(&anonymous).await.unwrap(),
        "bound to the old id"
    );

    // A newer key signs; tokens of the older one still verify while it is listed.
    let during = storage(&driver, &[NEW, OLD]);
    assert!(
        during
            .get_session(Some(&c))
            .verify_csrf(&logged_in)
            .await
            .unwrap()
    );
    let after = storage(&driver, &[NEW]);
    assert!(
        !after
            .get_session(Some(&c))
            .verify_csrf(&logged_in)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn cookie_only_sessions_have_tokens_too() {
    let storage = SessionStorage::<DynamicData>::cookie_only()
        .keyring(Keyring::from_secrets([NEW]).unwrap())
        .build()
        .unwrap();
    let session = storage.get_session(None);
    let token = session.csrf_token().await.unwrap();
    let c = cookie(&storage.commit_session(&session).await.unwrap().unwrap());
    assert!(
        storage
            .get_session(Some(&c))
            .verify_csrf(&token)
            .await
            .unwrap()
    );
}

#[test]
fn the_origin_check() {
    let host = Some(&b"app.example.com"[..]);
    let trusted = ["https://admin.example.com".to_owned()];
    // (method, Sec-Fetch-Site, Origin, allowed)
    type Case<'a> = (&'a str, Option<&'a [u8]>, Option<&'a [u8]>, bool);
    let cases: [Case; 12] = [
        (
            "GET",
            Some(b"cross-site"),
            Some(b"https://evil.example"),
            true,
        ),
        (
            "POST",
            Some(b"cross-site"),
            Some(b"https://evil.example"),
            false,
        ),
        (
            "POST",
            Some(b"same-site"),
            Some(b"https://blog.example.com"),
            false,
        ),
        (
            "POST",
            Some(b"same-site"),
            Some(b"https://admin.example.com"),
            true,
        ),
        (
            "POST",
            Some(b"same-origin"),
            Some(b"https://app.example.com"),
            true,
        ),
        ("POST", Some(b"none"), None, true),
        ("DELETE", Some(b"cross-site"), None, false),
        ("POST", None, Some(b"https://app.example.com"), true),
        ("POST", None, Some(b"https://evil.example"), false),
        ("POST", None, Some(b"null"), false),
        ("PUT", None, Some(b"https://admin.example.com"), true),
        ("POST", None, None, true),
    ];
    for (method, site, origin, allowed) in cases {
        assert_eq!(
            origin_allows(method, site, origin, host, &trusted),
            allowed,
            "{method} {site:?} {origin:?}"
        );
    }
}

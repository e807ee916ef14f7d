//! Session tokens in a request header (`HeaderTransport`), beside cookies, through the
//! sans-IO calls and `http` header maps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, header};
use session_kit_core::{DynamicData, HeaderTransport, Keyring, ResponseHeaders, SessionStorage};
use session_kit_memory::MemoryDriver;

const OLD: &str = "the old secret, at least thirty-two bytes long";
const NEW: &str = "the new secret, at least thirty-two bytes long";

fn storage(driver: &Arc<MemoryDriver>, secrets: &[&str]) -> SessionStorage<DynamicData> {
    SessionStorage::builder(driver.clone())
        .keyring(Keyring::from_secrets(secrets).unwrap())
        .header_transport(HeaderTransport::bearer())
        .build()
        .unwrap()
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

fn token_of(response: &ResponseHeaders) -> Option<String> {
    response.token().map(|(name, value)| {
        assert_eq!(name.as_str(), "session-token");
        value.to_owned()
    })
}

#[tokio::test]
async fn a_token_round_trips_and_answers_through_the_header_only() {
    let driver = Arc::new(MemoryDriver::new());
    let storage = storage(&driver, &[NEW]);

    // A request with neither cookie nor token (a login endpoint): both ways, one value.
    let session = storage.get_session_from_headers(&HeaderMap::new());
    session.insert("user", "ada").await.unwrap();
    let response = storage.commit_response(&session).await.unwrap();
    let token = token_of(&response).expect("a new token");
    let set_cookie = response.set_cookie().expect("and a cookie for browsers");
    assert_eq!(set_cookie.token(), Some(token.as_str()));

    // The API client sends the token: the same session, answered without cookies, and
    // without the token again while it stays the same.
    let session = storage.get_session_from_headers(&bearer(&token));
    assert_eq!(
        session.get::<String>("user").await.unwrap().as_deref(),
        Some("ada")
    );
    session.insert("visits", 1).await.unwrap();
    let response = storage.commit_response(&session).await.unwrap();
    assert!(response.is_empty(), "{response:?}");

    // Login on an API: a new id, so a new token.
    let session = storage.get_session_from_headers(&bearer(&token));
    session.regenerate().await.unwrap();
    let response = storage.commit_response(&session).await.unwrap();
    assert!(response.set_cookie().is_none());
    let rotated = token_of(&response).expect("a new token after regenerate");
    assert_ne!(rotated, token);
    assert!(
        storage
            .get_session_from_headers(&bearer(&token))
            .is_new()
            .await
            .unwrap()
    );

    // Logout: the header answers empty, and the token is dead.
    let session = storage.get_session_from_headers(&bearer(&rotated));
    session.destroy().await;
    let response = storage.commit_response(&session).await.unwrap();
    assert_eq!(token_of(&response).as_deref(), Some(""));
    assert!(
        storage
            .get_session_from_token(Some(&rotated))
            .is_new()
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn cookies_keep_working_and_bad_tokens_give_fresh_sessions() {
    let driver = Arc::new(MemoryDriver::new());
    let storage = storage(&driver, &[NEW]);
    let session = storage.get_session(None);
    session.insert("n", 1).await.unwrap();
    let cookie = storage.commit_session(&session).await.unwrap().unwrap();

    // A browser's cookie: a change keeps it current (no header at all), a new id is
    // answered with Set-Cookie only.
    let mut headers = HeaderMap::new();
    let pair = cookie.as_str().split(';').next().unwrap().to_owned();
    headers.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
    let session = storage.get_session_from_headers(&headers);
    session.insert("n", 2).await.unwrap();
    let response = storage.commit_response(&session).await.unwrap();
    assert!(response.is_empty(), "{response:?}");
    let session = storage.get_session_from_headers(&headers);
    session.regenerate().await.unwrap();
    let response = storage.commit_response(&session).await.unwrap();
    assert!(response.token().is_none());
    assert!(response.set_cookie().is_some());

    // Forged, truncated, other schemes: fresh sessions, never errors.
    let token = cookie.token().unwrap();
    for bad in [
        format!("{token}x"),
        token[..20].to_owned(),
        "garbage".into(),
        format!("{}.AAAA", token.split('.').next().unwrap()),
    ] {
        let session = storage.get_session_from_headers(&bearer(&bad));
        assert!(session.is_new().await.unwrap(), "{bad}");
    }
    let mut basic = HeaderMap::new();
    basic.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    );
    assert!(
        storage
            .get_session_from_headers(&basic)
            .is_new()
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_token_signed_with_an_older_key_is_accepted_and_re_signed() {
    let driver = Arc::new(MemoryDriver::new());
    let before = storage(&driver, &[OLD]);
    let session = before.get_session(None);
    session.insert("user", "ada").await.unwrap();
    let old_token = before
        .commit_session(&session)
        .await
        .unwrap()
        .unwrap()
        .token()
        .unwrap()
        .to_owned();

    let during = storage(&driver, &[NEW, OLD]);
    let session = during.get_session_from_headers(&bearer(&old_token));
    assert_eq!(
        session.get::<String>("user").await.unwrap().as_deref(),
        Some("ada")
    );
    let response = during.commit_response(&session).await.unwrap();
    let new_token = token_of(&response).expect("re-signed with the newest key");
    assert_ne!(new_token, old_token);

    let after = storage(&driver, &[NEW]);
    assert!(
        !after
            .get_session_from_token(Some(&new_token))
            .is_new()
            .await
            .unwrap()
    );
    assert!(
        after
            .get_session_from_token(Some(&old_token))
            .is_new()
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn cookie_only_sessions_travel_sealed_in_a_custom_header() {
    let storage = SessionStorage::<DynamicData>::cookie_only()
        .keyring(Keyring::from_secrets([NEW]).unwrap())
        .header_transport(HeaderTransport::header("X-Session").unwrap())
        .build()
        .unwrap();
    let session = storage.get_session_from_headers(&HeaderMap::new());
    session.insert("cart", vec!["book"]).await.unwrap();
    let response = storage.commit_response(&session).await.unwrap();
    let (name, sealed) = response.token().unwrap();
    assert_eq!(name.as_str(), "x-session");
    let mut headers = HeaderMap::new();
    headers.insert("x-session", HeaderValue::from_str(sealed).unwrap());
    let session = storage.get_session_from_headers(&headers);
    assert_eq!(
        session.get::<Vec<String>>("cart").await.unwrap(),
        Some(vec!["book".to_owned()])
    );
}

#[test]
fn bearer_values_are_parsed_strictly() {
    let t = HeaderTransport::bearer();
    assert_eq!(t.token_in(b"Bearer abc.def"), Some("abc.def"));
    assert_eq!(t.token_in(b"bearer   abc.def  "), Some("abc.def"));
    assert_eq!(t.token_in(b"Bearer "), None);
    assert_eq!(t.token_in(b"Basic abc"), None);
    assert_eq!(t.token_in(b"abc.def"), None);
    assert_eq!(t.token_in(b"Bearer \xff\xfe"), None);
    assert!(HeaderTransport::header("bad header").is_err());
}

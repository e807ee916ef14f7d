//! Hostile `Cookie` headers through the axum layer, explored at random (proptest): any bytes
//! `http` accepts in a header, alone or beside the visitor's real cookie, in one header or
//! several. Garbage gets a fresh session and never a 5xx; garbage beside a valid cookie never
//! costs the visitor their session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::{Router, body::Body, routing::get};
use http::{HeaderValue, Request, StatusCode, header};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use session_kit_axum::{Session, SessionFailure, SessionLayer};
use session_kit_core::{Keyring, SessionStorage};
use session_kit_memory::MemoryDriver;
use session_test_support::hostile;
use tower::ServiceExt;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Visits {
    count: u64,
}

async fn count(session: Session<Visits>) -> Result<String, SessionFailure> {
    Ok(session
        .update(|v| {
            v.count += 1;
            v.count
        })
        .await?
        .to_string())
}

fn router(cookie_only: bool) -> Router {
    let builder = if cookie_only {
        SessionStorage::<Visits>::cookie_only()
    } else {
        SessionStorage::builder(Arc::new(MemoryDriver::new()))
    };
    let storage = builder
        .keyring(Keyring::from_secrets(["axum hostile cookies secret, 32+ bytes"]).unwrap())
        .build()
        .unwrap();
    Router::new()
        .route("/count", get(count))
        .layer(SessionLayer::new(storage))
}

/// `GET /count` with these `Cookie` headers: the status, the body, and the new cookie's
/// `name=value` if one was set.
async fn visit(router: &Router, cookies: &[Vec<u8>]) -> (StatusCode, String, Option<String>) {
    let mut request = Request::get("/count");
    for cookie in cookies {
        request = request.header(header::COOKIE, HeaderValue::from_bytes(cookie).unwrap());
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let set = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap(), set)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn garbage_cookies_never_cost_a_session_nor_answer_5xx(
        garbage in hostile::cookie_headers("session"),
        cookie_only in any::<bool>(),
        joined in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let router = router(cookie_only);

            // Garbage alone: a fresh session.
            let (status, body, set) = visit(&router, &garbage).await;
            prop_assert_eq!(status, StatusCode::OK);
            prop_assert_eq!(body, "1");
            let cookie = set.expect("a fresh session sets its cookie");

            // Garbage before the visitor's cookie, in one header or as headers of their own:
            // the visitor's session, counted on.
            let with_cookie = hostile::before_cookie(&garbage, &cookie, joined);
            let (status, body, _) = visit(&router, &with_cookie).await;
            prop_assert_eq!(status, StatusCode::OK);
            prop_assert_eq!(body, "2");
            Ok(())
        })?;
    }
}

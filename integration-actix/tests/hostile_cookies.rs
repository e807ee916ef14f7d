//! Hostile `Cookie` headers through the actix-web middleware, explored at random (proptest):
//! any bytes a header may hold, alone or beside the visitor's real cookie, in one header or
//! several. Garbage gets a fresh session and never a 5xx; garbage beside a valid cookie never
//! costs the visitor their session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use actix_web::{
    App,
    http::{StatusCode, header},
    test as actix_test, web,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use session_kit_actix::{Session, SessionFailure, SessionMiddleware};
use session_kit_core::{Keyring, SessionStorage};
use session_kit_memory::MemoryDriver;
use session_test_support::hostile;

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

fn storage(cookie_only: bool) -> SessionStorage<Visits> {
    let builder = if cookie_only {
        SessionStorage::<Visits>::cookie_only()
    } else {
        SessionStorage::builder(Arc::new(MemoryDriver::new()))
    };
    builder
        .keyring(Keyring::from_secrets(["actix hostile cookies secret, 32+ bytes"]).unwrap())
        .build()
        .unwrap()
}

/// The status, the body, and the new cookie's `name=value` (if one was set) of `GET /count`
/// with these `Cookie` headers, through `app`.
macro_rules! visit {
    ($app:expr, $cookies:expr) => {{
        let mut request = actix_test::TestRequest::get().uri("/count");
        for cookie in $cookies {
            let value = header::HeaderValue::from_bytes(cookie).unwrap();
            request = request.append_header((header::COOKIE, value));
        }
        let response = actix_test::call_service($app, request.to_request()).await;
        let status = response.status();
        let set = response
            .headers()
            .get_all(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap())
            .find(|v| !v.contains("Max-Age=0"))
            .map(|v| v.split(';').next().unwrap().to_owned());
        let body = String::from_utf8(actix_test::read_body(response).await.to_vec()).unwrap();
        (status, body, set)
    }};
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn garbage_cookies_never_cost_a_session_nor_answer_5xx(
        garbage in hostile::cookie_headers("session"),
        cookie_only in any::<bool>(),
        joined in any::<bool>(),
    ) {
        actix_web::rt::System::new().block_on(async {
            let app = actix_test::init_service(
                App::new()
                    .wrap(SessionMiddleware::new(storage(cookie_only)))
                    .route("/count", web::get().to(count)),
            )
            .await;

            // Garbage alone: a fresh session.
            let (status, body, set) = visit!(&app, &garbage);
            prop_assert_eq!(status, StatusCode::OK);
            prop_assert_eq!(body, "1");
            let cookie = set.expect("a fresh session sets its cookie");

            // Garbage before the visitor's cookie, in one header or as headers of their own:
            // the visitor's session, counted on.
            let with_cookie = hostile::before_cookie(&garbage, &cookie, joined);
            let (status, body, _) = visit!(&app, &with_cookie);
            prop_assert_eq!(status, StatusCode::OK);
            prop_assert_eq!(body, "2");
            Ok(())
        })?;
    }
}

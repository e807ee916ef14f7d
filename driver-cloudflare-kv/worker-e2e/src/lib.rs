//! Sessions in a Rust Cloudflare Worker: the binding driver over `env.kv("SESSIONS")`, the
//! sans-IO session API around the Worker's request and response.
//!
//! Routes: `GET /count` increments a per-visitor counter; `POST /login?user=NAME` regenerates
//! the session id and sets a flash message; `GET /whoami` shows the user and the flash (once);
//! `POST /logout` destroys the session.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use session_kit_cloudflare_kv::WorkerKvDriver;
use session_kit_core::{CookieOptions, Keyring, SessionStorage};
use worker::{Context, Env, Request, Response, Result, event};

#[derive(Clone, Default, Serialize, Deserialize)]
struct Visit {
    count: u64,
    user: Option<String>,
}

fn storage(env: &Env) -> Result<SessionStorage<Visit>> {
    let driver = WorkerKvDriver::new(env.kv("SESSIONS")?, "").map_err(err)?;
    let secret = env.secret("SESSION_SECRET").map(|s| s.to_string());
    let secret = secret.or_else(|_| env.var("SESSION_SECRET").map(|v| v.to_string()))?;
    SessionStorage::builder(Arc::new(driver))
        .keyring(Keyring::from_secrets([secret]).map_err(err)?)
        // Plain HTTP on loopback in the test; a deployed Worker keeps the Secure default.
        .cookie(
            CookieOptions::new()
                .name("sid")
                .insecure_for_local_development(),
        )
        .build()
        .map_err(err)
}

fn err(e: impl std::fmt::Display) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let storage = storage(&env)?;
    let cookie = req.headers().get("cookie")?;
    let session = storage.get_session(cookie.as_deref());
    let path = req.path();
    let mut response = match (req.method(), path.as_str()) {
        (worker::Method::Get, "/count") => {
            let count = session
                .update(|v| {
                    v.count += 1;
                    v.count
                })
                .await
                .map_err(err)?;
            let new = session.is_new().await.map_err(err)?;
            Response::from_json(&serde_json::json!({ "count": count, "new": new }))?
        }
        (worker::Method::Post, "/login") => {
            let url = req.url()?;
            let user = url
                .query_pairs()
                .find(|(k, _)| k == "user")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            session.regenerate().await.map_err(err)?;
            let name = user.clone();
            session
                .update(move |v| v.user = Some(name.clone()))
                .await
                .map_err(err)?;
            session
                .flash("notice", &format!("welcome, {user}"))
                .await
                .map_err(err)?;
            Response::ok("logged in")?
        }
        (worker::Method::Get, "/whoami") => {
            let user = session.read(|v| v.user.clone()).await.map_err(err)?;
            let notice: Option<String> = session.take_flash("notice").await.map_err(err)?;
            Response::from_json(&serde_json::json!({ "user": user, "notice": notice }))?
        }
        (worker::Method::Post, "/logout") => {
            let set_cookie = storage.destroy_session(&session).await.map_err(err)?;
            let mut response = Response::ok("logged out")?;
            response
                .headers_mut()
                .append("set-cookie", set_cookie.as_str())?;
            return Ok(response);
        }
        _ => return Response::error("not found", 404),
    };
    if let Some(set_cookie) = storage.commit_session(&session).await.map_err(err)? {
        response
            .headers_mut()
            .append("set-cookie", set_cookie.as_str())?;
    }
    Ok(response)
}

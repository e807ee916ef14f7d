//! The seeds' flows through the sans-IO API: a visit counter, a login that fails with a flash
//! message, a login that succeeds (regenerating the id), a protected page, and logout.
//!
//! `cargo run -p session-kit --example flows` (driver from `SESSION_DRIVER`, default
//! `fs:target/example-sessions`; try `SESSION_DRIVER=memory`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use session_kit::{CookieOptions, Keyring, Session, SessionError, SessionStorage, SetCookie};

#[derive(Clone, Default, Serialize, Deserialize)]
struct AppSession {
    visits: u64,
    user: Option<String>,
}

/// A stand-in for the browser: it keeps the cookie the server sets.
#[derive(Default)]
struct Browser {
    cookie: Option<String>,
}

impl Browser {
    fn receive(&mut self, set_cookie: Option<SetCookie>) {
        if let Some(set) = set_cookie {
            let pair = set
                .as_str()
                .split(';')
                .next()
                .unwrap_or_default()
                .to_owned();
            self.cookie = (!set.is_removal()).then_some(pair);
        }
    }
}

type Store = SessionStorage<AppSession>;

async fn home(storage: &Store, browser: &mut Browser) -> Result<String, SessionError> {
    let session = storage.get_session(browser.cookie.as_deref());
    let visits = session
        .update(|s| {
            s.visits += 1;
            s.visits
        })
        .await?;
    browser.receive(storage.commit_session(&session).await?);
    Ok(format!("GET /           -> you visited {visits} time(s)"))
}

async fn login(
    storage: &Store,
    browser: &mut Browser,
    user: &str,
    password: &str,
) -> Result<String, SessionError> {
    let session = storage.get_session(browser.cookie.as_deref());
    let page = if password == "hunter2" {
        session.regenerate().await?; // a new id on privilege change
        let user = user.to_owned();
        session.update(move |s| s.user = Some(user.clone())).await?;
        "302 -> /dashboard"
    } else {
        session.flash("error", "Invalid email/password").await?;
        "302 -> /login"
    };
    browser.receive(storage.commit_session(&session).await?);
    Ok(format!("POST /login     -> {page}"))
}

async fn login_page(storage: &Store, browser: &mut Browser) -> Result<String, SessionError> {
    let session = storage.get_session(browser.cookie.as_deref());
    let error: Option<String> = session.take_flash("error").await?;
    browser.receive(storage.commit_session(&session).await?);
    Ok(format!(
        "GET /login      -> form, error: {}",
        error.as_deref().unwrap_or("(none)")
    ))
}

async fn dashboard(storage: &Store, browser: &mut Browser) -> Result<String, SessionError> {
    let session: Session<AppSession> = storage.get_session(browser.cookie.as_deref());
    let user = session.read(|s| s.user.clone()).await?;
    browser.receive(storage.commit_session(&session).await?);
    Ok(match user {
        Some(user) => format!("GET /dashboard  -> welcome, {user}"),
        None => "GET /dashboard  -> 302 -> /login (anonymous)".to_owned(),
    })
}

async fn logout(storage: &Store, browser: &mut Browser) -> Result<String, SessionError> {
    let session = storage.get_session(browser.cookie.as_deref());
    browser.receive(Some(storage.destroy_session(&session).await?));
    Ok("POST /logout    -> 302 -> /".to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config =
        std::env::var("SESSION_DRIVER").unwrap_or_else(|_| "fs:target/example-sessions".into());
    let driver = session_kit::open(&config).await?;
    let keyring = match std::env::var("SESSION_SECRET") {
        Ok(secret) => Keyring::from_secrets([secret])?,
        Err(_) => {
            eprintln!(
                "SESSION_SECRET is not set: using a random key (sessions end when this process does)"
            );
            Keyring::generate_for_development()?
        }
    };
    let storage = SessionStorage::<AppSession>::builder(Arc::clone(&driver))
        .keyring(keyring)
        .cookie(
            CookieOptions::new()
                .name("sid")
                .insecure_for_local_development(),
        )
        .build()?;
    println!("driver: {} ({config})\n", driver.name());

    let mut browser = Browser::default();
    println!("{}", home(&storage, &mut browser).await?);
    println!("{}", home(&storage, &mut browser).await?);
    println!("{}", dashboard(&storage, &mut browser).await?);
    println!(
        "{}",
        login(&storage, &mut browser, "ada@example.com", "wrong").await?
    );
    println!("{}", login_page(&storage, &mut browser).await?);
    println!("{}", login_page(&storage, &mut browser).await?);
    let before = browser.cookie.clone();
    println!(
        "{}",
        login(&storage, &mut browser, "ada@example.com", "hunter2").await?
    );
    println!(
        "                   (session id regenerated: {})",
        before != browser.cookie
    );
    println!("{}", dashboard(&storage, &mut browser).await?);
    println!("{}", home(&storage, &mut browser).await?);
    println!("{}", logout(&storage, &mut browser).await?);
    println!("{}", dashboard(&storage, &mut browser).await?);
    Ok(())
}

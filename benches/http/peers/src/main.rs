//! `session-http-bench-peers <app> <addr> [backend-url]`: one peer's server with the benchmark
//! handlers. Apps: tower-memory, tower-redis, tower-sqlite, tower-postgres, tower-mysql,
//! tower-file, actix-cookie, actix-redis. The SQL stores take `URL#table` (a fresh table per run). Each is set up the way its crate's documentation shows.
//! `session-http-bench-peers --in-process <app> <requests>`: tower-memory or actix-cookie called
//! without sockets (see `in_process.rs`).
//!
//! Handlers (identical in every app): `GET /count` reads the integer `count` from the session,
//! increments it and stores it; `GET /read` only reads it. `GET /incr` is the same handler as
//! `/count`: these crates have no other way to increment. `GET /static` never touches the
//! session (a route under the layer that serves none).

use std::net::SocketAddr;

type Fail = Box<dyn std::error::Error + Send + Sync>;

async fn actix_count(session: actix_session::Session) -> String {
    let n: u64 = session.get("count").unwrap_or_default().unwrap_or(0);
    let _ = session.insert("count", n + 1);
    (n + 1).to_string()
}

async fn actix_read(session: actix_session::Session) -> String {
    let n: u64 = session.get("count").unwrap_or_default().unwrap_or(0);
    n.to_string()
}

/// The actix-web app with actix-session's middleware over `store`.
macro_rules! actix_app {
    ($store:expr) => {
        actix_web::App::new()
            .wrap(
                actix_session::SessionMiddleware::builder($store, actix_web::cookie::Key::from(&[7u8; 64]))
                    .cookie_secure(false)
                    .build(),
            )
            .route("/count", actix_web::web::get().to(actix_count))
            .route("/incr", actix_web::web::get().to(actix_count))
            .route("/read", actix_web::web::get().to(actix_read))
            .route("/static", actix_web::web::get().to(|| async { "1" }))
    };
}

#[path = "../../in_process.rs"]
mod in_process;

fn main() -> Result<(), Fail> {
    let args: Vec<String> = std::env::args().collect();
    if let (Some("--in-process"), Some(app), Some(n)) = (args.get(1).map(String::as_str), args.get(2), args.get(3)) {
        let n: usize = n.parse()?;
        return match app.as_str() {
            "tower-memory" => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(in_process::measure_axum(tower::router(tower_sessions::MemoryStore::default()), false, n)),
            "actix-cookie" => actix_web::rt::System::new().block_on(async move {
                use actix_session::storage::CookieSessionStore;
                in_process::measure_actix(actix_web::test::init_service(actix_app!(CookieSessionStore::default())).await, false, n).await
            }),
            other => Err(format!("{other} is not an in-process app").into()),
        };
    }
    let (app, addr) = match (args.get(1), args.get(2)) {
        (Some(app), Some(addr)) => (app.clone(), addr.parse::<SocketAddr>()?),
        _ => return Err("usage: session-http-bench-peers <app> <addr> [backend-url] | --in-process <app> <requests>".into()),
    };
    let backend = args.get(3).cloned().unwrap_or_default();
    if app.starts_with("actix-") {
        actix_main(&app, addr, backend)
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(tower_main(&app, addr, backend))
    }
}

/// The tower-sessions app, for one version of the crate (the file store needs 0.15, the
/// Redis and sqlx stores 0.14): the same code, compiled against each.
macro_rules! tower_app {
    ($module:ident, $krate:ident) => {
        mod $module {
            use axum::{Router, routing::get};
            use $krate::{Expiry, Session, SessionManagerLayer, SessionStore};

            async fn count(session: Session) -> String {
                let n: u64 = session.get("count").await.unwrap_or_default().unwrap_or(0);
                let _ = session.insert("count", n + 1).await;
                (n + 1).to_string()
            }

            async fn read(session: Session) -> String {
                let n: u64 = session.get("count").await.unwrap_or_default().unwrap_or(0);
                n.to_string()
            }

            pub(crate) fn router<S: SessionStore + Clone>(store: S) -> Router {
                let layer = SessionManagerLayer::new(store)
                    .with_secure(false)
                    .with_expiry(Expiry::OnInactivity(time::Duration::days(1)));
                Router::new()
                    .route("/count", get(count))
                    .route("/incr", get(count))
                    .route("/read", get(read))
                    .route("/static", get(|| async { "1" }))
                    .layer(layer)
            }
        }
    };
}

tower_app!(tower, tower_sessions);
tower_app!(tower15, tower_sessions_15);

async fn tower_main(app: &str, addr: SocketAddr, backend: String) -> Result<(), Fail> {
    let router = match app {
        "tower-memory" => tower::router(tower_sessions::MemoryStore::default()),
        "tower-redis" => {
            use tower_sessions_redis_store::{RedisStore, fred::prelude::*};
            let pool = Pool::new(Config::from_url(&backend)?, None, None, None, 6)?;
            // The connection task runs detached; `wait_for_connect` below waits for it.
            drop(pool.connect());
            pool.wait_for_connect().await?;
            tower::router(RedisStore::new(pool))
        }
        "tower-sqlite" => {
            use tower_sessions_sqlx_store::{SqliteStore, sqlx::SqlitePool};
            let pool = SqlitePool::connect(&format!("sqlite:{backend}?mode=rwc")).await?;
            let store = SqliteStore::new(pool);
            store.migrate().await?;
            tower::router(store)
        }
        "tower-postgres" => {
            use tower_sessions_sqlx_store::{PostgresStore, sqlx::PgPool};
            let (url, table) = backend.split_once('#').ok_or("backend: URL#table")?;
            let pool = PgPool::connect(url).await?;
            let store = PostgresStore::new(pool).with_table_name(table)?;
            store.migrate().await?;
            tower::router(store)
        }
        "tower-mysql" => {
            use tower_sessions_sqlx_store::{MySqlStore, sqlx::MySqlPool};
            let (url, table) = backend.split_once('#').ok_or("backend: URL#table")?;
            let pool = MySqlPool::connect(url).await?;
            // Its default schema, `tower_sessions`, is another database: keep to the URL's.
            let database = url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default();
            let store = MySqlStore::new(pool).with_schema_name(database)?.with_table_name(table)?;
            store.migrate().await?;
            tower::router(store)
        }
        "tower-file" => tower15::router(tower_sessions_file_store::FileSessionStorage::new_in_folder(std::path::PathBuf::from(backend))),
        other => return Err(format!("unknown app {other}").into()),
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("ready");
    axum::serve(listener, router).await?;
    Ok(())
}

fn actix_main(app: &str, addr: SocketAddr, backend: String) -> Result<(), Fail> {
    use actix_session::storage::{CookieSessionStore, RedisSessionStore};
    use actix_web::HttpServer;

    /// An actix-web server with the session middleware over the stores `make` builds.
    async fn serve<S, F>(make: F, addr: SocketAddr) -> Result<(), Fail>
    where
        S: actix_session::storage::SessionStore + 'static,
        F: Fn() -> S + Clone + Send + 'static,
    {
        let server = HttpServer::new(move || actix_app!(make())).bind(addr)?;
        println!("ready");
        server.run().await?;
        Ok(())
    }

    actix_web::rt::System::new().block_on(async move {
        if app == "actix-redis" {
            let store = RedisSessionStore::new(backend).await?;
            serve(move || store.clone(), addr).await
        } else {
            serve(CookieSessionStore::default, addr).await
        }
    })
}

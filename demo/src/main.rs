//! The demo site: `cargo run -p session-demo`, then open <http://127.0.0.1:3000>.
//!
//! Options (flags win over the environment):
//! * `--addr HOST:PORT` / `DEMO_ADDR` (default `127.0.0.1:3000`)
//! * `--driver CONFIG` / `SESSION_DRIVER` (default `fs` under the data directory; `memory`,
//!   `fs:///path`, `sqlite:///path/sessions.db`, `redis://127.0.0.1:6379`,
//!   `postgres://user:password@host/db`, `mysql://user:password@host/db`, or `cookie` for
//!   cookie-only sessions)
//! * `--data-dir DIR` / `DEMO_DATA_DIR` (default `.demo-data`)
//! * `SESSION_SECRET`: the signing/sealing secret (32+ bytes). Without it a secret is generated
//!   once and kept in the data directory, so sessions survive restarts.
#![forbid(unsafe_code)]

mod app;
mod model;
mod pages;

use std::{path::PathBuf, process::ExitCode};

use session_kit::{Key, Keyring};
use tracing_subscriber::EnvFilter;

struct Options {
    addr: String,
    driver: Option<String>,
    data_dir: PathBuf,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        addr: std::env::var("DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into()),
        driver: std::env::var("SESSION_DRIVER")
            .ok()
            .filter(|d| !d.is_empty()),
        data_dir: std::env::var("DEMO_DATA_DIR")
            .map_or_else(|_| PathBuf::from(".demo-data"), PathBuf::from),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => options.addr = value()?,
            "--driver" => options.driver = Some(value()?),
            "--data-dir" => options.data_dir = PathBuf::from(value()?),
            "-h" | "--help" => {
                return Err("usage: session-demo [--addr 127.0.0.1:3000] [--driver fs|memory|cookie|<url>] [--data-dir .demo-data]".into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

/// The secret from `SESSION_SECRET`, or one generated once and kept in the data directory.
fn keyring(data_dir: &std::path::Path) -> Result<Keyring, String> {
    if let Ok(secret) = std::env::var("SESSION_SECRET") {
        return Keyring::from_secrets([secret]).map_err(|e| format!("SESSION_SECRET: {e}"));
    }
    let path = data_dir.join("secret");
    if let Ok(saved) = std::fs::read_to_string(&path) {
        let key = Key::from_base64(&saved).map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "SESSION_SECRET is not set: using the secret saved in {}",
            path.display()
        );
        return Ok(Keyring::new(key));
    }
    let key = Key::generate().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    write_private(&path, &key.expose_base64()).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "SESSION_SECRET is not set: generated a secret and saved it in {} (set SESSION_SECRET in production)",
        path.display()
    );
    Ok(Keyring::new(key))
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("session-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let options = options()?;
    let keyring = keyring(&options.data_dir)?;
    let driver = options
        .driver
        .clone()
        .unwrap_or_else(|| format!("fs:{}", options.data_dir.join("sessions").display()));
    // The session layer reports through the `metrics` facade; this recorder keeps the values
    // for `GET /metrics` (Prometheus scrapes it).
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("metrics recorder: {e}"))?;
    session_kit::metrics::describe();
    let router = app::router(&driver, keyring, metrics).await?;
    let listener = tokio::net::TcpListener::bind(&options.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("session demo listening on http://{addr}");
    let shown = if driver == "cookie" {
        "cookie (cookie-only sessions)".to_owned()
    } else {
        session_kit::DriverConfig::new(driver.as_str()).redacted()
    };
    println!("session driver: {shown}");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| e.to_string())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

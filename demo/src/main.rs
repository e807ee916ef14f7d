//! The demo site: `cargo run -p session-demo`, then open <http://127.0.0.1:3000>.
//!
//! Options (flags win over the environment):
//! * `--addr HOST:PORT` / `DEMO_ADDR` (default `127.0.0.1:3000`)
//! * `--driver CONFIG` / `SESSION_DRIVER` (default `fs` under the data directory; `memory`,
//!   `fs:///path`, `sqlite:///path/sessions.db`, `redis://127.0.0.1:6379`,
//!   `postgres://user:password@host/db`, `mysql://user:password@host/db`, or `cookie` for
//!   cookie-only sessions)
//!   (`memory` keeps at most 10,000 sessions unless the config says otherwise:
//!   `memory:?capacity=50000`)
//! * `--data-dir DIR` / `DEMO_DATA_DIR` (default `.demo-data`)
//! * `--max-connections N` / `DEMO_MAX_CONNECTIONS` (default 1024): connections served at once
//! * `--header-timeout DURATION` / `DEMO_HEADER_TIMEOUT` (default `10s`): time a client gets to
//!   send a request head, on a new or an idle kept-alive connection (`500ms`, `10s`)
//! * `--request-timeout DURATION` / `DEMO_REQUEST_TIMEOUT` (default `30s`): time a request
//!   (reading its body included) gets before it is answered `408`
//! * `SESSION_SECRET`: the signing/sealing secret (32+ bytes). Without it a secret is generated
//!   once and kept in the data directory, so sessions survive restarts.
#![forbid(unsafe_code)]

mod app;
mod cost;
mod model;
mod pages;
mod serve;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use session_kit::{Key, Keyring};
use tracing_subscriber::EnvFilter;

struct Options {
    addr: String,
    driver: Option<String>,
    data_dir: PathBuf,
    limits: serve::Limits,
    request_timeout: Duration,
}

const USAGE: &str = "usage: session-demo [--addr 127.0.0.1:3000] [--driver fs|memory|cookie|<url>] \
                     [--data-dir .demo-data] [--max-connections 1024] [--header-timeout 10s] \
                     [--request-timeout 30s]";

fn options() -> Result<Options, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut options = Options {
        addr: env("DEMO_ADDR").unwrap_or_else(|| "127.0.0.1:3000".into()),
        driver: env("SESSION_DRIVER"),
        data_dir: env("DEMO_DATA_DIR").map_or_else(|| PathBuf::from(".demo-data"), PathBuf::from),
        limits: serve::Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
        },
        request_timeout: Duration::from_secs(30),
    };
    let mut settings: Vec<(String, String)> = [
        ("--max-connections", "DEMO_MAX_CONNECTIONS"),
        ("--header-timeout", "DEMO_HEADER_TIMEOUT"),
        ("--request-timeout", "DEMO_REQUEST_TIMEOUT"),
    ]
    .into_iter()
    .filter_map(|(flag, var)| Some((flag.to_owned(), env(var)?)))
    .collect();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => options.addr = value()?,
            "--driver" => options.driver = Some(value()?),
            "--data-dir" => options.data_dir = PathBuf::from(value()?),
            "--max-connections" | "--header-timeout" | "--request-timeout" => {
                settings.push((arg.clone(), value()?));
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    for (flag, value) in settings {
        match flag.as_str() {
            "--max-connections" => {
                options.limits.max_connections = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("{flag}: {value:?} is not a positive number"))?;
            }
            "--header-timeout" => options.limits.header_timeout = duration(&flag, &value)?,
            _ => options.request_timeout = duration(&flag, &value)?,
        }
    }
    Ok(options)
}

/// `250ms`, `10s` or a number of seconds.
fn duration(flag: &str, value: &str) -> Result<Duration, String> {
    let parsed = match value.strip_suffix("ms") {
        Some(ms) => ms.trim().parse().ok().map(Duration::from_millis),
        None => value
            .trim_end_matches('s')
            .trim()
            .parse()
            .ok()
            .map(Duration::from_secs),
    };
    parsed.filter(|d| !d.is_zero()).ok_or(format!(
        "{flag}: {value:?} is not a duration such as 500ms or 10s"
    ))
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
    let (router, app) = app::router(&driver, keyring, metrics, options.request_timeout).await?;
    let listener = tokio::net::TcpListener::bind(&options.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("session demo listening on http://{addr}");
    println!("session driver: {}", app.info.described());
    let limits = options.limits;
    println!(
        "limits: {} connections, {:?} to send a request head, {:?} per request",
        limits.max_connections, limits.header_timeout, options.request_timeout
    );
    serve::serve(listener, router, limits, shutdown()).await;
    Ok(())
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

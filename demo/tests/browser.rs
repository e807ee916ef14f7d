//! End-to-end: the demo site driven in headless Chromium through ChromeDriver.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`bash scripts/test` installs them); set
//! `CHROMIUM` / `CHROMEDRIVER` to use other binaries. A missing browser fails this test with
//! the install command, it is never skipped. The dashboard screenshot is written to
//! `target/tmp/browser/dashboard.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use session_test_support::{Tied, free_port};

fn wait_for_port(port: u16, what: &str) {
    session_test_support::wait_for_port(port, what, Duration::from_secs(20));
}

const INSTALL: &str = "install Chromium and ChromeDriver: sudo apt-get install -y chromium chromium-driver \
                       (or run `bash scripts/test`, which installs them), or set CHROMIUM and CHROMEDRIVER";

fn binary(env: &str, default: &str) -> PathBuf {
    let path = std::env::var(env).map_or_else(|_| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found at {}: {INSTALL}",
        env.to_lowercase(),
        path.display()
    );
    path
}

struct Demo {
    process: Tied,
    port: u16,
}

impl Demo {
    fn start(port: u16, data_dir: &Path) -> Self {
        let mut process = Tied::spawn(
            Path::new(env!("CARGO_BIN_EXE_session-demo")),
            &[
                "--addr".into(),
                format!("127.0.0.1:{port}"),
                "--data-dir".into(),
                data_dir.display().to_string(),
            ],
            &[("RUST_LOG", "warn")],
        );
        // The demo says which driver it uses: check it is the embedded default.
        let stdout = process.take_stdout().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut driver_line = String::new();
        for line in lines.by_ref().take(5) {
            let line = line.unwrap();
            if line.starts_with("session driver:") {
                driver_line = line;
                break;
            }
        }
        assert!(
            driver_line.contains("fs:"),
            "the demo should default to the fs driver: {driver_line:?}"
        );
        std::thread::spawn(move || lines.for_each(drop));
        wait_for_port(port, "the demo");
        Self { process, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

async fn browser(driver_port: u16, chromium: &Path, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", "--window-size=1000,800",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .unwrap_or_else(|e| panic!("ChromeDriver could not start Chromium: {e}. {INSTALL}"))
}

async fn text(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap(),
        Err(e) => panic!("no {css} on {}: {e}", url(c).await),
    }
}

async fn exists(c: &Client, css: &str) -> bool {
    !c.find_all(Locator::Css(css)).await.unwrap().is_empty()
}

async fn url(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Clicks a button that submits a form, and waits until the next page has replaced this one.
async fn submit(c: &Client, css: &str) {
    let old_page = c.find(Locator::Css("html")).await.unwrap();
    click(c, css).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while old_page.tag_name().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "clicking {css} did not load a new page"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loop {
        let state = c.execute("return document.readyState", vec![]).await;
        if state.is_ok_and(|s| s == "complete") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page after {css} did not finish loading"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn log_in(c: &Client, demo: &Demo, password: &str, remember: bool) {
    c.goto(&demo.url("/login")).await.unwrap();
    c.find(Locator::Css("#email"))
        .await
        .unwrap()
        .send_keys("ada@example.com")
        .await
        .unwrap();
    c.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    if remember {
        click(c, "#remember").await;
    }
    submit(c, "#submit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_works_in_a_real_browser() {
    let chromium = binary("CHROMIUM", "/usr/bin/chromium");
    let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out).unwrap();

    let driver_port = free_port();
    let _chromedriver = Tied::spawn(
        &chromedriver,
        &[
            format!("--port={driver_port}"),
            "--allowed-ips=127.0.0.1".into(),
        ],
        &[],
    );
    wait_for_port(driver_port, "chromedriver");
    let port = free_port();
    let mut demo = Demo::start(port, &data_dir);
    let c = browser(driver_port, &chromium, &work.path().join("profile")).await;

    // The counter.
    c.goto(&demo.url("/")).await.unwrap();
    assert_eq!(text(&c, "#visits").await, "1");
    c.refresh().await.unwrap();
    assert_eq!(text(&c, "#visits").await, "2");

    // The session cookie: HttpOnly and SameSite=Lax.
    let cookie = c.get_named_cookie("demo_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true), "HttpOnly");
    assert_eq!(
        format!("{:?}", cookie.same_site()),
        "Some(Lax)",
        "SameSite=Lax"
    );
    let anonymous_id = cookie.value().to_owned();

    // The guard sends anonymous visitors to the login page.
    c.goto(&demo.url("/dashboard")).await.unwrap();
    assert_eq!(url(&c).await, "/login");
    assert!(text(&c, "#notice").await.contains("Please log in"));

    // A wrong login shows the flash exactly once.
    log_in(&c, &demo, "wrong", false).await;
    assert_eq!(url(&c).await, "/login");
    assert_eq!(text(&c, "#error").await, "Invalid email or password.");
    c.refresh().await.unwrap();
    assert!(
        !exists(&c, "#error").await,
        "the flash is gone after a reload"
    );

    // The right login regenerates the id and reaches the dashboard.
    log_in(&c, &demo, "lovelace", true).await;
    assert_eq!(url(&c).await, "/dashboard");
    assert!(text(&c, "#welcome").await.contains("ada@example.com"));
    assert!(
        text(&c, "#lifetime").await.contains("30 days"),
        "remember me"
    );
    let logged_in_id = c
        .get_named_cookie("demo_session")
        .await
        .unwrap()
        .value()
        .to_owned();
    assert_ne!(
        logged_in_id, anonymous_id,
        "the session id changed on login"
    );

    // The cart keeps its items.
    c.goto(&demo.url("/cart")).await.unwrap();
    for button in ["#add-apple", "#add-apple", "#add-fig", "#remove-apple"] {
        submit(&c, button).await;
        assert_eq!(url(&c).await, "/cart");
    }
    assert_eq!(text(&c, "#qty-apple").await, "1");
    assert_eq!(text(&c, "#qty-fig").await, "1");

    // The session survives a restart of the demo (fs driver, secret kept in the data dir).
    demo.process.stop();
    demo = Demo::start(port, &data_dir);
    c.goto(&demo.url("/dashboard")).await.unwrap();
    assert_eq!(
        url(&c).await,
        "/dashboard",
        "still logged in after a restart"
    );
    let cart = text(&c, "#cart-summary").await;
    assert!(
        cart.contains("apple × 1") && cart.contains("fig × 1"),
        "cart after restart: {cart}"
    );
    let png = c.screenshot().await.unwrap();
    let shot = out.join("dashboard.png");
    std::fs::write(&shot, &png).unwrap();
    println!("dashboard screenshot: {}", shot.display());

    // Logout returns to anonymous.
    submit(&c, "#logout").await;
    assert_eq!(url(&c).await, "/");
    assert_eq!(text(&c, "#who").await, "Anonymous");
    assert!(text(&c, "#notice").await.contains("logged out"));
    c.goto(&demo.url("/dashboard")).await.unwrap();
    assert_eq!(url(&c).await, "/login", "the dashboard is closed again");

    // What the visits since the restart above did, as Prometheus scrapes it.
    c.goto(&demo.url("/metrics")).await.unwrap();
    let metrics = text(&c, "body").await;
    for line in [
        "session_commits_total{outcome=\"create\"}",
        "session_commits_total{outcome=\"update\"}",
        "session_commits_total{outcome=\"destroy\"}",
        "session_loads_total{outcome=\"found\"}",
    ] {
        assert!(
            metrics.contains(line),
            "{line} missing from /metrics:\n{metrics}"
        );
    }

    c.close().await.unwrap();
    demo.process.stop();
}

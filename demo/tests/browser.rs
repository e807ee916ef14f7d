//! End-to-end: the demo site driven in headless Chromium through ChromeDriver.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`bash scripts/test` installs them); set
//! `CHROMIUM` / `CHROMEDRIVER` to use other binaries. A missing browser fails this test with
//! the install command, it is never skipped. Screenshots of the pages (dashboard, devices,
//! two tabs, a forged request refused) are written to `target/tmp/browser/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{Read, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use common::Demo;
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

/// The demo on the embedded default driver (fs), checked to be that.
fn start_demo(port: u16, data_dir: &Path) -> Demo {
    let demo = Demo::start_on(port, data_dir, &[]);
    let driver = demo.said("session driver:");
    assert!(
        driver.contains("fs:"),
        "the demo should default to the fs driver: {driver:?}"
    );
    demo
}

/// Another site (`http://localhost:PORT`, cross-site to the demo's `127.0.0.1`) whose page
/// holds forms posting to the demo: what a forged request looks like from a browser.
fn attacker_site(demo_port: u16) -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let page = format!(
        r#"<!doctype html><html><body><h1>Win a prize</h1>
<form method="post" action="http://127.0.0.1:{demo_port}/cart/add"><input type="hidden" name="item" value="fig"><button id="forge-cart">Claim</button></form>
<form method="post" action="http://127.0.0.1:{demo_port}/login"><input type="hidden" name="email" value="ada@example.com"><input type="hidden" name="password" value="lovelace"><button id="forge-login">Log in as someone else</button></form>
</body></html>"#
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
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

async fn screenshot(c: &Client, out: &Path, name: &str) {
    let png = c.screenshot().await.unwrap();
    let shot = out.join(name);
    std::fs::write(&shot, &png).unwrap();
    println!("screenshot: {}", shot.display());
}

/// The demo's "two tabs": `n` increments fired at once from the page; returns (before, after,
/// answered 200).
async fn fire_two_tabs(c: &Client, demo: &Demo, n: u32) -> (u64, u64, u64) {
    c.goto(&demo.url("/two-tabs")).await.unwrap();
    let input = c.find(Locator::Css("#parallel")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(&n.to_string()).await.unwrap();
    click(c, "#fire").await;
    let result = c.find(Locator::Css("#two-tabs-result")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(after) = result.attr("data-after").await.unwrap() {
            let number = |v: Option<String>| v.unwrap().parse::<u64>().unwrap();
            let before = number(result.attr("data-before").await.unwrap());
            let ok = number(result.attr("data-ok").await.unwrap());
            return (before, after.parse().unwrap(), ok);
        }
        assert!(
            Instant::now() < deadline,
            "the two-tabs page did not finish: {}",
            result.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
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
    let mut demo = start_demo(port, &data_dir);
    let c = browser(driver_port, &chromium, &work.path().join("profile")).await;

    // Reading the page stores nothing: no cookie until a form changes something.
    c.goto(&demo.url("/")).await.unwrap();
    assert_eq!(text(&c, "#count").await, "0");
    assert!(
        c.get_named_cookie("demo_session").await.is_err(),
        "no cookie for a reader"
    );
    assert!(text(&c, "#how-session").await.starts_with("none stored"));
    // The counter.
    submit(&c, "#increment").await;
    submit(&c, "#increment").await;
    assert_eq!(text(&c, "#count").await, "2");
    c.refresh().await.unwrap();
    assert_eq!(text(&c, "#count").await, "2", "a reload counts nothing");
    assert_eq!(text(&c, "#how-cost").await, "1 store operation: get");
    assert!(text(&c, "#how-cookie").await.contains("signed session id"));

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

    // The cart keeps its items; nothing to remove from an empty line.
    c.goto(&demo.url("/cart")).await.unwrap();
    assert!(!exists(&c, "#remove-pear").await);
    for button in ["#add-apple", "#add-apple", "#add-fig", "#remove-apple"] {
        submit(&c, button).await;
        assert_eq!(url(&c).await, "/cart");
    }
    assert_eq!(text(&c, "#qty-apple").await, "1");
    assert_eq!(text(&c, "#qty-fig").await, "1");

    // A forged request from another site is refused and changes nothing.
    let attacker = attacker_site(port);
    c.goto(&format!("http://localhost:{attacker}/"))
        .await
        .unwrap();
    submit(&c, "#forge-cart").await;
    assert_eq!(
        text(&c, "h1").await,
        "403 Forbidden",
        "a cross-site form post"
    );
    assert!(
        text(&c, "#refused")
            .await
            .contains("came from another site")
    );
    screenshot(&c, &out, "forged-request-refused.png").await;
    c.goto(&demo.url("/cart")).await.unwrap();
    assert_eq!(
        text(&c, "#qty-fig").await,
        "1",
        "the forged add changed nothing"
    );

    // The session survives a restart of the demo (fs driver, secret kept in the data dir).
    demo.process.stop();
    demo = start_demo(port, &data_dir);
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
    screenshot(&c, &out, "dashboard.png").await;

    // Two tabs: 25 increments at once on one session, none lost.
    let (before, after, ok) = fire_two_tabs(&c, &demo, 25).await;
    assert_eq!(ok, 25, "every request answered 200");
    assert_eq!(after, before + 25, "every concurrent increment kept");
    assert_eq!(text(&c, "#count").await, after.to_string());
    screenshot(&c, &out, "two-tabs.png").await;

    // A second device (another browser profile) logs in too.
    let phone = browser(driver_port, &chromium, &work.path().join("profile-2")).await;
    log_in(&phone, &demo, "lovelace", false).await;
    assert_eq!(url(&phone).await, "/dashboard");
    // The second device cannot be made to log in by another site either.
    phone
        .goto(&format!("http://localhost:{attacker}/"))
        .await
        .unwrap();
    submit(&phone, "#forge-login").await;
    assert_eq!(text(&phone, "h1").await, "403 Forbidden");

    // The devices page lists both sessions; this one marked.
    c.goto(&demo.url("/sessions")).await.unwrap();
    let rows = c
        .find_all(Locator::Css("#devices tr[data-handle]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "two devices signed in");
    assert_eq!(
        c.find_all(Locator::Css("#devices tr.this-device"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        text(&c, "#devices")
            .await
            .contains("Headless Chrome on Linux")
    );
    screenshot(&c, &out, "devices.png").await;

    // Log out everywhere: both devices are signed out.
    submit(&c, "#logout-everywhere").await;
    assert_eq!(url(&c).await, "/");
    assert_eq!(text(&c, "#who").await, "Anonymous");
    assert!(text(&c, "#notice").await.contains("logged out everywhere"));
    phone.goto(&demo.url("/dashboard")).await.unwrap();
    assert_eq!(
        url(&phone).await,
        "/login",
        "the other device was logged out too"
    );
    phone.close().await.unwrap();

    // Log in again, then "log out this device" from the devices page.
    log_in(&c, &demo, "lovelace", false).await;
    c.goto(&demo.url("/sessions")).await.unwrap();
    submit(&c, "#logout-this").await;
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

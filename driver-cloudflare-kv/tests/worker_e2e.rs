//! End to end: a real Rust Worker (`worker-e2e/`, the `worker` crate on wasm32) keeps sessions
//! in Workers KV through the binding driver, built with `worker-build` and run on workerd by
//! Miniflare on a free loopback port.
//!
//! Needs the `wasm32-unknown-unknown` target, `worker-build` and a `wasm-bindgen` CLI of the
//! version in `worker-e2e/Cargo.lock` (`bash scripts/test` installs all three); fails saying
//! how to install whatever is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use session_test_support::{HttpResponse, http_exchange, miniflare, require_binary};

const SECRET: &str = "a worker secret of at least thirty-two bytes!";

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("worker-e2e")
}

/// The wasm-bindgen version the Worker's lock file pins (the CLI must match it exactly).
fn locked_wasm_bindgen() -> String {
    let lock = std::fs::read_to_string(e2e_dir().join("Cargo.lock")).unwrap();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            let version = lines.next().unwrap();
            return version
                .trim_start_matches("version = \"")
                .trim_end_matches('"')
                .to_owned();
        }
    }
    panic!("no wasm-bindgen in worker-e2e/Cargo.lock");
}

/// A tool from `$VAR`, `PATH` or `~/.cargo/bin`.
fn tool(var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|home| home.join("bin").join(name));
    match cargo_bin {
        Some(path) if path.exists() => path,
        _ => PathBuf::from(name),
    }
}

fn build_worker() {
    let version = locked_wasm_bindgen();
    let worker_build = tool("WORKER_BUILD", "worker-build");
    require_binary(
        &worker_build,
        "install worker-build: cargo install worker-build (`bash scripts/test` does it), or set WORKER_BUILD",
    );
    let wasm_bindgen = tool("WASM_BINDGEN_BIN", "wasm-bindgen");
    let install = format!(
        "install it: cargo install wasm-bindgen-cli --version {version} \
         (`bash scripts/test` does it), or set WASM_BINDGEN_BIN"
    );
    require_binary(
        &wasm_bindgen,
        &format!("wasm-bindgen {version} not found: {install}"),
    );
    let reported = Command::new(&wasm_bindgen)
        .arg("--version")
        .output()
        .unwrap();
    let reported = String::from_utf8_lossy(&reported.stdout).into_owned();
    assert!(
        reported.split_whitespace().nth(1) == Some(version.as_str()),
        "{} is `{}`, the Worker needs wasm-bindgen {version}: {install}",
        wasm_bindgen.display(),
        reported.trim()
    );
    let out = Command::new(&worker_build)
        .arg("--release")
        // wasm-opt (binaryen) would be downloaded from GitHub; rustc's release build is enough.
        .arg("--no-opt")
        .current_dir(e2e_dir())
        .env("WASM_BINDGEN_BIN", &wasm_bindgen)
        // The Worker's own workspace and target dir, not the test's.
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "worker-build failed (is the wasm32 target installed? rustup target add \
         wasm32-unknown-unknown):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(e2e_dir().join("build/worker/shim.mjs").exists());
}

/// The `name=value` part of a response's session cookie, if it sets one.
fn sid(response: &HttpResponse) -> Option<String> {
    response
        .header_values("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("sid="))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

fn json(response: &HttpResponse) -> serde_json::Value {
    assert_eq!(response.status, 200, "{response:?}");
    serde_json::from_str(&response.body).unwrap_or_else(|e| panic!("{e}: {response:?}"))
}

#[test]
fn a_rust_worker_keeps_sessions_in_kv() {
    build_worker();
    let (_miniflare, port) = miniflare(
        &["worker".into(), e2e_dir().display().to_string()],
        &[("SESSION_SECRET", SECRET)],
    );
    let call = |method: &str, path: &str, cookie: Option<&str>| {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        http_exchange(port, method, path, &headers, b"")
    };

    // A new visitor gets a cookie; the count lives in KV under it.
    let first = call("GET", "/count", None);
    let cookie = sid(&first).expect("a new session sets a cookie");
    assert_eq!(json(&first)["count"], 1);
    assert_eq!(json(&first)["new"], true);
    let second = call("GET", "/count", Some(&cookie));
    assert_eq!(json(&second)["count"], 2);
    assert_eq!(json(&second)["new"], false);
    // A write extends the idle deadline, so the cookie comes back with a fresh Max-Age, same id.
    assert_eq!(sid(&second).unwrap_or_else(|| cookie.clone()), cookie);
    assert_eq!(
        json(&call("GET", "/count", None))["count"],
        1,
        "another visitor"
    );

    // A forged cookie is a fresh session, not an error.
    let forged = call("GET", "/count", Some("sid=forged.value"));
    assert_eq!(json(&forged)["count"], 1);

    // Login regenerates the id (the old one is gone) and leaves a flash for the next request.
    let login = call("POST", "/login?user=ada", Some(&cookie));
    assert_eq!(login.status, 200, "{login:?}");
    let logged_in = sid(&login).expect("login sets a new cookie");
    assert_ne!(logged_in, cookie);
    let whoami = json(&call("GET", "/whoami", Some(&logged_in)));
    assert_eq!(whoami["user"], "ada");
    assert_eq!(whoami["notice"], "welcome, ada");
    let again = json(&call("GET", "/whoami", Some(&logged_in)));
    assert_eq!(
        again["notice"],
        serde_json::Value::Null,
        "a flash is read once"
    );
    assert_eq!(json(&call("GET", "/count", Some(&logged_in)))["count"], 3);
    let old = json(&call("GET", "/whoami", Some(&cookie)));
    assert_eq!(
        old["user"],
        serde_json::Value::Null,
        "the pre-login id no longer loads"
    );

    // Logout destroys the session in KV and clears the cookie.
    let logout = call("POST", "/logout", Some(&logged_in));
    assert_eq!(logout.status, 200, "{logout:?}");
    assert!(
        logout
            .header_values("set-cookie")
            .iter()
            .any(|c| c.starts_with("sid=;") || c.contains("Max-Age=0")),
        "{logout:?}"
    );
    let after = json(&call("GET", "/whoami", Some(&logged_in)));
    assert_eq!(after["user"], serde_json::Value::Null);
}

//! Starting the demo binary on a free loopback port, for the HTTP and browser tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    path::Path,
    time::Duration,
};

use session_test_support::{HttpResponse, Tied, free_port, http_exchange};

/// A running demo.
pub(crate) struct Demo {
    pub(crate) process: Tied,
    pub(crate) port: u16,
    /// What it printed on startup (address, driver, limits).
    pub(crate) banner: Vec<String>,
}

impl Demo {
    /// Starts the demo on `port` with its data in `data_dir` and extra arguments.
    pub(crate) fn start_on(port: u16, data_dir: &Path, extra: &[&str]) -> Self {
        let mut args = vec![
            "--addr".to_owned(),
            format!("127.0.0.1:{port}"),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let mut process = Tied::spawn(
            Path::new(env!("CARGO_BIN_EXE_session-demo")),
            &args,
            &[("RUST_LOG", "warn")],
        );
        let stdout = process.take_stdout().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        for line in lines.by_ref().take(8) {
            let line = line.unwrap();
            let last = line.starts_with("limits:");
            banner.push(line);
            if last {
                break;
            }
        }
        assert!(
            banner.iter().any(|l| l.starts_with("limits:")),
            "the demo did not start: {banner:?}"
        );
        std::thread::spawn(move || lines.for_each(drop));
        session_test_support::wait_for_port(port, "the demo", Duration::from_secs(20));
        Self {
            process,
            port,
            banner,
        }
    }

    /// Starts the demo on a free port.
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_on(free_port(), data_dir, extra)
    }

    /// The banner line starting with `prefix`.
    pub(crate) fn said(&self, prefix: &str) -> &str {
        self.banner
            .iter()
            .find(|l| l.starts_with(prefix))
            .map_or("", String::as_str)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// One request; `cookie` is sent as the `Cookie` header.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> HttpResponse {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(cookie) = cookie {
            all.push(("Cookie", cookie));
        }
        if !body.is_empty() || method == "POST" {
            all.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        http_exchange(self.port, method, path, &all, body.as_bytes())
    }
}

/// The `name=value` part of a response's session cookie, if it sets one.
pub(crate) fn set_cookie(response: &HttpResponse) -> Option<String> {
    response
        .header_values("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("demo_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

/// The value of the first `csrf_token` field in a page.
pub(crate) fn csrf_token(page: &str) -> Option<String> {
    let start = page.find(r#"name="csrf_token" value=""#)? + r#"name="csrf_token" value=""#.len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].to_owned())
}

/// The text of the element with `id`, tags removed (the pages never nest an element in one
/// of its own kind).
pub(crate) fn text_of(page: &str, id: &str) -> Option<String> {
    let at = page.find(&format!(r#" id="{id}""#))?;
    let open = page[..at].rfind('<')?;
    let tag: String = page[open + 1..at]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let content = at + page[at..].find('>')? + 1;
    let end = content + page[content..].find(&format!("</{tag}>"))?;
    let mut text = String::new();
    let mut in_tag = false;
    for c in page[content..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(text)
}

//! Server-rendered HTML. Everything from the session or the request is escaped; styles and
//! scripts come from `/static/` (the Content-Security-Policy allows nothing inline).

use std::time::SystemTime;

use axum::response::Html;
use session_kit::{UserSession, csrf_input};

use crate::model::{CATALOG, DEMO_EMAIL, DEMO_PASSWORD, DemoSession, RequestFacts, StorageInfo};

/// What every page shows around its body: who is signed in, the token its forms carry, and
/// the "how it works" panel.
pub(crate) struct Frame<'a> {
    pub(crate) storage: &'a StorageInfo,
    pub(crate) request: RequestFacts,
    /// The request-forgery token for this page's forms (`None` for a visitor with no stored
    /// session: nothing to forge against; the origin check still applies).
    pub(crate) token: Option<String>,
}

impl Frame<'_> {
    /// The hidden token field for a form (empty without a token).
    fn csrf(&self) -> String {
        self.token.as_deref().map(csrf_input).unwrap_or_default()
    }
}

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, frame: &Frame<'_>, body: &str) -> Html<String> {
    let who = match &frame.request.user {
        Some(u) => format!(
            r#"<span id="who">Signed in as <b>{}</b></span>
<form method="post" action="/logout" class="inline">{}<button id="logout">Log out</button></form>"#,
            escape(u),
            frame.csrf()
        ),
        None => r#"<span id="who">Anonymous</span> <a href="/login">Log in</a>"#.to_owned(),
    };
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · session demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/demo.css">
</head>
<body>
<nav><a href="/">Home</a><a href="/dashboard">Dashboard</a><a href="/cart">Cart</a><a href="/sessions">Devices</a><a href="/two-tabs">Two tabs</a><span class="right">{who}</span></nav>
<main>
<h1>{title}</h1>
{body}
</main>
{panel}
</body></html>"#,
        panel = panel(frame)
    ))
}

/// The "how it works" panel.
fn panel(frame: &Frame<'_>) -> String {
    let storage = frame.storage;
    let request = &frame.request;
    let (store, can, cookie_kind) = match &storage.store {
        Some(store) => {
            let bound = match store.capacity {
                Some(n) => format!(
                    r#" <span id="how-bound">(bounded: at most {n} sessions; when full, the one closest to expiry is evicted)</span>"#
                ),
                None => String::new(),
            };
            let cannot = match store.cannot.is_empty() {
                true => String::new(),
                false => format!("; not: {}", store.cannot.join(", ")),
            };
            (
                format!(
                    "<b>{}</b>{bound} · <code>{}</code> · layers: {}",
                    escape(&store.driver),
                    escape(&storage.config),
                    escape(&store.layers.join(" → "))
                ),
                format!("{}{cannot}", store.can.join(", ")),
                "a signed session id (HMAC-SHA256); the data stays in the store",
            )
        }
        None => (
            "<b>none</b>: cookie-only sessions".to_owned(),
            "nothing to list or revoke; every change re-seals the cookie".to_owned(),
            "the sealed session itself (AES-256-GCM-SIV: encrypted and authenticated)",
        ),
    };
    let sent = match request.cookie_bytes {
        Some(n) => format!("your browser sent {n} bytes"),
        None => "your browser sent none".to_owned(),
    };
    let session = match (&request.id_hash, request.stored) {
        (Some(hash), true) => format!(
            "stored, handle <code>{}…</code>{}",
            escape(&hash[..hash.len().min(12)]),
            request
                .user
                .as_deref()
                .map(|u| format!(", bound to {}", escape(u)))
                .unwrap_or_default()
        ),
        (None, true) => "kept in the cookie".to_owned(),
        (_, false) => {
            "none stored: nothing is kept for you until a form changes something".to_owned()
        }
    };
    let cost = match request.operations.len() {
        0 => "no store operations".to_owned(),
        1 => format!("1 store operation: {}", request.operations[0]),
        n => format!("{n} store operations: {}", request.operations.join(", ")),
    };
    let merged = match request.merged {
        true => {
            "merged: another request changed this session at the same time; both changes were kept"
        }
        false => "none to merge",
    };
    format!(
        r#"<aside id="how"><h2>How it works</h2><dl>
<dt>Store</dt><dd id="how-store">{store}</dd>
<dt>It can</dt><dd id="how-can">{can}</dd>
<dt>Cookie</dt><dd id="how-cookie"><code>{name}</code>: {cookie_kind}; {sent}; key <code>{key}</code> ({keys} in the keyring)</dd>
<dt>Session</dt><dd id="how-session">{session}</dd>
<dt>This request</dt><dd id="how-cost">{cost}</dd>
<dt>Concurrent changes</dt><dd id="how-merged">{merged}</dd>
</dl><p>Counters for Prometheus: <a href="/metrics">/metrics</a></p></aside>"#,
        name = escape(&storage.cookie_name),
        key = escape(&storage.key_id),
        keys = storage.keys,
    )
}

fn message(class: &str, text: Option<&str>) -> String {
    text.map(|t| format!(r#"<p class="{class}" id="{class}">{}</p>"#, escape(t)))
        .unwrap_or_default()
}

fn cart_summary(state: &DemoSession) -> String {
    if state.cart.is_empty() {
        return r#"<p id="cart-summary">Your cart is empty.</p>"#.to_owned();
    }
    let items: Vec<String> = state
        .cart
        .iter()
        .map(|(item, n)| format!(r#"<li data-item="{0}">{0} × {n}</li>"#, escape(item)))
        .collect();
    format!(r#"<ul id="cart-summary">{}</ul>"#, items.join(""))
}

pub(crate) fn home(state: &DemoSession, notice: Option<&str>, frame: &Frame<'_>) -> Html<String> {
    layout(
        "Welcome",
        frame,
        &format!(
            r#"{}<div class="card"><h2>Counter</h2>
<p>This session's counter: <b id="count">{}</b></p>
<form method="post" action="/count">{}<button id="increment">+1</button></form>
<p class="hint">Reading a page never writes: nothing is stored for you until a form changes something.
Open <a href="/two-tabs">two tabs</a> to see concurrent changes merged.</p></div>
<div class="card"><h2>Cart</h2>{}<a href="/cart">Change the cart</a></div>"#,
            message("notice", notice),
            state.count,
            frame.csrf(),
            cart_summary(state)
        ),
    )
}

pub(crate) fn login(
    error: Option<&str>,
    notice: Option<&str>,
    next: Option<&str>,
    frame: &Frame<'_>,
) -> Html<String> {
    let body = match &frame.request.user {
        Some(u) => format!(
            r#"<p>You are signed in as <b>{}</b>. <a href="/dashboard">Go to the dashboard</a>.</p>"#,
            escape(u)
        ),
        None => format!(
            r#"{}{}<form method="post" action="/login" class="card">{}
<input type="hidden" name="next" value="{}">
<label>Email <input id="email" name="email" type="email" required></label>
<label>Password <input id="password" name="password" type="password" required></label>
<label><input id="remember" name="remember" type="checkbox"> Remember me for 30 days</label>
<button id="submit">Log in</button>
</form>
<p>Demo user: <code>{DEMO_EMAIL}</code> / <code>{DEMO_PASSWORD}</code></p>"#,
            message("error", error),
            message("notice", notice),
            frame.csrf(),
            escape(next.unwrap_or_default()),
        ),
    };
    layout("Log in", frame, &body)
}

pub(crate) fn dashboard(state: &DemoSession, frame: &Frame<'_>) -> Html<String> {
    let lifetime = if state.remember {
        "you asked to be remembered: this session lasts 30 days from your last visit"
    } else {
        "this session ends after 2 hours without a visit"
    };
    layout(
        "Dashboard",
        frame,
        &format!(
            r#"<p id="welcome">Welcome, <b>{}</b>!</p>
<p id="lifetime">Session: {lifetime}.</p>
<p>See the <a href="/sessions">devices signed in</a> to your account.</p>
<div class="card"><h2>Your cart</h2>{}</div>"#,
            escape(state.user.as_deref().unwrap_or_default()),
            cart_summary(state)
        ),
    )
}

pub(crate) fn cart(state: &DemoSession, frame: &Frame<'_>) -> Html<String> {
    let csrf = frame.csrf();
    let rows: Vec<String> = CATALOG
        .iter()
        .map(|(id, label)| {
            let n = state.cart.get(*id).copied().unwrap_or(0);
            // Nothing to remove from an empty line.
            let remove = match n {
                0 => String::new(),
                _ => format!(
                    r#"<form method="post" action="/cart/remove" class="inline">{csrf}<input type="hidden" name="item" value="{id}"><button id="remove-{id}">Remove</button></form>"#
                ),
            };
            format!(
                r#"<tr><td>{label}</td><td id="qty-{id}">{n}</td>
<td><form method="post" action="/cart/add" class="inline">{csrf}<input type="hidden" name="item" value="{id}"><button id="add-{id}">Add</button></form>
{remove}</td></tr>"#
            )
        })
        .collect();
    layout(
        "Cart",
        frame,
        &format!(
            r#"<table class="card"><tr><th>Item</th><th>Quantity</th><th></th></tr>{}</table>{}"#,
            rows.join(""),
            cart_summary(state)
        ),
    )
}

/// The signed-in user's sessions, `None` when the store cannot list them.
pub(crate) fn sessions(
    listed: Option<&[UserSession]>,
    notice: Option<&str>,
    frame: &Frame<'_>,
) -> Html<String> {
    let Some(listed) = listed else {
        return layout(
            "Devices",
            frame,
            r#"<p id="devices-unavailable">These sessions cannot be listed or revoked: with cookie-only
sessions (or a store that cannot list) each session lives only in its browser's cookie.</p>"#,
        );
    };
    let csrf = frame.csrf();
    let this = frame.request.id_hash.as_deref();
    let rows: Vec<String> = listed
        .iter()
        .map(|s| {
            let device = s
                .labels
                .get("device")
                .and_then(|d| d.as_str())
                .unwrap_or("unknown device");
            let current = Some(s.id_hash.as_str()) == this;
            let (class, marker, action) = match current {
                true => (
                    r#" class="this-device""#,
                    " <b>(this device)</b>",
                    format!(
                        r#"<form method="post" action="/logout" class="inline">{csrf}<button id="logout-this">Log out this device</button></form>"#
                    ),
                ),
                false => (
                    "",
                    "",
                    format!(
                        r#"<form method="post" action="/sessions/revoke" class="inline">{csrf}<input type="hidden" name="handle" value="{}"><button class="revoke">Log out</button></form>"#,
                        escape(&s.id_hash)
                    ),
                ),
            };
            format!(
                r#"<tr{class} data-handle="{}"><td>{}{marker}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>"#,
                escape(&s.id_hash),
                escape(device),
                relative(Some(s.created_at)),
                relative(s.last_seen),
                relative(s.expires_at),
            )
        })
        .collect();
    layout(
        "Devices",
        frame,
        &format!(
            r#"{}<p>Every session signed in to this account, from the store (one index entry per login).</p>
<table class="card" id="devices"><tr><th>Device</th><th>Signed in</th><th>Last seen</th><th>Ends</th><th></th></tr>{}</table>
<form method="post" action="/sessions/revoke-others" class="inline">{csrf}<button id="logout-others">Log out other devices</button></form>
<form method="post" action="/sessions/revoke-all" class="inline">{csrf}<button id="logout-everywhere">Log out everywhere</button></form>"#,
            message("notice", notice),
            rows.join("")
        ),
    )
}

/// A refused request (`403`, `408`, `413`): no session, no panel.
pub(crate) fn refused(code: &str, reason: &str, explanation: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{code} {reason} · session demo</title>
<link rel="stylesheet" href="/static/demo.css"></head>
<body><main><h1>{code} {reason}</h1><p class="error" id="refused">{}</p>
<p><a href="/">Back to the demo</a></p></main></body></html>"#,
        escape(explanation)
    ))
}

/// "3 minutes ago", "in 2 hours", "unknown".
fn relative(time: Option<SystemTime>) -> String {
    let Some(time) = time else {
        return "unknown".to_owned();
    };
    let now = SystemTime::now();
    let (seconds, future) = match time.duration_since(now) {
        Ok(ahead) => (ahead.as_secs(), true),
        Err(e) => (e.duration().as_secs(), false),
    };
    let amount = match seconds {
        0..60 => {
            return if future {
                "in under a minute"
            } else {
                "just now"
            }
            .to_owned();
        }
        60..3600 => plural(seconds / 60, "minute"),
        3600..86_400 => plural(seconds / 3600, "hour"),
        _ => plural(seconds / 86_400, "day"),
    };
    match future {
        true => format!("in {amount}"),
        false => format!("{amount} ago"),
    }
}

fn plural(n: u64, unit: &str) -> String {
    match n {
        1 => format!("1 {unit}"),
        n => format!("{n} {unit}s"),
    }
}

pub(crate) fn two_tabs(count: u64, frame: &Frame<'_>) -> Html<String> {
    layout(
        "Two tabs",
        frame,
        &format!(
            r#"<p>Two tabs, a double click, a page firing requests in parallel: requests that change one
session at the same time. A store with compare-and-swap, or this process combining its requests,
keeps every change; a plain last-write-wins store would lose all but one.</p>
<div class="card">
<p>This session's counter: <b id="count">{count}</b></p>
<label>Requests to send at once <input id="parallel" type="number" min="1" max="200" value="20"></label>
<button id="fire" data-csrf="{}">Send them</button>
<p id="two-tabs-result" class="result">Not run yet.</p>
</div>
<script src="/static/two-tabs.js" defer></script>"#,
            escape(frame.token.as_deref().unwrap_or_default())
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    #[test]
    fn escapes_html() {
        assert_eq!(
            super::escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = SystemTime::now();
        assert_eq!(super::relative(None), "unknown");
        assert_eq!(super::relative(Some(now)), "just now");
        let hour = Duration::from_secs(3600);
        assert_eq!(super::relative(now.checked_sub(3 * hour)), "3 hours ago");
        assert_eq!(
            super::relative(now.checked_add(30 * 24 * hour + Duration::from_secs(5))),
            "in 30 days"
        );
        assert_eq!(
            super::relative(now.checked_add(Duration::from_secs(90))),
            "in 1 minute"
        );
    }
}

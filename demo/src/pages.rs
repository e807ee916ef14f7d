//! Server-rendered HTML. Everything from the session is escaped.

use axum::response::Html;

use crate::model::{CATALOG, DEMO_EMAIL, DEMO_PASSWORD, DemoSession};

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn layout(title: &str, user: Option<&str>, body: &str) -> Html<String> {
    let who = match user {
        Some(u) => format!(
            r#"<span id="who">Signed in as <b>{}</b></span>
               <form method="post" action="/logout" class="inline"><button id="logout">Log out</button></form>"#,
            escape(u)
        ),
        None => r#"<span id="who">Anonymous</span> <a href="/login">Log in</a>"#.to_owned(),
    };
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · session demo</title>
<style>
 body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
 nav {{ display: flex; gap: 1rem; align-items: center; border-bottom: 1px solid #ddd; padding-bottom: .5rem; }}
 nav .right {{ margin-left: auto; display: flex; gap: .5rem; align-items: center; }}
 .inline {{ display: inline; }}
 .error {{ background: #fde8e8; border: 1px solid #f5a3a3; padding: .5rem 1rem; }}
 .notice {{ background: #e8f3fd; border: 1px solid #a3c9f5; padding: .5rem 1rem; }}
 .card {{ border: 1px solid #ddd; border-radius: 6px; padding: 1rem; margin: 1rem 0; }}
 label {{ display: block; margin: .5rem 0; }}
 code {{ background: #f4f4f4; padding: 0 .25rem; }}
</style></head>
<body>
<nav><a href="/">Home</a><a href="/dashboard">Dashboard</a><a href="/cart">Cart</a><span class="right">{who}</span></nav>
<h1>{title}</h1>
{body}
</body></html>"#
    ))
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

pub(crate) fn home(state: &DemoSession, notice: Option<&str>) -> Html<String> {
    layout(
        "Welcome",
        state.user.as_deref(),
        &format!(
            r#"{}<p>You have visited this page <b id="visits">{}</b> time(s) in this session.</p>
<div class="card"><h2>Cart</h2>{}<a href="/cart">Change the cart</a></div>"#,
            message("notice", notice),
            state.visits,
            cart_summary(state)
        ),
    )
}

pub(crate) fn login(user: Option<&str>, error: Option<&str>, notice: Option<&str>) -> Html<String> {
    let body = match user {
        Some(u) => format!(
            r#"<p>You are signed in as <b>{}</b>. <a href="/dashboard">Go to the dashboard</a>.</p>"#,
            escape(u)
        ),
        None => format!(
            r#"{}{}<form method="post" action="/login" class="card">
<label>Email <input id="email" name="email" type="email" required></label>
<label>Password <input id="password" name="password" type="password" required></label>
<label><input id="remember" name="remember" type="checkbox"> Remember me for 30 days</label>
<button id="submit">Log in</button>
</form>
<p>Demo user: <code>{DEMO_EMAIL}</code> / <code>{DEMO_PASSWORD}</code></p>"#,
            message("error", error),
            message("notice", notice)
        ),
    };
    layout("Log in", user, &body)
}

pub(crate) fn dashboard(state: &DemoSession) -> Html<String> {
    let lifetime = if state.remember {
        "you asked to be remembered: this session lasts 30 days from your last visit"
    } else {
        "this session ends after 2 hours without a visit"
    };
    layout(
        "Dashboard",
        state.user.as_deref(),
        &format!(
            r#"<p id="welcome">Welcome, <b>{}</b>!</p>
<p id="lifetime">Session: {lifetime}.</p>
<div class="card"><h2>Your cart</h2>{}</div>"#,
            escape(state.user.as_deref().unwrap_or_default()),
            cart_summary(state)
        ),
    )
}

pub(crate) fn cart(state: &DemoSession) -> Html<String> {
    let rows: Vec<String> = CATALOG
        .iter()
        .map(|(id, label)| {
            let n = state.cart.get(*id).copied().unwrap_or(0);
            format!(
                r#"<tr><td>{label}</td><td id="qty-{id}">{n}</td>
<td><form method="post" action="/cart/add" class="inline"><input type="hidden" name="item" value="{id}"><button id="add-{id}">Add</button></form>
<form method="post" action="/cart/remove" class="inline"><input type="hidden" name="item" value="{id}"><button id="remove-{id}">Remove</button></form></td></tr>"#
            )
        })
        .collect();
    layout(
        "Cart",
        state.user.as_deref(),
        &format!(
            r#"<table class="card"><tr><th>Item</th><th>Quantity</th><th></th></tr>{}</table>{}"#,
            rows.join(""),
            cart_summary(state)
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_html() {
        assert_eq!(
            super::escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

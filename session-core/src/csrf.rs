//! Request-forgery defence bound to the session: a per-session token, masked anew for every
//! response, checked in constant time; and the `Origin` / `Sec-Fetch-Site` check.

use crate::{Keyring, Session, SessionData, SessionError, SessionId, random::fill_random};

/// The request header a page's scripts send the token in (`fetch(url, { headers:
/// { "x-csrf-token": token } })`).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field the token travels in (see [`csrf_input`]).
pub const CSRF_FIELD: &str = "csrf_token";

/// Bytes of the session-bound secret (an HMAC-SHA256 tag) and of the mask.
const LEN: usize = 32;

/// The token's secret for session `id`: an HMAC under the keyring's signing key over a message
/// no cookie signature can share (cookie names cannot hold a NUL byte).
fn secret(keyring: &Keyring, id: &SessionId) -> [u8; LEN] {
    keyring.sign(&[b"csrf-token\0", id.expose().as_bytes()])
}

/// A hidden form field carrying `token`: put it inside every `<form method="post">`.
///
/// ```
/// let field = session_kit_core::csrf_input("abc_123");
/// assert_eq!(field, r#"<input type="hidden" name="csrf_token" value="abc_123">"#);
/// ```
pub fn csrf_input(token: &str) -> String {
    // Tokens are base64url: nothing to escape; anything else is dropped rather than escaped.
    let token: String = token
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    format!(r#"<input type="hidden" name="{CSRF_FIELD}" value="{token}">"#)
}

impl<T: SessionData> Session<T> {
    /// A request-forgery token for this session, to embed in forms ([`csrf_input`]) or give
    /// to scripts for the [`CSRF_HEADER`]. Each call returns another string (the secret is
    /// masked with fresh random bytes, so a compressed response does not leak it), and every
    /// one of them verifies until the session's id changes (login's `regenerate`, `destroy`).
    ///
    /// A new session is stored by this call's commit (the token must verify on the next
    /// request); a token issued after `regenerate` is bound to the new id.
    pub async fn csrf_token(&self) -> Result<String, SessionError> {
        let id = self.csrf_id(true).await?.ok_or(SessionError::Internal(
            "a request-forgery token without a session id",
        ))?;
        let secret = secret(&self.shared().keyring, &id);
        let mut token = [0u8; 2 * LEN];
        fill_random(&mut token[..LEN])?;
        for i in 0..LEN {
            token[LEN + i] = token[i] ^ secret[i];
        }
        Ok(crate::b64::encode(&token))
    }

    /// Whether `token` is a request-forgery token of this session (any mask, signed with any
    /// key of the keyring), compared in constant time. `false` for a session that is not
    /// stored yet, and for anything malformed.
    pub async fn verify_csrf(&self, token: &str) -> Result<bool, SessionError> {
        let Some(bytes) = crate::b64::decode_exact::<{ 2 * LEN }>(token.as_bytes()) else {
            return Ok(false);
        };
        let Some(id) = self.csrf_id(false).await? else {
            return Ok(false);
        };
        let mut tag = [0u8; LEN];
        for i in 0..LEN {
            tag[i] = bytes[i] ^ bytes[LEN + i];
        }
        Ok(self
            .shared()
            .keyring
            .verify(&[b"csrf-token\0", id.expose().as_bytes()], &tag)
            .is_some())
    }
}

impl<T: SessionData> Session<T> {
    /// [`verify_csrf`](Self::verify_csrf) for a handler that changes state: `Ok` for a valid
    /// token, else [`SessionError::RequestForgery`], which the integrations answer with
    /// `403 Forbidden`. Pass the form field or the [`CSRF_HEADER`] (see [`csrf_header`]):
    /// `session.require_csrf(form.csrf_token.as_deref()).await?` first thing in the handler.
    pub async fn require_csrf(&self, token: Option<&str>) -> Result<(), SessionError> {
        match token {
            None => Err(SessionError::RequestForgery("no request-forgery token")),
            Some(token) if self.verify_csrf(token).await? => Ok(()),
            Some(_) => Err(SessionError::RequestForgery(
                "the request-forgery token is not this session's",
            )),
        }
    }
}

/// The [`CSRF_HEADER`] of an `http` request, if it has one.
pub fn csrf_header(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}

/// [`origin_allows`] on a request's headers, looked up by lowercase name through `header`
/// (for any framework's header types).
pub fn origin_allows_request<'h>(
    method: &str,
    header: impl Fn(&str) -> Option<&'h [u8]>,
    trusted: &[String],
) -> bool {
    origin_allows(
        method,
        header("sec-fetch-site"),
        header("origin"),
        header("host"),
        trusted,
    )
}

/// Whether a request may change state as far as its origin tells: always for safe methods
/// (`GET`, `HEAD`, `OPTIONS`, `TRACE`); otherwise when the browser says it comes from this
/// site (`Sec-Fetch-Site: same-origin`, or `none` for a user's own navigation), when its
/// `Origin` is this host or one of `trusted` (`https://app.example.com`), or when it carries
/// neither header (not a browser: curl, a server, a mobile app; browsers send `Origin` with
/// every cross-site `POST`).
///
/// `Sec-Fetch-Site: same-site` (a sibling subdomain) is refused unless its `Origin` is
/// trusted. The check needs no session, so it covers login forms too. Framework layers:
/// `session_kit_axum::CsrfLayer`, `session_kit_actix::CsrfMiddleware`.
///
/// ```
/// use session_kit_core::origin_allows;
///
/// let trusted = ["https://app.example.com".to_owned()];
/// // A cross-site form post.
/// assert!(!origin_allows("POST", Some(b"cross-site"), Some(b"https://evil.example"), Some(b"app.example.com"), &trusted));
/// // The site's own page, and an older browser that sends only Origin.
/// assert!(origin_allows("POST", Some(b"same-origin"), Some(b"https://app.example.com"), Some(b"app.example.com"), &trusted));
/// assert!(origin_allows("POST", None, Some(b"https://app.example.com"), Some(b"app.example.com"), &[]));
/// // curl.
/// assert!(origin_allows("POST", None, None, Some(b"app.example.com"), &[]));
/// ```
pub fn origin_allows(
    method: &str,
    sec_fetch_site: Option<&[u8]>,
    origin: Option<&[u8]>,
    host: Option<&[u8]>,
    trusted: &[String],
) -> bool {
    if matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE") {
        return true;
    }
    let origin_ok = |origin: &[u8]| {
        let Ok(origin) = std::str::from_utf8(origin) else {
            return false;
        };
        if trusted.iter().any(|t| t.eq_ignore_ascii_case(origin)) {
            return true;
        }
        // `scheme://host[:port]` against the Host header (the scheme is the proxy's business).
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        match (authority, host.and_then(|h| std::str::from_utf8(h).ok())) {
            (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host.trim()),
            _ => false,
        }
    };
    match (sec_fetch_site, origin) {
        (Some(b"same-origin" | b"none"), _) => true,
        (Some(_), Some(origin)) => trusted
            .iter()
            .any(|t| t.as_bytes().eq_ignore_ascii_case(origin)),
        (Some(_), None) => false,
        (None, Some(origin)) => origin != b"null" && origin_ok(origin),
        (None, None) => true,
    }
}

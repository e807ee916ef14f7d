//! The session token in a request header, beside the cookie: for API and mobile clients.

use std::sync::Arc;

use http::{HeaderMap, HeaderName};

use crate::{SessionError, SetCookie};

/// Whether every byte of `bytes` may appear in an HTTP header value: the check the `http`
/// crate's `HeaderValue` constructors make (visible ASCII, space, tab and bytes from 0x80),
/// written without an early exit so that it runs over many bytes at once. The `http` 0.2
/// crate that actix-web uses checks byte by byte (about 8 instructions a byte, 1,500 for a
/// sealed session's `Set-Cookie`); an integration that builds a header value from bytes it
/// checked here can skip that check.
///
/// ```
/// use session_kit_core::valid_header_value;
///
/// assert!(valid_header_value(b"session=abc; HttpOnly; Path=/"));
/// assert!(!valid_header_value(b"session=abc\r\nSet-Cookie: admin=1"));
/// ```
pub fn valid_header_value(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |valid, &b| {
        valid & ((b >= 32 && b != 127) | (b == b'\t'))
    })
}

/// Where API and mobile clients send their session token instead of a cookie: the same signed
/// (or, cookie-only, sealed) value, with the same expiry, key rotation and concurrency, in a
/// request header. A storage with a header transport accepts both: a request that carries the
/// header is answered through the header, one that carries the cookie through `Set-Cookie`.
///
/// * [`bearer`](Self::bearer): `Authorization: Bearer <token>` in requests; the token in a
///   `session-token` response header whenever it changes (a new session, a new id after
///   login, a token signed again with a newer key), and that header empty when the session
///   ends. Clients keep the last token they were given.
/// * [`header`](Self::header): a header of your choosing (`X-Session`) both ways.
///
/// A request with neither gets both on its first write (`Set-Cookie` and the response header),
/// so one login endpoint serves browsers and API clients. Tokens are bearer credentials: send
/// them over TLS only, and keep them out of logs and URLs. Requests authenticated by a header
/// are not exposed to cross-site request forgery (browsers do not add the header by
/// themselves), unlike cookies.
///
/// ```
/// use session_kit_core::HeaderTransport;
///
/// let bearer = HeaderTransport::bearer();
/// assert_eq!(bearer.request_header().as_str(), "authorization");
/// assert_eq!(bearer.response_header().as_str(), "session-token");
/// let custom = HeaderTransport::header("X-Session")?;
/// assert_eq!(custom.request_header().as_str(), "x-session");
/// # Ok::<(), session_kit_core::SessionError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTransport {
    request: HeaderName,
    bearer: bool,
    response: HeaderName,
}

impl HeaderTransport {
    /// `Authorization: Bearer <token>` in requests, `session-token: <token>` in responses.
    pub fn bearer() -> Self {
        Self {
            request: http::header::AUTHORIZATION,
            bearer: true,
            response: HeaderName::from_static("session-token"),
        }
    }

    /// `name: <token>` both ways (for example `X-Session`).
    pub fn header(name: &str) -> Result<Self, SessionError> {
        let name = header_name(name)?;
        Ok(Self {
            request: name.clone(),
            bearer: false,
            response: name,
        })
    }

    /// Answers with tokens in `name` instead.
    pub fn with_response_header(mut self, name: &str) -> Result<Self, SessionError> {
        self.response = header_name(name)?;
        Ok(self)
    }

    /// The request header read.
    pub fn request_header(&self) -> &HeaderName {
        &self.request
    }

    /// The response header written.
    pub fn response_header(&self) -> &HeaderName {
        &self.response
    }

    /// The token in one value of the request header, if it holds one (`Bearer <token>`
    /// for [`bearer`](Self::bearer), the value itself otherwise).
    pub fn token_in<'v>(&self, value: &'v [u8]) -> Option<&'v str> {
        let value = std::str::from_utf8(value).ok()?.trim();
        let token = if self.bearer {
            let (scheme, token) = value.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            token.trim()
        } else {
            value
        };
        (!token.is_empty() && token.len() <= crate::cookie::MAX_COOKIE_VALUE && token.is_ascii())
            .then_some(token)
    }

    /// The token of an `http` request, from the first value of the request header that
    /// holds one.
    pub fn token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        headers
            .get_all(&self.request)
            .iter()
            .find_map(|v| self.token_in(v.as_bytes()))
    }
}

fn header_name(name: &str) -> Result<HeaderName, SessionError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| SessionError::InvalidCookie(format!("{name:?} is not a header name")))
}

/// How a request's session arrived, and so how the response carries a changed token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Via {
    /// In the session cookie, or nothing (answered with `Set-Cookie`, and with the response
    /// header too when the storage has a header transport and the request carried neither).
    Cookie,
    /// Neither a cookie nor a token.
    Nothing,
    /// In the header transport's request header: this token.
    Header(Arc<str>),
}

/// The response headers that carry a commit's outcome: `Set-Cookie`, the header transport's
/// token, or both (see [`HeaderTransport`]). Names are lowercase; values are visible ASCII.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseHeaders {
    set_cookie: Option<SetCookie>,
    token: Option<(HeaderName, String)>,
}

impl ResponseHeaders {
    /// What carries `set_cookie` back to a request whose session came `via`: the token header
    /// is sent only when the token differs from the one the client sent.
    pub(crate) fn new(
        via: &Via,
        transport: Option<&HeaderTransport>,
        set_cookie: Option<SetCookie>,
    ) -> Self {
        let Some(set_cookie) = set_cookie else {
            return Self::default();
        };
        if let Via::Header(sent) = via
            && set_cookie.token() == Some(sent)
        {
            return Self::default();
        }
        let token = |c: &SetCookie| {
            transport.map(|t| (t.response.clone(), c.token().unwrap_or_default().to_owned()))
        };
        match (via, transport) {
            (Via::Header(_), Some(_)) => Self {
                token: token(&set_cookie),
                set_cookie: None,
            },
            (Via::Nothing, Some(_)) => Self {
                token: token(&set_cookie),
                set_cookie: Some(set_cookie),
            },
            _ => Self {
                set_cookie: Some(set_cookie),
                token: None,
            },
        }
    }

    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.set_cookie.is_none() && self.token.is_none()
    }

    /// The `Set-Cookie` value, if the response carries one.
    pub fn set_cookie(&self) -> Option<&SetCookie> {
        self.set_cookie.as_ref()
    }

    /// The token header and its value (empty when the session ended), if the response
    /// carries one.
    pub fn token(&self) -> Option<(&HeaderName, &str)> {
        self.token.as_ref().map(|(n, v)| (n, v.as_str()))
    }

    /// Every header as `(name, value)` text, for any framework's header types.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.set_cookie
            .iter()
            .map(|c| ("set-cookie", c.as_str()))
            .chain(self.token.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    /// Every header as `(name, value)`, the values handed over rather than copied: for
    /// framework header types that can take the bytes (`HeaderValue::from_maybe_shared`).
    pub fn into_pairs(self) -> impl Iterator<Item = (HeaderName, String)> {
        self.set_cookie
            .map(|c| (http::header::SET_COOKIE, c.0))
            .into_iter()
            .chain(self.token)
    }

    /// Appends every header to an `http` header map (the values are moved, not copied).
    pub fn append_to(self, headers: &mut HeaderMap) -> Result<(), SessionError> {
        for (name, value) in self.into_pairs() {
            let value = http::HeaderValue::try_from(value)
                .map_err(|_| SessionError::InvalidCookie("not a valid header value".into()))?;
            headers.append(name, value);
        }
        Ok(())
    }
}

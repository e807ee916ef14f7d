//! Session cookie options, `Set-Cookie` rendering, and the signed id format.

use std::{fmt, time::Duration};

pub use cookie::SameSite;
use cookie::{Cookie, time};

use crate::{Keyring, SessionError, SessionId};

/// Longest cookie value we look at; anything longer is ignored without parsing.
pub(crate) const MAX_COOKIE_VALUE: usize = 4096;

/// How the session cookie is written.
///
/// Defaults: name `session`, `Path=/`, `HttpOnly`, `Secure`, `SameSite=Lax`, no `Domain`.
/// Lax (not Strict) keeps the session across top-level navigations such as OAuth redirects.
///
/// ```
/// use session_kit_core::{CookieOptions, SameSite};
///
/// let options = CookieOptions::new().name("__Host-sid").same_site(SameSite::Strict);
/// assert_eq!(options.cookie_name(), "__Host-sid");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieOptions {
    name: String,
    path: String,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
}

impl Default for CookieOptions {
    fn default() -> Self {
        Self {
            name: "session".into(),
            path: "/".into(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
        }
    }
}

impl CookieOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cookie name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The `Path` attribute.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The `Domain` attribute (none by default: the cookie goes to this host only).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The `Secure` attribute (on by default).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Turns `Secure` off so the cookie works over plain `http://localhost`.
    /// Browsers do not send `Secure` cookies over plain HTTP; never use this in production.
    pub fn insecure_for_local_development(self) -> Self {
        self.secure(false)
    }

    /// The `HttpOnly` attribute (on by default).
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// The `SameSite` attribute (`Lax` by default).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The configured cookie name.
    pub fn cookie_name(&self) -> &str {
        &self.name
    }

    pub(crate) fn validate(&self) -> Result<(), SessionError> {
        let token = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
        if self.name.is_empty() || !self.name.chars().all(token) {
            return Err(SessionError::InvalidCookie(format!(
                "cookie name {:?} is not an HTTP token",
                self.name
            )));
        }
        let attr = |v: &str| v.chars().all(|c| c.is_ascii_graphic() && c != ';');
        if !attr(&self.path) || self.domain.as_deref().is_some_and(|d| !attr(d)) {
            return Err(SessionError::InvalidCookie(
                "path and domain must be printable ASCII without ';'".into(),
            ));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(SessionError::InvalidCookie(
                "SameSite=None requires Secure; browsers drop such a cookie".into(),
            ));
        }
        Ok(())
    }

    fn builder(&self, value: String) -> cookie::CookieBuilder<'static> {
        let mut b = Cookie::build((self.name.clone(), value))
            .path(self.path.clone())
            .secure(self.secure)
            .http_only(self.http_only)
            .same_site(self.same_site);
        if let Some(domain) = &self.domain {
            b = b.domain(domain.clone());
        }
        b
    }

    /// A `Set-Cookie` value carrying `value`, persistent for `max_age` or a browser-session
    /// cookie when `None`.
    ///
    /// Written directly rather than through `cookie::Cookie`'s `Display` (a third of a commit's
    /// cost in a profile): every part is validated (`validate`) or produced by us (signed and
    /// sealed values are base64url), and the tests compare with the `cookie` crate's parse.
    ///
    /// Allocated at its exact length: a `String` whose capacity is its length becomes a
    /// header value's `Bytes` as it is, where a larger one costs `bytes` an allocation more.
    pub(crate) fn render(&self, value: &str, max_age: Option<Duration>) -> SetCookie {
        let mut seconds = itoa::Buffer::new();
        let max_age = max_age.map(|age| {
            seconds.format(u64::try_from(age.as_millis().div_ceil(1000)).unwrap_or(u64::MAX))
        });
        let parts = [
            &*self.name,
            "=",
            value,
            if self.http_only { "; HttpOnly" } else { "" },
            match self.same_site {
                SameSite::Strict => "; SameSite=Strict",
                SameSite::Lax => "; SameSite=Lax",
                SameSite::None => "; SameSite=None",
            },
            if self.secure { "; Secure" } else { "" },
            "; Path=",
            &self.path,
            if self.domain.is_some() {
                "; Domain="
            } else {
                ""
            },
            self.domain.as_deref().unwrap_or_default(),
            if max_age.is_some() { "; Max-Age=" } else { "" },
            max_age.unwrap_or_default(),
        ];
        let mut out = String::with_capacity(parts.iter().map(|part| part.len()).sum());
        for part in parts {
            out.push_str(part);
        }
        SetCookie(out)
    }

    /// A `Set-Cookie` value that deletes the cookie.
    pub(crate) fn render_removal(&self) -> SetCookie {
        let b = self
            .builder(String::new())
            .max_age(time::Duration::ZERO)
            .expires(time::OffsetDateTime::UNIX_EPOCH);
        SetCookie(b.build().to_string())
    }

    /// Every value of our cookie in a `Cookie` request header (there may be several, for
    /// example with different paths); `None` for one we cannot use (longer than 4096 bytes,
    /// or not ASCII), which is treated like any other invalid value.
    pub(crate) fn values_in<'a>(
        &'a self,
        header: &'a str,
    ) -> impl Iterator<Item = Option<&'a str>> {
        // The pairs `cookie::Cookie::split_parse` finds, with its trimming, without building a
        // `Cookie` for every pair of the header (about 800 instructions less per request with
        // a cookie, 3 % of a page view on the memory driver): a test checks the two agree on
        // generated headers.
        let name = self.name.as_str();
        header
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .filter(move |(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim())
            .map(|v| (v.len() <= MAX_COOKIE_VALUE && v.is_ascii()).then_some(v))
    }
}

/// A `Set-Cookie` header value produced by a commit or destroy.
#[derive(Clone, PartialEq, Eq)]
pub struct SetCookie(pub(crate) String);

impl SetCookie {
    /// The header value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The header value as an `http` header value.
    pub fn to_header_value(&self) -> Result<http::HeaderValue, SessionError> {
        http::HeaderValue::from_str(&self.0)
            .map_err(|_| SessionError::InvalidCookie("not a valid header value".into()))
    }

    /// Whether this cookie deletes the session cookie (`Max-Age=0`).
    pub fn is_removal(&self) -> bool {
        self.0.contains("Max-Age=0")
    }

    /// The cookie's value alone: the session token a header transport carries
    /// ([`HeaderTransport`](crate::HeaderTransport)); `None` for a removal.
    pub fn token(&self) -> Option<&str> {
        let pair = self.0.split(';').next()?;
        let (_, value) = pair.split_once('=')?;
        (!value.is_empty() && !self.is_removal()).then_some(value)
    }
}

impl fmt::Display for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value is a bearer credential: show the attributes only.
        let attrs = self.0.split_once(';').map_or("", |(_, rest)| rest);
        write!(f, "SetCookie(<redacted>;{attrs})")
    }
}

impl TryFrom<SetCookie> for http::HeaderValue {
    type Error = SessionError;
    fn try_from(c: SetCookie) -> Result<Self, Self::Error> {
        c.to_header_value()
    }
}

/// The signed cookie value `<id>.<HMAC-SHA256 of "name=id">`, both URL-safe base64.
pub(crate) fn sign(keyring: &Keyring, cookie_name: &str, id: &SessionId) -> String {
    let tag = keyring.sign(&signed_message(cookie_name, id));
    let mut out = String::with_capacity(43 + 1 + 43);
    out.push_str(id.expose());
    out.push('.');
    out.push_str(&crate::b64::encode(&tag));
    out
}

/// The id in a signed cookie value and the index of the key that signed it, if it verifies.
pub(crate) fn verify(
    keyring: &Keyring,
    cookie_name: &str,
    value: &str,
) -> Option<(SessionId, usize)> {
    let (id, tag) = value.split_once('.')?;
    let id = SessionId::parse(id)?;
    let tag_bytes: [u8; 32] = crate::b64::decode_exact(tag.as_bytes())?;
    let index = keyring.verify(&signed_message(cookie_name, &id), &tag_bytes)?;
    Some((id, index))
}

/// The signed message `name=id`, in parts (fed to the MAC without joining them).
fn signed_message<'a>(cookie_name: &'a str, id: &'a SessionId) -> [&'a [u8]; 3] {
    [cookie_name.as_bytes(), b"=", id.expose().as_bytes()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;

    fn ring(secret: &str) -> Keyring {
        Keyring::new(Key::from_bytes(secret).unwrap())
    }

    #[test]
    fn defaults_are_safe() {
        let c = CookieOptions::new().render("v", Some(Duration::from_millis(1500)));
        let s = c.as_str();
        for attr in [
            "session=v",
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=2",
        ] {
            assert!(s.contains(attr), "{s} lacks {attr}");
        }
        assert!(!s.contains("Domain"));
        assert!(!format!("{c:?}").contains("session=v"));
    }

    #[test]
    fn rendering_matches_the_cookie_crate() {
        let variants = [
            CookieOptions::new(),
            CookieOptions::new()
                .name("__Host-sid")
                .same_site(SameSite::Strict),
            CookieOptions::new()
                .name("sid")
                .path("/app")
                .domain("example.com")
                .insecure_for_local_development()
                .http_only(false)
                .same_site(SameSite::Lax),
            CookieOptions::new().same_site(SameSite::None),
        ];
        for options in variants {
            for max_age in [
                None,
                Some(Duration::from_millis(86_400_000)),
                Some(Duration::ZERO),
            ] {
                let ours = options.render("abc.DEF-_1", max_age);
                let mut theirs = options.builder("abc.DEF-_1".into());
                if let Some(age) = max_age {
                    let secs = i64::try_from(age.as_millis().div_ceil(1000)).unwrap();
                    theirs = theirs.max_age(time::Duration::seconds(secs));
                }
                let theirs = theirs.build();
                let parsed = Cookie::parse(ours.as_str()).unwrap();
                assert_eq!(parsed.name_value(), theirs.name_value());
                assert_eq!(parsed.path(), theirs.path());
                assert_eq!(parsed.domain(), theirs.domain());
                // Absent and `false` are the same attribute.
                assert_eq!(
                    parsed.secure().unwrap_or(false),
                    theirs.secure().unwrap_or(false)
                );
                assert_eq!(
                    parsed.http_only().unwrap_or(false),
                    theirs.http_only().unwrap_or(false)
                );
                assert_eq!(parsed.same_site(), theirs.same_site());
                assert_eq!(parsed.max_age(), theirs.max_age());
                // Allocated at its length, so a header value takes it without another.
                assert_eq!(ours.0.capacity(), ours.0.len());
            }
        }
    }

    #[test]
    fn every_attribute_can_be_overridden() {
        let o = CookieOptions::new()
            .name("sid")
            .path("/app")
            .domain("example.com")
            .insecure_for_local_development()
            .http_only(false)
            .same_site(SameSite::Strict);
        let s = o.render("v", None).to_string();
        assert!(s.starts_with("sid=v"));
        assert!(s.contains("Path=/app") && s.contains("Domain=example.com"));
        assert!(s.contains("SameSite=Strict"));
        assert!(!s.contains("Secure") && !s.contains("HttpOnly") && !s.contains("Max-Age"));
    }

    #[test]
    fn removal_expires_the_cookie() {
        let c = CookieOptions::new().render_removal();
        assert!(c.is_removal());
        assert!(c.as_str().contains("Expires=Thu, 01 Jan 1970"));
        assert!(c.to_header_value().is_ok());
    }

    #[test]
    fn invalid_options_are_refused() {
        assert!(CookieOptions::new().name("a b").validate().is_err());
        assert!(CookieOptions::new().name("").validate().is_err());
        assert!(CookieOptions::new().path("/;x").validate().is_err());
        assert!(
            CookieOptions::new()
                .same_site(SameSite::None)
                .secure(false)
                .validate()
                .is_err()
        );
        assert!(CookieOptions::new().validate().is_ok());
    }

    #[test]
    fn signed_values_verify_with_the_right_key_and_name_only() {
        let k = ring("0123456789abcdef0123456789abcdef");
        let id = SessionId::generate().unwrap();
        let v = sign(&k, "session", &id);
        assert_eq!(verify(&k, "session", &v), Some((id.clone(), 0)));
        assert_eq!(verify(&k, "other", &v), None, "bound to the cookie name");
        let other = ring("another secret of 32 bytes or more");
        assert_eq!(verify(&other, "session", &v), None);
    }

    #[test]
    fn a_cookie_signed_by_an_earlier_release_still_verifies() {
        // Computed independently (Python's hmac, from the documented construction: a key
        // derived as HMAC(secret, "session-core key derivation v1\0cookie-signature"), then
        // HMAC-SHA256 of "session=<id>"): a release that changed either would log every
        // visitor out.
        let k = ring("0123456789abcdef0123456789abcdef");
        let value = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.MoyOgv0o6uNOUwJv1hLQ4TiocO_QHOz_oNB4dkmPNrA";
        let (id, index) = verify(&k, "session", value).unwrap();
        assert_eq!((id.expose(), index), (&*"A".repeat(43), 0));
        assert_eq!(sign(&k, "session", &id), value);
    }

    #[test]
    fn bad_values_never_verify() {
        let k = ring("0123456789abcdef0123456789abcdef");
        let id = SessionId::generate().unwrap();
        let good = sign(&k, "session", &id);
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let (id_part, tag) = good.split_once('.').unwrap();
        for bad in [
            "",
            ".",
            "garbage",
            id_part,
            &format!("{id_part}."),
            &format!(".{tag}"),
            &good[..good.len() - 1],
            &format!("{good}A"),
            &flipped,
            &format!("{}.{tag}", SessionId::generate().unwrap().expose()),
            "💥💥💥.💥",
            &"A".repeat(10_000),
        ] {
            assert_eq!(verify(&k, "session", bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cookie_header_parsing_finds_all_values_and_skips_junk() {
        let o = CookieOptions::new();
        let big = "x".repeat(5000);
        let header = format!("a=1; session=one; junk; session=two; session={big}; b=2");
        let values: Vec<_> = o.values_in(&header).collect();
        assert_eq!(values, [Some("one"), Some("two"), None]);
        let header = "lang=fran\u{e7}ais; session=one; session=caf\u{e9}";
        let values: Vec<_> = o.values_in(header).collect();
        assert_eq!(values, [Some("one"), None]);
        assert_eq!(o.values_in("").count(), 0);
        assert_eq!(o.values_in(";;;==;").count(), 0);
    }

    /// `values_in` splits the header itself: it must find exactly the values the `cookie`
    /// crate's parser finds, on headers made of the characters that matter (separators,
    /// every kind of whitespace `trim` knows, quotes, non-ASCII).
    #[test]
    fn cookie_header_parsing_agrees_with_the_cookie_crate() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let o = CookieOptions::new();
        let pieces = [
            "session",
            "session=",
            "; session=",
            "Session",
            "session ",
            " session",
            "=",
            "==",
            ";",
            "; ",
            " ",
            "\t",
            "\u{a0}",
            "\u{3000}",
            "\"",
            "a",
            "b=1",
            "v",
            "é",
            "💥",
            "x".repeat(5000).leak(),
        ];
        let mut rng = StdRng::seed_from_u64(7);
        let mut checked_with_ours = 0;
        for _ in 0..20_000 {
            let header: String = (0..rng.random_range(0..12))
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect();
            let expected: Vec<_> = Cookie::split_parse(header.as_str())
                .filter_map(Result::ok)
                .filter(|c| c.name() == "session")
                .filter_map(|c| c.value_raw())
                .map(|v| (v.len() <= MAX_COOKIE_VALUE && v.is_ascii()).then_some(v))
                .collect();
            let found: Vec<_> = o.values_in(&header).collect();
            assert_eq!(found, expected, "{header:?}");
            checked_with_ours += usize::from(!expected.is_empty());
        }
        // The generator does reach our cookie, often.
        assert!(checked_with_ours > 2_000, "{checked_with_ours}");
    }
}

/// The browser's limit for one cookie, `Set-Cookie` attributes included.
pub(crate) const MAX_SET_COOKIE: usize = 4096;

/// What the request's cookie said.
#[derive(Debug, Clone)]
pub(crate) enum Incoming {
    /// No session cookie.
    Absent,
    /// A session cookie that does not verify.
    Invalid,
    /// A correctly signed id; `stale_key` when an older key of the keyring signed it.
    Valid {
        id: SessionId,
        stale_key: bool,
        /// What the verified-cookie memo holds for the cookie (its storage key, and the value
        /// when the newest key signed it), shared: copied out only when the session loads.
        known: Option<std::sync::Arc<crate::cookie_memo::Verified>>,
    },
    /// Cookie-only sessions: the sealed values, opened on first use.
    Sealed(SealedValues),
}

/// The sealed values of a request's session cookies (usually one: a browser sends more only
/// when cookies of the same name were set for several paths or domains), the first held
/// without a vector's allocation.
#[derive(Clone)]
pub(crate) struct SealedValues {
    first: String,
    more: Vec<String>,
}

/// Only how many: a sealed value is the session itself, and a bearer token.
impl std::fmt::Debug for SealedValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedValues")
            .field("count", &(1 + self.more.len()))
            .finish()
    }
}

impl SealedValues {
    /// The first value.
    pub(crate) fn new(first: &str) -> Self {
        Self {
            first: first.to_owned(),
            more: Vec::new(),
        }
    }

    /// Adds `value` to `values`, in the order the request sent them.
    pub(crate) fn add(values: &mut Option<Self>, value: &str) {
        match values {
            None => *values = Some(Self::new(value)),
            Some(values) => values.more.push(value.to_owned()),
        }
    }

    /// The values, in order, to take one.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut String> {
        std::iter::once(&mut self.first).chain(self.more.iter_mut())
    }
}

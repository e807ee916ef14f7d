//! What a hostile client sends as cookies, as proptest strategies: the tests of the core and of
//! each framework integration draw from the same inputs.

use proptest::prelude::*;

/// One `Cookie` header value that `http` accepts (any byte but the controls other than tab,
/// DEL excluded): raw bytes one time in three, otherwise one to three cookie-shaped pairs
/// named `cookie_name` or near it (case, spaces, a `__Host-` prefix), another cookie, or
/// nothing, with values mixing the characters of signed and sealed values with separators,
/// quotes, escapes and non-ASCII bytes.
pub fn cookie_header(cookie_name: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let raw = prop::collection::vec(
        prop_oneof![0x20u8..=0x7e, 0x80u8..=0xff, Just(b'\t')],
        0..200,
    );
    let name = prop::sample::select(vec![
        cookie_name.to_owned(),
        cookie_name.to_owned(),
        cookie_name.to_uppercase(),
        format!(" {cookie_name}"),
        format!("{cookie_name} "),
        format!("__Host-{cookie_name}"),
        "theme".to_owned(),
        String::new(),
    ]);
    let byte = prop_oneof![
        8 => prop::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec()
        ),
        1 => prop::sample::select(b".=;,\" \t%\\".to_vec()),
        1 => 0x80u8..=0xff,
    ];
    let pair = (name, prop::collection::vec(byte, 0..120))
        .prop_map(|(name, value)| [name.as_bytes(), b"=", &value].concat());
    let pairs = prop::collection::vec(pair, 1..4).prop_map(|pairs| pairs.join(&b"; "[..]));
    prop_oneof![1 => raw, 2 => pairs]
}

/// One to three [`cookie_header`]s: what a request may carry as its `Cookie` headers.
pub fn cookie_headers(cookie_name: &'static str) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(cookie_header(cookie_name), 1..4)
}

/// Garbage `headers` before the visitor's real `cookie` (`name=value`), joined into one `Cookie`
/// header or each in a header of its own, the cookie last: the session must still be theirs.
pub fn before_cookie(headers: &[Vec<u8>], cookie: &str, one_header: bool) -> Vec<Vec<u8>> {
    let mut headers = headers.to_vec();
    headers.push(cookie.as_bytes().to_vec());
    if one_header {
        vec![headers.join(&b"; "[..])]
    } else {
        headers
    }
}

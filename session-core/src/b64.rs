//! URL-safe base64 without padding, the one encoding of every value this crate puts in a
//! cookie or hands out (ids, signatures, sealed sessions, request-forgery tokens, keys).
//!
//! Decoding is strict: no padding, no other alphabet, no set trailing bits, so each value has
//! exactly one spelling. The engine is `base64-simd`: a sealed session's cookie is encoded or
//! decoded on every cookie-only commit and load, and `base64`'s engine spent about 1,000
//! instructions encoding and 800 decoding a 105-byte one.

use base64_simd::{Out, URL_SAFE_NO_PAD};

/// `bytes` as text.
pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode_to_string(bytes)
}

/// `bytes` as text of exactly `N` characters; `None` if that is not their encoded length.
pub(crate) fn encode_exact<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    if URL_SAFE_NO_PAD.encoded_length(bytes.len()) != N {
        return None;
    }
    let mut out = [0u8; N];
    let _ = URL_SAFE_NO_PAD.encode(bytes, Out::from_slice(&mut out));
    Some(out)
}

/// The bytes `text` encodes, if it is valid and encodes exactly `N` of them.
pub(crate) fn decode_exact<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    // The length is checked first: decoding into a buffer that is too small panics.
    if URL_SAFE_NO_PAD.decoded_length(text).ok()? != N {
        return None;
    }
    let mut out = [0u8; N];
    URL_SAFE_NO_PAD
        .decode(text, Out::from_slice(&mut out))
        .ok()?;
    Some(out)
}

/// The bytes `text` encodes, if it is valid.
pub(crate) fn decode(text: &[u8]) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode_to_vec(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_spellings() {
        let bytes: Vec<u8> = (0..=255).collect();
        for n in 0..40 {
            let text = encode(&bytes[..n]);
            assert_eq!(decode(text.as_bytes()).as_deref(), Some(&bytes[..n]));
            assert!(!text.contains('='));
        }
        let text = encode(&[0xff; 32]);
        assert_eq!(text.len(), 43);
        assert_eq!(decode_exact::<32>(text.as_bytes()), Some([0xff; 32]));
        assert_eq!(
            encode_exact::<43>(&[0xff; 32]).map(|t| t.to_vec()),
            Some(text.clone().into_bytes())
        );
        // Wrong lengths are refused rather than panicking.
        assert_eq!(decode_exact::<31>(text.as_bytes()), None);
        assert_eq!(decode_exact::<33>(text.as_bytes()), None);
        assert_eq!(encode_exact::<42>(&[0xff; 32]), None);
        for other in [
            format!("{text}="),
            text.replace('_', "/"),
            format!("{}9", &text[..42]), // "8" with a trailing bit set
            format!(" {}", &text[..42]),
            String::new(),
            "a".to_owned(),
        ] {
            assert_eq!(decode_exact::<32>(other.as_bytes()), None, "{other}");
        }
    }
}

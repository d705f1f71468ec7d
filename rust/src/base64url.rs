//! Strict base64url (RFC 4648 section 5) without padding, as JWS requires (RFC 7515 section 2):
//! no `=`, no whitespace, and no non-zero trailing bits, so that every text has exactly one
//! decoding and every decoding exactly one text.
//!
//! Token segments are decoded with base64-simd (SIMD, chosen at run time), three to four times
//! faster than the `base64` crate on a signature; the `base64` crate encodes, decodes elsewhere,
//! and is the reference the tests and the `base64url` fuzz target hold the fast path to.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::mem::MaybeUninit;

pub fn decode(text: &str) -> Option<Vec<u8>> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(text.as_bytes())
        .ok()
}

/// Decodes `text` onto the end of `out`; returns the new length of `out`, or None (and `out`
/// as it was) if `text` is not strict base64url.
pub fn decode_append(text: &str, out: &mut Vec<u8>) -> Option<usize> {
    let before = out.len();
    match base64_simd::URL_SAFE_NO_PAD.decode_append(text.as_bytes(), out) {
        Ok(()) => Some(out.len()),
        Err(_) => {
            out.truncate(before);
            None
        }
    }
}

/// Decodes `text` into the front of `out`; None if `text` is not strict base64url, or if its
/// bytes do not fit.
pub fn decode_to<'o>(text: &str, out: &'o mut [MaybeUninit<u8>]) -> Option<&'o mut [u8]> {
    let engine = base64_simd::URL_SAFE_NO_PAD;
    let len = engine.decoded_length(text.as_bytes()).ok()?;
    let out = out.get_mut(..len)?;
    engine
        .decode(text.as_bytes(), base64_simd::Out::from_uninit_slice(out))
        .ok()
}

/// An upper bound of the decoded length of `text`.
pub fn decoded_len_bound(text: &str) -> usize {
    text.len() / 4 * 3 + 3
}

/// The `base64` crate's strict decoder: the reference for [`decode`].
#[cfg(any(test, feature = "fuzzing"))]
pub fn decode_reference(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

pub fn decode_into(text: &str, out: &mut Vec<u8>) -> bool {
    out.clear();
    URL_SAFE_NO_PAD.decode_vec(text, out).is_ok()
}

pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every text of up to six characters over an alphabet with the edge cases (the last
    /// characters of 6-bit groups, both URL-safe extras, the standard alphabet's, padding,
    /// space): the fast decoder agrees with the reference, and what it accepts is canonical.
    #[test]
    fn agrees_with_the_reference() {
        let alphabet = b"AQRgh_-+/= ";
        let mut text = Vec::new();
        for len in 0..=6u32 {
            for mut n in 0..alphabet.len().pow(len) {
                text.clear();
                for _ in 0..len {
                    text.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                let text = std::str::from_utf8(&text).expect("ascii");
                let fast = decode(text);
                assert_eq!(fast, decode_reference(text), "{text:?}");
                let mut out = [MaybeUninit::uninit(); 8];
                assert_eq!(
                    decode_to(text, &mut out).map(|b| b.to_vec()),
                    fast,
                    "{text:?}"
                );
                if let Some(bytes) = fast {
                    assert_eq!(encode(&bytes), text);
                }
            }
        }
    }

    #[test]
    fn strict() {
        assert_eq!(decode("AQAB"), Some(vec![1, 0, 1]));
        assert_eq!(decode("-_8"), Some(vec![0xfb, 0xff]));
        for bad in ["AQAB=", "AQ==", "AQ AB", "AQ+B", "AQ/B", "A", "AR"] {
            assert_eq!(decode(bad), None, "{bad}");
            let mut out = vec![7];
            assert_eq!(decode_append(bad, &mut out), None, "{bad}");
            assert_eq!(out, vec![7]);
        }
        let mut out = vec![7];
        assert_eq!(decode_append("AQAB", &mut out), Some(4));
        assert_eq!(decode_append("-_8", &mut out), Some(6));
        assert_eq!(out, vec![7, 1, 0, 1, 0xfb, 0xff]);
    }
}

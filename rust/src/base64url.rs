//! Strict base64url (RFC 4648 section 5) without padding, as JWS requires (RFC 7515 section 2):
//! no `=`, no whitespace, and no non-zero trailing bits, so that every text has exactly one
//! decoding and every decoding exactly one text.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes `text` into the front of `out`; None if `text` is not strict base64url, or if its
/// bytes do not fit (`decoded_len_bound` gives a size that always fits).
pub fn decode_to<'o>(text: &str, out: &'o mut [u8]) -> Option<&'o [u8]> {
    let len = URL_SAFE_NO_PAD.decode_slice(text, out).ok()?;
    out.get(..len)
}

/// An upper bound of the decoded length of `text`.
pub fn decoded_len_bound(text: &str) -> usize {
    text.len() / 4 * 3 + 3
}

pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every text of up to six characters over an alphabet with the edge cases (the last
    /// characters of 6-bit groups, both URL-safe extras, the standard alphabet's, padding,
    /// space): decoding into a buffer agrees with decoding into a vector, and what either
    /// accepts is canonical.
    #[test]
    fn decode_to_agrees_with_decode() {
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
                let decoded = decode(text);
                let mut out = [0u8; 8];
                assert_eq!(
                    decode_to(text, &mut out).map(<[u8]>::to_vec),
                    decoded,
                    "{text:?}"
                );
                if let Some(bytes) = decoded {
                    assert_eq!(encode(&bytes), text);
                }
            }
        }
        // A buffer too small is a refusal, never a panic.
        assert_eq!(decode_to("AQAB", &mut [0u8; 2]), None);
    }

    #[test]
    fn strict() {
        assert_eq!(decode("AQAB"), Some(vec![1, 0, 1]));
        assert_eq!(decode("-_8"), Some(vec![0xfb, 0xff]));
        for bad in ["AQAB=", "AQ==", "AQ AB", "AQ+B", "AQ/B", "A", "AR"] {
            assert_eq!(decode(bad), None, "{bad}");
            assert_eq!(decode_to(bad, &mut [0u8; 8]), None, "{bad}");
        }
        assert_eq!(decode_to("AQAB", &mut [0u8; 8]), Some(&[1, 0, 1][..]));
    }
}

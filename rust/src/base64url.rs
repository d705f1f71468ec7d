//! Strict base64url (RFC 4648 section 5) without padding, as JWS requires (RFC 7515 section 2):
//! no `=`, no whitespace, and no non-zero trailing bits, so that every text has exactly one
//! decoding and every decoding exactly one text.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict() {
        assert_eq!(decode("AQAB"), Some(vec![1, 0, 1]));
        assert_eq!(decode("-_8"), Some(vec![0xfb, 0xff]));
        for bad in ["AQAB=", "AQ==", "AQ AB", "AQ+B", "AQ/B", "A", "AR"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}

//! An immutable set of verification keys parsed once from a JWKS document (RFC 7517 section 5).

use crate::algorithm::Algorithm;
use crate::error::{JwksError, KeyMiss, TokenError};
use crate::json::{self, JsonProblem};
use crate::jwk::{parse_jwk, PublicKey};
use aws_lc_rs::digest;
use serde_json::Value;

/// More keys than this in one document is not a key set anyone publishes; the rest are skipped
/// so a hostile or broken document cannot make every refresh parse thousands of keys.
pub const MAX_KEYS: usize = 100;

#[derive(Debug)]
pub struct KeySet {
    keys: Vec<PublicKey>,
    skipped: Vec<String>,
    fingerprint: [u8; 32],
}

impl KeySet {
    /// Parses a JWKS document. Unusable keys are skipped with a reason; a document with no usable
    /// key at all is an error listing every reason.
    pub fn from_json(bytes: &[u8]) -> Result<Self, JwksError> {
        let fail = |detail: String| JwksError {
            detail,
            reasons: Vec::new(),
        };
        let document = json::parse_object(bytes).map_err(|problem| match problem {
            JsonProblem::NotAnObject => fail("the JWKS document is not a JSON object".into()),
            other => fail(format!("the JWKS document {}", other.describe())),
        })?;
        let Some(Value::Array(entries)) = document.get("keys") else {
            return Err(fail("the JWKS document has no 'keys' array".into()));
        };
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let label = key_label(index, entry);
            if index >= MAX_KEYS {
                skipped.push(format!("{label}: beyond the first {MAX_KEYS} keys"));
                continue;
            }
            let Value::Object(jwk) = entry else {
                skipped.push(format!("{label}: not a JSON object"));
                continue;
            };
            match parse_jwk(jwk) {
                Ok(key) => keys.push(key),
                Err(reason) => skipped.push(format!("{label}: {reason}")),
            }
        }
        if keys.is_empty() {
            let detail = if entries.is_empty() {
                "the JWKS document has an empty 'keys' array".to_string()
            } else {
                format!("none of the {} keys in the JWKS is usable", entries.len())
            };
            return Err(JwksError {
                detail,
                reasons: skipped,
            });
        }
        let fingerprint = fingerprint(&keys);
        Ok(Self {
            keys,
            skipped,
            fingerprint,
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref())
    }

    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    pub fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The digest of the first usable key (for tests of code keyed by key digests).
    #[cfg(test)]
    pub fn fingerprint_of_first(&self) -> [u8; 32] {
        self.keys[0].digest
    }

    /// Whether the key with this digest (see `PublicKey::digest`) is still in the set.
    pub fn contains_key(&self, digest: &[u8; 32]) -> bool {
        self.keys.iter().any(|k| &k.digest == digest)
    }

    /// Verifies `signature` over `message` with the key the token names, and returns that key.
    ///
    /// With a `kid`, only keys with that id are candidates (a publisher may list the same id for
    /// two algorithms, or mid-rotation twice: each fitting candidate is tried). Without a `kid`,
    /// exactly one usable key may fit the algorithm. `kid` is only ever compared, never used to
    /// locate or fetch anything.
    pub fn verify(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<&PublicKey, TokenError> {
        match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid));
                let Some(first) = named.next() else {
                    return Err(TokenError::KeyNotFound(KeyMiss::UnknownKid));
                };
                let mut fitting = std::iter::once(first)
                    .chain(named)
                    .filter(|k| k.fits(alg))
                    .peekable();
                if fitting.peek().is_none() {
                    return Err(TokenError::KeyNotFound(KeyMiss::WrongKeyType));
                }
                fitting
                    .find(|k| k.verify(alg, message, signature))
                    .ok_or(TokenError::InvalidSignature)
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (None, _) => Err(TokenError::KeyNotFound(KeyMiss::NoKeyForAlgorithm)),
                    (Some(_), Some(_)) => Err(TokenError::KeyNotFound(KeyMiss::Ambiguous)),
                    (Some(key), None) if key.verify(alg, message, signature) => Ok(key),
                    (Some(_), None) => Err(TokenError::InvalidSignature),
                }
            }
        }
    }
}

/// How a key is named in skip reasons: its position and, when it has one, a short `kid`.
fn key_label(index: usize, entry: &Value) -> String {
    match entry.get("kid").and_then(Value::as_str) {
        Some(kid) => {
            let short: String = kid.chars().take(40).collect();
            let ellipsis = if short.len() < kid.len() { "..." } else { "" };
            format!("key {index} (kid {short:?}{ellipsis})")
        }
        None => format!("key {index}"),
    }
}

fn fingerprint(keys: &[PublicKey]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for key in keys {
        ctx.update(&key.digest);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0""#;

    fn set(keys: &[String]) -> Result<KeySet, JwksError> {
        KeySet::from_json(format!("{{\"keys\":[{}]}}", keys.join(",")).as_bytes())
    }

    #[test]
    fn keeps_usable_keys_and_reasons() {
        let ks = set(&[
            format!("{P256},\"kid\":\"a\"}}"),
            r#"{"kty":"oct","k":"AA","kid":"secret"}"#.into(),
            "3".into(),
        ])
        .expect("one usable key");
        assert_eq!(ks.len(), 1);
        assert_eq!(ks.key_ids().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(ks.skipped().len(), 2);
        assert!(ks.skipped()[0].starts_with("key 1 (kid \"secret\")"));
        assert!(ks.contains_kid("a") && !ks.contains_kid("secret"));
    }

    #[test]
    fn no_usable_key_is_an_error_with_every_reason() {
        let err = set(&[r#"{"kty":"oct"}"#.into(), r#"{"kty":"RSA"}"#.into()]).expect_err("none");
        assert_eq!(err.reasons.len(), 2);
        assert!(err.detail.contains("none of the 2 keys"));
        let empty = KeySet::from_json(br#"{"keys":[]}"#).expect_err("empty");
        assert!(empty.detail.contains("empty"));
        for doc in [&b"[]"[..], b"{}", b"{\"keys\":{}}", b"<html>"] {
            assert!(KeySet::from_json(doc).is_err());
        }
    }

    #[test]
    fn fingerprint_depends_on_keys_and_ids() {
        let a = set(&[format!("{P256},\"kid\":\"a\"}}")]).expect("ok");
        let a2 = set(&[format!("{P256},\"kid\":\"a\"}}")]).expect("ok");
        let b = set(&[format!("{P256},\"kid\":\"b\"}}")]).expect("ok");
        assert_eq!(a.fingerprint(), a2.fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn key_selection() {
        let ks = set(&[format!("{P256},\"kid\":\"a\"}}"), format!("{P256}}}")]).expect("ok");
        let sig = [1u8; 64];
        assert_eq!(
            ks.verify(Some("zzz"), Algorithm::ES256, b"m", &sig)
                .map(|_| ()),
            Err(TokenError::KeyNotFound(KeyMiss::UnknownKid))
        );
        assert_eq!(
            ks.verify(Some("a"), Algorithm::ES384, b"m", &sig)
                .map(|_| ()),
            Err(TokenError::KeyNotFound(KeyMiss::WrongKeyType))
        );
        assert_eq!(
            ks.verify(None, Algorithm::ES256, b"m", &sig).map(|_| ()),
            Err(TokenError::KeyNotFound(KeyMiss::Ambiguous))
        );
        assert_eq!(
            ks.verify(None, Algorithm::RS256, b"m", &sig).map(|_| ()),
            Err(TokenError::KeyNotFound(KeyMiss::NoKeyForAlgorithm))
        );
        assert_eq!(
            ks.verify(Some("a"), Algorithm::ES256, b"m", &sig)
                .map(|_| ()),
            Err(TokenError::InvalidSignature)
        );
        let a = ks.key_ids().next().map(str::to_owned).expect("kid");
        assert_eq!(a, "a");
        let digest = ks.keys[0].digest;
        assert!(ks.contains_key(&digest) && !ks.contains_key(&[0; 32]));
    }
}

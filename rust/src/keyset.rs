//! An immutable set of verification keys parsed once from a JWKS document (RFC 7517 section 5).

use crate::algorithm::Algorithm;
use crate::error::{JwksError, KeyMiss, TokenError};
use crate::json;
use crate::jwk::{parse_jwk, PublicKey};
use crate::trace::{Check, Recorder, Silent};
use aws_lc_rs::digest;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;

/// More keys than this in one document is not a key set anyone publishes: the entries after
/// them are counted (their JSON syntax checked) but not read, so a hostile or broken document
/// costs neither a parsed value nor a skip reason per entry.
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
        let document = match serde_json::from_slice::<Document>(bytes) {
            Ok(Document::Object(keys)) => keys,
            Ok(Document::Other) => {
                return Err(fail("the JWKS document is not a JSON object".into()))
            }
            Err(err) => {
                let problem = json::problem(&err);
                return Err(fail(format!("the JWKS document {}", problem.describe())));
            }
        };
        let Some(Keys::Array { entries, unread }) = document else {
            return Err(fail("the JWKS document has no 'keys' array".into()));
        };
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let label = key_label(index, entry);
            let Value::Object(jwk) = entry else {
                skipped.push(format!("{label}: not a JSON object"));
                continue;
            };
            match parse_jwk(jwk) {
                Ok(key) => keys.push(key),
                Err(reason) => skipped.push(format!("{label}: {reason}")),
            }
        }
        if unread > 0 {
            skipped.push(format!(
                "{unread} more entries beyond the first {MAX_KEYS} were not read"
            ));
        }
        if keys.is_empty() {
            let detail = if entries.is_empty() {
                "the JWKS document has an empty 'keys' array".to_string()
            } else {
                let total = entries.len() + unread;
                format!("none of the {total} keys in the JWKS is usable")
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
        self.verify_recorded(kid, alg, message, signature, &mut Silent)
    }

    /// [`Self::verify`], recording the key selection and the signature check in `rec`.
    pub fn verify_recorded<R: Recorder>(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
        rec: &mut R,
    ) -> Result<&PublicKey, TokenError> {
        match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid));
                let first = named.next();
                let mut fitting = first
                    .into_iter()
                    .chain(named)
                    .filter(|k| k.fits(alg))
                    .peekable();
                let selected = match (first, fitting.peek()) {
                    (None, _) => Err(TokenError::KeyNotFound(KeyMiss::UnknownKid)),
                    (Some(_), None) => Err(TokenError::KeyNotFound(KeyMiss::WrongKeyType)),
                    (Some(_), Some(_)) => Ok(()),
                };
                rec.outcome(Check::Key, selected, |()| {
                    format!("kid {kid:?} names a key that fits {}", alg.name())
                })?;
                let verified = fitting
                    .find(|k| k.verify(alg, message, signature))
                    .ok_or(TokenError::InvalidSignature);
                rec.outcome(Check::Signature, verified, |_| {
                    format!("verified with the key of kid {kid:?} ({})", alg.name())
                })
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                let selected = match (fitting.next(), fitting.next()) {
                    (None, _) => Err(TokenError::KeyNotFound(KeyMiss::NoKeyForAlgorithm)),
                    (Some(_), Some(_)) => Err(TokenError::KeyNotFound(KeyMiss::Ambiguous)),
                    (Some(key), None) => Ok(key),
                };
                let key = rec.outcome(Check::Key, selected, |key| {
                    let name = key
                        .kid
                        .as_deref()
                        .map_or(String::new(), |k| format!(" ({k:?})"));
                    format!("no kid; the one key{name} that fits {}", alg.name())
                })?;
                let verified = if key.verify(alg, message, signature) {
                    Ok(key)
                } else {
                    Err(TokenError::InvalidSignature)
                };
                rec.outcome(Check::Signature, verified, |_| {
                    format!("verified with that key ({})", alg.name())
                })
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

/// A JWKS document as far as it is read: the top level must be an object whose member names are
/// unique; of its members only `keys` is read, and of that array only the first `MAX_KEYS`
/// entries (strictly, see `json`). Everything else is checked for JSON syntax and skipped
/// without building values.
enum Document {
    Object(Option<Keys>),
    Other,
}

enum Keys {
    Array { entries: Vec<Value>, unread: usize },
    Other,
}

/// Visitor methods for the JSON types a shape does not want: each gives `$other` (containers
/// are skipped without building values).
macro_rules! other_shapes {
    ($other:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
    };
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DocumentVisitor)
    }
}

struct DocumentVisitor;

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWKS document")
    }

    other_shapes!(Document::Other);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Document, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Document::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Document, A::Error> {
        let mut names = HashSet::new();
        let mut keys = None;
        while let Some(name) = access.next_key::<String>()? {
            if name == "keys" {
                keys = Some(access.next_value::<Keys>()?);
            } else {
                access.next_value::<IgnoredAny>()?;
            }
            if !names.insert(name) {
                return Err(json::duplicate());
            }
        }
        Ok(Document::Object(keys))
    }
}

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeysVisitor)
    }
}

struct KeysVisitor;

impl<'de> Visitor<'de> for KeysVisitor {
    type Value = Keys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of JWKs")
    }

    other_shapes!(Keys::Other);

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Keys, A::Error> {
        while access.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Keys::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Keys, A::Error> {
        let mut entries = Vec::new();
        while entries.len() < MAX_KEYS {
            match seq.next_element::<json::Strict>()? {
                Some(json::Strict(entry)) => entries.push(entry),
                None => return Ok(Keys::Array { entries, unread: 0 }),
            }
        }
        let mut unread = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            unread += 1;
        }
        Ok(Keys::Array { entries, unread })
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
    fn entries_beyond_the_limit_are_counted_not_read() {
        let key = format!("{P256},\"kid\":\"real\"}}");
        let mut entries = vec![key];
        entries.extend(std::iter::repeat_n(r#"{"kty":"junk"}"#.to_string(), 40_000));
        let ks = set(&entries).expect("one key");
        assert_eq!(ks.len(), 1);
        assert_eq!(ks.skipped().len(), MAX_KEYS);
        assert_eq!(
            ks.skipped().last().map(String::as_str),
            Some("39901 more entries beyond the first 100 were not read")
        );
        // Unread entries are still JSON: a syntax error anywhere refuses the document.
        let broken = format!(r#"{{"keys":[{}, {{"kty": }}]}}"#, entries[..150].join(","));
        assert!(KeySet::from_json(broken.as_bytes()).is_err());
        // Exactly the limit: nothing unread, no summary.
        let hundred = set(&entries[..MAX_KEYS]).expect("ok");
        assert_eq!(hundred.skipped().len(), MAX_KEYS - 1);
        // Nothing usable: every read reason plus the summary, and the total in the detail.
        let junk = set(&entries[1..251]).expect_err("none usable");
        assert_eq!(junk.reasons.len(), MAX_KEYS + 1);
        assert!(
            junk.detail.contains("none of the 250 keys"),
            "{}",
            junk.detail
        );
    }

    #[test]
    fn document_shape() {
        let key = format!("{P256},\"kid\":\"a\"}}");
        // Other top-level members are allowed and skipped; a repeated name is refused anywhere
        // the validator reads, including the top level.
        let extra = format!(r#"{{"x": {{"y": [1, 2]}}, "keys": [{key}], "z": null}}"#);
        assert_eq!(KeySet::from_json(extra.as_bytes()).expect("ok").len(), 1);
        for doc in [
            format!(r#"{{"keys": [{key}], "keys": [{key}]}}"#),
            format!(r#"{{"keys": [{key}], "x": 1, "x": 2}}"#),
            format!(r#"{{"keys": [{{"kty": "EC", "kty": "EC"}}, {key}]}}"#),
        ] {
            let err = KeySet::from_json(doc.as_bytes()).expect_err(&doc);
            assert!(
                err.detail.contains("duplicate member name"),
                "{}",
                err.detail
            );
        }
        for (doc, detail) in [
            (&b"[]"[..], "not a JSON object"),
            (b"\"keys\"", "not a JSON object"),
            (b"null", "not a JSON object"),
            (b"{}", "no 'keys' array"),
            (b"{\"keys\": {\"a\": [1]}}", "no 'keys' array"),
            (b"{\"keys\": \"x\"}", "no 'keys' array"),
            (b"{\"keys\": null}", "no 'keys' array"),
            (b"{\"keys\": []}", "empty 'keys' array"),
            (b"{\"keys\": [] } x", "not valid JSON"),
            (b"{\"keys\": [1e400]}", "not valid JSON"),
            (b"<html>", "not valid JSON"),
        ] {
            let err = KeySet::from_json(doc).expect_err(detail);
            assert!(err.detail.contains(detail), "{doc:?}: {}", err.detail);
        }
        // Deep nesting in unread parts ends cleanly too.
        let deep = format!(
            r#"{{"keys": [{key}], "x": {}1{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(KeySet::from_json(deep.as_bytes()).map(|k| k.len()), Ok(1));
        let entries: Vec<String> = std::iter::repeat_n(key.clone(), MAX_KEYS).collect();
        let deep_entry = format!(
            r#"{{"keys": [{}, {}1{}]}}"#,
            entries.join(","),
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            KeySet::from_json(deep_entry.as_bytes()).map(|k| k.skipped().len()),
            Ok(1)
        );
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

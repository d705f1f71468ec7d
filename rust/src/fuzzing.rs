//! Fuzzing entry points: the bodies of the cargo-fuzz targets in `fuzz/`, each checking the
//! properties its part of the core promises, and (under `cargo test`) the replay of every
//! committed seed and regression input through them.
//!
//! Built for `cargo test` and for the `fuzzing` feature only; never part of the extension.

use crate::algorithm::Algorithm;
use crate::base64url;
use crate::error::TokenError;
use crate::json;
use crate::keyset::{KeySet, MAX_KEYS};
use crate::policy::{Policy, PolicyOptions};
use crate::token::{decode_object, CompactJws};
use crate::verified_cache::{Entry, VerifiedCache};
use serde_json::Value;
use std::sync::LazyLock;

/// The fixed clock of the token target (2027-01-15), as in the test suite.
pub const NOW: f64 = 1_800_000_000.0;
const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://mcp.example.com/mcp";

/// RSA (2048 and 3072 bits, one with its own `alg`), EC P-256 (two), P-384 (without `kid`),
/// P-521 and Ed25519 public keys; `fuzz/make_seeds.py` writes them with the seed tokens.
static KEYS: LazyLock<KeySet> = LazyLock::new(|| {
    KeySet::from_json(include_bytes!("../../fuzz/keys.json")).expect("the harness key set parses")
});

/// Every algorithm, default leeway and required claims.
static LENIENT: LazyLock<Policy> = LazyLock::new(|| {
    Policy::new(PolicyOptions {
        issuers: vec![ISSUER.into()],
        audiences: vec![AUDIENCE.into(), "https://other.example.com".into()],
        algorithms: Algorithm::ALL.iter().map(|a| a.name().into()).collect(),
        ..PolicyOptions::default()
    })
    .expect("lenient policy")
});

/// Every option that adds a rule: typ, scopes, more required claims, no leeway, a lower size
/// limit, fewer algorithms.
static STRICT: LazyLock<Policy> = LazyLock::new(|| {
    Policy::new(PolicyOptions {
        issuers: vec![ISSUER.into(), "https://second.example.com".into()],
        audiences: vec![AUDIENCE.into()],
        algorithms: vec!["ES256".into(), "EdDSA".into(), "PS384".into()],
        leeway: 0,
        required_claims: ["exp", "iss", "aud", "sub", "jti", "tenant"]
            .map(String::from)
            .to_vec(),
        required_scopes: vec!["mcp:tools".into()],
        accepted_types: Some(vec!["at+jwt".into()]),
        max_token_bytes: 2048,
    })
    .expect("strict policy")
});

/// A compact token against the fixed key set under both policies. A validation must end in a
/// result, never a panic; an accepted token must satisfy the policy's promises; the claim rules
/// alone (applied to the payload as if its signature held, which most mutated tokens never
/// reach otherwise) must agree with full validation.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for policy in [&*LENIENT, &*STRICT] {
        let outcome = policy.validate(text, &KEYS, NOW);
        match &outcome {
            Ok(verified) => {
                assert!(KEYS.contains_key(&verified.key_digest));
                assert!(text.len() <= policy.max_token_bytes);
                for name in &policy.required_claims {
                    assert!(verified.claims.get(name).is_some_and(|v| !v.is_null()));
                }
                assert!(verified.subject().is_some());
                assert!(verified
                    .audience()
                    .iter()
                    .any(|a| policy.audiences.iter().any(|o| o == a)));
                for scope in &policy.required_scopes {
                    assert!(verified.scopes.contains(scope));
                }
                let cache = VerifiedCache::new(1);
                cache.insert(
                    text,
                    Entry {
                        value: (),
                        exp: verified.exp,
                        nbf: verified.nbf,
                        key_digest: verified.key_digest,
                    },
                );
                assert_eq!(cache.get(text, &KEYS, policy, NOW, |_| ()), Ok(Some(())));
            }
            Err(error) => check_error(error),
        }
        let Ok(jws) = CompactJws::split(text, policy.max_token_bytes) else {
            assert!(outcome.is_err());
            continue;
        };
        if let Ok(claims) = decode_object(jws.payload, "payload") {
            let alone = policy.check_claims(claims, NOW);
            match (&outcome, &alone) {
                (Ok(full), Ok(alone)) => assert_eq!(full.claims, alone.claims),
                (Ok(_), Err(error)) => panic!("valid token, but the claim rules say {error}"),
                (Err(_), Err(error)) => check_error(error),
                (Err(_), Ok(_)) => {}
            }
        }
    }
}

fn check_error(error: &TokenError) {
    let description = error.description();
    assert!(
        !description.is_empty() && description.len() < 200,
        "{description}"
    );
    assert!(!error.code().is_empty());
}

/// A JWKS document. Parsing ends in a key set or an error; the key limit holds, with at most one
/// summary reason for what lies beyond it; key selection and verification with whatever keys
/// came out of it end in a result.
pub fn jwks(data: &[u8]) {
    match KeySet::from_json(data) {
        Ok(keys) => {
            assert!(!keys.is_empty() && keys.len() <= MAX_KEYS);
            assert!(keys.len() + keys.skipped().len() <= MAX_KEYS + 1);
            let kids: Vec<Option<&str>> = std::iter::once(None)
                .chain(keys.key_ids().take(4).map(Some))
                .collect();
            for alg in Algorithm::ALL {
                let signature = vec![0x5a; signature_len(alg)];
                for kid in &kids {
                    match keys.verify(*kid, alg, b"message", &signature) {
                        Ok(_) => panic!("a made-up signature verified"),
                        Err(error) => check_error(&error),
                    }
                }
            }
        }
        Err(error) => {
            assert!(error.reasons.len() <= MAX_KEYS + 1);
            assert!(!error.detail.is_empty());
        }
    }
}

fn signature_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::ES256 | Algorithm::EdDSA => 64,
        Algorithm::ES384 => 96,
        Algorithm::ES512 => 132,
        _ => 256,
    }
}

/// The strict JSON parser against serde_json itself: it accepts exactly the objects serde_json
/// accepts that have no repeated member name, reads them identically, and what it accepts
/// survives a round trip through its own output.
pub fn json(data: &[u8]) {
    let strict = json::parse_object(data);
    let plain = serde_json::from_slice::<Value>(data);
    match (&strict, &plain) {
        (Ok(map), Ok(Value::Object(plain))) => {
            assert_eq!(map, plain);
            let text = serde_json::to_vec(map).expect("a parsed object serializes");
            assert_eq!(json::parse_object(&text).as_ref(), Ok(map));
        }
        (Ok(_), _) => panic!("strict parse accepted what serde_json refuses: {plain:?}"),
        (Err(json::JsonProblem::NotAnObject), Ok(value)) => assert!(!value.is_object()),
        (Err(json::JsonProblem::NotAnObject), Err(_)) => panic!("not an object, yet invalid"),
        (Err(json::JsonProblem::Invalid), Ok(_)) => panic!("strict parse refused valid JSON"),
        (Err(_), _) => {}
    }
}

/// Strict base64url: a text decodes only if it is the one canonical encoding of its bytes, and
/// every byte string encodes to such a text.
pub fn base64url(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(bytes) = base64url::decode(text) {
            assert_eq!(base64url::encode(&bytes), text);
        }
    }
    let text = base64url::encode(data);
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(base64url::decode(&text).as_deref(), Some(data));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// The committed inputs of a target in `fuzz/<folder>/<target>`.
    fn inputs_in(folder: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join(folder)
            .join(target);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out: Vec<(PathBuf, Vec<u8>)> = entries
            .map(|entry| {
                let path = entry.expect("a readable folder").path();
                let data = std::fs::read(&path).expect("a readable input");
                (path, data)
            })
            .collect();
        out.sort();
        out
    }

    /// The seeds of a target and the findings kept as regressions.
    fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = inputs_in("seeds", target);
        out.extend(inputs_in("regressions", target));
        out
    }

    fn replay(target: &str, run: fn(&[u8])) {
        let inputs = inputs(target);
        assert!(inputs.len() >= 10, "{target}: only {} inputs", inputs.len());
        for (path, data) in inputs {
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target} fails on {}", path.display());
        }
    }

    #[test]
    fn token_inputs() {
        replay("token", token);
    }

    #[test]
    fn jwks_inputs() {
        replay("jwks", jwks);
    }

    #[test]
    fn json_inputs() {
        replay("json", json);
    }

    #[test]
    fn base64url_inputs() {
        replay("base64url", base64url);
    }

    /// Each token seed is named `<code>-<what>`: the lenient policy gives exactly that outcome,
    /// so the seeds reach every stage of validation (and the key set matches the tokens).
    #[test]
    fn token_seeds_reach_their_stage() {
        let mut valid = 0;
        for (path, data) in inputs_in("seeds", "token") {
            let name = path.file_name().and_then(|n| n.to_str()).expect("a name");
            let text = std::str::from_utf8(&data).expect("seed tokens are text");
            let expected = name.split('-').next().expect("a code");
            match LENIENT.validate(text, &KEYS, NOW) {
                Ok(_) => {
                    assert_eq!(expected, "ok", "{name}");
                    valid += 1;
                }
                Err(error) => assert_eq!(error.code(), expected, "{name}: {error}"),
            }
        }
        assert!(valid >= 10, "{valid} valid seed tokens");
    }
}

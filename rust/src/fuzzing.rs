//! Fuzzing entry points: the bodies of the cargo-fuzz targets in `fuzz/`, each checking the
//! properties its part of the core promises, and (under `cargo test`) the replay of every
//! committed seed and regression input through them.
//!
//! Built for `cargo test` and for the `fuzzing` feature only; never part of the extension.

use crate::admission::{KeyRing, TokenFormat, Unsettled};
use crate::algorithm::Algorithm;
use crate::authorization::{all_b64token, bearer_credentials};
use crate::base64url;
use crate::error::TokenError;
use crate::json;
use crate::keyset::{KeySet, MAX_KEYS};
use crate::policy::{Policy, PolicyOptions, Verified};
use crate::token::{CompactJws, Header};
use crate::verified_cache::{TokenKey, VerifiedCache};
use serde_json::Value;
use std::sync::LazyLock;

/// The fixed clock of the token target (2027-01-15), as in the test suite.
pub const NOW: f64 = 1_800_000_000.0;
const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://mcp.example.com/mcp";
/// An application ID (Entra ID's GUID form) among the lenient policy's audiences.
const APPLICATION: &str = "11111111-2222-3333-4444-555555555555";

/// RSA (2048 and 3072 bits, one with its own `alg`), EC P-256 (two), P-384 (without `kid`),
/// P-521 and Ed25519 public keys; `fuzz/make_seeds.py` writes them with the seed tokens.
static KEYS: LazyLock<KeySet> = LazyLock::new(|| {
    KeySet::from_json(include_bytes!("../../fuzz/keys.json")).expect("the harness key set parses")
});

/// Every algorithm, default leeway and required claims.
static LENIENT: LazyLock<Policy> = LazyLock::new(|| {
    Policy::new(PolicyOptions {
        issuers: vec![ISSUER.into()],
        audiences: vec![
            AUDIENCE.into(),
            "https://other.example.com".into(),
            APPLICATION.into(),
        ],
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
        roles_claims: [
            "roles",
            "realm_access.roles",
            "resource_access.mcp.roles",
            "a.b",
        ]
        .map(String::from)
        .to_vec(),
    })
    .expect("strict policy")
});

/// A compact token against the fixed key set under both policies. A validation must end in a
/// result, never a panic; an accepted token must satisfy the policy's promises; the claim rules
/// alone (applied to the payload as if its signature held, which most mutated tokens never
/// reach otherwise) must agree with full validation. The one-pass readers of the header and
/// the claims must agree, error for error, with the rules applied to the whole `Value` tree
/// (`reference`, the validator's earlier implementation).
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
                let claims = verified.claims().expect("an accepted payload reads again");
                for name in &policy.required_claims {
                    assert!(claims.get(name).is_some_and(|v| !v.is_null()));
                }
                assert!(verified.subject().is_some());
                assert!(verified
                    .audience()
                    .iter()
                    .any(|a| policy.audiences.iter().any(|o| o == a)));
                for scope in policy.required_scopes.required() {
                    assert!(verified.has_scope(scope));
                }
                let cache = VerifiedCache::new(1);
                cache.insert(TokenKey::of(text), verified.clone());
                assert_eq!(
                    cache.get(TokenKey::of(text), |_| Some(&*KEYS), policy, NOW, |_| ()),
                    Ok(Some(()))
                );
            }
            Err(error) => check_error(error),
        }
        routed_like_shared(policy, text, &outcome);
        let Ok(jws) = CompactJws::split(text, policy.max_token_bytes) else {
            assert!(outcome.is_err());
            continue;
        };
        if let Some(header) = base64url::decode(jws.header) {
            let read = Header::parse(&header, policy.algorithms).map(|h| {
                let text = |t: Option<std::borrow::Cow<'_, str>>| t.map(|t| t.into_owned());
                (h.alg, text(h.kid), text(h.typ))
            });
            assert_eq!(read, reference::header(&header, policy.algorithms));
        }
        if let Some(payload) = base64url::decode(jws.payload) {
            let alone = policy.check_claims(payload.clone(), NOW);
            let expected = reference::claims(policy, &payload, NOW);
            match (&alone, &expected) {
                (Ok(alone), Ok(expected)) => assert_eq!(&reference::Read::of(alone), expected),
                (Err(error), Err(expected)) => assert_eq!(error, expected),
                _ => panic!("the claim rules disagree: {alone:?} against {expected:?}"),
            }
            match (&outcome, &alone) {
                (Ok(full), Ok(alone)) => {
                    assert_eq!(full.claims(), alone.claims());
                    assert_eq!(full.payload(), alone.payload());
                }
                (Ok(_), Err(error)) => panic!("valid token, but the claim rules say {error}"),
                (Err(_), Err(error)) => check_error(error),
                (Err(_), Ok(_)) => {}
            }
        }
    }
}

/// Keys chosen by the token's unverified `iss` change no verdict: with the harness keys under
/// every configured issuer, a token is accepted exactly when the shared keys accept it, as the
/// same user; with no keys at all it is never accepted, and waits for keys only under a
/// configured issuer.
fn routed_like_shared(policy: &Policy, text: &str, shared: &Result<Verified, TokenError>) {
    let every = policy
        .issuers
        .iter()
        .map(|issuer| (issuer.as_str(), &*KEYS))
        .collect();
    match (
        shared,
        policy.validate_with(text, &KeyRing::ByIssuer(every), NOW),
    ) {
        (Ok(shared), Ok(routed)) => assert_eq!(shared, &routed),
        (Ok(_), Err(unsettled)) => panic!("refused only when routed: {unsettled:?}"),
        (Err(error), Ok(_)) => panic!("accepted only when routed (shared keys: {error})"),
        (Err(_), Err(Unsettled::NoKeys { issuer })) => panic!("no keys for {issuer}"),
        (Err(_), Err(Unsettled::Refused { error, missed })) => {
            check_error(&error);
            if let Some(missed) = missed {
                assert!(matches!(
                    error.code(),
                    "key_not_found" | "invalid_signature"
                ));
                let issuer = missed.issuer.expect("keys chosen by issuer");
                assert!(policy.issuers.contains(&issuer));
            }
        }
    }
    match policy.validate_with(text, &KeyRing::ByIssuer(Vec::new()), NOW) {
        Ok(_) => panic!("accepted without keys"),
        Err(Unsettled::NoKeys { issuer }) => assert!(policy.issuers.contains(&issuer)),
        Err(Unsettled::Refused { error, missed }) => {
            assert_eq!(missed, None);
            check_error(&error);
        }
    }
}

/// An `Authorization` header value. The parser agrees with a plain reading of RFC 6750
/// section 2.1 (`reference_bearer`); a token it finds is written back as `Bearer <token>` and
/// read again unchanged; and each token format sends the token to introspection exactly when
/// its shape says so.
pub fn authorization(data: &[u8]) {
    let read = bearer_credentials(data);
    assert_eq!(
        read.map(|token| token.map(str::to_owned)),
        reference_bearer(data)
    );
    match read {
        Ok(Some(token)) => {
            let again = format!("Bearer {token}");
            assert_eq!(bearer_credentials(again.as_bytes()), Ok(Some(token)));
            assert!(all_b64token(token.trim_end_matches('=').as_bytes()));
            let dots = token.bytes().filter(|b| *b == b'.').count();
            assert_eq!(TokenFormat::Auto.introspects(token.as_bytes()), dots != 2);
            assert!(TokenFormat::Opaque.introspects(token.as_bytes()));
            assert!(!TokenFormat::Jwt.introspects(token.as_bytes()));
        }
        Ok(None) => {}
        Err(why) => assert!(!why.description().is_empty()),
    }
}

/// RFC 6750 section 2.1 read plainly: `credentials = "Bearer" 1*SP b64token`, where
/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`, the scheme
/// matched case-insensitively, the value trimmed of ASCII white space (as Python's
/// `bytes.strip()`) and spaces allowed around the credentials.
fn reference_bearer(data: &[u8]) -> Result<Option<String>, crate::authorization::BadCredentials> {
    use crate::authorization::BadCredentials;
    let text: Vec<u8> = {
        let blank = b" \t\n\r\x0b\x0c";
        let start = data.iter().take_while(|b| blank.contains(b)).count();
        let end = data.len() - data.iter().rev().take_while(|b| blank.contains(b)).count();
        data.get(start..end).unwrap_or_default().to_vec()
    };
    let mut parts = text.splitn(2, |b| *b == b' ');
    let scheme = parts.next().unwrap_or_default();
    let lower: Vec<u8> = scheme.iter().map(|b| b | 0x20).collect();
    if lower != b"bearer" || !scheme.iter().all(u8::is_ascii_alphabetic) {
        return Ok(None);
    }
    let rest = parts.next().unwrap_or_default();
    let credentials: Vec<u8> = {
        let start = rest.iter().take_while(|b| **b == b' ').count();
        let end = rest.len() - rest.iter().rev().take_while(|b| **b == b' ').count();
        rest.get(start..end).unwrap_or_default().to_vec()
    };
    if credentials.is_empty() {
        return Err(BadCredentials::Empty);
    }
    let body = credentials.iter().take_while(|b| **b != b'=').count();
    let tail_ok = credentials[body..].iter().all(|b| *b == b'=');
    let body_ok = body > 0
        && credentials[..body]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b));
    if !(tail_ok && body_ok) {
        return Err(BadCredentials::NotOneToken);
    }
    Ok(Some(String::from_utf8(credentials).expect("ASCII")))
}

/// The header and claim rules as the validator applied them to a whole `Value` tree before it
/// read tokens in one pass: the reference the one-pass readers must match exactly.
mod reference {
    use crate::algorithm::{Algorithm, AlgorithmName, AlgorithmSet};
    use crate::claim_path::{self, Step};
    use crate::error::{TokenError, WrongKind};
    use crate::policy::{Policy, Verified};
    use crate::token::parse_object;
    use serde_json::{Map, Value};

    pub fn header(
        decoded: &[u8],
        allowed: AlgorithmSet,
    ) -> Result<(Algorithm, Option<String>, Option<String>), TokenError> {
        let map = parse_object(decoded, "header")?;
        let alg = match map.get("alg") {
            Some(Value::String(name)) => match Algorithm::parse(name) {
                AlgorithmName::Supported(alg) if allowed.contains(alg) => alg,
                AlgorithmName::Supported(alg) => {
                    return Err(TokenError::AlgorithmNotAllowed(Some(alg.name())))
                }
                AlgorithmName::Forbidden => return Err(TokenError::AlgorithmNotAllowed(None)),
                AlgorithmName::Unknown => return Err(TokenError::UnsupportedAlgorithm),
            },
            Some(_) => {
                return Err(TokenError::malformed(
                    "the header member 'alg' is not a string",
                ))
            }
            None => return Err(TokenError::malformed("the header has no 'alg'")),
        };
        for (name, why) in [
            (
                "crit",
                "the header marks extensions critical ('crit'); none are supported",
            ),
            (
                "b64",
                "unencoded payloads (header 'b64', RFC 7797) are not accepted",
            ),
            ("zip", "compressed payloads (header 'zip') are not accepted"),
            ("enc", "encrypted tokens (JWE) are not accepted"),
        ] {
            if map.contains_key(name) {
                return Err(TokenError::malformed(why));
            }
        }
        let optional = |name: &'static str| match map.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(TokenError::Malformed(
                format!("the header member '{name}' is not a string").into(),
            )),
        };
        Ok((alg, optional("kid")?, optional("typ")?))
    }

    /// What the validator reads out of an accepted payload.
    #[derive(Debug, PartialEq)]
    pub struct Read {
        subject: Option<String>,
        issuer: String,
        client_id: Option<String>,
        token_id: Option<String>,
        audience: Vec<String>,
        scopes: Vec<String>,
        /// Sorted: the one-pass reader keeps document order, which a `Map` does not.
        roles: Vec<String>,
        expires_at: Option<i64>,
        issued_at: Option<i64>,
        exp: Option<f64>,
        nbf: Option<f64>,
        claims: Map<String, Value>,
    }

    impl Read {
        pub fn of(verified: &Verified) -> Self {
            let owned = |t: Option<&str>| t.map(str::to_owned);
            Self {
                subject: owned(verified.subject()),
                issuer: verified.issuer().to_owned(),
                client_id: owned(verified.client_id()),
                token_id: owned(verified.token_id()),
                audience: verified.audience().into_iter().map(str::to_owned).collect(),
                scopes: verified.scopes().map(str::to_owned).collect(),
                roles: {
                    let mut roles: Vec<String> = verified.roles().map(str::to_owned).collect();
                    roles.sort_unstable();
                    roles
                },
                expires_at: verified.expires_at(),
                issued_at: verified.issued_at(),
                exp: verified.exp(),
                nbf: verified.nbf(),
                claims: verified.claims().expect("an accepted payload reads again"),
            }
        }
    }

    fn invalid(why: &'static str) -> TokenError {
        TokenError::InvalidClaim(why.into())
    }

    fn numeric_date(
        claims: &Map<String, Value>,
        name: &'static str,
    ) -> Result<Option<f64>, TokenError> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(TokenError::InvalidClaim(
                format!("'{name}' must be a number (NumericDate)").into(),
            )),
        }
    }

    /// The roles at `path` in `object`, each member tried as `claim_path` says; `unreadable`
    /// keeps the lowest index of a path whose value is not roles.
    fn roles_at(
        object: &Map<String, Value>,
        path: &str,
        index: usize,
        roles: &mut Vec<String>,
        unreadable: &mut Option<usize>,
    ) {
        for (name, value) in object {
            match (claim_path::step(path, name), value) {
                (None, _) => {}
                (Some(Step::Here), Value::String(role)) => roles.push(role.clone()),
                (Some(Step::Here), Value::Array(items)) if items.iter().all(Value::is_string) => {
                    roles.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
                }
                (Some(Step::Into(rest)), Value::Object(inner)) => {
                    roles_at(inner, rest, index, roles, unreadable);
                }
                _ => *unreadable = Some(unreadable.map_or(index, |u| u.min(index))),
            }
        }
    }

    fn text(claims: &Map<String, Value>, name: &str) -> Option<String> {
        claims.get(name).and_then(Value::as_str).map(str::to_owned)
    }

    pub fn claims(policy: &Policy, payload: &[u8], now: f64) -> Result<Read, TokenError> {
        let claims = parse_object(payload, "payload")?;
        let leeway = policy.leeway as f64;
        let exp = numeric_date(&claims, "exp")?;
        let nbf = numeric_date(&claims, "nbf")?;
        let iat = numeric_date(&claims, "iat")?;
        policy.check_lifetime(exp, nbf, now)?;
        if let Some(iat) = iat {
            if iat > now + leeway {
                return Err(TokenError::IssuedInFuture {
                    seconds_ahead: (iat - now).ceil() as i64,
                });
            }
        }
        for name in ["iss", "aud"]
            .into_iter()
            .chain(policy.required_claims.iter().map(String::as_str))
        {
            match claims.get(name) {
                None => return Err(TokenError::MissingClaim(name.to_owned())),
                Some(Value::Null) => {
                    return Err(TokenError::InvalidClaim(format!("'{name}' is null").into()))
                }
                Some(_) => {}
            }
        }
        match claims.get("iss") {
            Some(Value::String(iss)) if policy.issuers.iter().any(|i| i == iss) => {}
            Some(Value::String(_)) => return Err(TokenError::InvalidIssuer),
            _ => return Err(invalid("'iss' must be a string")),
        }
        let ours = |aud: &str| policy.audiences.iter().any(|a| a == aud);
        let audience: Vec<String> = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.clone()],
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    let aud = item
                        .as_str()
                        .ok_or_else(|| invalid("'aud' must be a string or an array of strings"))?;
                    out.push(aud.to_owned());
                }
                out
            }
            _ => return Err(invalid("'aud' must be a string or an array of strings")),
        };
        if !audience.iter().any(|aud| ours(aud)) {
            return Err(TokenError::InvalidAudience);
        }
        let guid = |aud: &str| {
            aud.len() == 36
                && aud.split('-').map(str::len).eq([8, 4, 4, 4, 12])
                && aud.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        };
        if claims.contains_key("nonce") && audience.iter().any(|aud| ours(aud) && guid(aud)) {
            return Err(TokenError::InvalidType(WrongKind::IdToken));
        }
        for name in ["sub", "jti", "client_id", "azp"] {
            match claims.get(name) {
                None | Some(Value::String(_)) => {}
                Some(_) => {
                    return Err(TokenError::InvalidClaim(
                        format!("'{name}' must be a string").into(),
                    ))
                }
            }
        }
        let mut scopes: Vec<String> = Vec::new();
        let mut add = |scope: &str| {
            if !scope.is_empty() && !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        };
        match claims.get("scope") {
            None => {}
            Some(Value::String(s)) => s.split(' ').for_each(&mut add),
            Some(_) => return Err(invalid("'scope' must be a space-separated string")),
        }
        match claims.get("scp") {
            None => {}
            Some(Value::String(s)) => s.split(' ').for_each(&mut add),
            Some(Value::Array(items)) => {
                for item in items {
                    let scope = item
                        .as_str()
                        .ok_or_else(|| invalid("'scp' must be a string or an array of strings"))?;
                    add(scope);
                }
            }
            Some(_) => return Err(invalid("'scp' must be a string or an array of strings")),
        }
        let required = policy.required_scopes.required();
        let missing: Vec<String> = required
            .iter()
            .filter(|needed| !scopes.contains(needed))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(TokenError::InsufficientScope {
                required: required.to_vec(),
                missing,
            });
        }
        let mut roles: Vec<String> = Vec::new();
        let mut unreadable: Option<usize> = None;
        for (index, path) in policy.roles_claims.iter().enumerate() {
            roles_at(&claims, path, index, &mut roles, &mut unreadable);
        }
        if let Some(index) = unreadable {
            return Err(TokenError::InvalidClaim(
                format!(
                    "'{}' (a roles claim) must be a string or an array of strings",
                    policy.roles_claims[index]
                )
                .into(),
            ));
        }
        roles.retain(|role| !role.is_empty());
        roles.sort_unstable();
        roles.dedup();
        Ok(Read {
            subject: text(&claims, "sub"),
            issuer: text(&claims, "iss").unwrap_or_default(),
            client_id: text(&claims, "client_id").or_else(|| text(&claims, "azp")),
            token_id: text(&claims, "jti"),
            audience,
            scopes,
            roles,
            expires_at: exp.map(|v| v.floor() as i64),
            issued_at: iat.map(|v| v.floor() as i64),
            exp,
            nbf,
            claims,
        })
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
    // The one-pass reader (the token path's) accepts and refuses exactly the same documents.
    assert_eq!(
        json::read_object(data, &mut json::NoMembers),
        strict.as_ref().map(|_| ()).map_err(|problem| *problem)
    );
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
        let decoded = base64url::decode(text);
        let mut bounded = vec![0; base64url::decoded_len_bound(text)];
        assert_eq!(
            base64url::decode_to(text, &mut bounded).map(<[u8]>::to_vec),
            decoded
        );
        if let Some(bytes) = decoded {
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

    #[test]
    fn authorization_inputs() {
        replay("authorization", authorization);
    }

    /// Payloads at the edges of the rules: the one-pass reader and the rules over the whole
    /// `Value` tree give the same result, error for error.
    #[test]
    fn claim_rules_match_the_reference() {
        let base = r#""iss":"https://auth.example.com","aud":"https://mcp.example.com/mcp","sub":"u","exp":1800000600"#;
        let payloads = [
            format!("{{{base}}}"),
            format!("{{{base},\"exp\":1}}"),
            format!("{{{base},\"exp\" 1}}"),
            format!("{{{base},\"tenant\":null}}"),
            format!("{{{base},\"tenant\":1,\"tenant\":2}}"),
            format!("{{{base},\"x\":{{\"k\":1,\"k\":2}}}}"),
            format!("{{{base},\"scope\":\"a b\",\"scp\":[\"b\",\"c\"]}}"),
            format!("{{{base},\"scp\":[\"b\",1]}}"),
            format!("{{{base},\"aud\":[]}}"),
            format!("{{{base},\"\\u0073ub\":\"v\"}}"),
            format!("{{{base},\"jti\":\"\\u00e9t\\u00e9\"}}"),
            format!("{{{base},\"iat\":1e400}}"),
            format!("{{{base},\"iat\":1800000000.5,\"nbf\":-0}}"),
            format!("{{{base},\"exp\":123456789012345678901234567890}}"),
            format!("{{{base},\"client_id\":null}}"),
            format!("{{{base},\"azp\":\"x\"}}"),
            r#"{"iss":null}"#.to_string(),
            r#"[1]"#.to_string(),
            r#"{}"#.to_string(),
        ];
        for payload in payloads {
            for policy in [&*LENIENT, &*STRICT] {
                let read = policy
                    .check_claims(payload.as_bytes().to_vec(), NOW)
                    .map(|v| reference::Read::of(&v));
                assert_eq!(
                    read,
                    reference::claims(policy, payload.as_bytes(), NOW),
                    "{payload}"
                );
            }
        }
    }

    /// Keys chosen by the unverified `iss`: the issuer's set verifies, an issuer without a set
    /// is referred for its keys, an untrusted `iss` is refused before any key is looked at, and
    /// a key miss names the issuer whose keys missed.
    #[test]
    fn routing_by_issuer() {
        let token = |name: &str| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/seeds/token")
                .join(name);
            std::fs::read_to_string(path).expect("a seed token")
        };
        let only_ed = {
            let mut document: Value =
                serde_json::from_slice(include_bytes!("../../fuzz/keys.json")).expect("json");
            let keys = document["keys"].as_array_mut().expect("keys");
            keys.retain(|key| key["kid"] == "ed");
            KeySet::from_json(&serde_json::to_vec(&document).expect("json")).expect("keys")
        };
        let second = "https://second.example.com";
        let good = token("ok-ES256");
        let ring = |sets: Vec<(&'static str, &'static KeySet)>| KeyRing::ByIssuer(sets);
        let routed = STRICT.validate_with(&good, &ring(vec![(ISSUER, &KEYS)]), NOW);
        assert_eq!(routed.ok(), STRICT.validate(&good, &KEYS, NOW).ok());
        let no_keys = STRICT.validate_with(&good, &ring(vec![(second, &KEYS)]), NOW);
        assert_eq!(
            no_keys,
            Err(Unsettled::NoKeys {
                issuer: ISSUER.into()
            })
        );
        let leaked: &'static KeySet = Box::leak(Box::new(only_ed));
        let missed = STRICT.validate_with(&good, &ring(vec![(ISSUER, leaked)]), NOW);
        match missed {
            Err(Unsettled::Refused { error, missed }) => {
                assert_eq!(error.code(), "key_not_found");
                let missed = missed.expect("a key miss");
                assert_eq!(missed.issuer.as_deref(), Some(ISSUER));
                assert_eq!(missed.kid.as_deref(), Some("ec-256"));
            }
            other => panic!("{other:?}"),
        }
        let untrusted = token("invalid_issuer-RS256");
        assert_eq!(
            LENIENT.validate_with(&untrusted, &ring(vec![]), NOW),
            Err(Unsettled::Refused {
                error: TokenError::InvalidIssuer,
                missed: None
            })
        );
        let malformed = token("malformed-duplicate-aud");
        let refused = LENIENT.validate_with(&malformed, &ring(vec![(ISSUER, &KEYS)]), NOW);
        assert_eq!(
            refused
                .expect_err("duplicate")
                .error()
                .map(TokenError::code),
            Some("malformed")
        );
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

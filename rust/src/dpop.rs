//! DPoP (RFC 9449): a request's proof of possession checked as section 4.3 has it, the binding of
//! a token to the proof's key (sections 6 and 7.2), the mode a resource runs in, and the server's
//! nonces (section 9).
//!
//! A proof is checked in the order of section 4.3 (`Step`); the first check that fails is the
//! refusal. The proof's `jwk` is parsed by `jwk::parse_jwk` (the key sets' rules: public keys
//! only, RSA from 2048 bits, points on their curve), its signature verified by aws-lc-rs, its
//! RFC 7638 thumbprint and `ath` hashed with aws-lc-rs's SHA-256, and nonces are an HMAC of a
//! secret and a time window, so that any process holding the secret accepts a nonce another
//! issued, without shared state.

use crate::algorithm::{Algorithm, AlgorithmName, AlgorithmSet};
use crate::authorization::Scheme;
use crate::base64url;
use crate::error::{ConfigError, Downgrade, ProofProblem, TokenError};
use crate::json::{self, JsonProblem};
use crate::jwk::parse_jwk;
use crate::token::{normalize_media_type, CompactJws};
use aws_lc_rs::{digest, hmac, rand};
use serde_json::{Map, Value};
use std::fmt;

/// How far a proof's `iat` may be from the server's clock, either way, unless configured
/// (SEP-1932: five minutes). The token leeway is not added to it.
pub const DEFAULT_MAX_AGE: i64 = 300;
pub const MAX_MAX_AGE: i64 = 3600;
/// A proof is a JWS with a public key in its header: an RSA key of 8192 bits fits in well under
/// this.
pub const MAX_PROOF_BYTES: usize = 8192;
/// A nonce is issued for one window of this many seconds and accepted in that window and the
/// next: for 150 to 300 s, never longer than the default proof window.
pub const NONCE_WINDOW: i64 = 150;
/// A configured nonce secret has at least this many bytes.
pub const MIN_NONCE_SECRET_BYTES: usize = 32;
const NONCE_CONTEXT: &[u8] = b"mcp-oauth2 DPoP nonce 1";
/// The algorithms a policy allows unless configured.
pub const DEFAULT_ALGORITHMS: [&str; 5] = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// Whether a resource reads DPoP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bearer tokens only; the `DPoP` scheme is a scheme this resource does not read.
    Off,
    /// Bearer and DPoP; a DPoP-bound token needs the DPoP scheme and a valid proof.
    Allowed,
    /// DPoP only: a bearer token is refused.
    Required,
}

impl Mode {
    pub const NAMES: [&'static str; 3] = ["off", "allowed", "required"];

    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        match name {
            "off" => Ok(Self::Off),
            "allowed" => Ok(Self::Allowed),
            "required" => Ok(Self::Required),
            _ => Err(ConfigError(format!(
                "dpop must be one of {:?}, not {name:?}",
                Self::NAMES
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Allowed => "allowed",
            Self::Required => "required",
        }
    }
}

/// The checks of a proof, in the order they are made (RFC 9449 section 4.3, its step numbers
/// in brackets; the key is parsed, and so checked for private members, before the signature it
/// verifies), then the binding of the token to the proof's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// [1] exactly one `DPoP` header.
    OneHeader,
    /// [2] a JWT: three base64url segments, header and claims strict JSON objects.
    WellFormed,
    /// [3] `typ`, `alg`, `jwk`, `jti`, `htm`, `htu`, `iat` (and `ath` with a token) present
    /// and of their types.
    Members,
    /// [4] `typ` is `dpop+jwt`.
    Type,
    /// [5] an asymmetric algorithm this resource allows.
    Algorithm,
    /// [7] `jwk` a usable public key (no private member).
    Key,
    /// [6] the signature verifies with `jwk`.
    Signature,
    /// [8] `htm` is the request's method.
    Method,
    /// [9] `htu` is the request's URL (no query or fragment).
    Url,
    /// [10] the server's nonce, when nonces are on.
    Nonce,
    /// [11] `iat` within the window.
    Time,
    /// [12] `ath` is the hash of the access token.
    AccessTokenHash,
    /// [12] the token is bound to the proof's key (`cnf.jkt`).
    Binding,
}

impl Step {
    pub const ALL: [Step; 13] = [
        Self::OneHeader,
        Self::WellFormed,
        Self::Members,
        Self::Type,
        Self::Algorithm,
        Self::Key,
        Self::Signature,
        Self::Method,
        Self::Url,
        Self::Nonce,
        Self::Time,
        Self::AccessTokenHash,
        Self::Binding,
    ];

    /// What the check is, in plain words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::OneHeader => "exactly one DPoP header",
            Self::WellFormed => "a well-formed JWT (JWS compact serialization)",
            Self::Members => "typ, alg, jwk, jti, htm, htu, iat and ath present",
            Self::Type => "typ is dpop+jwt",
            Self::Algorithm => "an asymmetric algorithm this server allows",
            Self::Key => "jwk is a usable public key (no private member)",
            Self::Signature => "the signature verifies with jwk",
            Self::Method => "htm is the request's method",
            Self::Url => "htu is the request's URL (no query or fragment)",
            Self::Nonce => "nonce is this server's current nonce",
            Self::Time => "iat is within the window",
            Self::AccessTokenHash => "ath is the hash of the access token",
            Self::Binding => "the token is bound to the proof's key (cnf.jkt)",
        }
    }

    /// The check `error` is the refusal of; None for an error no check of a proof gives.
    pub fn of(error: &TokenError) -> Option<Step> {
        Some(match error {
            TokenError::NonceRequired { .. } => Self::Nonce,
            TokenError::InvalidProof(problem) => match problem {
                ProofProblem::Missing | ProofProblem::Several => Self::OneHeader,
                ProofProblem::Malformed(_) => Self::WellFormed,
                ProofProblem::MissingMember(_) | ProofProblem::InvalidMember(_) => Self::Members,
                ProofProblem::Type => Self::Type,
                ProofProblem::Algorithm => Self::Algorithm,
                ProofProblem::Key(_) => Self::Key,
                ProofProblem::InvalidSignature => Self::Signature,
                ProofProblem::Method => Self::Method,
                ProofProblem::UrlQuery | ProofProblem::Url => Self::Url,
                ProofProblem::Stale { .. } | ProofProblem::Early { .. } => Self::Time,
                ProofProblem::AccessTokenHash => Self::AccessTokenHash,
                ProofProblem::NotBound | ProofProblem::KeyMismatch => Self::Binding,
                ProofProblem::Replayed => return None,
            },
            _ => return None,
        })
    }
}

/// What a resource accepts of DPoP: the mode, the proofs' algorithms and window, its own
/// public origin (where `htu` must point), and the nonce key when nonces are on.
pub struct DpopPolicy {
    pub mode: Mode,
    pub algorithms: AlgorithmSet,
    /// Seconds a proof's `iat` may be from the server's clock, either way.
    pub max_age: i64,
    /// `scheme://authority` of the resource, normalized: a request's URL is this origin and the
    /// request's path, never what the `Host` header says.
    origin: String,
    nonces: Option<hmac::Key>,
}

impl fmt::Debug for DpopPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The nonce key is a secret: whether there is one, only.
        f.debug_struct("DpopPolicy")
            .field("mode", &self.mode)
            .field("algorithms", &self.algorithms)
            .field("max_age", &self.max_age)
            .field("origin", &self.origin)
            .field("nonces", &self.nonces.is_some())
            .finish()
    }
}

/// The request a proof is for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'r> {
    pub method: &'r str,
    /// The path as the request carried it (percent-encoded, without the query).
    pub path: &'r str,
    /// The access token presented with the proof (its hash must be the proof's `ath`).
    pub access_token: &'r str,
}

/// A proof that passed every check of section 4.3 (the binding aside).
#[derive(Debug, Clone, PartialEq)]
pub struct Proof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key, base64url (a bound token's `cnf.jkt`).
    pub thumbprint: String,
    /// SHA-256 of the thumbprint and the `jti`: what a replay cache keeps (the key scopes the
    /// `jti`, so that one client's identifiers never collide with another's).
    pub replay_key: [u8; 32],
    /// When the proof stops passing the time check (`iat` + the window): the replay cache keeps
    /// its `jti` until then.
    pub expires_at: f64,
}

/// How a request presents its token: as a bearer token, or with a proof that passed.
#[derive(Debug, Clone, PartialEq)]
pub enum Presented {
    Bearer,
    Proven(Proof),
}

impl DpopPolicy {
    /// A policy for the resource at `resource` (its scheme and authority are the origin of
    /// every `htu`). With `nonce`, the nonces are an HMAC under `nonce_secret` (at least
    /// `MIN_NONCE_SECRET_BYTES` bytes), or under a random key of this process when none is given,
    /// which only this process can check.
    pub fn new(
        mode: Mode,
        resource: &str,
        algorithms: &[String],
        max_age: i64,
        nonce: bool,
        nonce_secret: Option<&[u8]>,
    ) -> Result<Self, ConfigError> {
        let err = |msg: String| Err(ConfigError(msg));
        if algorithms.is_empty() {
            return err("dpop_algorithms is empty: allow at least one, e.g. ES256".into());
        }
        let mut allowed = AlgorithmSet::default();
        for name in algorithms {
            match Algorithm::parse(name) {
                AlgorithmName::Supported(alg) => allowed.insert(alg),
                AlgorithmName::Forbidden => {
                    return err(format!(
                        "dpop_algorithms holds {name:?}, which is never accepted: DPoP proofs \
                         are signed with asymmetric algorithms only (RFC 9449 section 11.6)"
                    ))
                }
                AlgorithmName::Unknown => {
                    let known: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
                    return err(format!(
                        "dpop_algorithms holds {name:?}, which is not supported; choose from {}",
                        known.join(", ")
                    ));
                }
            }
        }
        if !(1..=MAX_MAX_AGE).contains(&max_age) {
            return err(format!(
                "dpop_max_age must be between 1 and {MAX_MAX_AGE} seconds (got {max_age}); \
                 {DEFAULT_MAX_AGE} is the default"
            ));
        }
        // Off, the resource's URL is never used (and need not be one: an application ID).
        let origin = match normalize_url(resource) {
            _ if mode == Mode::Off => String::new(),
            Ok(url) => url.origin,
            Err(_) => {
                return err(format!(
                    "resource must be an http(s) URL without query or fragment for DPoP (the \
                     origin of every htu), not {:?}",
                    resource.chars().take(100).collect::<String>()
                ))
            }
        };
        if nonce && mode == Mode::Off {
            return err("dpop_nonce is on, but dpop is off".into());
        }
        let nonces = match (nonce, nonce_secret) {
            (false, None) => None,
            (false, Some(_)) => {
                return err("dpop_nonce_secret is set, but dpop_nonce is off".into());
            }
            (true, Some(secret)) if secret.len() < MIN_NONCE_SECRET_BYTES => {
                return err(format!(
                    "dpop_nonce_secret must be at least {MIN_NONCE_SECRET_BYTES} bytes (got {})",
                    secret.len()
                ));
            }
            (true, Some(secret)) => Some(hmac::Key::new(hmac::HMAC_SHA256, secret)),
            (true, None) => {
                let mut secret = [0u8; 32];
                rand::fill(&mut secret)
                    .map_err(|_| ConfigError("no randomness for a DPoP nonce key".into()))?;
                Some(hmac::Key::new(hmac::HMAC_SHA256, &secret))
            }
        };
        Ok(Self {
            mode,
            algorithms: allowed,
            max_age,
            origin,
            nonces,
        })
    }

    pub fn uses_nonces(&self) -> bool {
        self.nonces.is_some()
    }

    /// The nonce to hand out now (`DPoP-Nonce`), when nonces are on.
    pub fn nonce(&self, now: f64) -> Option<String> {
        self.nonces
            .as_ref()
            .map(|key| base64url::encode(hmac::sign(key, &nonce_input(window(now))).as_ref()))
    }

    fn accepts_nonce(&self, key: &hmac::Key, nonce: &str, now: f64) -> bool {
        let Some(tag) = base64url::decode(nonce) else {
            return false;
        };
        let current = window(now);
        // The tag is compared in constant time by the HMAC library.
        [current, current - 1]
            .iter()
            .any(|w| hmac::verify(key, &nonce_input(*w), &tag).is_ok())
    }

    /// Checks `proof` for `request` at `now` (unix seconds), in the order of `Step`.
    pub fn check(&self, proof: &str, request: &Request<'_>, now: f64) -> Result<Proof, TokenError> {
        let bad = |problem: ProofProblem| TokenError::InvalidProof(problem);
        // [2] a JWT whose header and claims are strict JSON objects.
        let jws = CompactJws::split(proof, MAX_PROOF_BYTES).map_err(|error| match error {
            TokenError::TooLarge { .. } => bad(ProofProblem::Malformed(
                format!("the DPoP proof is larger than {MAX_PROOF_BYTES} bytes").into(),
            )),
            _ => bad(ProofProblem::Malformed(
                "the DPoP proof is not a JWT (three base64url segments)".into(),
            )),
        })?;
        let header = object(jws.header, "header")?;
        let claims = object(jws.payload, "claims")?;
        let signature = base64url::decode(jws.signature).ok_or_else(|| {
            bad(ProofProblem::Malformed(
                "the DPoP proof's signature is not base64url without padding".into(),
            ))
        })?;
        // [3] what a proof must carry.
        if header.contains_key("crit") {
            return Err(bad(ProofProblem::Malformed(
                "the DPoP proof marks header extensions critical ('crit'); none are supported"
                    .into(),
            )));
        }
        let typ = text(&header, "typ")?;
        let alg = text(&header, "alg")?;
        let jwk = match header.get("jwk") {
            None => return Err(bad(ProofProblem::MissingMember("jwk"))),
            Some(Value::Object(jwk)) => jwk,
            Some(_) => return Err(bad(ProofProblem::InvalidMember("'jwk' must be an object"))),
        };
        let jti = text(&claims, "jti")?;
        if jti.is_empty() {
            return Err(bad(ProofProblem::InvalidMember("'jti' is empty")));
        }
        let htm = text(&claims, "htm")?;
        let htu = text(&claims, "htu")?;
        let iat = match claims.get("iat") {
            None => return Err(bad(ProofProblem::MissingMember("iat"))),
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(_) => return Err(bad(ProofProblem::InvalidMember("'iat' must be a number"))),
        };
        let ath = text(&claims, "ath")?;
        // [4] the type.
        if normalize_media_type(typ) != "dpop+jwt" {
            return Err(bad(ProofProblem::Type));
        }
        // [5] the algorithm.
        let alg = match Algorithm::parse(alg) {
            AlgorithmName::Supported(alg) if self.algorithms.contains(alg) => alg,
            _ => return Err(bad(ProofProblem::Algorithm)),
        };
        // [7] a public key that fits the algorithm (parsed before it can verify anything).
        let key = parse_jwk(jwk).map_err(|why| bad(ProofProblem::Key(why)))?;
        if !key.fits(alg) {
            return Err(bad(ProofProblem::Key(format!(
                "it does not fit the algorithm {}",
                alg.name()
            ))));
        }
        // [6] the signature.
        if !key.verify(alg, jws.signing_input.as_bytes(), &signature) {
            return Err(bad(ProofProblem::InvalidSignature));
        }
        // [8] the method, compared exactly (RFC 9110 methods are case-sensitive).
        if htm != request.method {
            return Err(bad(ProofProblem::Method));
        }
        // [9] the URL: the resource's origin and the request's path, both normalized.
        let claimed = match normalize_url(htu) {
            Ok(url) => url,
            Err(UrlProblem::QueryOrFragment) => return Err(bad(ProofProblem::UrlQuery)),
            Err(UrlProblem::Invalid) => return Err(bad(ProofProblem::Url)),
        };
        let actual = normalize_url(&format!("{}{}", self.origin, request.path));
        if actual.as_ref() != Ok(&claimed) {
            return Err(bad(ProofProblem::Url));
        }
        // [10] the nonce.
        if let Some(key) = &self.nonces {
            let given = match claims.get("nonce") {
                Some(Value::String(nonce)) => Some(nonce.as_str()),
                _ => None,
            };
            if !given.is_some_and(|nonce| self.accepts_nonce(key, nonce, now)) {
                let fresh = self.nonce(now).unwrap_or_default();
                return Err(TokenError::NonceRequired { fresh });
            }
        }
        // [11] the time, within the window either way.
        if !iat.is_finite() {
            return Err(bad(ProofProblem::InvalidMember("'iat' must be a number")));
        }
        let window = self.max_age as f64;
        if now - iat > window {
            return Err(bad(ProofProblem::Stale {
                seconds_ago: (now - iat).floor() as i64,
            }));
        }
        if iat - now > window {
            return Err(bad(ProofProblem::Early {
                seconds_ahead: (iat - now).ceil() as i64,
            }));
        }
        // [12] the access token's hash (public values: no need for a constant-time comparison).
        if ath != access_token_hash(request.access_token) {
            return Err(bad(ProofProblem::AccessTokenHash));
        }
        let thumbprint = thumbprint(jwk)
            .ok_or_else(|| bad(ProofProblem::Key("no RFC 7638 thumbprint".into())))?;
        let mut replay = digest::Context::new(&digest::SHA256);
        for part in [thumbprint.as_bytes(), jti.as_bytes()] {
            replay.update(&(part.len() as u64).to_be_bytes());
            replay.update(part);
        }
        let mut replay_key = [0u8; 32];
        replay_key.copy_from_slice(replay.finish().as_ref());
        Ok(Proof {
            thumbprint,
            replay_key,
            expires_at: iat + window,
        })
    }
}

/// What the scheme and the mode make of a request before its token is checked: None when the
/// scheme is not one this resource reads (DPoP while DPoP is off, or without a policy); a
/// refusal for a bearer token where DPoP is required, or a `DPoP` request whose proof fails;
/// else how the token was presented. `proofs` are the values of every `DPoP` header.
pub fn present(
    policy: Option<&DpopPolicy>,
    scheme: Scheme,
    proofs: &[&[u8]],
    request: &Request<'_>,
    now: f64,
) -> Result<Option<Presented>, TokenError> {
    let mode = policy.map_or(Mode::Off, |policy| policy.mode);
    match (scheme, policy) {
        (Scheme::Bearer, _) if mode == Mode::Required => {
            Err(TokenError::DpopRequired(Downgrade::Resource))
        }
        // A DPoP header beside a bearer token proves nothing about it: the binding decides.
        (Scheme::Bearer, _) => Ok(Some(Presented::Bearer)),
        (Scheme::DPoP, Some(policy)) if mode != Mode::Off => {
            let proof = match proofs {
                [] => return Err(TokenError::InvalidProof(ProofProblem::Missing)),
                [one] => *one,
                _ => return Err(TokenError::InvalidProof(ProofProblem::Several)),
            };
            // Only base64url and dots make a JWT; anything else (a list a proxy joined with
            // commas, a non-ASCII byte) is no proof.
            let proof = std::str::from_utf8(proof)
                .ok()
                .filter(|text| {
                    text.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                })
                .ok_or(TokenError::InvalidProof(ProofProblem::Malformed(
                    "the DPoP proof is not a JWT (three base64url segments)".into(),
                )))?;
            policy
                .check(proof, request, now)
                .map(|proof| Some(Presented::Proven(proof)))
        }
        (Scheme::DPoP, _) => Ok(None),
    }
}

/// Whether a verified token fits how it was presented: a DPoP-bound token (`confirmation`, its
/// `cnf.jkt`) only with a proof by its key (RFC 9449 section 7.2: never as a bearer token), and
/// a proof only with a token bound to its key.
pub fn bind(presented: &Presented, confirmation: Option<&str>) -> Result<(), TokenError> {
    match (presented, confirmation) {
        (Presented::Bearer, None) => Ok(()),
        (Presented::Bearer, Some(_)) => Err(TokenError::DpopRequired(Downgrade::BoundToken)),
        (Presented::Proven(_), None) => Err(TokenError::InvalidProof(ProofProblem::NotBound)),
        (Presented::Proven(proof), Some(jkt)) if proof.thumbprint == jkt => Ok(()),
        (Presented::Proven(_), Some(_)) => Err(TokenError::InvalidProof(ProofProblem::KeyMismatch)),
    }
}

/// base64url SHA-256 of the access token (`ath`, RFC 9449 section 4.2).
pub fn access_token_hash(token: &str) -> String {
    base64url::encode(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK, base64url: the hash of its required members
/// in lexicographic order, without white space. None for a key type without one, or a required
/// member that is not a string.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = String::from("{");
    for (i, name) in members.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        let value = jwk.get(*name)?.as_str()?;
        canonical.push('"');
        canonical.push_str(name);
        canonical.push_str("\":");
        canonical.push_str(&serde_json::to_string(value).ok()?);
    }
    canonical.push('}');
    Some(base64url::encode(
        digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref(),
    ))
}

/// A URL normalized for comparison: RFC 3986 section 6.2.2 (scheme and host in lower case,
/// percent-encoding in upper case, unreserved characters decoded, dot segments removed), the
/// scheme's default port dropped, an empty path as `/`, and trailing slashes dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalUrl {
    /// `scheme://host[:port]`.
    pub origin: String,
    pub path: String,
}

/// Why a URL has no normal form here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlProblem {
    /// Not an absolute http(s) URL of printable ASCII with a host (user information, a
    /// percent sign in the host, a broken escape or port included).
    Invalid,
    /// It has a query or a fragment, which `htu` must not (RFC 9449 section 4.2).
    QueryOrFragment,
}

pub fn normalize_url(url: &str) -> Result<NormalUrl, UrlProblem> {
    if url.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
        return Err(UrlProblem::Invalid);
    }
    if url.contains(['?', '#']) {
        return Err(UrlProblem::QueryOrFragment);
    }
    let (scheme, rest) = url.split_once("://").ok_or(UrlProblem::Invalid)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(UrlProblem::Invalid),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.strip_prefix('[') {
        // An IP literal: `[v6address]`, then an optional port.
        Some(literal) => {
            let end = literal.find(']').ok_or(UrlProblem::Invalid)?;
            let (address, after) = literal.split_at(end);
            if address.is_empty()
                || !address
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
            {
                return Err(UrlProblem::Invalid);
            }
            let port = match &after[1..] {
                "" => None,
                tail => Some(tail.strip_prefix(':').ok_or(UrlProblem::Invalid)?),
            };
            (&authority[..end + 2], port)
        }
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            // A registered name or an IPv4 address; no user information or escapes.
            if host.is_empty()
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
            {
                return Err(UrlProblem::Invalid);
            }
            (host, port)
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => {
            let significant = digits.trim_start_matches('0');
            let number = match significant.len() {
                0 => 0,
                1..=5 => significant
                    .parse::<u32>()
                    .map_err(|_| UrlProblem::Invalid)?,
                _ => return Err(UrlProblem::Invalid),
            };
            if number > 65_535 {
                return Err(UrlProblem::Invalid);
            }
            (number != default_port).then_some(number)
        }
        Some(_) => return Err(UrlProblem::Invalid),
    };
    let mut origin = format!("{scheme}://{}", host.to_ascii_lowercase());
    if let Some(port) = port {
        origin.push_str(&format!(":{port}"));
    }
    Ok(NormalUrl {
        origin,
        path: normalize_path(path)?,
    })
}

fn normalize_path(path: &str) -> Result<String, UrlProblem> {
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte != b'%' {
            decoded.push(char::from(byte));
            at += 1;
            continue;
        }
        let hex = |i: usize| {
            bytes
                .get(i)
                .and_then(|b| char::from(*b).to_digit(16))
                .ok_or(UrlProblem::Invalid)
        };
        let value =
            u8::try_from(hex(at + 1)? * 16 + hex(at + 2)?).map_err(|_| UrlProblem::Invalid)?;
        if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
            decoded.push(char::from(value));
        } else {
            decoded.push_str(&format!("%{value:02X}"));
        }
        at += 3;
    }
    // A trailing slash is not significant here (`/mcp/` is `/mcp`): every one goes, so that a
    // normal form is a fixed point.
    let normal = remove_dot_segments(&decoded);
    let kept = normal.trim_end_matches('/');
    Ok(if kept.is_empty() {
        "/".into()
    } else {
        kept.into()
    })
}

/// RFC 3986 section 5.2.4 for an absolute path (an empty one is `/`).
fn remove_dot_segments(path: &str) -> String {
    let Some(rest) = path.strip_prefix('/') else {
        return "/".into();
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.into_iter().enumerate() {
        match segment {
            "." | ".." => {
                if segment == ".." {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            _ => out.push(segment),
        }
    }
    format!("/{}", out.join("/"))
}

/// The HMAC input of the nonce of time window `window`.
fn nonce_input(window: i64) -> Vec<u8> {
    let mut input = NONCE_CONTEXT.to_vec();
    input.extend_from_slice(&window.to_be_bytes());
    input
}

fn window(now: f64) -> i64 {
    (now / NONCE_WINDOW as f64).floor() as i64
}

/// A base64url segment of the proof holding a JSON object, read strictly.
fn object(segment: &str, what: &'static str) -> Result<Map<String, Value>, TokenError> {
    let malformed = |why: String| TokenError::InvalidProof(ProofProblem::Malformed(why.into()));
    let bytes = base64url::decode(segment)
        .ok_or_else(|| malformed(format!("the DPoP proof's {what} is not base64url")))?;
    json::parse_object(&bytes).map_err(|problem: JsonProblem| {
        malformed(format!("the DPoP proof's {what} {}", problem.describe()))
    })
}

/// A member that must be a string.
fn text<'m>(members: &'m Map<String, Value>, name: &'static str) -> Result<&'m str, TokenError> {
    match members.get(name) {
        Some(Value::String(text)) => Ok(text),
        None => Err(TokenError::InvalidProof(ProofProblem::MissingMember(name))),
        Some(_) => Err(TokenError::InvalidProof(ProofProblem::InvalidMember(
            match name {
                "typ" => "'typ' must be a string",
                "alg" => "'alg' must be a string",
                "jti" => "'jti' must be a string",
                "htm" => "'htm' must be a string",
                "htu" => "'htu' must be a string",
                _ => "'ath' must be a string",
            },
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    use serde_json::json;

    const NOW: f64 = 1_800_000_000.0;
    const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln";
    const RESOURCE: &str = "https://mcp.example.com/mcp";

    /// A client's key: signs proofs as RFC 9449 section 4.2 has them.
    enum Client {
        Ec(EcdsaKeyPair),
        Ed(Ed25519KeyPair),
    }

    impl Client {
        fn ec() -> Self {
            Self::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key"))
        }

        fn ed() -> Self {
            Self::Ed(Ed25519KeyPair::generate().expect("key"))
        }

        fn alg(&self) -> &'static str {
            match self {
                Self::Ec(_) => "ES256",
                Self::Ed(_) => "EdDSA",
            }
        }

        fn jwk(&self) -> Value {
            match self {
                Self::Ec(key) => {
                    let point = key.public_key().as_ref();
                    json!({"kty": "EC", "crv": "P-256",
                           "x": base64url::encode(&point[1..33]),
                           "y": base64url::encode(&point[33..65])})
                }
                Self::Ed(key) => json!({"kty": "OKP", "crv": "Ed25519",
                                         "x": base64url::encode(key.public_key().as_ref())}),
            }
        }

        fn thumbprint(&self) -> String {
            match self.jwk() {
                Value::Object(jwk) => thumbprint(&jwk).expect("thumbprint"),
                _ => unreachable!(),
            }
        }

        fn sign(&self, input: &[u8]) -> Vec<u8> {
            match self {
                Self::Ec(key) => key
                    .sign(&SystemRandom::new(), input)
                    .expect("signed")
                    .as_ref()
                    .to_vec(),
                Self::Ed(key) => key.sign(input).as_ref().to_vec(),
            }
        }

        /// A valid proof for `POST RESOURCE` with `TOKEN`, changed by `header` and `claims`
        /// (a null removes a member).
        fn proof(&self, header: Value, claims: Value) -> String {
            let base_header = json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()});
            let base_claims = json!({"jti": "e1j3V_bKic8-LAEB", "htm": "POST", "htu": RESOURCE,
                                     "iat": NOW, "ath": access_token_hash(TOKEN)});
            let encode = |base: Value, changes: Value| {
                let mut map = match base {
                    Value::Object(map) => map,
                    _ => unreachable!(),
                };
                if let Value::Object(changes) = changes {
                    for (name, value) in changes {
                        if value.is_null() {
                            map.remove(&name);
                        } else {
                            map.insert(name, value);
                        }
                    }
                }
                base64url::encode(&serde_json::to_vec(&map).expect("json"))
            };
            let input = format!(
                "{}.{}",
                encode(base_header, header),
                encode(base_claims, claims)
            );
            let signature = base64url::encode(&self.sign(input.as_bytes()));
            format!("{input}.{signature}")
        }

        fn good(&self) -> String {
            self.proof(json!({}), json!({}))
        }
    }

    fn policy(mode: Mode) -> DpopPolicy {
        let algorithms: Vec<String> = DEFAULT_ALGORITHMS.iter().map(|a| a.to_string()).collect();
        DpopPolicy::new(mode, RESOURCE, &algorithms, DEFAULT_MAX_AGE, false, None).expect("policy")
    }

    fn request() -> Request<'static> {
        Request {
            method: "POST",
            path: "/mcp",
            access_token: TOKEN,
        }
    }

    fn check(proof: &str) -> Result<Proof, TokenError> {
        policy(Mode::Required).check(proof, &request(), NOW)
    }

    fn refused(proof: &str) -> ProofProblem {
        match check(proof) {
            Err(TokenError::InvalidProof(problem)) => problem,
            other => panic!("expected a refused proof, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_valid_proof_and_names_its_key() {
        for client in [Client::ec(), Client::ed()] {
            let proof = check(&client.good()).expect("valid");
            assert_eq!(proof.thumbprint, client.thumbprint());
            assert_eq!(proof.thumbprint.len(), 43);
            assert_eq!(proof.expires_at, NOW + 300.0);
            // The replay key depends on the key and the jti.
            let other = check(&client.proof(json!({}), json!({"jti": "another"}))).expect("ok");
            assert_ne!(proof.replay_key, other.replay_key);
        }
        let a = check(&Client::ec().good()).expect("ok");
        let b = check(&Client::ec().good()).expect("ok");
        assert_ne!(a.replay_key, b.replay_key, "the same jti under two keys");
    }

    #[test]
    fn rfc_7638_and_rfc_9449_thumbprints() {
        let rsa = json!({"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxu\
hDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQ\
R0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQF\
h6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        let ec = json!({"kty": "EC", "crv": "P-256",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"});
        for (jwk, expected) in [
            (rsa, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"),
            (ec, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"),
        ] {
            let Value::Object(jwk) = jwk else {
                unreachable!()
            };
            assert_eq!(thumbprint(&jwk).as_deref(), Some(expected));
        }
        let Value::Object(oct) = json!({"kty": "oct", "k": "AA"}) else {
            unreachable!()
        };
        assert_eq!(thumbprint(&oct), None);
    }

    #[test]
    fn every_required_member() {
        let client = Client::ec();
        for name in ["typ", "alg", "jwk"] {
            let proof = client.proof(json!({ name: null }), json!({}));
            assert_eq!(refused(&proof), ProofProblem::MissingMember(name), "{name}");
        }
        for name in ["jti", "htm", "htu", "iat", "ath"] {
            let proof = client.proof(json!({}), json!({ name: null }));
            assert_eq!(refused(&proof), ProofProblem::MissingMember(name), "{name}");
        }
        for (claims, why) in [
            (json!({"iat": "now"}), "'iat' must be a number"),
            (json!({"jti": 7}), "'jti' must be a string"),
            (json!({"jti": ""}), "'jti' is empty"),
            (
                json!({"htu": ["https://mcp.example.com/mcp"]}),
                "'htu' must be a string",
            ),
        ] {
            let proof = client.proof(json!({}), claims.clone());
            assert_eq!(
                refused(&proof),
                ProofProblem::InvalidMember(why),
                "{claims}"
            );
        }
        let proof = client.proof(json!({"jwk": "key"}), json!({}));
        assert_eq!(
            refused(&proof),
            ProofProblem::InvalidMember("'jwk' must be an object")
        );
        let proof = client.proof(json!({"crit": ["x"]}), json!({}));
        assert!(matches!(refused(&proof), ProofProblem::Malformed(_)));
    }

    #[test]
    fn malformed_proofs() {
        let good = Client::ec().good();
        let parts: Vec<&str> = good.split('.').collect();
        for proof in [
            "this-is-not-a-jwt".to_string(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{good}.x"),
            format!("{}.{}.{}", parts[0], parts[1], "!!"),
            format!("{}.{}.{}", "e30x", parts[1], parts[2]),
            // Claims with a repeated member.
            format!(
                "{}.{}.{}",
                parts[0],
                base64url::encode(br#"{"jti":"a","jti":"b"}"#),
                parts[2]
            ),
            format!("{}.{}.{}", parts[0], base64url::encode(b"[1]"), parts[2]),
            "a".repeat(MAX_PROOF_BYTES + 1),
        ] {
            assert!(
                matches!(refused(&proof), ProofProblem::Malformed(_)),
                "{proof:.60}"
            );
        }
    }

    #[test]
    fn type_algorithm_key_and_signature() {
        let client = Client::ec();
        for typ in ["jwt", "at+jwt", "dpop"] {
            let proof = client.proof(json!({ "typ": typ }), json!({}));
            assert_eq!(refused(&proof), ProofProblem::Type, "{typ}");
        }
        // The media type may be written in full, in any case (RFC 7515 section 4.1.9).
        assert!(check(&client.proof(json!({"typ": "application/DPoP+JWT"}), json!({}))).is_ok());
        for alg in ["none", "HS256", "RS999", "ES384"] {
            let proof = client.proof(json!({ "alg": alg }), json!({}));
            let expected = if alg == "ES384" {
                // Allowed, but not the key's algorithm.
                ProofProblem::Key("it does not fit the algorithm ES384".into())
            } else {
                ProofProblem::Algorithm
            };
            assert_eq!(refused(&proof), expected, "{alg}");
        }
        let only_eddsa = DpopPolicy::new(
            Mode::Required,
            RESOURCE,
            &["EdDSA".into()],
            300,
            false,
            None,
        )
        .expect("policy");
        assert_eq!(
            only_eddsa.check(&client.good(), &request(), NOW),
            Err(TokenError::InvalidProof(ProofProblem::Algorithm))
        );
        // A private key in the header is refused before anything is verified with it.
        let mut private = client.jwk();
        private["d"] = json!("jBZbTcHqHwZJ0Vxz6hPVvAvnzOX9vIFk8kEDsXCLDG8");
        let proof = client.proof(json!({ "jwk": private }), json!({}));
        assert!(
            matches!(refused(&proof), ProofProblem::Key(why) if why.contains("private")),
            "private"
        );
        // Another key than the one that signed.
        let proof = client.proof(json!({"jwk": Client::ec().jwk()}), json!({}));
        assert_eq!(refused(&proof), ProofProblem::InvalidSignature);
        // A signature with one bit changed.
        let good = client.good();
        let (input, signature) = good.rsplit_once('.').expect("three parts");
        let mut bytes = base64url::decode(signature).expect("b64");
        bytes[0] ^= 1;
        let tampered = format!("{input}.{}", base64url::encode(&bytes));
        assert_eq!(refused(&tampered), ProofProblem::InvalidSignature);
    }

    #[test]
    fn method_and_url() {
        let client = Client::ec();
        for htm in ["GET", "post", "PUT"] {
            let proof = client.proof(json!({}), json!({ "htm": htm }));
            assert_eq!(refused(&proof), ProofProblem::Method, "{htm}");
        }
        for htu in [
            "https://MCP.Example.COM/mcp",
            "HTTPS://mcp.example.com:443/mcp",
            "https://mcp.example.com/mcp/",
            "https://mcp.example.com/%6Dcp",
            "https://mcp.example.com/a/../mcp",
            "https://mcp.example.com/./mcp",
        ] {
            let proof = client.proof(json!({}), json!({ "htu": htu }));
            assert!(check(&proof).is_ok(), "{htu}");
        }
        for htu in [
            "https://wrong.example.com/mcp",
            "http://mcp.example.com/mcp",
            "https://mcp.example.com:8443/mcp",
            "https://mcp.example.com/MCP",
            "https://mcp.example.com/mcp/tools",
            "https://user@mcp.example.com/mcp",
            "mcp.example.com/mcp",
            "https://mcp.example.com/%zz",
            "",
        ] {
            let proof = client.proof(json!({}), json!({ "htu": htu }));
            assert_eq!(refused(&proof), ProofProblem::Url, "{htu}");
        }
        for htu in [
            "https://mcp.example.com/mcp?x=1",
            "https://mcp.example.com/mcp#top",
            "https://mcp.example.com/mcp?",
        ] {
            let proof = client.proof(json!({}), json!({ "htu": htu }));
            assert_eq!(refused(&proof), ProofProblem::UrlQuery, "{htu}");
        }
        // The request's own path decides, whatever its spelling.
        let proof = client.good();
        let policy = policy(Mode::Required);
        for path in ["/mcp", "/mcp/", "/%6dcp"] {
            let request = Request { path, ..request() };
            assert!(policy.check(&proof, &request, NOW).is_ok(), "{path}");
        }
        let elsewhere = Request {
            path: "/other",
            ..request()
        };
        assert_eq!(
            policy.check(&proof, &elsewhere, NOW),
            Err(TokenError::InvalidProof(ProofProblem::Url))
        );
    }

    #[test]
    fn the_window_is_the_same_either_way_without_leeway() {
        let client = Client::ec();
        for iat in [NOW - 300.0, NOW + 300.0, NOW - 0.5, NOW] {
            let proof = client.proof(json!({}), json!({ "iat": iat }));
            assert!(check(&proof).is_ok(), "{iat}");
        }
        let stale = client.proof(json!({}), json!({"iat": NOW - 301.0}));
        assert_eq!(refused(&stale), ProofProblem::Stale { seconds_ago: 301 });
        let early = client.proof(json!({}), json!({"iat": NOW + 303.0}));
        assert_eq!(refused(&early), ProofProblem::Early { seconds_ahead: 303 });
        let narrow = DpopPolicy::new(Mode::Required, RESOURCE, &["ES256".into()], 10, false, None)
            .expect("policy");
        let old = client.proof(json!({}), json!({"iat": NOW - 11.0}));
        assert!(narrow.check(&old, &request(), NOW).is_err());
    }

    #[test]
    fn the_access_token_hash() {
        let client = Client::ec();
        let proof = client.proof(json!({}), json!({"ath": "not-the-right-hash"}));
        assert_eq!(refused(&proof), ProofProblem::AccessTokenHash);
        let other = Request {
            access_token: "another.token.here",
            ..request()
        };
        assert_eq!(
            policy(Mode::Required).check(&client.good(), &other, NOW),
            Err(TokenError::InvalidProof(ProofProblem::AccessTokenHash))
        );
        // RFC 9449 section 7.1's example token and its ath.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn nonces_from_a_shared_secret() {
        let secret = [7u8; 32];
        let algorithms = vec!["ES256".to_string()];
        let make = || {
            DpopPolicy::new(
                Mode::Required,
                RESOURCE,
                &algorithms,
                300,
                true,
                Some(&secret),
            )
            .expect("policy")
        };
        let (one, two) = (make(), make());
        let nonce = one.nonce(NOW).expect("nonce");
        assert_eq!(
            two.nonce(NOW),
            Some(nonce.clone()),
            "any process, the same nonce"
        );
        let client = Client::ec();
        let without = client.good();
        let fresh = match two.check(&without, &request(), NOW) {
            Err(TokenError::NonceRequired { fresh }) => fresh,
            other => panic!("{other:?}"),
        };
        assert_eq!(fresh, nonce);
        let with = client.proof(json!({}), json!({ "nonce": nonce }));
        assert!(two.check(&with, &request(), NOW).is_ok());
        // Accepted in the next window too, not after.
        let later = NOW + NONCE_WINDOW as f64;
        let proof = client.proof(json!({}), json!({"nonce": nonce, "iat": later}));
        assert!(two.check(&proof, &request(), later).is_ok());
        let much_later = NOW + 2.0 * NONCE_WINDOW as f64;
        let proof = client.proof(json!({}), json!({"nonce": nonce, "iat": much_later}));
        assert!(matches!(
            two.check(&proof, &request(), much_later),
            Err(TokenError::NonceRequired { .. })
        ));
        for wrong in [
            json!("definitely-not-the-server-nonce"),
            json!(7),
            json!(""),
        ] {
            let proof = client.proof(json!({}), json!({ "nonce": wrong }));
            assert!(matches!(
                two.check(&proof, &request(), NOW),
                Err(TokenError::NonceRequired { .. })
            ));
        }
        // Another secret, another nonce; a random one when none is given.
        let random = DpopPolicy::new(Mode::Required, RESOURCE, &algorithms, 300, true, None)
            .expect("policy");
        assert_ne!(random.nonce(NOW), Some(nonce.clone()));
        assert!(matches!(
            random.check(&with, &request(), NOW),
            Err(TokenError::NonceRequired { .. })
        ));
        // No nonce without nonces, and a nonce claim is then ignored.
        assert_eq!(policy(Mode::Required).nonce(NOW), None);
        assert!(check(&with).is_ok());
        assert!(
            !format!("{one:?}").contains("7, 7"),
            "the secret is never shown"
        );
    }

    #[test]
    fn modes_and_schemes() {
        let client = Client::ec();
        let proof = client.good();
        let one = [proof.as_bytes()];
        let two = [proof.as_bytes(), proof.as_bytes()];
        let (off, allowed, required) = (
            policy(Mode::Off),
            policy(Mode::Allowed),
            policy(Mode::Required),
        );
        let present = |policy: Option<&DpopPolicy>, scheme, proofs: &[&[u8]]| {
            present(policy, scheme, proofs, &request(), NOW)
        };
        assert_eq!(
            present(None, Scheme::Bearer, &one),
            Ok(Some(Presented::Bearer))
        );
        assert_eq!(present(None, Scheme::DPoP, &one), Ok(None));
        assert_eq!(present(Some(&off), Scheme::DPoP, &one), Ok(None));
        assert_eq!(
            present(Some(&off), Scheme::Bearer, &[]),
            Ok(Some(Presented::Bearer))
        );
        assert_eq!(
            present(Some(&allowed), Scheme::Bearer, &two),
            Ok(Some(Presented::Bearer))
        );
        assert_eq!(
            present(Some(&required), Scheme::Bearer, &one),
            Err(TokenError::DpopRequired(Downgrade::Resource))
        );
        for policy in [&allowed, &required] {
            assert!(matches!(
                present(Some(policy), Scheme::DPoP, &one),
                Ok(Some(Presented::Proven(_)))
            ));
            assert_eq!(
                present(Some(policy), Scheme::DPoP, &[]),
                Err(TokenError::InvalidProof(ProofProblem::Missing))
            );
            assert_eq!(
                present(Some(policy), Scheme::DPoP, &two),
                Err(TokenError::InvalidProof(ProofProblem::Several))
            );
            let joined = format!("{proof}, {proof}");
            assert!(matches!(
                present(Some(policy), Scheme::DPoP, &[joined.as_bytes()]),
                Err(TokenError::InvalidProof(ProofProblem::Malformed(_)))
            ));
            assert!(matches!(
                present(Some(policy), Scheme::DPoP, &[b"\xff\xfe"]),
                Err(TokenError::InvalidProof(ProofProblem::Malformed(_)))
            ));
        }
    }

    #[test]
    fn binding() {
        let proven = Presented::Proven(check(&Client::ec().good()).expect("ok"));
        let Presented::Proven(proof) = &proven else {
            unreachable!()
        };
        let jkt = proof.thumbprint.clone();
        assert_eq!(bind(&Presented::Bearer, None), Ok(()));
        assert_eq!(
            bind(&Presented::Bearer, Some(&jkt)),
            Err(TokenError::DpopRequired(Downgrade::BoundToken))
        );
        assert_eq!(bind(&proven, Some(&jkt)), Ok(()));
        assert_eq!(
            bind(&proven, None),
            Err(TokenError::InvalidProof(ProofProblem::NotBound))
        );
        assert_eq!(
            bind(&proven, Some(&Client::ec().thumbprint())),
            Err(TokenError::InvalidProof(ProofProblem::KeyMismatch))
        );
    }

    #[test]
    fn url_normalization() {
        let normal = |url: &str| normalize_url(url).map(|u| format!("{}{}", u.origin, u.path));
        for (url, expected) in [
            ("HTTPS://Example.COM", "https://example.com/"),
            ("https://example.com:443/", "https://example.com/"),
            ("http://example.com:80/a/", "http://example.com/a"),
            ("http://example.com:0080/a", "http://example.com/a"),
            ("http://example.com:/a", "http://example.com/a"),
            ("https://example.com:8443/a", "https://example.com:8443/a"),
            ("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcp"),
            ("http://[::1]:8000/mcp", "http://[::1]:8000/mcp"),
            ("http://[::1]/", "http://[::1]/"),
            ("https://e.com/%7euser/%2f%41", "https://e.com/~user/%2FA"),
            ("https://e.com/a/./b/../c", "https://e.com/a/c"),
            ("https://e.com/a/..", "https://e.com/"),
            ("https://e.com/a//", "https://e.com/a"),
            ("https://e.com//", "https://e.com/"),
        ] {
            assert_eq!(normal(url).as_deref(), Ok(expected), "{url}");
        }
        for url in [
            "ftp://example.com/",
            "https://",
            "https:///a",
            "https://a@b/",
            "https://ex ample.com/",
            "https://exämple.com/",
            "https://example.com:99999/",
            "https://example.com:4a/",
            "https://[::1/",
            "https://[::1]x/",
            "https://[]/",
            "https://example.com/%4",
            "https://ex%41mple.com/",
            "//example.com/",
        ] {
            assert_eq!(normal(url), Err(UrlProblem::Invalid), "{url}");
        }
        assert_eq!(
            normal("https://example.com/?"),
            Err(UrlProblem::QueryOrFragment)
        );
        // Normal forms are fixed points.
        for url in ["HTTPS://E.com:443/%7e/./a/", "http://[::1]:80/b/../c"] {
            let once = normal(url).expect("normal");
            assert_eq!(normal(&once), Ok(once.clone()), "{url}");
        }
    }

    #[test]
    fn configuration_is_checked() {
        // (mode, resource, algorithms, max_age, nonce, secret) and what the error says.
        type Case<'c> = (Mode, &'c str, &'c [&'c str], i64, bool, Option<&'c [u8]>);
        let cases: [(Case<'_>, &str); 9] = [
            (
                (Mode::Allowed, RESOURCE, &[], 300, false, None),
                "dpop_algorithms is empty",
            ),
            (
                (Mode::Allowed, RESOURCE, &["HS256"], 300, false, None),
                "never accepted",
            ),
            (
                (Mode::Allowed, RESOURCE, &["none"], 300, false, None),
                "never accepted",
            ),
            (
                (Mode::Allowed, RESOURCE, &["ES999"], 300, false, None),
                "not supported",
            ),
            (
                (Mode::Allowed, RESOURCE, &["ES256"], 0, false, None),
                "dpop_max_age",
            ),
            (
                (Mode::Allowed, "urn:x", &["ES256"], 300, false, None),
                "resource",
            ),
            (
                (Mode::Off, RESOURCE, &["ES256"], 300, true, None),
                "dpop is off",
            ),
            (
                (
                    Mode::Allowed,
                    RESOURCE,
                    &["ES256"],
                    300,
                    false,
                    Some(&[1; 32]),
                ),
                "dpop_nonce is off",
            ),
            (
                (
                    Mode::Allowed,
                    RESOURCE,
                    &["ES256"],
                    300,
                    true,
                    Some(&[1; 8]),
                ),
                "at least 32 bytes",
            ),
        ];
        let algorithms = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let cases = cases.map(
            |((mode, resource, names, max_age, nonce, secret), needle)| {
                let policy =
                    DpopPolicy::new(mode, resource, &algorithms(names), max_age, nonce, secret);
                (policy, needle)
            },
        );
        for (result, needle) in cases {
            let err = result.expect_err(needle);
            assert!(err.0.contains(needle), "{needle}: {}", err.0);
        }
        assert_eq!(Mode::parse("required").map(Mode::name), Ok("required"));
        // Off, the resource need not be a URL.
        assert!(DpopPolicy::new(
            Mode::Off,
            "api://app",
            &algorithms(&["ES256"]),
            300,
            false,
            None
        )
        .is_ok());
        assert!(Mode::parse("on").is_err());
    }

    /// Each refusal names the check it failed, and the checks run in the order of `Step`.
    #[test]
    fn refusals_name_their_step_in_order() {
        let client = Client::ec();
        let mut private = client.jwk();
        private["d"] = json!("jBZbTcHqHwZJ0Vxz6hPVvAvnzOX9vIFk8kEDsXCLDG8");
        let cases = [
            (client.proof(json!({"typ": null}), json!({})), Step::Members),
            (client.proof(json!({"typ": "jwt"}), json!({})), Step::Type),
            (
                client.proof(json!({"alg": "none"}), json!({})),
                Step::Algorithm,
            ),
            (
                client.proof(json!({ "jwk": private }), json!({})),
                Step::Key,
            ),
            (
                client.proof(json!({"jwk": Client::ec().jwk()}), json!({})),
                Step::Signature,
            ),
            (client.proof(json!({}), json!({"htm": "GET"})), Step::Method),
            (
                client.proof(json!({}), json!({"htu": "https://x.example/mcp"})),
                Step::Url,
            ),
            (
                client.proof(json!({}), json!({"iat": NOW - 400.0})),
                Step::Time,
            ),
            (
                client.proof(json!({}), json!({"ath": "x"})),
                Step::AccessTokenHash,
            ),
            ("x".into(), Step::WellFormed),
        ];
        for (proof, step) in cases {
            let error = check(&proof).expect_err("refused");
            assert_eq!(Step::of(&error), Some(step), "{error:?}");
        }
        // Two defects: the earlier check is the refusal.
        let both = client.proof(json!({"typ": "jwt"}), json!({"htm": "GET"}));
        assert_eq!(
            Step::of(&check(&both).expect_err("refused")),
            Some(Step::Type)
        );
        let mut sorted = Step::ALL;
        sorted.sort();
        assert_eq!(sorted, Step::ALL);
        assert_eq!(Step::of(&TokenError::Inactive), None);
    }
}

//! A validation policy and the claim rules (RFC 7519 section 4.1, RFC 9068, RFC 8693 `scope`).

use crate::admission::{unverified_issuer, KeyMissed, KeyRing, Unsettled};
use crate::algorithm::{Algorithm, AlgorithmName, AlgorithmSet};
use crate::base64url;
use crate::claim_path::{self, Step};
use crate::error::{ConfigError, TokenError, WrongKind};
use crate::json::{self, JsonProblem, Shape as Claim};
use crate::keyset::KeySet;
use crate::scopes::ScopeRules;
use crate::token::{decode_segment, normalize_media_type, parse_object, CompactJws, Header};
use crate::trace::{Check, Recorder, Silent};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Clock skew beyond an hour is a broken clock, not skew.
pub const MAX_LEEWAY_SECONDS: i64 = 3600;
pub const MIN_TOKEN_BYTES: usize = 256;
pub const MAX_TOKEN_BYTES: usize = 1 << 20;

/// What a caller configures; `Policy::new` checks it.
#[derive(Debug, Clone)]
pub struct PolicyOptions {
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    pub leeway: i64,
    pub required_claims: Vec<String>,
    pub required_scopes: Vec<String>,
    pub accepted_types: Option<Vec<String>>,
    pub max_token_bytes: usize,
    /// The claims the roles are read from, as dotted paths (`claim_path`).
    pub roles_claims: Vec<String>,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: Vec::new(),
            algorithms: vec!["RS256".into(), "ES256".into()],
            leeway: 60,
            // RFC 9068 section 2.2 requires `sub` (and `iat`, `jti` and `client_id`, which
            // issuers omit often enough that requiring them would refuse real tokens).
            required_claims: vec!["exp".into(), "iss".into(), "aud".into(), "sub".into()],
            required_scopes: Vec::new(),
            accepted_types: None,
            max_token_bytes: 8192,
            roles_claims: vec!["roles".into()],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub algorithms: AlgorithmSet,
    pub leeway: i64,
    pub required_claims: Vec<String>,
    /// The scopes every token needs (no implications: those belong to the caller's rules).
    pub required_scopes: ScopeRules,
    /// Normalized with [`normalize_media_type`].
    pub accepted_types: Option<Vec<String>>,
    pub max_token_bytes: usize,
    /// The dotted paths (`claim_path`) of the claims holding the user's roles.
    pub roles_claims: Vec<String>,
    /// Where `check_claims` finds each required claim, and how many it does not read itself.
    required_slots: Vec<Required>,
    other_required: usize,
}

/// A verified token: its payload, the claims the validator read out of it (their types
/// checked by `check_claims`), and the whole claims set on request. Kept compact, since the
/// verified-token cache holds one per entry: the payload once, and where each claim's text lies
/// in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The decoded payload, strict JSON (so valid UTF-8 throughout).
    payload: Box<str>,
    /// Texts that were escaped in the payload, decoded (rare: most claims are plain).
    decoded: Box<[Box<str>]>,
    /// `iss`, `sub`, `client_id` (or `azp`), `jti`, `username` (RFC 7662; a JWT may carry it).
    named: [Span; 5],
    /// `aud` values, then the granted scopes (`scopes_from` on), then the roles (`roles_from` on).
    texts: Spans,
    scopes_from: u16,
    roles_from: u16,
    /// `exp`, `nbf` and `iat` as read.
    dates: Dates,
    /// The digest of the key that verified the signature (all zeros before verification).
    pub key_digest: [u8; 32],
}

const ISSUER_TEXT: usize = 0;
const SUBJECT_TEXT: usize = 1;
const CLIENT_TEXT: usize = 2;
const TOKEN_ID_TEXT: usize = 3;
const USERNAME_TEXT: usize = 4;

/// Where a claim's text is: bytes `start..end` of the payload; entry `end` of
/// `Verified::decoded` when `start` is `DECODED`; nowhere (no such claim) when it is `ABSENT`.
/// A payload is far shorter than either marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    const DECODED: u32 = u32::MAX - 1;
    const ABSENT: Span = Span {
        start: u32::MAX,
        end: 0,
    };
}

/// The spans of a verified token's texts: a few in place (most tokens), else on the heap.
#[derive(Debug, Clone, PartialEq)]
enum Spans {
    Inline([Span; 4], u8),
    Heap(Vec<Span>),
}

impl Spans {
    fn with_capacity(capacity: usize) -> Self {
        if capacity <= 4 {
            Spans::Inline([Span::ABSENT; 4], 0)
        } else {
            Spans::Heap(Vec::with_capacity(capacity))
        }
    }

    fn push(&mut self, span: Span) {
        match self {
            Spans::Inline(spans, len) => match spans.get_mut(usize::from(*len)) {
                Some(slot) => {
                    *slot = span;
                    *len += 1;
                }
                None => {
                    let mut heap = spans.to_vec();
                    heap.push(span);
                    *self = Spans::Heap(heap);
                }
            },
            Spans::Heap(spans) => spans.push(span),
        }
    }

    fn as_slice(&self) -> &[Span] {
        match self {
            Spans::Inline(spans, len) => &spans[..usize::from(*len)],
            Spans::Heap(spans) => spans,
        }
    }
}

/// `exp`, `nbf` and `iat`, NaN when absent (a JSON number is never NaN): 24 bytes where three
/// `Option<f64>` take 48. Equal when their bits are, so that an absent date equals itself.
#[derive(Debug, Clone, Copy)]
struct Dates([f64; 3]);

impl Dates {
    fn new(exp: Option<f64>, nbf: Option<f64>, iat: Option<f64>) -> Self {
        Self([exp, nbf, iat].map(|date| date.unwrap_or(f64::NAN)))
    }

    fn get(self, index: usize) -> Option<f64> {
        Some(self.0[index]).filter(|value| !value.is_nan())
    }
}

impl PartialEq for Dates {
    fn eq(&self, other: &Self) -> bool {
        self.0.map(f64::to_bits) == other.0.map(f64::to_bits)
    }
}

impl Verified {
    fn text(&self, span: Span) -> &str {
        if span.start == Span::DECODED {
            return self.decoded.get(span.end as usize).map_or("", |t| t);
        }
        self.payload
            .get(span.start as usize..span.end as usize)
            .unwrap_or_default()
    }

    fn named(&self, index: usize) -> Option<&str> {
        let span = self.named[index];
        (span != Span::ABSENT).then(|| self.text(span))
    }

    /// `exp`, re-checked on every cache hit.
    pub fn exp(&self) -> Option<f64> {
        self.dates.get(0)
    }

    /// `nbf`, re-checked on every cache hit.
    pub fn nbf(&self) -> Option<f64> {
        self.dates.get(1)
    }

    pub fn iat(&self) -> Option<f64> {
        self.dates.get(2)
    }

    pub fn subject(&self) -> Option<&str> {
        self.named(SUBJECT_TEXT)
    }

    pub fn issuer(&self) -> &str {
        self.named(ISSUER_TEXT).unwrap_or_default()
    }

    /// `client_id`, or else `azp`.
    pub fn client_id(&self) -> Option<&str> {
        self.named(CLIENT_TEXT)
    }

    pub fn token_id(&self) -> Option<&str> {
        self.named(TOKEN_ID_TEXT)
    }

    pub fn username(&self) -> Option<&str> {
        self.named(USERNAME_TEXT)
    }

    /// Every `aud` value (a single string counts as a list of one).
    pub fn audience(&self) -> Vec<&str> {
        self.texts.as_slice()[..usize::from(self.scopes_from)]
            .iter()
            .map(|s| self.text(*s))
            .collect()
    }

    /// The granted scopes: `scope`, then `scp`, without repeats, in order of appearance.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.texts.as_slice()[usize::from(self.scopes_from)..usize::from(self.roles_from)]
            .iter()
            .map(|s| self.text(*s))
    }

    /// The roles read from `roles_claims`, without repeats, in order of appearance.
    pub fn roles(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.texts.as_slice()[usize::from(self.roles_from)..]
            .iter()
            .map(|s| self.text(*s))
    }

    /// `exp` in unix seconds, rounded down.
    pub fn expires_at(&self) -> Option<i64> {
        self.exp().map(seconds)
    }

    /// `iat` in unix seconds, rounded down.
    pub fn issued_at(&self) -> Option<i64> {
        self.iat().map(seconds)
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The payload as read.
    pub fn payload(&self) -> &str {
        &self.payload
    }

    /// The whole claims set, read again from the payload (which the same rules accepted).
    pub fn claims(&self) -> Result<Map<String, Value>, TokenError> {
        parse_object(self.payload.as_bytes(), "payload")
    }
}

/// Whether an audience is an application ID in Entra ID's form: a GUID, 8-4-4-4-12 hex digits
/// (as `mcp_oauth2._url_rules.is_application_id` accepts it in a configuration). Identity
/// providers that name an application this way issue ID tokens to the same `aud`.
pub fn is_guid(audience: &str) -> bool {
    let bytes = audience.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

impl Policy {
    pub fn new(options: PolicyOptions) -> Result<Self, ConfigError> {
        let err = |msg: String| Err(ConfigError(msg));
        if options.issuers.is_empty() || options.issuers.iter().any(|s| s.trim().is_empty()) {
            return err("issuer must be a non-empty string or a list of them, \
                 e.g. issuer=\"https://auth.example.com\""
                .into());
        }
        if options.audiences.is_empty() || options.audiences.iter().any(|s| s.trim().is_empty()) {
            return err(
                "audience must be this server's canonical resource URI (or a list of \
                 them), e.g. audience=\"https://mcp.example.com/mcp\"; audience validation \
                 cannot be turned off"
                    .into(),
            );
        }
        if options.algorithms.is_empty() {
            return err(
                "algorithms is empty: allow at least one, e.g. algorithms=(\"RS256\", \
                 \"ES256\")"
                    .into(),
            );
        }
        let mut algorithms = AlgorithmSet::default();
        for name in &options.algorithms {
            match Algorithm::parse(name) {
                AlgorithmName::Supported(alg) => algorithms.insert(alg),
                AlgorithmName::Forbidden => {
                    return err(format!(
                        "algorithm {name:?} is never accepted: only asymmetric signatures are \
                         verified (remove it; use e.g. RS256, ES256, EdDSA)"
                    ))
                }
                AlgorithmName::Unknown => {
                    let known: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
                    return err(format!(
                        "algorithm {name:?} is not supported; choose from {}",
                        known.join(", ")
                    ));
                }
            }
        }
        if !(0..=MAX_LEEWAY_SECONDS).contains(&options.leeway) {
            return err(format!(
                "leeway must be between 0 and {MAX_LEEWAY_SECONDS} seconds (got {}); 60 is \
                 typical",
                options.leeway
            ));
        }
        if !(MIN_TOKEN_BYTES..=MAX_TOKEN_BYTES).contains(&options.max_token_bytes) {
            return err(format!(
                "max_token_bytes must be between {MIN_TOKEN_BYTES} and {MAX_TOKEN_BYTES} \
                 (got {}); 8192 is typical",
                options.max_token_bytes
            ));
        }
        if let Some(bad) = options.required_claims.iter().find(|c| c.is_empty()) {
            return err(format!(
                "required_claims holds an empty name ({bad:?}); list claim names such as \"sub\""
            ));
        }
        for path in &options.roles_claims {
            if let Some(problem) = claim_path::problem(path) {
                return err(format!(
                    "roles_claims holds {:?}, which {problem}; give claim paths such as \"roles\" \
                     or \"realm_access.roles\"",
                    truncated(path)
                ));
            }
            // The members the claim rules read are never handed to the roles reader.
            if let Some(read) = READ_CLAIM_NAMES
                .iter()
                .find(|name| claim_path::step(path, name).is_some())
            {
                return err(format!(
                    "roles_claims holds {:?}, which goes through '{read}', a claim read for its \
                     own rule; give the claim that holds roles, e.g. \"roles\"",
                    truncated(path)
                ));
            }
        }
        if options.roles_claims.len() > MAX_ROLES_CLAIMS {
            return err(format!(
                "roles_claims holds {} paths; at most {MAX_ROLES_CLAIMS} are read",
                options.roles_claims.len()
            ));
        }
        let required_scopes = ScopeRules::requiring(options.required_scopes, "required_scopes")?;
        let accepted_types = match options.accepted_types {
            None => None,
            Some(types) if types.is_empty() || types.iter().any(|t| t.trim().is_empty()) => {
                return err(
                    "accepted_types must be None (any typ) or a non-empty list, e.g. \
                     (\"at+jwt\",)"
                        .into(),
                )
            }
            Some(types) => Some(types.iter().map(|t| normalize_media_type(t)).collect()),
        };
        let mut required_claims = options.required_claims;
        required_claims.dedup();
        let mut other_required = 0;
        let required_slots = required_claims
            .iter()
            .map(|name| match claim_index(name) {
                Some(index) => Required::Read(index),
                None => {
                    other_required += 1;
                    Required::Other(other_required - 1)
                }
            })
            .collect();
        Ok(Self {
            required_slots,
            other_required,
            issuers: options.issuers,
            audiences: options.audiences,
            algorithms,
            leeway: options.leeway,
            required_claims,
            required_scopes,
            accepted_types,
            max_token_bytes: options.max_token_bytes,
            roles_claims: options.roles_claims,
        })
    }

    /// The lifetime rules alone (`exp`, `nbf`), for a result verified earlier.
    pub fn check_lifetime(
        &self,
        exp: Option<f64>,
        nbf: Option<f64>,
        now: f64,
    ) -> Result<(), TokenError> {
        self.check_exp(exp, now, &mut Silent)?;
        self.check_nbf(nbf, now, &mut Silent)
    }

    fn check_exp<R: Recorder>(
        &self,
        exp: Option<f64>,
        now: f64,
        rec: &mut R,
    ) -> Result<(), TokenError> {
        let Some(exp) = exp else {
            rec.skip(Check::Exp, || "no exp claim".into());
            return Ok(());
        };
        let leeway = self.leeway as f64;
        let result = if now >= exp + leeway {
            Err(TokenError::Expired {
                seconds_ago: (now - exp).floor() as i64,
            })
        } else {
            Ok(())
        };
        rec.outcome(Check::Exp, result, |()| {
            if now < exp {
                format!("expires in {} s", (exp - now).floor())
            } else {
                format!(
                    "expired {} s ago, within the leeway of {} s",
                    (now - exp).floor(),
                    self.leeway
                )
            }
        })
    }

    fn check_nbf<R: Recorder>(
        &self,
        nbf: Option<f64>,
        now: f64,
        rec: &mut R,
    ) -> Result<(), TokenError> {
        let Some(nbf) = nbf else {
            rec.skip(Check::Nbf, || "no nbf claim".into());
            return Ok(());
        };
        let leeway = self.leeway as f64;
        let result = if now + leeway < nbf {
            Err(TokenError::NotYetValid {
                seconds_until: (nbf - now).ceil() as i64,
            })
        } else {
            Ok(())
        };
        rec.outcome(Check::Nbf, result, |()| {
            if nbf <= now {
                format!("valid since {} s ago", (now - nbf).floor())
            } else {
                format!(
                    "valid in {} s, within the leeway of {} s",
                    (nbf - now).ceil(),
                    self.leeway
                )
            }
        })
    }

    fn check_iat<R: Recorder>(
        &self,
        iat: Option<f64>,
        now: f64,
        rec: &mut R,
    ) -> Result<(), TokenError> {
        let Some(iat) = iat else {
            rec.skip(Check::Iat, || "no iat claim".into());
            return Ok(());
        };
        let result = if iat > now + self.leeway as f64 {
            Err(TokenError::IssuedInFuture {
                seconds_ahead: (iat - now).ceil() as i64,
            })
        } else {
            Ok(())
        };
        rec.outcome(Check::Iat, result, |()| {
            if iat <= now {
                format!("issued {} s ago", (now - iat).floor())
            } else {
                format!(
                    "issued {} s in the future, within the leeway of {} s",
                    (iat - now).ceil(),
                    self.leeway
                )
            }
        })
    }

    /// Verifies `token` against `keys` and this policy at time `now` (unix seconds).
    pub fn validate(&self, token: &str, keys: &KeySet, now: f64) -> Result<Verified, TokenError> {
        self.validate_with(token, &KeyRing::Shared(keys), now)
            .map_err(|unsettled| match unsettled {
                Unsettled::Refused { error, .. } => error,
                // A shared ring holds keys for every issuer.
                Unsettled::NoKeys { .. } => TokenError::InvalidIssuer,
            })
    }

    /// Verifies `token` with the keys `ring` holds for it and this policy at time `now`. With a
    /// ring per issuer, the payload's unverified `iss` chooses the keys: it must be a
    /// configured issuer, and the token is then verified in full (signature and every claim
    /// rule, the issuer rule included) as with shared keys.
    pub fn validate_with(
        &self,
        token: &str,
        ring: &KeyRing<'_>,
        now: f64,
    ) -> Result<Verified, Unsettled> {
        self.validate_recorded(token, ring, now, &mut Silent)
    }

    /// [`Self::validate_with`], recording each check in `rec` as it is made.
    pub fn validate_recorded<R: Recorder>(
        &self,
        token: &str,
        ring: &KeyRing<'_>,
        now: f64,
        rec: &mut R,
    ) -> Result<Verified, Unsettled> {
        let jws = CompactJws::split_recorded(token, self.max_token_bytes, rec)?;
        // Every segment is decoded (and so checked) before verification, the payload read only
        // once the signature holds; errors are reported in that order.
        Header::with_recorded(jws.header, self.algorithms, rec, |rec, header| {
            let header = header?;
            self.check_typ(header, rec)?;
            let mut stack = [0u8; 392];
            let mut heap = Vec::new();
            let decoded = match decode_segment(jws.payload, "payload") {
                Ok(payload) => {
                    // On the stack when it fits (RSA keys up to 3072 bits, every EC and EdDSA
                    // key).
                    let bound = base64url::decoded_len_bound(jws.signature);
                    let buffer: &mut [u8] = if bound <= stack.len() {
                        &mut stack
                    } else {
                        heap.resize(bound, 0);
                        &mut heap
                    };
                    match base64url::decode_to(jws.signature, buffer) {
                        Some(signature) => Ok((payload, signature)),
                        None => Err(not_base64("signature")),
                    }
                }
                Err(error) => Err(error),
            };
            let (payload, signature) = rec.outcome(Check::Encoding, decoded, |_| {
                "the payload and the signature are base64url".into()
            })?;
            let (keys, routed) = match ring {
                KeyRing::Shared(keys) => {
                    rec.skip(Check::Route, || "one key set serves every issuer".into());
                    (*keys, None)
                }
                KeyRing::ByIssuer(_) => {
                    let issuer = rec.outcome(Check::Route, self.route(&payload), |issuer| {
                        let held = if ring.for_issuer(issuer).is_some() {
                            "its keys are used"
                        } else {
                            "no keys of it are at hand yet"
                        };
                        format!("the unverified iss {issuer:?} is a trusted issuer: {held}")
                    })?;
                    match ring.for_issuer(issuer) {
                        Some(keys) => (keys, Some(issuer)),
                        None => {
                            return Err(Unsettled::NoKeys {
                                issuer: issuer.to_owned(),
                            })
                        }
                    }
                }
            };
            let key = keys
                .verify_recorded(
                    header.kid.as_deref(),
                    header.alg,
                    jws.signing_input.as_bytes(),
                    signature,
                    rec,
                )
                .map_err(|error| Unsettled::Refused {
                    error,
                    missed: Some(KeyMissed {
                        issuer: routed.map(str::to_owned),
                        kid: header.kid.as_deref().map(str::to_owned),
                    }),
                })?;
            let mut verified = self.check_document(payload, now, None, rec)?;
            verified.key_digest = key.digest;
            Ok(verified)
        })
    }

    /// The header's `typ` against `accepted_types`, when set.
    fn check_typ<R: Recorder>(&self, header: &Header<'_>, rec: &mut R) -> Result<(), TokenError> {
        let Some(accepted) = &self.accepted_types else {
            rec.skip(Check::Typ, || "accepted_types is not set".into());
            return Ok(());
        };
        let typ = header.typ.as_deref().map(normalize_media_type);
        let result = if typ.as_ref().is_some_and(|t| accepted.contains(t)) {
            Ok(())
        } else {
            Err(TokenError::InvalidType(WrongKind::Typ))
        };
        rec.outcome(Check::Typ, result, |()| {
            format!(
                "{:?} is accepted ({})",
                header.typ.as_deref().unwrap_or_default(),
                accepted.join(", ")
            )
        })
    }

    /// The configured issuer a decoded, unverified payload names in `iss`, for choosing its
    /// keys; refused with the words the claim rules would use when there is none.
    fn route(&self, payload: &[u8]) -> Result<&str, TokenError> {
        let issuer =
            unverified_issuer(payload).map_err(|problem| malformed_json("payload", problem))?;
        match issuer {
            Claim::Text(iss) => self
                .issuers
                .iter()
                .find(|trusted| **trusted == iss)
                .map(String::as_str)
                .ok_or(TokenError::InvalidIssuer),
            Claim::Absent => Err(TokenError::MissingClaim("iss".to_owned())),
            Claim::Null => Err(TokenError::InvalidClaim("'iss' is null".into())),
            _ => Err(invalid("'iss' must be a string")),
        }
    }

    fn claims_reader(&self) -> Claims<'_, '_> {
        Claims::new(
            &self.required_claims,
            self.other_required,
            &self.roles_claims,
        )
    }

    /// The claim rules, on a decoded payload whose signature has been verified. The payload is
    /// read in one pass that checks all of it under the strict JSON rules and keeps only the
    /// claims the rules need; the rules then apply in a fixed order.
    pub fn check_claims(&self, payload: Vec<u8>, now: f64) -> Result<Verified, TokenError> {
        self.check_document(payload, now, None, &mut Silent)
    }

    /// The issuer an introspection answer without `iss` is taken to come from: `given` when it
    /// is a configured issuer (None when it is not), else the first configured one.
    pub fn introspection_issuer<'a>(&'a self, given: Option<&'a str>) -> Option<&'a str> {
        match given {
            Some(issuer) => self.issuers.iter().any(|i| i == issuer).then_some(issuer),
            None => self.issuers.first().map(String::as_str),
        }
    }

    /// The rules for an RFC 7662 introspection response, which the authorization server sent
    /// over an authenticated channel in place of a signed payload: only `"active": true`
    /// (exactly) is active; a `token_use` other than `access_token` (a refresh token) is
    /// refused; `exp`, `nbf` and `iat` follow the JWT rules and leeway; `iss`, when present,
    /// must be a configured issuer (when absent, the user's issuer is `issuer`); `aud` must
    /// name this resource, and may be absent only when `require_audience` is false.
    /// `required_claims` are a JWT rule and do not apply.
    pub fn check_introspection(
        &self,
        response: &[u8],
        now: f64,
        require_audience: bool,
        issuer: &str,
    ) -> Result<Verified, IntrospectionFailure> {
        self.check_introspection_recorded(response, now, require_audience, issuer, &mut Silent)
    }

    /// [`Self::check_introspection`], recording each check in `rec` as it is made.
    pub fn check_introspection_recorded<R: Recorder>(
        &self,
        response: &[u8],
        now: f64,
        require_audience: bool,
        issuer: &str,
        rec: &mut R,
    ) -> Result<Verified, IntrospectionFailure> {
        // The members only this kind of document has, read from its tree; the shared rules then
        // read the same text in one pass, as for a JWT payload.
        let members = json::parse_object(response).map_err(IntrospectionFailure::Response)?;
        let active = if members.get("active") == Some(&Value::Bool(true)) {
            Ok(())
        } else {
            Err(TokenError::Inactive)
        };
        rec.outcome(Check::Active, active, |()| "\"active\": true".into())?;
        let token_use = match members.get("token_use") {
            None => {
                rec.skip(Check::TokenUse, || "no token_use member".into());
                Ok(())
            }
            Some(Value::String(used)) if used == "access_token" => {
                rec.pass(Check::TokenUse, || "access_token".into());
                Ok(())
            }
            Some(_) => {
                let error = invalid("'token_use' must be 'access_token'");
                rec.fail(Check::TokenUse, &error);
                Err(error)
            }
        };
        token_use?;
        rec.outcome(Check::TokenType, not_a_refresh_token(&members), |()| {
            "names no refresh token (token_type, typ)".into()
        })?;
        let introspected = Introspected {
            require_audience,
            issuer,
        };
        Ok(self.check_document(response.to_vec(), now, Some(introspected), rec)?)
    }

    fn check_document<R: Recorder>(
        &self,
        payload: Vec<u8>,
        now: f64,
        introspected: Option<Introspected<'_>>,
        rec: &mut R,
    ) -> Result<Verified, TokenError> {
        let payload = match String::from_utf8(payload) {
            Ok(text) => text,
            Err(not_text) => {
                // Not UTF-8, so not JSON: the reader names the first problem, as for any text.
                let bytes = not_text.into_bytes();
                let read = json::read_object(&bytes, &mut self.claims_reader());
                let error = malformed_json("payload", read.err().unwrap_or(JsonProblem::Invalid));
                rec.fail(Check::Payload, &error);
                return Err(error);
            }
        };
        let mut found = self.claims_reader();
        let read = json::read_text(&payload, &mut found)
            .map_err(|problem| malformed_json("payload", problem));
        rec.outcome(Check::Payload, read, |()| {
            "one JSON object, each member once".into()
        })?;
        let dates = (|| -> Result<_, TokenError> {
            Ok((
                numeric_date(found.get(EXP), "exp")?,
                numeric_date(found.get(NBF), "nbf")?,
                numeric_date(found.get(IAT), "iat")?,
            ))
        })();
        let (exp, nbf, iat) = rec.outcome(Check::Dates, dates, |_| {
            "exp, nbf and iat are numbers where present".into()
        })?;
        self.check_exp(exp, now, rec)?;
        self.check_nbf(nbf, now, rec)?;
        self.check_iat(iat, now, rec)?;
        // The issuer and audience are always checked, so in a token `iss` and `aud` are always
        // required. JSON null is a value, not an absence: a required claim given as null is
        // invalid. An introspection response may leave out `iss`, and `aud` if so configured.
        let always = [("iss", Required::Read(ISS)), ("aud", Required::Read(AUD))];
        let configured = self.required_claims.iter().map(String::as_str);
        let required = always
            .into_iter()
            .chain(configured.zip(self.required_slots.iter().copied()));
        let required: Vec<(&str, Required)> = match &introspected {
            None => required.collect(),
            Some(rules) => always
                .into_iter()
                .filter(|(name, _)| match *name {
                    "aud" => rules.require_audience,
                    _ => false,
                })
                .collect(),
        };
        let present =
            required
                .iter()
                .try_for_each(|(name, required)| match found.presence(*required) {
                    Presence::Absent => Err(TokenError::MissingClaim((*name).to_owned())),
                    Presence::Null => {
                        Err(TokenError::InvalidClaim(format!("'{name}' is null").into()))
                    }
                    Presence::Value => Ok(()),
                });
        if required.is_empty() && present.is_ok() {
            rec.skip(Check::Required, || {
                "none: required_claims apply to JWTs, and aud is not required here".into()
            });
        }
        rec.outcome(Check::Required, present, |()| {
            let mut names: Vec<&str> = Vec::new();
            for (name, _) in &required {
                if !names.contains(name) {
                    names.push(name);
                }
            }
            format!("present: {}", names.join(", "))
        })?;
        let issuer = match (found.get(ISS), &introspected) {
            (Claim::Text(iss), _) if self.issuers.iter().any(|i| i == iss) => Ok(iss.as_ref()),
            (Claim::Text(_), _) => Err(TokenError::InvalidIssuer),
            (Claim::Absent, Some(rules)) => {
                rec.skip(Check::Iss, || {
                    format!("absent: the issuer asked, {:?}", rules.issuer)
                });
                Ok(rules.issuer)
            }
            _ => Err(invalid("'iss' must be a string")),
        };
        let issuer = rec.outcome(Check::Iss, issuer, |iss| format!("{iss:?} is trusted"))?;
        let ours = |aud: &str| self.audiences.iter().any(|a| a == aud);
        let audience = match (found.get(AUD), &introspected) {
            (Claim::Text(aud), _) => Ok(ours(aud)),
            (Claim::Texts(items), _) => Ok(items.iter().any(|aud| ours(aud))),
            (Claim::Absent, Some(_)) => {
                // Allowed only when not required (checked above).
                rec.skip(Check::Aud, || "absent, and not required".into());
                Ok(true)
            }
            _ => Err(invalid("'aud' must be a string or an array of strings")),
        }
        .and_then(|ok| ok.then_some(()).ok_or(TokenError::InvalidAudience));
        rec.outcome(Check::Aud, audience, |()| {
            format!("names this server ({})", self.audiences.join(", "))
        })?;
        // A JWT with `nonce` for an application ID is an OpenID Connect ID token: an identity
        // provider that names applications by a GUID (Entra ID) issues those to the same `aud`,
        // with the same `iss` and keys, as the access tokens for the application.
        if introspected.is_some() {
            rec.skip(Check::IdToken, || {
                "an introspection answer, not a JWT".into()
            });
        } else if matches!(found.get(NONCE), Claim::Absent) {
            rec.skip(Check::IdToken, || "no nonce claim".into());
        } else {
            let application = |aud: &str| is_guid(aud) && ours(aud);
            let to_application = match found.get(AUD) {
                Claim::Text(aud) => application(aud),
                Claim::Texts(items) => items.iter().any(|aud| application(aud)),
                _ => false,
            };
            let result = if to_application {
                Err(TokenError::InvalidType(WrongKind::IdToken))
            } else {
                Ok(())
            };
            rec.outcome(Check::IdToken, result, |()| {
                "nonce, but no audience is an application ID".into()
            })?;
        }
        let types = [
            (found.get(SUB), "sub"),
            (found.get(JTI), "jti"),
            (found.get(CLIENT_ID), "client_id"),
            (found.get(AZP), "azp"),
            (found.get(USERNAME), "username"),
        ]
        .into_iter()
        .try_for_each(|(claim, name)| {
            if matches!(claim, Claim::Absent | Claim::Text(_)) {
                Ok(())
            } else {
                Err(TokenError::InvalidClaim(
                    format!("'{name}' must be a string").into(),
                ))
            }
        });
        rec.outcome(Check::Types, types, |()| {
            "sub, jti, client_id, azp and username are strings where present".into()
        })?;
        // Granted scopes: `scope` (RFC 8693/9068, space-separated) and `scp` (a string or a
        // list, as Azure AD and Okta issue it), without repeats, in order of appearance.
        let mut scopes = Scopes::default();
        let granted = (|| -> Result<(), TokenError> {
            match found.get(SCOPE) {
                Claim::Absent => {}
                Claim::Text(s) => s.split(' ').for_each(|scope| scopes.add(scope)),
                _ => return Err(invalid("'scope' must be a space-separated string")),
            }
            match found.get(SCP) {
                Claim::Absent => {}
                Claim::Text(s) => s.split(' ').for_each(|scope| scopes.add(scope)),
                Claim::Texts(items) => items.iter().for_each(|scope| scopes.add(scope)),
                _ => return Err(invalid("'scp' must be a string or an array of strings")),
            }
            self.required_scopes.check(scopes.iter())
        })();
        rec.outcome(Check::Scopes, granted, |()| {
            let granted: Vec<&str> = scopes.iter().collect();
            let granted = if granted.is_empty() {
                "none".to_owned()
            } else {
                granted.join(" ")
            };
            match self.required_scopes.required() {
                [] => format!("granted: {granted}"),
                required => format!("granted: {granted}; required: {}", required.join(" ")),
            }
        })?;
        let roles = match found.roles.invalid {
            Some(path) => Err(TokenError::InvalidClaim(
                format!(
                    "'{}' (a roles claim) must be a string or an array of strings",
                    self.roles_claims.get(path).map_or("", |p| truncated(p))
                )
                .into(),
            )),
            None => Ok(found.roles.distinct()),
        };
        let roles = rec.outcome(Check::Roles, roles, |roles| {
            if roles.is_empty() {
                "none".to_owned()
            } else {
                roles.join(" ")
            }
        })?;
        // Where each kept text lies: a range of the payload when it was read without escapes.
        let base = payload.as_ptr() as usize;
        let mut decoded: Vec<Box<str>> = Vec::new();
        // A text within the payload's bytes is a slice of the payload (a decoded text lives in
        // its own allocation, which cannot overlap them).
        let mut span = |text: &str| -> Span {
            let start = (text.as_ptr() as usize).wrapping_sub(base);
            let end = start
                .checked_add(text.len())
                .filter(|end| *end <= payload.len());
            match end.map(|end| (u32::try_from(start), u32::try_from(end))) {
                Some((Ok(start), Ok(end))) if start < Span::DECODED => Span { start, end },
                _ => {
                    decoded.push(text.into());
                    Span {
                        start: Span::DECODED,
                        end: u32::try_from(decoded.len() - 1).unwrap_or(u32::MAX),
                    }
                }
            }
        };
        let audience_len = match found.get(AUD) {
            Claim::Texts(items) => items.len(),
            _ => 1,
        };
        let mut texts = Spans::with_capacity(audience_len + scopes.len() + roles.len());
        match found.get(AUD) {
            Claim::Texts(items) => items.iter().for_each(|aud| texts.push(span(aud))),
            Claim::Text(aud) => texts.push(span(aud)),
            _ => {}
        }
        scopes.iter().for_each(|scope| texts.push(span(scope)));
        let roles_from = texts.as_slice().len();
        roles.iter().for_each(|role| texts.push(span(role)));
        let mut named = [Span::ABSENT; 5];
        named[ISSUER_TEXT] = span(issuer);
        let client_id = match found.get(CLIENT_ID) {
            Claim::Text(_) => found.get(CLIENT_ID),
            _ => found.get(AZP),
        };
        for (index, claim) in [
            (SUBJECT_TEXT, found.get(SUB)),
            (CLIENT_TEXT, client_id),
            (TOKEN_ID_TEXT, found.get(JTI)),
            (USERNAME_TEXT, found.get(USERNAME)),
        ] {
            if let Claim::Text(text) = claim {
                named[index] = span(text);
            }
        }
        let scopes_from = audience_len.min(roles_from);
        drop(found);
        Ok(Verified {
            payload: payload.into_boxed_str(),
            decoded: decoded.into_boxed_slice(),
            named,
            scopes_from: u16::try_from(scopes_from).unwrap_or(u16::MAX),
            roles_from: u16::try_from(roles_from).unwrap_or(u16::MAX),
            texts,
            dates: Dates::new(exp, nbf, iat),
            key_digest: [0; 32],
        })
    }
}

/// Why an introspection response was not accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum IntrospectionFailure {
    /// The token is refused (inactive, or its claims break a rule).
    Token(TokenError),
    /// The response is not one strict JSON object: the endpoint misbehaved, the token is not to
    /// blame.
    Response(JsonProblem),
}

impl From<TokenError> for IntrospectionFailure {
    fn from(error: TokenError) -> Self {
        Self::Token(error)
    }
}

/// How an introspection response differs from a JWT payload (`Policy::check_introspection`).
struct Introspected<'i> {
    require_audience: bool,
    /// The user's issuer when the response has no `iss`.
    issuer: &'i str,
}

/// Granted scopes while they are read, without repeats, in order; the first few on the stack.
#[derive(Default)]
struct Scopes<'s> {
    first: [&'s str; 16],
    len: usize,
    more: Vec<&'s str>,
}

impl<'s> Scopes<'s> {
    fn add(&mut self, scope: &'s str) {
        if scope.is_empty() || self.contains(scope) {
            return;
        }
        match self.first.get_mut(self.len) {
            Some(slot) => {
                *slot = scope;
                self.len += 1;
            }
            None => self.more.push(scope),
        }
    }

    fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    fn len(&self) -> usize {
        self.len + self.more.len()
    }

    fn iter(&self) -> impl Iterator<Item = &'s str> + '_ {
        self.first[..self.len]
            .iter()
            .copied()
            .chain(self.more.iter().copied())
    }
}

/// An introspection answer's `token_type` (some servers name the kind of token there) and
/// Keycloak's `typ` ("Refresh"; "Bearer" for an access token) must not say "refresh token".
fn not_a_refresh_token(members: &Map<String, Value>) -> Result<(), TokenError> {
    match members.get("token_type") {
        None => {}
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("refresh_token") => {
            return Err(invalid("the token is a refresh token, not an access token"))
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err(invalid("'token_type' must be a string")),
    }
    if let Some(Value::String(typ)) = members.get("typ") {
        if typ.eq_ignore_ascii_case("refresh") || typ.eq_ignore_ascii_case("offline") {
            return Err(invalid("the token is a refresh token, not an access token"));
        }
    }
    Ok(())
}

#[cold]
fn invalid(why: &'static str) -> TokenError {
    TokenError::InvalidClaim(why.into())
}

fn seconds(value: f64) -> i64 {
    // Saturating: an absurd but finite NumericDate must not wrap around.
    value.floor() as i64
}

#[cold]
fn not_base64(what: &'static str) -> TokenError {
    TokenError::Malformed(format!("the {what} is not base64url without padding").into())
}

#[cold]
fn malformed_json(what: &'static str, problem: JsonProblem) -> TokenError {
    TokenError::Malformed(format!("the {what} {}", problem.describe()).into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Absent,
    Null,
    Value,
}

fn presence(claim: &Claim<'_>) -> Presence {
    match claim {
        Claim::Absent => Presence::Absent,
        Claim::Null => Presence::Null,
        _ => Presence::Value,
    }
}

/// A NumericDate claim: absent, or a JSON number. A string, bool or null is invalid.
fn numeric_date(claim: &Claim<'_>, name: &'static str) -> Result<Option<f64>, TokenError> {
    match claim {
        Claim::Absent => Ok(None),
        Claim::Number(n) => Ok(Some(*n)),
        _ => Err(TokenError::InvalidClaim(
            format!("'{name}' must be a number (NumericDate)").into(),
        )),
    }
}

/// The claims the rules read, by their index in `Claims::slots`.
const EXP: usize = 0;
const NBF: usize = 1;
const IAT: usize = 2;
const ISS: usize = 3;
const AUD: usize = 4;
const SUB: usize = 5;
const JTI: usize = 6;
const CLIENT_ID: usize = 7;
const AZP: usize = 8;
const SCOPE: usize = 9;
const SCP: usize = 10;
const USERNAME: usize = 11;
const NONCE: usize = 12;
const READ_CLAIMS: usize = 13;
/// The names `claim_index` knows, which a roles path may not go through.
const READ_CLAIM_NAMES: [&str; READ_CLAIMS] = [
    "exp",
    "nbf",
    "iat",
    "iss",
    "aud",
    "sub",
    "jti",
    "client_id",
    "azp",
    "scope",
    "scp",
    "username",
    "nonce",
];
/// At most this many `roles_claims` paths.
const MAX_ROLES_CLAIMS: usize = 16;

/// A configured text as an error message shows it: at most 64 characters.
fn truncated(text: &str) -> &str {
    text.char_indices()
        .nth(64)
        .map_or(text, |(end, _)| &text[..end])
}

/// The index of a claim the rules read. Names are matched as small integers (every read name
/// but `client_id`, `username`, `scope` and `nonce` is three bytes long): this runs once per
/// member of every token.
fn claim_index(name: &str) -> Option<usize> {
    let bytes = name.as_bytes();
    match bytes.len() {
        3 => match u32::from_le_bytes([bytes[0], bytes[1], bytes[2], 0]) {
            0x0070_7865 => Some(EXP), // "exp"
            0x0066_626e => Some(NBF), // "nbf"
            0x0074_6169 => Some(IAT), // "iat"
            0x0073_7369 => Some(ISS), // "iss"
            0x0064_7561 => Some(AUD), // "aud"
            0x0062_7573 => Some(SUB), // "sub"
            0x0069_746a => Some(JTI), // "jti"
            0x0070_7a61 => Some(AZP), // "azp"
            0x0070_6373 => Some(SCP), // "scp"
            _ => None,
        },
        5 if bytes == b"scope" => Some(SCOPE),
        5 if bytes == b"nonce" => Some(NONCE),
        8 if bytes == b"username" => Some(USERNAME),
        9 if bytes == b"client_id" => Some(CLIENT_ID),
        _ => None,
    }
}

/// Where the presence of a required claim is found: a read claim, or its own entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Required {
    Read(usize),
    Other(usize),
}

/// The claims the rules read, collected in one pass over the payload (`check_claims`).
struct Claims<'a, 'p> {
    slots: [Claim<'a>; READ_CLAIMS],
    /// The configured required claims, and what the payload holds of those not read above.
    required: &'p [String],
    others: Vec<Presence>,
    /// The `roles_claims` paths, and the roles found at them.
    roles_paths: &'p [String],
    roles: Roles<'a>,
}

impl<'a, 'p> Claims<'a, 'p> {
    fn new(required: &'p [String], others: usize, roles_paths: &'p [String]) -> Self {
        Self {
            slots: Default::default(),
            required,
            others: vec![Presence::Absent; others],
            roles_paths,
            roles: Roles::default(),
        }
    }

    fn get(&self, index: usize) -> &Claim<'a> {
        &self.slots[index]
    }

    fn presence(&self, required: Required) -> Presence {
        match required {
            Required::Read(index) => presence(self.get(index)),
            Required::Other(index) => self.others.get(index).copied().unwrap_or(Presence::Absent),
        }
    }
}

impl<'a> json::Members<'a> for Claims<'a, '_> {
    fn find(&mut self, name: &str) -> Result<Option<usize>, JsonProblem> {
        match claim_index(name) {
            Some(index) if !matches!(self.slots[index], Claim::Absent) => {
                Err(JsonProblem::DuplicateMember)
            }
            found => Ok(found),
        }
    }

    fn keep(&mut self, index: usize, reader: &mut json::Reader<'a>) -> Result<(), JsonProblem> {
        self.slots[index] = reader.shape()?;
        Ok(())
    }

    fn other(&mut self, name: &str, reader: &mut json::Reader<'a>) -> Result<(), JsonProblem> {
        let on_a_path = self
            .roles_paths
            .iter()
            .any(|path| claim_path::step(path, name).is_some());
        let found = if on_a_path {
            let routes = self.roles_paths.iter().enumerate();
            let routes = routes.map(|(index, path)| (index, path.as_str()));
            self.roles.read(routes.collect(), name, reader)?
        } else if self.others.is_empty() {
            return reader.skip();
        } else {
            // A required claim this validator does not read: only whether it is null matters.
            match reader.shape()? {
                Claim::Null => Presence::Null,
                _ => Presence::Value,
            }
        };
        if self.others.is_empty() {
            return Ok(());
        }
        let mut other = 0;
        for required in self.required {
            if claim_index(required).is_none() {
                if required == name {
                    self.others[other] = found;
                }
                other += 1;
            }
        }
        Ok(())
    }
}

/// The roles found at the `roles_claims` paths while the payload is read: every string at the
/// end of a path (a string, or each string of an array); anything else there, or a value that is
/// not an object on the way, makes the roles claim invalid.
#[derive(Default)]
struct Roles<'a> {
    found: Vec<Cow<'a, str>>,
    /// The index of the first configured path whose value could not be read as roles.
    invalid: Option<usize>,
}

impl<'a> Roles<'a> {
    /// Reads the value of member `name`, on the way of some of `paths` (index, the rest of the
    /// path at this depth); what the member holds, for the required-claims rule.
    fn read<'p>(
        &mut self,
        paths: Vec<(usize, &'p str)>,
        name: &str,
        reader: &mut json::Reader<'a>,
    ) -> Result<Presence, JsonProblem> {
        let mut ending: Option<usize> = None;
        let mut going_on: Vec<(usize, &'p str)> = Vec::new();
        for (index, path) in paths {
            match claim_path::step(path, name) {
                Some(Step::Here) => {
                    ending.get_or_insert(index);
                }
                Some(Step::Into(rest)) => going_on.push((index, rest)),
                None => {}
            }
        }
        if !going_on.is_empty() && reader.at_object() {
            // An object: the end of no path (an object is not roles), the way for the others.
            if let Some(index) = ending {
                self.mark_invalid(index);
            }
            reader.members(&mut RolesWithin {
                roles: self,
                paths: going_on,
            })?;
            return Ok(Presence::Value);
        }
        if let Some((index, _)) = going_on.first() {
            self.mark_invalid(*index); // not an object on the way
        }
        let shape = reader.shape()?;
        let presence = match shape {
            Claim::Null => Presence::Null,
            _ => Presence::Value,
        };
        if let Some(index) = ending {
            match shape {
                Claim::Text(role) => self.found.push(role),
                Claim::Texts(roles) => self.found.extend(roles),
                _ => self.mark_invalid(index),
            }
        }
        Ok(presence)
    }

    /// Notes that the path at `index` holds no roles; the error names the first such path.
    fn mark_invalid(&mut self, index: usize) {
        self.invalid = Some(self.invalid.map_or(index, |first| first.min(index)));
    }

    /// The roles found, each once, in order of appearance.
    fn distinct(&self) -> Vec<&str> {
        let mut roles: Vec<&str> = Vec::with_capacity(self.found.len());
        if self.found.len() <= 16 {
            for role in &self.found {
                if !role.is_empty() && !roles.contains(&role.as_ref()) {
                    roles.push(role);
                }
            }
        } else {
            let mut seen = std::collections::HashSet::with_capacity(self.found.len());
            for role in &self.found {
                if !role.is_empty() && seen.insert(role.as_ref()) {
                    roles.push(role);
                }
            }
        }
        roles
    }
}

/// The members of an object on the way of some roles paths.
struct RolesWithin<'r, 'a, 'p> {
    roles: &'r mut Roles<'a>,
    paths: Vec<(usize, &'p str)>,
}

impl<'a> json::Members<'a> for RolesWithin<'_, 'a, '_> {
    fn other(&mut self, name: &str, reader: &mut json::Reader<'a>) -> Result<(), JsonProblem> {
        let on_a_path = self
            .paths
            .iter()
            .any(|(_, path)| claim_path::step(path, name).is_some());
        if !on_a_path {
            return reader.skip();
        }
        self.roles
            .read(self.paths.clone(), name, reader)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: f64 = 1_800_000_000.0;

    fn policy() -> Policy {
        Policy::new(PolicyOptions {
            issuers: vec!["https://as".into()],
            audiences: vec!["https://rs/mcp".into()],
            ..Default::default()
        })
        .expect("valid policy")
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base =
            json!({"iss": "https://as", "aud": "https://rs/mcp", "sub": "u", "exp": NOW + 300.0});
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        match base {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn bytes(claims: Map<String, Value>) -> Vec<u8> {
        serde_json::to_vec(&claims).expect("serializable")
    }

    fn code(extra: Value) -> &'static str {
        policy()
            .check_claims(bytes(claims(extra)), NOW)
            .expect_err("should fail")
            .code()
    }

    #[test]
    fn accepts_a_good_payload() {
        let v = policy()
            .check_claims(
                bytes(claims(
                    json!({"sub": "u", "scope": "a b", "scp": ["b", "c"], "azp": "cli",
                                    "iat": NOW, "jti": "j"}),
                )),
                NOW,
            )
            .expect("valid");
        assert_eq!(v.subject(), Some("u"));
        assert_eq!(v.scopes().collect::<Vec<_>>(), vec!["a", "b", "c"]);
        assert_eq!(v.client_id(), Some("cli"));
        assert_eq!(v.audience(), vec!["https://rs/mcp"]);
        assert_eq!(v.token_id(), Some("j"));
        assert_eq!(v.issuer(), "https://as");
        assert_eq!(v.expires_at(), Some(NOW as i64 + 300));
    }

    #[test]
    fn time_claims() {
        assert_eq!(code(json!({"exp": NOW - 61.0})), "expired");
        assert!(policy()
            .check_claims(bytes(claims(json!({"exp": NOW - 59.0}))), NOW)
            .is_ok());
        assert_eq!(code(json!({"nbf": NOW + 61.0})), "not_yet_valid");
        assert!(policy()
            .check_claims(bytes(claims(json!({"nbf": NOW + 59.0}))), NOW)
            .is_ok());
        assert_eq!(code(json!({"iat": NOW + 61.0})), "issued_in_future");
        for bad in [json!("1"), json!(true), json!(null), json!([1]), json!({})] {
            for name in ["exp", "nbf", "iat"] {
                assert_eq!(
                    code(json!({ name: bad.clone() })),
                    "invalid_claim",
                    "{name}={bad}"
                );
            }
        }
        let err = policy()
            .check_claims(bytes(claims(json!({"exp": NOW - 42.0 - 60.0}))), NOW)
            .expect_err("expired");
        assert_eq!(err.description(), "token expired 102 s ago");
    }

    #[test]
    fn required_claims() {
        let mut no_exp = claims(json!({}));
        no_exp.remove("exp");
        assert_eq!(
            policy().check_claims(bytes(no_exp), NOW).expect_err("exp"),
            TokenError::MissingClaim("exp".into())
        );
        let mut no_aud = claims(json!({}));
        no_aud.remove("aud");
        assert_eq!(
            policy()
                .check_claims(bytes(no_aud), NOW)
                .expect_err("aud")
                .code(),
            "missing_claim"
        );
    }

    #[test]
    fn null_is_a_value_not_an_absence() {
        for name in [
            "sub",
            "jti",
            "client_id",
            "azp",
            "scope",
            "scp",
            "iss",
            "aud",
            "exp",
            "nbf",
            "iat",
        ] {
            let err = policy()
                .check_claims(bytes(claims(json!({ name: null }))), NOW)
                .expect_err(name);
            assert_eq!(err.code(), "invalid_claim", "{name}");
            assert!(err.description().contains(&format!("'{name}'")), "{err}");
        }
        let tenant = Policy::new(PolicyOptions {
            issuers: vec!["https://as".into()],
            audiences: vec!["https://rs/mcp".into()],
            required_claims: vec!["exp".into(), "tenant".into()],
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(
            tenant
                .check_claims(bytes(claims(json!({"tenant": null}))), NOW)
                .expect_err("null"),
            TokenError::InvalidClaim("'tenant' is null".into())
        );
        assert_eq!(
            tenant
                .check_claims(bytes(claims(json!({}))), NOW)
                .expect_err("absent"),
            TokenError::MissingClaim("tenant".into())
        );
        assert!(tenant
            .check_claims(bytes(claims(json!({"tenant": "t"}))), NOW)
            .is_ok());
    }

    #[test]
    fn sub_is_required_by_default() {
        let mut no_sub = claims(json!({}));
        no_sub.remove("sub");
        assert_eq!(
            policy()
                .check_claims(bytes(no_sub.clone()), NOW)
                .expect_err("sub"),
            TokenError::MissingClaim("sub".into())
        );
        let optional = Policy::new(PolicyOptions {
            issuers: vec!["https://as".into()],
            audiences: vec!["https://rs/mcp".into()],
            required_claims: vec!["exp".into()],
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(
            optional
                .check_claims(bytes(no_sub), NOW)
                .expect("ok")
                .subject(),
            None
        );
    }

    #[test]
    fn issuer_and_audience() {
        assert_eq!(code(json!({"iss": "https://as/"})), "invalid_issuer");
        assert_eq!(code(json!({"iss": 3})), "invalid_claim");
        assert_eq!(code(json!({"aud": "https://other"})), "invalid_audience");
        assert_eq!(code(json!({"aud": []})), "invalid_audience");
        assert_eq!(code(json!({"aud": ["x", 1]})), "invalid_claim");
        assert!(policy()
            .check_claims(bytes(claims(json!({"aud": ["x", "https://rs/mcp"]}))), NOW)
            .is_ok());
    }

    #[test]
    fn scopes_and_types() {
        assert_eq!(code(json!({"scope": ["a"]})), "invalid_claim");
        assert_eq!(code(json!({"scp": [1]})), "invalid_claim");
        assert_eq!(code(json!({"sub": 1})), "invalid_claim");
        let strict = Policy::new(PolicyOptions {
            issuers: vec!["https://as".into()],
            audiences: vec!["https://rs/mcp".into()],
            required_scopes: vec!["a".into(), "z".into()],
            ..Default::default()
        })
        .expect("valid");
        let err = strict
            .check_claims(bytes(claims(json!({"scope": "a b"}))), NOW)
            .expect_err("scope");
        assert_eq!(
            err,
            TokenError::InsufficientScope {
                required: vec!["a".into(), "z".into()],
                missing: vec!["z".into()]
            }
        );
    }

    /// The test policy with `change` made to its options.
    fn policy_with(change: impl FnOnce(&mut PolicyOptions)) -> Policy {
        let mut options = PolicyOptions {
            issuers: vec!["https://as".into()],
            audiences: vec!["https://rs/mcp".into()],
            ..Default::default()
        };
        change(&mut options);
        Policy::new(options).expect("valid policy")
    }

    fn with_roles(paths: &[&str]) -> Policy {
        policy_with(|o| o.roles_claims = paths.iter().map(|p| (*p).to_owned()).collect())
    }

    fn roles_of(policy: &Policy, extra: Value) -> Result<Vec<String>, TokenError> {
        let v = policy.check_claims(bytes(claims(extra)), NOW)?;
        Ok(v.roles().map(str::to_owned).collect())
    }

    #[test]
    fn roles_are_read_from_the_configured_paths() {
        // The default reads `roles` (Entra ID's app roles).
        assert_eq!(
            roles_of(&policy(), json!({"roles": ["a", "b", "a"], "scope": "s"})),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            roles_of(&policy(), json!({"roles": "solo"})),
            Ok(vec!["solo".into()])
        );
        assert_eq!(roles_of(&policy(), json!({})), Ok(vec![]));
        let keycloak = with_roles(&[
            "realm_access.roles",
            "resource_access.mcp-server.roles",
            "resource_access.other.roles",
        ]);
        let token = json!({
            "realm_access": {"roles": ["user", "offline"]},
            "resource_access": {
                "mcp-server": {"roles": ["deployer", "user"]},
                "account": {"roles": ["manage-account"]},
                "other": {"roles": []},
            },
            "roles": ["not-read"],
        });
        let v = keycloak
            .check_claims(bytes(claims(token)), NOW)
            .expect("valid");
        assert_eq!(
            v.roles().collect::<Vec<_>>(),
            ["user", "offline", "deployer"]
        );
        // Scopes and roles are kept apart.
        assert!(v.scopes().next().is_none());
        let both = keycloak
            .check_claims(
                bytes(claims(
                    json!({"scope": "a b", "realm_access": {"roles": ["r"]}}),
                )),
                NOW,
            )
            .expect("valid");
        assert_eq!(both.scopes().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(both.roles().collect::<Vec<_>>(), ["r"]);
        // Namespaced claims are matched as written; escaped texts decoded.
        let auth0 = with_roles(&["https://example.com/roles", "cognito:groups"]);
        assert_eq!(
            roles_of(
                &auth0,
                json!({"https://example.com/roles": ["\u{e9}diteur", "x"], "cognito:groups": ["g"]})
            ),
            // In document order (serde_json writes members sorted by name).
            Ok(vec!["g".into(), "\u{e9}diteur".into(), "x".into()])
        );
        let escaped = br#"{"iss":"https://as","aud":"https://rs/mcp","sub":"u","exp":1800000300,"roles":["\u0061dmin"]}"#;
        let v = policy().check_claims(escaped.to_vec(), NOW).expect("valid");
        assert_eq!(v.roles().collect::<Vec<_>>(), ["admin"]);
    }

    #[test]
    fn a_roles_claim_of_another_type_is_an_invalid_claim() {
        let keycloak = with_roles(&["realm_access.roles"]);
        for bad in [
            json!({"roles": 1}),
            json!({"roles": null}),
            json!({"roles": ["a", 1]}),
            json!({"roles": {"a": true}}),
            json!({"roles": true}),
        ] {
            let err = roles_of(&policy(), bad.clone()).expect_err("invalid");
            assert_eq!(err.code(), "invalid_claim", "{bad}");
            assert!(
                err.description().contains("'roles' (a roles claim)"),
                "{err}"
            );
        }
        for bad in [
            json!({"realm_access": "admin"}),
            json!({"realm_access": null}),
            json!({"realm_access": ["roles"]}),
            json!({"realm_access": {"roles": [{"name": "admin"}]}}),
        ] {
            let err = roles_of(&keycloak, bad.clone()).expect_err("invalid");
            assert_eq!(err.code(), "invalid_claim", "{bad}");
        }
        // A path that leads nowhere is no roles, not an error.
        assert_eq!(roles_of(&keycloak, json!({"realm_access": {}})), Ok(vec![]));
        // The strict JSON rules hold inside the objects a path goes through.
        let duplicate = br#"{"iss":"https://as","aud":"https://rs/mcp","sub":"u","exp":1800000300,"realm_access":{"roles":["a"],"roles":["b"]}}"#;
        let err = keycloak
            .check_claims(duplicate.to_vec(), NOW)
            .expect_err("duplicate");
        assert_eq!(err.code(), "malformed");
        let off_path = br#"{"iss":"https://as","aud":"https://rs/mcp","sub":"u","exp":1800000300,"realm_access":{"x":1,"x":2}}"#;
        assert_eq!(
            keycloak
                .check_claims(off_path.to_vec(), NOW)
                .expect_err("dup")
                .code(),
            "malformed"
        );
    }

    #[test]
    fn a_required_claim_can_also_be_a_roles_claim() {
        let both = policy_with(|o| o.required_claims = vec!["exp".into(), "roles".into()]);
        assert_eq!(
            both.check_claims(bytes(claims(json!({}))), NOW)
                .expect_err("absent"),
            TokenError::MissingClaim("roles".into())
        );
        let v = both
            .check_claims(bytes(claims(json!({"roles": ["r"]}))), NOW)
            .expect("valid");
        assert_eq!(v.roles().collect::<Vec<_>>(), ["r"]);
    }

    #[test]
    fn roles_claims_are_checked() {
        let options = |paths: &[&str]| PolicyOptions {
            issuers: vec!["https://as".into()],
            audiences: vec!["https://rs".into()],
            roles_claims: paths.iter().map(|p| (*p).to_owned()).collect(),
            ..Default::default()
        };
        for (paths, needle) in [
            (&["a..b"][..], "empty segment"),
            (&[""][..], "is empty"),
            (&["scope"][..], "'scope'"),
            (&["scp"][..], "'scp'"),
            (&["aud.x"][..], "'aud'"),
        ] {
            let err = Policy::new(options(paths)).expect_err(needle);
            assert!(err.0.starts_with("roles_claims holds"), "{}", err.0);
            assert!(err.0.contains(needle), "{needle}: {}", err.0);
        }
        let many: Vec<String> = (0..17).map(|i| format!("r{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(Policy::new(options(&many)).is_err());
        assert!(Policy::new(options(&[])).is_ok());
        assert!(Policy::new(options(&["scopes", "audit.x"])).is_ok());
    }

    /// A JWT with `nonce` for an audience that is an application ID (a GUID) is an ID token;
    /// `nonce` for a URL audience, or a GUID that did not match, changes nothing.
    #[test]
    fn id_tokens_for_an_application_id_are_refused() {
        const APP: &str = "11111111-2222-3333-4444-55555555abcd";
        let both = Policy::new(PolicyOptions {
            issuers: vec!["https://as".into()],
            audiences: vec!["https://rs/mcp".into(), APP.into()],
            ..Default::default()
        })
        .expect("valid");
        let check = |extra: Value| both.check_claims(bytes(claims(extra)), NOW);
        let id_token = TokenError::InvalidType(WrongKind::IdToken);
        assert_eq!(
            check(json!({"aud": APP, "nonce": "n"})),
            Err(id_token.clone())
        );
        assert_eq!(
            check(json!({"aud": ["https://x", APP], "nonce": null})),
            Err(id_token.clone())
        );
        assert_eq!(
            check(json!({"aud": APP, "nonce": "n"}))
                .expect_err("id")
                .code(),
            "invalid_type"
        );
        assert!(check(json!({"aud": APP, "scp": "read"})).is_ok());
        assert!(check(json!({"aud": "https://rs/mcp", "nonce": "n"})).is_ok());
        // A GUID in `aud` that is not ours does not make the token an ID token for us.
        assert!(check(
            json!({"aud": ["https://rs/mcp", "99999999-2222-3333-4444-555555555555"], "nonce": "n"})
        )
        .is_ok());
        assert!(is_guid(APP) && is_guid(&APP.to_uppercase()));
        for not in [
            "api://app",
            "11111111222233334444555555555555",
            "{11111111-2222-3333-4444-555555555555}",
            "g1111111-2222-3333-4444-555555555555",
        ] {
            assert!(!is_guid(not), "{not}");
        }
    }

    fn introspected(extra: Value, require_audience: bool) -> Result<Verified, TokenError> {
        let mut response = claims(json!({"active": true}));
        if let Value::Object(e) = extra {
            for (name, value) in e {
                if value.is_null() {
                    response.remove(&name);
                } else {
                    response.insert(name, value);
                }
            }
        }
        policy()
            .check_introspection(&bytes(response), NOW, require_audience, "https://as")
            .map_err(|err| match err {
                IntrospectionFailure::Token(err) => err,
                IntrospectionFailure::Response(problem) => panic!("{problem:?}"),
            })
    }

    #[test]
    fn introspection_rules() {
        let p = policy();
        assert_eq!(p.introspection_issuer(None), Some("https://as"));
        assert_eq!(
            p.introspection_issuer(Some("https://as")),
            Some("https://as")
        );
        assert_eq!(p.introspection_issuer(Some("https://other")), None);
        let user = introspected(json!({"scope": "a b", "username": "ann"}), true).expect("ok");
        assert_eq!(user.scopes().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(user.username(), Some("ann"));
        // Only the JSON literal true is active.
        for active in [json!(false), json!("true"), json!(1), json!(null)] {
            let err = introspected(json!({ "active": active }), true).expect_err("inactive");
            assert_eq!(err.code(), "inactive_token", "{active}");
        }
        // iss and sub are optional (the issuer is then the one given); aud is required unless
        // the configuration says otherwise.
        let anonymous = introspected(json!({"iss": null, "sub": null}), true).expect("ok");
        assert_eq!(anonymous.issuer(), "https://as");
        let missing = introspected(json!({"aud": null}), true).expect_err("no aud");
        assert_eq!(missing, TokenError::MissingClaim("aud".into()));
        assert!(introspected(json!({"aud": null}), false).is_ok());
        let code = |extra: Value| introspected(extra, true).expect_err("refused").code();
        assert_eq!(code(json!({"iss": "https://other"})), "invalid_issuer");
        assert_eq!(code(json!({"aud": ["https://other"]})), "invalid_audience");
        assert_eq!(code(json!({"exp": NOW - 61.0})), "expired");
        assert_eq!(code(json!({"nbf": NOW + 61.0})), "not_yet_valid");
        assert_eq!(code(json!({"iat": NOW + 61.0})), "issued_in_future");
        assert_eq!(code(json!({"exp": "soon"})), "invalid_claim");
        assert_eq!(code(json!({"token_use": "refresh_token"})), "invalid_claim");
        assert_eq!(code(json!({"token_type": 1})), "invalid_claim");
        // A refresh token named as such in `token_type` or Keycloak's `typ`.
        assert_eq!(
            code(json!({"token_type": "refresh_token"})),
            "invalid_claim"
        );
        assert_eq!(
            code(json!({"token_type": "Refresh_Token"})),
            "invalid_claim"
        );
        assert_eq!(code(json!({"typ": "Refresh"})), "invalid_claim");
        assert_eq!(code(json!({"typ": "Offline"})), "invalid_claim");
        assert!(introspected(json!({"token_type": "Bearer", "typ": "Bearer"}), true).is_ok());
        assert_eq!(code(json!({"username": 7})), "invalid_claim");
        assert_eq!(code(json!({"scope": ["a"]})), "invalid_claim");
        // Within the leeway, as for a JWT.
        assert!(introspected(json!({"exp": NOW - 59.0}), true).is_ok());
        // Not one strict JSON object: the endpoint's fault, not a verdict on the token.
        for text in [&b"[1]"[..], b"{\"active\":true,\"active\":true}", b"nope"] {
            let err = policy().check_introspection(text, NOW, true, "https://as");
            assert!(matches!(err, Err(IntrospectionFailure::Response(_))));
        }
    }

    #[test]
    fn configuration_is_checked() {
        let base = || PolicyOptions {
            issuers: vec!["https://as".into()],
            audiences: vec!["https://rs".into()],
            ..Default::default()
        };
        let cases: Vec<(PolicyOptions, &str)> = vec![
            (
                PolicyOptions {
                    issuers: vec![],
                    ..base()
                },
                "issuer",
            ),
            (
                PolicyOptions {
                    audiences: vec!["".into()],
                    ..base()
                },
                "audience",
            ),
            (
                PolicyOptions {
                    algorithms: vec![],
                    ..base()
                },
                "algorithms is empty",
            ),
            (
                PolicyOptions {
                    algorithms: vec!["none".into()],
                    ..base()
                },
                "never accepted",
            ),
            (
                PolicyOptions {
                    algorithms: vec!["HS256".into()],
                    ..base()
                },
                "never accepted",
            ),
            (
                PolicyOptions {
                    algorithms: vec!["RS999".into()],
                    ..base()
                },
                "not supported",
            ),
            (
                PolicyOptions {
                    leeway: -1,
                    ..base()
                },
                "leeway",
            ),
            (
                PolicyOptions {
                    leeway: 86_400,
                    ..base()
                },
                "leeway",
            ),
            (
                PolicyOptions {
                    max_token_bytes: 10,
                    ..base()
                },
                "max_token_bytes",
            ),
            (
                PolicyOptions {
                    required_scopes: vec!["a b".into()],
                    ..base()
                },
                "scope token",
            ),
            (
                PolicyOptions {
                    accepted_types: Some(vec![]),
                    ..base()
                },
                "accepted_types",
            ),
        ];
        for (options, needle) in cases {
            let err = Policy::new(options).expect_err(needle);
            assert!(err.0.contains(needle), "{needle}: {}", err.0);
        }
    }
}

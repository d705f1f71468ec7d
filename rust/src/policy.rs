//! A validation policy and the claim rules (RFC 7519 section 4.1, RFC 9068, RFC 8693 `scope`).

use crate::admission::{unverified_issuer, KeyMissed, KeyRing, Unsettled};
use crate::algorithm::{Algorithm, AlgorithmName, AlgorithmSet};
use crate::base64url;
use crate::error::{ConfigError, TokenError, WrongKind};
use crate::json::{self, JsonProblem, Shape as Claim};
use crate::keyset::KeySet;
use crate::scopes::ScopeRules;
use crate::token::{decode_segment, normalize_media_type, parse_object, CompactJws, Header};
use serde_json::{Map, Value};

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
    /// Where `check_claims` finds each required claim, and how many it does not read itself.
    required_slots: Vec<Required>,
    other_required: usize,
}

/// A verified token: its payload, the claims the validator read out of it (their types
/// checked by `check_claims`), and the whole claims set on request.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The decoded payload, strict JSON (so valid UTF-8 throughout).
    payload: String,
    /// Texts that were escaped in the payload, decoded (rare: most claims are plain).
    decoded: Vec<Box<str>>,
    issuer: Span,
    subject: Option<Span>,
    client_id: Option<Span>,
    token_id: Option<Span>,
    /// `username` (RFC 7662; a JWT may carry it too).
    username: Option<Span>,
    /// `aud` values, then the granted scopes (`scopes_from` on).
    texts: Spans,
    scopes_from: usize,
    pub expires_at: Option<i64>,
    pub issued_at: Option<i64>,
    /// `exp` and `nbf` as read, for re-checking a cached result against a later clock.
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    /// The digest of the key that verified the signature (all zeros before verification).
    pub key_digest: [u8; 32],
}

/// Where a claim's text is: a range of the payload, or an entry of `Verified::decoded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    Payload(u32, u32),
    Decoded(u32),
}

/// The spans of a verified token's texts: a few in place (most tokens), else on the heap.
#[derive(Debug, Clone, PartialEq)]
enum Spans {
    Inline([Span; 6], u8),
    Heap(Vec<Span>),
}

impl Spans {
    fn with_capacity(capacity: usize) -> Self {
        if capacity <= 6 {
            Spans::Inline([Span::Decoded(0); 6], 0)
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

impl Verified {
    fn text(&self, span: Span) -> &str {
        match span {
            Span::Payload(start, end) => self
                .payload
                .get(start as usize..end as usize)
                .unwrap_or_default(),
            Span::Decoded(index) => self.decoded.get(index as usize).map_or("", |t| t),
        }
    }

    pub fn subject(&self) -> Option<&str> {
        self.subject.map(|s| self.text(s))
    }

    pub fn issuer(&self) -> &str {
        self.text(self.issuer)
    }

    /// `client_id`, or else `azp`.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.map(|s| self.text(s))
    }

    pub fn token_id(&self) -> Option<&str> {
        self.token_id.map(|s| self.text(s))
    }

    pub fn username(&self) -> Option<&str> {
        self.username.map(|s| self.text(s))
    }

    /// Every `aud` value (a single string counts as a list of one).
    pub fn audience(&self) -> Vec<&str> {
        self.texts.as_slice()[..self.scopes_from]
            .iter()
            .map(|s| self.text(*s))
            .collect()
    }

    /// The granted scopes: `scope`, then `scp`, without repeats, in order of appearance.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.texts.as_slice()[self.scopes_from..]
            .iter()
            .map(|s| self.text(*s))
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
        })
    }

    /// The lifetime rules alone (`exp`, `nbf`), for a result verified earlier.
    pub fn check_lifetime(
        &self,
        exp: Option<f64>,
        nbf: Option<f64>,
        now: f64,
    ) -> Result<(), TokenError> {
        let leeway = self.leeway as f64;
        if let Some(exp) = exp {
            if now >= exp + leeway {
                return Err(TokenError::Expired {
                    seconds_ago: (now - exp).floor() as i64,
                });
            }
        }
        if let Some(nbf) = nbf {
            if now + leeway < nbf {
                return Err(TokenError::NotYetValid {
                    seconds_until: (nbf - now).ceil() as i64,
                });
            }
        }
        Ok(())
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
        let jws = CompactJws::split(token, self.max_token_bytes)?;
        // Every segment is decoded (and so checked) before verification, the payload read only
        // once the signature holds; errors are reported in that order.
        Header::with(jws.header, self.algorithms, |header| {
            let header = header?;
            if let Some(accepted) = &self.accepted_types {
                let typ = header.typ.as_deref().map(normalize_media_type);
                if !typ.is_some_and(|t| accepted.contains(&t)) {
                    return Err(TokenError::InvalidType(WrongKind::Typ).into());
                }
            }
            let payload = decode_segment(jws.payload, "payload")?;
            // On the stack when it fits (RSA keys up to 3072 bits, every EC and EdDSA key).
            let mut stack = [0u8; 392];
            let mut heap = Vec::new();
            let bound = base64url::decoded_len_bound(jws.signature);
            let buffer: &mut [u8] = if bound <= stack.len() {
                &mut stack
            } else {
                heap.resize(bound, 0);
                &mut heap
            };
            let signature = base64url::decode_to(jws.signature, buffer)
                .ok_or_else(|| not_base64("signature"))?;
            let (keys, routed) = match ring {
                KeyRing::Shared(keys) => (*keys, None),
                KeyRing::ByIssuer(_) => {
                    let issuer = self.route(&payload)?;
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
                .verify(
                    header.kid.as_deref(),
                    header.alg,
                    jws.signing_input.as_bytes(),
                    signature,
                )
                .map_err(|error| Unsettled::Refused {
                    error,
                    missed: Some(KeyMissed {
                        issuer: routed.map(str::to_owned),
                        kid: header.kid.as_deref().map(str::to_owned),
                    }),
                })?;
            let mut verified = self.check_claims(payload, now)?;
            verified.key_digest = key.digest;
            Ok(verified)
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
        Claims::new(&self.required_claims, self.other_required)
    }

    /// The claim rules, on a decoded payload whose signature has been verified. The payload is
    /// read in one pass that checks all of it under the strict JSON rules and keeps only the
    /// claims the rules need; the rules then apply in a fixed order.
    pub fn check_claims(&self, payload: Vec<u8>, now: f64) -> Result<Verified, TokenError> {
        self.check_document(payload, now, None)
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
        // The members only this kind of document has, read from its tree; the shared rules then
        // read the same text in one pass, as for a JWT payload.
        let members = json::parse_object(response).map_err(IntrospectionFailure::Response)?;
        if members.get("active") != Some(&Value::Bool(true)) {
            return Err(TokenError::Inactive.into());
        }
        match members.get("token_use") {
            None => {}
            Some(Value::String(used)) if used == "access_token" => {}
            Some(_) => return Err(invalid("'token_use' must be 'access_token'").into()),
        }
        // A refresh token said so another way: `token_type` (some servers name the kind of
        // token there) or Keycloak's `typ` ("Refresh"; "Bearer" for an access token).
        match members.get("token_type") {
            None => {}
            Some(Value::String(kind)) if kind.eq_ignore_ascii_case("refresh_token") => {
                return Err(invalid("the token is a refresh token, not an access token").into())
            }
            Some(Value::String(_)) => {}
            Some(_) => return Err(invalid("'token_type' must be a string").into()),
        }
        if let Some(Value::String(typ)) = members.get("typ") {
            if typ.eq_ignore_ascii_case("refresh") || typ.eq_ignore_ascii_case("offline") {
                return Err(invalid("the token is a refresh token, not an access token").into());
            }
        }
        let introspected = Introspected {
            require_audience,
            issuer,
        };
        Ok(self.check_document(response.to_vec(), now, Some(introspected))?)
    }

    fn check_document(
        &self,
        payload: Vec<u8>,
        now: f64,
        introspected: Option<Introspected<'_>>,
    ) -> Result<Verified, TokenError> {
        let payload = match String::from_utf8(payload) {
            Ok(text) => text,
            Err(not_text) => {
                // Not UTF-8, so not JSON: the reader names the first problem, as for any text.
                let bytes = not_text.into_bytes();
                let read = json::read_object(&bytes, &mut self.claims_reader());
                return Err(malformed_json(
                    "payload",
                    read.err().unwrap_or(JsonProblem::Invalid),
                ));
            }
        };
        let mut found = self.claims_reader();
        json::read_text(&payload, &mut found)
            .map_err(|problem| malformed_json("payload", problem))?;
        let leeway = self.leeway as f64;
        let exp = numeric_date(found.get(EXP), "exp")?;
        let nbf = numeric_date(found.get(NBF), "nbf")?;
        let iat = numeric_date(found.get(IAT), "iat")?;
        self.check_lifetime(exp, nbf, now)?;
        if let Some(iat) = iat {
            if iat > now + leeway {
                return Err(TokenError::IssuedInFuture {
                    seconds_ahead: (iat - now).ceil() as i64,
                });
            }
        }
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
        for (name, required) in required {
            match found.presence(required) {
                Presence::Absent => return Err(TokenError::MissingClaim(name.to_owned())),
                Presence::Null => {
                    return Err(TokenError::InvalidClaim(format!("'{name}' is null").into()))
                }
                Presence::Value => {}
            }
        }
        let issuer = match (found.get(ISS), &introspected) {
            (Claim::Text(iss), _) if self.issuers.iter().any(|i| i == iss) => iss.as_ref(),
            (Claim::Text(_), _) => return Err(TokenError::InvalidIssuer),
            (Claim::Absent, Some(rules)) => rules.issuer,
            _ => return Err(invalid("'iss' must be a string")),
        };
        let ours = |aud: &str| self.audiences.iter().any(|a| a == aud);
        let audience_ok = match (found.get(AUD), &introspected) {
            (Claim::Text(aud), _) => ours(aud),
            (Claim::Texts(items), _) => items.iter().any(|aud| ours(aud)),
            (Claim::Absent, Some(_)) => true, // allowed only when not required (checked above)
            _ => return Err(invalid("'aud' must be a string or an array of strings")),
        };
        if !audience_ok {
            return Err(TokenError::InvalidAudience);
        }
        // A JWT with `nonce` for an application ID is an OpenID Connect ID token: an identity
        // provider that names applications by a GUID (Entra ID) issues those to the same `aud`,
        // with the same `iss` and keys, as the access tokens for the application.
        if introspected.is_none() && !matches!(found.get(NONCE), Claim::Absent) {
            let application = |aud: &str| is_guid(aud) && ours(aud);
            let to_application = match found.get(AUD) {
                Claim::Text(aud) => application(aud),
                Claim::Texts(items) => items.iter().any(|aud| application(aud)),
                _ => false,
            };
            if to_application {
                return Err(TokenError::InvalidType(WrongKind::IdToken));
            }
        }
        for (claim, name) in [
            (found.get(SUB), "sub"),
            (found.get(JTI), "jti"),
            (found.get(CLIENT_ID), "client_id"),
            (found.get(AZP), "azp"),
            (found.get(USERNAME), "username"),
        ] {
            if !matches!(claim, Claim::Absent | Claim::Text(_)) {
                return Err(TokenError::InvalidClaim(
                    format!("'{name}' must be a string").into(),
                ));
            }
        }
        // Granted scopes: `scope` (RFC 8693/9068, space-separated) and `scp` (a string or a
        // list, as Azure AD and Okta issue it), without repeats, in order of appearance.
        let mut scopes = Scopes::default();
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
        self.required_scopes.check(scopes.iter())?;
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
                Some((Ok(from), Ok(to))) => Span::Payload(from, to),
                _ => {
                    decoded.push(text.into());
                    Span::Decoded(u32::try_from(decoded.len() - 1).unwrap_or(u32::MAX))
                }
            }
        };
        let audience_len = match found.get(AUD) {
            Claim::Texts(items) => items.len(),
            _ => 1,
        };
        let mut texts = Spans::with_capacity(audience_len + scopes.len());
        match found.get(AUD) {
            Claim::Texts(items) => items.iter().for_each(|aud| texts.push(span(aud))),
            Claim::Text(aud) => texts.push(span(aud)),
            _ => {}
        }
        scopes.iter().for_each(|scope| texts.push(span(scope)));
        let issuer = span(issuer);
        let text_of = |claim: &Claim<'_>, span: &mut dyn FnMut(&str) -> Span| match claim {
            Claim::Text(text) => Some(span(text)),
            _ => None,
        };
        let subject = text_of(found.get(SUB), &mut span);
        let client_id = match found.get(CLIENT_ID) {
            Claim::Text(_) => text_of(found.get(CLIENT_ID), &mut span),
            _ => text_of(found.get(AZP), &mut span),
        };
        let token_id = text_of(found.get(JTI), &mut span);
        let username = text_of(found.get(USERNAME), &mut span);
        drop(found);
        Ok(Verified {
            payload,
            decoded,
            issuer,
            subject,
            client_id,
            token_id,
            username,
            scopes_from: audience_len.min(texts.as_slice().len()),
            texts,
            expires_at: exp.map(seconds),
            issued_at: iat.map(seconds),
            exp,
            nbf,
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
}

impl<'a, 'p> Claims<'a, 'p> {
    fn new(required: &'p [String], others: usize) -> Self {
        Self {
            slots: Default::default(),
            required,
            others: vec![Presence::Absent; others],
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
        if self.others.is_empty() {
            return reader.skip();
        }
        // A required claim this validator does not read: only whether it is null matters.
        let found = match reader.shape()? {
            Claim::Null => Presence::Null,
            _ => Presence::Value,
        };
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
        assert_eq!(v.expires_at, Some(NOW as i64 + 300));
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

//! A validation policy and the claim rules (RFC 7519 section 4.1, RFC 9068, RFC 8693 `scope`).

use crate::algorithm::{Algorithm, AlgorithmName, AlgorithmSet};
use crate::error::{ConfigError, TokenError};
use crate::keyset::KeySet;
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
    pub required_scopes: Vec<String>,
    /// Normalized with [`normalize_media_type`].
    pub accepted_types: Option<Vec<String>>,
    pub max_token_bytes: usize,
}

/// A verified token: its claims, whose types `check_claims` has checked, and typed accessors.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub claims: Map<String, Value>,
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
    pub issued_at: Option<i64>,
    /// `exp` and `nbf` as read, for re-checking a cached result against a later clock.
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    /// The digest of the key that verified the signature (all zeros before verification).
    pub key_digest: [u8; 32],
}

impl Verified {
    fn text(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn subject(&self) -> Option<&str> {
        self.text("sub")
    }

    pub fn issuer(&self) -> &str {
        self.text("iss").unwrap_or_default()
    }

    pub fn client_id(&self) -> Option<&str> {
        self.text("client_id").or_else(|| self.text("azp"))
    }

    pub fn token_id(&self) -> Option<&str> {
        self.text("jti")
    }

    /// Every `aud` value (a single string counts as a list of one).
    pub fn audience(&self) -> Vec<&str> {
        match self.claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// A scope token as RFC 6749 section 3.3 defines it; it also keeps header values injection-free.
pub fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
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
        if let Some(bad) = options.required_scopes.iter().find(|s| !is_scope_token(s)) {
            return err(format!(
                "required_scopes holds {bad:?}, which is not a scope token (RFC 6749 section \
                 3.3: printable ASCII without spaces, quotes or backslashes), e.g. \"mcp:tools\""
            ));
        }
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
        Ok(Self {
            issuers: options.issuers,
            audiences: options.audiences,
            algorithms,
            leeway: options.leeway,
            required_claims,
            required_scopes: options.required_scopes,
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
        let jws = CompactJws::split(token, self.max_token_bytes)?;
        let header = Header::parse(jws.header, self.algorithms)?;
        if let Some(accepted) = &self.accepted_types {
            let typ = header.typ.as_deref().map(normalize_media_type);
            if !typ.is_some_and(|t| accepted.contains(&t)) {
                return Err(TokenError::InvalidType);
            }
        }
        // Decoded (and so checked) before verification, parsed only once the signature holds.
        let payload = decode_segment(jws.payload, "payload")?;
        let signature = decode_segment(jws.signature, "signature")?;
        let key = keys.verify(
            header.kid.as_deref(),
            header.alg,
            jws.signing_input.as_bytes(),
            &signature,
        )?;
        let claims = parse_object(&payload, "payload")?;
        let mut verified = self.check_claims(claims, now)?;
        verified.key_digest = key.digest;
        Ok(verified)
    }

    /// The claim rules, on a payload whose signature has been verified.
    pub fn check_claims(
        &self,
        claims: Map<String, Value>,
        now: f64,
    ) -> Result<Verified, TokenError> {
        let times = self.check_times(&claims, now)?;
        // The issuer and audience are always checked, so `iss` and `aud` are always required.
        // JSON null is a value, not an absence: a required claim given as null is invalid.
        for name in ["iss", "aud"]
            .into_iter()
            .chain(self.required_claims.iter().map(String::as_str))
        {
            match claims.get(name) {
                None => return Err(TokenError::MissingClaim(name.to_owned())),
                Some(Value::Null) => {
                    return Err(TokenError::InvalidClaim(format!("'{name}' is null").into()))
                }
                Some(_) => {}
            }
        }
        self.check_issuer(&claims)?;
        self.check_audience(&claims)?;
        self.finish(claims, times)
    }

    /// The rules for an RFC 7662 introspection response, which the authorization server sent
    /// over an authenticated channel in place of a signed payload: only `"active": true`
    /// (exactly) is active; a `token_use` other than `access_token` (a refresh token) is
    /// refused; `exp`, `nbf` and `iat` follow the JWT rules and leeway; `iss`, when present,
    /// must be a configured issuer; `aud` must name this resource, and may be absent only when
    /// `require_audience` is false. `required_claims` are a JWT rule and do not apply.
    pub fn check_introspection(
        &self,
        claims: Map<String, Value>,
        now: f64,
        require_audience: bool,
    ) -> Result<Verified, TokenError> {
        if claims.get("active") != Some(&Value::Bool(true)) {
            return Err(TokenError::Inactive);
        }
        match claims.get("token_use") {
            None => {}
            Some(Value::String(used)) if used == "access_token" => {}
            Some(_) => return Err(invalid("'token_use' must be 'access_token'")),
        }
        let times = self.check_times(&claims, now)?;
        if claims.contains_key("iss") {
            self.check_issuer(&claims)?;
        }
        if claims.contains_key("aud") {
            self.check_audience(&claims)?;
        } else if require_audience {
            return Err(TokenError::MissingClaim("aud".into()));
        }
        string_claim(&claims, "username")?;
        string_claim(&claims, "token_type")?;
        self.finish(claims, times)
    }

    /// `exp`, `nbf` and `iat`: each absent or a number, checked against `now` with the leeway.
    fn check_times(&self, claims: &Map<String, Value>, now: f64) -> Result<Times, TokenError> {
        let exp = numeric_date(claims, "exp")?;
        let nbf = numeric_date(claims, "nbf")?;
        let iat = numeric_date(claims, "iat")?;
        self.check_lifetime(exp, nbf, now)?;
        if let Some(iat) = iat {
            if iat > now + self.leeway as f64 {
                return Err(TokenError::IssuedInFuture {
                    seconds_ahead: (iat - now).ceil() as i64,
                });
            }
        }
        Ok(Times { exp, nbf, iat })
    }

    fn check_issuer(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        match claims.get("iss") {
            Some(Value::String(iss)) if self.issuers.iter().any(|i| i == iss) => Ok(()),
            Some(Value::String(_)) => Err(TokenError::InvalidIssuer),
            _ => Err(invalid("'iss' must be a string")),
        }
    }

    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        let ours = |aud: &str| self.audiences.iter().any(|a| a == aud);
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => ours(aud),
            Some(Value::Array(items)) => {
                let mut found = false;
                for item in items {
                    let aud = item
                        .as_str()
                        .ok_or_else(|| invalid("'aud' must be a string or an array of strings"))?;
                    found |= ours(aud);
                }
                found
            }
            _ => return Err(invalid("'aud' must be a string or an array of strings")),
        };
        if audience_ok {
            Ok(())
        } else {
            Err(TokenError::InvalidAudience)
        }
    }

    /// The string claims, the scopes and `required_scopes`: the last rules of both paths.
    fn finish(&self, claims: Map<String, Value>, times: Times) -> Result<Verified, TokenError> {
        for name in ["sub", "jti", "client_id", "azp"] {
            string_claim(&claims, name)?;
        }
        let scopes = scopes(&claims)?;
        let missing: Vec<String> = self
            .required_scopes
            .iter()
            .filter(|needed| !scopes.contains(needed))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(TokenError::InsufficientScope {
                required: self.required_scopes.clone(),
                missing,
            });
        }
        Ok(Verified {
            scopes,
            expires_at: times.exp.map(seconds),
            issued_at: times.iat.map(seconds),
            exp: times.exp,
            nbf: times.nbf,
            key_digest: [0; 32],
            claims,
        })
    }
}

/// The time claims as read (each checked already).
struct Times {
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
}

fn invalid(why: &'static str) -> TokenError {
    TokenError::InvalidClaim(why.into())
}

fn seconds(value: f64) -> i64 {
    // Saturating: an absurd but finite NumericDate must not wrap around.
    value.floor() as i64
}

/// A NumericDate claim: absent, or a JSON number. A string, bool or null is invalid.
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

/// A claim that is absent or a string; anything else, null included, is invalid.
fn string_claim(claims: &Map<String, Value>, name: &'static str) -> Result<(), TokenError> {
    match claims.get(name) {
        None | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(TokenError::InvalidClaim(
            format!("'{name}' must be a string").into(),
        )),
    }
}

/// Granted scopes: `scope` (RFC 8693/9068, space-separated) and `scp` (a string or a list, as
/// Azure AD and Okta issue it), without duplicates, in order of appearance.
fn scopes(claims: &Map<String, Value>) -> Result<Vec<String>, TokenError> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |scope: &str| {
        if !scope.is_empty() && !out.iter().any(|s| s == scope) {
            out.push(scope.to_owned());
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
    Ok(out)
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

    fn code(extra: Value) -> &'static str {
        policy()
            .check_claims(claims(extra), NOW)
            .expect_err("should fail")
            .code()
    }

    #[test]
    fn accepts_a_good_payload() {
        let v = policy()
            .check_claims(
                claims(
                    json!({"sub": "u", "scope": "a b", "scp": ["b", "c"], "azp": "cli",
                              "iat": NOW, "jti": "j"}),
                ),
                NOW,
            )
            .expect("valid");
        assert_eq!(v.subject(), Some("u"));
        assert_eq!(v.scopes, vec!["a", "b", "c"]);
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
            .check_claims(claims(json!({"exp": NOW - 59.0})), NOW)
            .is_ok());
        assert_eq!(code(json!({"nbf": NOW + 61.0})), "not_yet_valid");
        assert!(policy()
            .check_claims(claims(json!({"nbf": NOW + 59.0})), NOW)
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
            .check_claims(claims(json!({"exp": NOW - 42.0 - 60.0})), NOW)
            .expect_err("expired");
        assert_eq!(err.description(), "token expired 102 s ago");
    }

    #[test]
    fn required_claims() {
        let mut no_exp = claims(json!({}));
        no_exp.remove("exp");
        assert_eq!(
            policy().check_claims(no_exp, NOW).expect_err("exp"),
            TokenError::MissingClaim("exp".into())
        );
        let mut no_aud = claims(json!({}));
        no_aud.remove("aud");
        assert_eq!(
            policy().check_claims(no_aud, NOW).expect_err("aud").code(),
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
                .check_claims(claims(json!({ name: null })), NOW)
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
                .check_claims(claims(json!({"tenant": null})), NOW)
                .expect_err("null"),
            TokenError::InvalidClaim("'tenant' is null".into())
        );
        assert_eq!(
            tenant
                .check_claims(claims(json!({})), NOW)
                .expect_err("absent"),
            TokenError::MissingClaim("tenant".into())
        );
        assert!(tenant
            .check_claims(claims(json!({"tenant": "t"})), NOW)
            .is_ok());
    }

    #[test]
    fn sub_is_required_by_default() {
        let mut no_sub = claims(json!({}));
        no_sub.remove("sub");
        assert_eq!(
            policy().check_claims(no_sub.clone(), NOW).expect_err("sub"),
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
            optional.check_claims(no_sub, NOW).expect("ok").subject(),
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
            .check_claims(claims(json!({"aud": ["x", "https://rs/mcp"]})), NOW)
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
            .check_claims(claims(json!({"scope": "a b"})), NOW)
            .expect_err("scope");
        assert_eq!(
            err,
            TokenError::InsufficientScope {
                required: vec!["a".into(), "z".into()],
                missing: vec!["z".into()]
            }
        );
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
        policy().check_introspection(response, NOW, require_audience)
    }

    #[test]
    fn introspection_rules() {
        let user = introspected(json!({"scope": "a b", "username": "ann"}), true).expect("ok");
        assert_eq!(user.scopes, vec!["a", "b"]);
        // Only the JSON literal true is active.
        for active in [json!(false), json!("true"), json!(1), json!(null)] {
            let err = introspected(json!({ "active": active }), true).expect_err("inactive");
            assert_eq!(err.code(), "inactive_token", "{active}");
        }
        // iss and sub are optional; aud is required unless the configuration says otherwise.
        assert!(introspected(json!({"iss": null, "sub": null}), true).is_ok());
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
        assert_eq!(code(json!({"username": 7})), "invalid_claim");
        assert_eq!(code(json!({"scope": ["a"]})), "invalid_claim");
        // Within the leeway, as for a JWT.
        assert!(introspected(json!({"exp": NOW - 59.0}), true).is_ok());
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

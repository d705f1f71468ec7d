//! What a validation checked, on request: each rule records its outcome where it is decided,
//! through the [`Recorder`] the validation is given. The request path passes [`Silent`], whose
//! `KEEPS` is false, so every recording (and the formatting of its words) compiles away; a
//! diagnostic (`TokenValidator.trace`, which `mcp-oauth2 inspect` prints) passes a [`Trace`].
//! A failure is worded by the error itself (`TokenError::description`): the trace says what a
//! client is told, and cannot say anything else.

use crate::error::TokenError;

/// A check the validator makes. [`Check::TOKEN`] and [`Check::introspection`] list them in the
/// order the validator makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The token's size against `max_token_bytes`.
    Size,
    /// JWT or introspection, by `token_format` and the token's shape.
    Format,
    /// Three non-empty dot-separated segments (and not a JWE).
    Segments,
    /// The header: base64url, one strict JSON object.
    Header,
    /// The header's `alg`: supported and allowed.
    Alg,
    /// No `crit`, `b64`, `zip` or `enc`; `kid` and `typ` are strings.
    Extensions,
    /// The header's `typ` against `accepted_types`.
    Typ,
    /// The payload and the signature are base64url.
    Encoding,
    /// With keys per issuer: the unverified `iss` chooses them.
    Route,
    /// A key of the set is selected (by `kid`, else the one that fits the algorithm).
    Key,
    /// The signature verifies with that key.
    Signature,
    /// An introspection answer says `"active": true`.
    Active,
    /// An introspection answer's `token_use` is `access_token`, when present.
    TokenUse,
    /// An introspection answer's `token_type` (or Keycloak's `typ`) names no refresh token.
    TokenType,
    /// The payload (or answer) is one strict JSON object.
    Payload,
    /// `exp`, `nbf` and `iat` are numbers where present.
    Dates,
    Exp,
    Nbf,
    Iat,
    /// The required claims are present and not null.
    Required,
    Iss,
    Aud,
    /// Not an OpenID Connect ID token (`nonce` for an application ID audience).
    IdToken,
    /// `sub`, `jti`, `client_id`, `azp`, `username` are strings where present.
    Types,
    /// `scope` and `scp` are well formed, and hold the validator's `required_scopes`.
    Scopes,
    /// The `roles_claims` paths hold strings or lists of strings where present.
    Roles,
    /// The caller's scope rules (`ScopeRules`): implications, then the scopes every request
    /// needs.
    ScopeRules,
}

impl Check {
    /// A JWT's checks, in order (`TokenValidator.trace`).
    pub const TOKEN: [Check; 24] = [
        Check::Size,
        Check::Format,
        Check::Segments,
        Check::Header,
        Check::Alg,
        Check::Extensions,
        Check::Typ,
        Check::Encoding,
        Check::Route,
        Check::Key,
        Check::Signature,
        Check::Payload,
        Check::Dates,
        Check::Exp,
        Check::Nbf,
        Check::Iat,
        Check::Required,
        Check::Iss,
        Check::Aud,
        Check::IdToken,
        Check::Types,
        Check::Scopes,
        Check::Roles,
        Check::ScopeRules,
    ];

    /// An introspection answer's checks, in order (`TokenValidator.trace_introspection`): its
    /// own, then a JWT payload's (from `payload` to `scopes`), then `scope_rules` when the
    /// caller gives scope rules.
    pub fn introspection(scope_rules: bool) -> Vec<Check> {
        let payload = Check::TOKEN.iter().position(|c| *c == Check::Payload);
        let shared = &Check::TOKEN[payload.unwrap_or(0)..Check::TOKEN.len() - 1];
        let mut plan = vec![Check::Active, Check::TokenUse, Check::TokenType];
        plan.extend_from_slice(shared);
        if scope_rules {
            plan.push(Check::ScopeRules);
        }
        plan
    }

    pub fn name(self) -> &'static str {
        match self {
            Check::Size => "size",
            Check::Format => "format",
            Check::Segments => "segments",
            Check::Header => "header",
            Check::Alg => "alg",
            Check::Extensions => "extensions",
            Check::Typ => "typ",
            Check::Encoding => "encoding",
            Check::Route => "route",
            Check::Key => "key",
            Check::Signature => "signature",
            Check::Active => "active",
            Check::TokenUse => "token_use",
            Check::TokenType => "token_type",
            Check::Payload => "payload",
            Check::Dates => "dates",
            Check::Exp => "exp",
            Check::Nbf => "nbf",
            Check::Iat => "iat",
            Check::Required => "required",
            Check::Iss => "iss",
            Check::Aud => "aud",
            Check::IdToken => "id_token",
            Check::Types => "types",
            Check::Scopes => "scopes",
            Check::Roles => "roles",
            Check::ScopeRules => "scope_rules",
        }
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// Made, with nothing to check (an absent optional claim, a setting that is not set).
    Skip,
    /// Never made: an earlier check settled the token.
    NotReached,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::NotReached => "not_reached",
        }
    }
}

/// One check's outcome, in words: what passed, why it was skipped, or the error's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub check: Check,
    pub status: Status,
    pub detail: String,
}

/// Where the rules record their outcomes. Details are closures, called only when `KEEPS`.
pub trait Recorder {
    /// Whether anything is kept; when false, every method below is empty.
    const KEEPS: bool;

    fn keep(&mut self, step: Step);

    #[inline(always)]
    fn pass(&mut self, check: Check, detail: impl FnOnce() -> String) {
        if Self::KEEPS {
            self.keep(Step {
                check,
                status: Status::Pass,
                detail: detail(),
            });
        }
    }

    #[inline(always)]
    fn skip(&mut self, check: Check, detail: impl FnOnce() -> String) {
        if Self::KEEPS {
            self.keep(Step {
                check,
                status: Status::Skip,
                detail: detail(),
            });
        }
    }

    #[inline(always)]
    fn fail(&mut self, check: Check, error: &TokenError) {
        if Self::KEEPS {
            self.keep(Step {
                check,
                status: Status::Fail,
                detail: error.description(),
            });
        }
    }

    /// Records `result` under `check` (its error's words, or `passed`), and hands it back.
    #[inline(always)]
    fn outcome<T>(
        &mut self,
        check: Check,
        result: Result<T, TokenError>,
        passed: impl FnOnce(&T) -> String,
    ) -> Result<T, TokenError> {
        if Self::KEEPS {
            match &result {
                Ok(value) => self.pass(check, || passed(value)),
                Err(error) => self.fail(check, error),
            }
        }
        result
    }
}

/// The request path's recorder: keeps nothing.
pub struct Silent;

impl Recorder for Silent {
    const KEEPS: bool = false;

    #[inline(always)]
    fn keep(&mut self, _step: Step) {}
}

/// Keeps every check's outcome, in the order made.
#[derive(Debug, Default)]
pub struct Trace {
    steps: Vec<Step>,
}

impl Recorder for Trace {
    const KEEPS: bool = true;

    /// A check made twice (the size limit: at classification, and again where the token is
    /// split, for callers that do not classify) is kept once, as first made.
    fn keep(&mut self, step: Step) {
        if !self.steps.iter().any(|kept| kept.check == step.check) {
            self.steps.push(step);
        }
    }
}

impl Trace {
    /// The steps made, then each check of `plan` that was not, as not reached.
    pub fn finish(mut self, plan: &[Check]) -> Vec<Step> {
        for check in plan {
            if !self.steps.iter().any(|kept| kept.check == *check) {
                self.steps.push(Step {
                    check: *check,
                    status: Status::NotReached,
                    detail: String::new(),
                });
            }
        }
        self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn plans_name_each_check_once() {
        for plan in [Check::TOKEN.to_vec(), Check::introspection(true)] {
            let names: BTreeSet<&str> = plan.iter().map(|c| c.name()).collect();
            assert_eq!(names.len(), plan.len());
        }
        let plan = Check::introspection(false);
        assert_eq!(plan.len(), 15);
        assert_eq!(plan[3], Check::Payload);
        assert_eq!(plan.last(), Some(&Check::Roles));
    }

    #[test]
    fn silent_keeps_nothing_and_formats_nothing() {
        let mut silent = Silent;
        silent.pass(Check::Size, || unreachable!("never formatted"));
        let refused: Result<(), _> = Err(TokenError::InvalidSignature);
        let back = silent.outcome(Check::Signature, refused, |_| unreachable!());
        assert_eq!(back, Err(TokenError::InvalidSignature));
    }

    #[test]
    fn a_trace_keeps_the_order_made_and_ends_with_what_was_not_reached() {
        let mut trace = Trace::default();
        trace.pass(Check::Size, || "small".into());
        trace.pass(Check::Size, || "again".into());
        let _ = trace.outcome(
            Check::Segments,
            Err::<(), _>(TokenError::InvalidIssuer),
            |_| String::new(),
        );
        let steps = trace.finish(&[Check::Size, Check::Segments, Check::Header]);
        let seen: Vec<(&str, Status, &str)> = steps
            .iter()
            .map(|s| (s.check.name(), s.status, s.detail.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("size", Status::Pass, "small"),
                (
                    "segments",
                    Status::Fail,
                    TokenError::InvalidIssuer.fixed_description()
                ),
                ("header", Status::NotReached, ""),
            ]
        );
    }
}

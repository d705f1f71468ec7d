//! Why a token or a key set was refused. Descriptions are safe to show an HTTP client: they name
//! what failed in plain words and never echo key material or attacker-controlled strings (claim
//! names in them come from the validator's configuration or from a fixed list).

use std::borrow::Cow;
use std::fmt;

/// Every way a token can fail validation. `code()` is the stable code of the Python error class,
/// `fixed_description()` its fixed words (the class's `default_description`), `description()`
/// what a client is told about this error in particular.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenError {
    Malformed(Cow<'static, str>),
    TooLarge {
        size: usize,
        limit: usize,
    },
    UnsupportedAlgorithm,
    /// `none`/HS*, or a supported algorithm missing from the allowlist (None for the former).
    AlgorithmNotAllowed(Option<&'static str>),
    KeyNotFound(KeyMiss),
    InvalidSignature,
    Expired {
        seconds_ago: i64,
    },
    NotYetValid {
        seconds_until: i64,
    },
    IssuedInFuture {
        seconds_ahead: i64,
    },
    InvalidIssuer,
    InvalidAudience,
    MissingClaim(String),
    InvalidClaim(Cow<'static, str>),
    InsufficientScope {
        required: Vec<String>,
        missing: Vec<String>,
    },
    InvalidType(WrongKind),
    /// An RFC 7662 introspection answered that the token is not active.
    Inactive,
}

/// Why a token is not the kind of token accepted here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrongKind {
    /// Its header `typ` is not one of `accepted_types`.
    Typ,
    /// It carries `nonce` and was issued to an audience that is an application ID: an OpenID
    /// Connect ID token, which an identity provider such as Entra ID issues to the same `aud`
    /// (the client ID), with the same `iss` and keys, as the access tokens for that application.
    IdToken,
}

/// Why no key was selected. Each has its own description; the Python side treats them alike:
/// every one is a key miss after which the key cache may refetch (`Authenticator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMiss {
    /// The token names a `kid` that no usable key has.
    UnknownKid,
    /// The `kid` exists, but its key does not fit the token's algorithm.
    WrongKeyType,
    /// No `kid`, and no usable key fits the algorithm.
    NoKeyForAlgorithm,
    /// No `kid`, and more than one usable key fits the algorithm.
    Ambiguous,
}

impl TokenError {
    pub fn malformed(why: &'static str) -> Self {
        Self::Malformed(Cow::Borrowed(why))
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::TooLarge { .. } => "token_too_large",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Self::KeyNotFound(_) => "key_not_found",
            Self::InvalidSignature => "invalid_signature",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::IssuedInFuture { .. } => "issued_in_future",
            Self::InvalidIssuer => "invalid_issuer",
            Self::InvalidAudience => "invalid_audience",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidClaim(_) => "invalid_claim",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::InvalidType(_) => "invalid_type",
            Self::Inactive => "inactive_token",
        }
    }

    /// The fixed, client-safe words of this error's code. `errors.py` takes each class's
    /// `default_description` from here (through `token_error_descriptions`), so an error raised
    /// in Python without a description says what the same error raised here says.
    pub fn fixed_description(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "the token is not a well-formed JWS compact serialization",
            Self::TooLarge { .. } => "the token is larger than this server accepts",
            Self::UnsupportedAlgorithm => "the token's signing algorithm is not supported",
            Self::AlgorithmNotAllowed(_) => "the token's signing algorithm is not allowed",
            Self::KeyNotFound(_) => "no trusted key matches the token",
            Self::InvalidSignature => "the token's signature is invalid",
            Self::Expired { .. } => "the token has expired",
            Self::NotYetValid { .. } => "the token is not valid yet",
            Self::IssuedInFuture { .. } => "the token was issued in the future",
            Self::InvalidIssuer => "the token was not issued by a trusted issuer",
            Self::InvalidAudience => "audience does not include this server",
            Self::MissingClaim(_) => "the token lacks a required claim",
            Self::InvalidClaim(_) => "a claim of the token has an invalid value",
            Self::InsufficientScope { .. } => "the token lacks a required scope",
            Self::InvalidType(_) => "the token's type (typ) is not accepted",
            Self::Inactive => "the token is not active (revoked, expired or unknown)",
        }
    }

    /// Plain words for the client (`error_description`): the fixed words, or for the errors
    /// with something to add, the particulars (how long ago, which claim, which scopes).
    pub fn description(&self) -> String {
        match self {
            Self::Malformed(why) => format!("malformed token: {why}"),
            Self::TooLarge { size, limit } => {
                format!("token is {size} bytes, larger than the {limit}-byte limit")
            }
            Self::AlgorithmNotAllowed(None) => {
                "unsigned and HMAC-signed tokens are never accepted".into()
            }
            Self::AlgorithmNotAllowed(Some(alg)) => {
                format!("token signing algorithm {alg} is not allowed")
            }
            Self::KeyNotFound(KeyMiss::UnknownKid) => {
                "no trusted key has the token's key id".into()
            }
            Self::KeyNotFound(KeyMiss::WrongKeyType) => {
                "the key named by the token's key id does not fit its algorithm".into()
            }
            Self::KeyNotFound(KeyMiss::NoKeyForAlgorithm) => {
                "no trusted key fits the token's algorithm".into()
            }
            Self::KeyNotFound(KeyMiss::Ambiguous) => {
                "token has no key id and several trusted keys fit its algorithm".into()
            }
            Self::Expired { seconds_ago } => format!("token expired {seconds_ago} s ago"),
            Self::NotYetValid { seconds_until } => {
                format!("token is not valid for another {seconds_until} s")
            }
            Self::IssuedInFuture { seconds_ahead } => {
                format!("token was issued {seconds_ahead} s in the future")
            }
            Self::MissingClaim(name) => format!("token lacks the required claim '{name}'"),
            Self::InvalidClaim(why) => format!("invalid claim: {why}"),
            Self::InsufficientScope { missing, .. } => {
                format!("token lacks the required scope(s): {}", missing.join(" "))
            }
            Self::InvalidType(WrongKind::IdToken) => {
                "an ID token (it carries 'nonce') is not an access token".into()
            }
            Self::UnsupportedAlgorithm
            | Self::InvalidSignature
            | Self::InvalidIssuer
            | Self::InvalidAudience
            | Self::InvalidType(WrongKind::Typ)
            | Self::Inactive => self.fixed_description().into(),
        }
    }

    /// One error of every variant, and of every `KeyMiss` and `AlgorithmNotAllowed` form: the
    /// table of codes and fixed words that `errors.py` takes (`token_error_descriptions`).
    pub fn examples() -> Vec<TokenError> {
        vec![
            Self::malformed("the token is not three base64url segments"),
            Self::TooLarge {
                size: 9000,
                limit: 8192,
            },
            Self::UnsupportedAlgorithm,
            Self::AlgorithmNotAllowed(None),
            Self::AlgorithmNotAllowed(Some("RS384")),
            Self::KeyNotFound(KeyMiss::UnknownKid),
            Self::KeyNotFound(KeyMiss::WrongKeyType),
            Self::KeyNotFound(KeyMiss::NoKeyForAlgorithm),
            Self::KeyNotFound(KeyMiss::Ambiguous),
            Self::InvalidSignature,
            Self::Expired { seconds_ago: 42 },
            Self::NotYetValid { seconds_until: 7 },
            Self::IssuedInFuture { seconds_ahead: 9 },
            Self::InvalidIssuer,
            Self::InvalidAudience,
            Self::MissingClaim("sub".into()),
            Self::InvalidClaim(Cow::Borrowed("'exp' must be a number")),
            Self::InsufficientScope {
                required: vec!["mcp:tools".into(), "mcp:admin".into()],
                missing: vec!["mcp:admin".into()],
            },
            Self::InvalidType(WrongKind::Typ),
            Self::InvalidType(WrongKind::IdToken),
            Self::Inactive,
        ]
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.description())
    }
}

impl std::error::Error for TokenError {}

/// A JWKS document that cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksError {
    pub detail: String,
    /// Why each key was skipped, when the document parsed but no key was usable.
    pub reasons: Vec<String>,
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)?;
        for reason in &self.reasons {
            write!(f, "; {reason}")?;
        }
        Ok(())
    }
}

impl std::error::Error for JwksError {}

/// Invalid validator configuration; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A number per variant. Adding a variant stops this match from compiling until it gets
    /// one; `VARIANTS` then grows, and the test below fails until `examples()` lists it.
    fn variant(error: &TokenError) -> usize {
        match error {
            TokenError::Malformed(_) => 0,
            TokenError::TooLarge { .. } => 1,
            TokenError::UnsupportedAlgorithm => 2,
            TokenError::AlgorithmNotAllowed(_) => 3,
            TokenError::KeyNotFound(_) => 4,
            TokenError::InvalidSignature => 5,
            TokenError::Expired { .. } => 6,
            TokenError::NotYetValid { .. } => 7,
            TokenError::IssuedInFuture { .. } => 8,
            TokenError::InvalidIssuer => 9,
            TokenError::InvalidAudience => 10,
            TokenError::MissingClaim(_) => 11,
            TokenError::InvalidClaim(_) => 12,
            TokenError::InsufficientScope { .. } => 13,
            TokenError::InvalidType(_) => 14,
            TokenError::Inactive => 15,
        }
    }
    const VARIANTS: usize = 16;

    #[test]
    fn examples_cover_every_variant_with_one_code_each() {
        let examples = TokenError::examples();
        let variants: BTreeSet<usize> = examples.iter().map(variant).collect();
        assert_eq!(variants, (0..VARIANTS).collect());
        let codes: BTreeSet<&str> = examples.iter().map(TokenError::code).collect();
        assert_eq!(codes.len(), VARIANTS, "one code per variant");
        let misses: BTreeSet<String> = examples
            .iter()
            .filter_map(|e| match e {
                TokenError::KeyNotFound(miss) => Some(format!("{miss:?}")),
                _ => None,
            })
            .collect();
        assert_eq!(misses.len(), 4, "every KeyMiss");
    }

    #[test]
    fn one_fixed_description_per_code() {
        let examples = TokenError::examples();
        for a in &examples {
            for b in &examples {
                if a.code() == b.code() {
                    assert_eq!(a.fixed_description(), b.fixed_description());
                }
            }
            assert!(!a.description().is_empty());
        }
    }
}

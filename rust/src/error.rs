//! Why a token or a key set was refused. Descriptions are safe to show an HTTP client: they name
//! what failed in plain words and never echo key material or attacker-controlled strings (claim
//! names in them come from the validator's configuration or from a fixed list).

use std::borrow::Cow;
use std::fmt;

/// Every way a token can fail validation. `code()` is the stable code of the Python error class.
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
    InvalidType,
}

/// Why no key was selected: the Python key cache reacts differently to each.
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
            Self::InvalidType => "invalid_type",
        }
    }

    /// Plain words for the client (`error_description`).
    pub fn description(&self) -> String {
        match self {
            Self::Malformed(why) => format!("malformed token: {why}"),
            Self::TooLarge { size, limit } => {
                format!("token is {size} bytes, larger than the {limit}-byte limit")
            }
            Self::UnsupportedAlgorithm => "token signing algorithm is not supported".into(),
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
            Self::InvalidSignature => "token signature is invalid".into(),
            Self::Expired { seconds_ago } => format!("token expired {seconds_ago} s ago"),
            Self::NotYetValid { seconds_until } => {
                format!("token is not valid for another {seconds_until} s")
            }
            Self::IssuedInFuture { seconds_ahead } => {
                format!("token was issued {seconds_ahead} s in the future")
            }
            Self::InvalidIssuer => "token issuer is not trusted".into(),
            Self::InvalidAudience => "audience does not include this server".into(),
            Self::MissingClaim(name) => format!("token lacks the required claim '{name}'"),
            Self::InvalidClaim(why) => format!("invalid claim: {why}"),
            Self::InsufficientScope { missing, .. } => {
                format!("token lacks the required scope(s): {}", missing.join(" "))
            }
            Self::InvalidType => "token type (typ) is not accepted".into(),
        }
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

//! Which check a bearer token gets: local verification (and with which issuer's keys) or
//! introspection at the authorization server. A token is classified by its shape alone, and a
//! JWT is routed to its issuer's keys by its unverified `iss`, which gains a forger nothing: the
//! token is then verified in full against those keys and the issuer rule.

use crate::error::{ConfigError, TokenError};
use crate::json::{self, JsonProblem, Members, Reader, Shape};
use crate::keyset::KeySet;
use crate::token::within_size;
use crate::trace::{Check, Recorder, Silent};

/// Which tokens are verified locally as JWTs and which are introspected (RFC 7662).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormat {
    /// Every token is a JWT.
    Jwt,
    /// Every token is introspected.
    Opaque,
    /// A token with exactly two dots is a JWT (and is refused locally if it does not parse,
    /// never introspected); any other is introspected.
    Auto,
}

impl TokenFormat {
    pub const NAMES: [&'static str; 3] = ["jwt", "opaque", "auto"];

    pub fn name(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::Opaque => "opaque",
            Self::Auto => "auto",
        }
    }

    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        match name {
            "jwt" => Ok(Self::Jwt),
            "opaque" => Ok(Self::Opaque),
            "auto" => Ok(Self::Auto),
            _ => Err(ConfigError(format!(
                "token_format must be one of {:?}, not {name:?}",
                Self::NAMES
            ))),
        }
    }

    /// Whether `token` is introspected under this format: by its shape alone, so no header an
    /// attacker writes (`alg: none`, a repeated member, a BOM) can send a JWT to introspection.
    pub fn introspects(self, token: &[u8]) -> bool {
        match self {
            Self::Jwt => false,
            Self::Opaque => true,
            Self::Auto => token.iter().filter(|b| **b == b'.').count() != 2,
        }
    }
}

/// What a bearer token is, by the format and its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Verified locally.
    Jwt,
    /// Asked about at the authorization server.
    Introspected,
}

/// The kind of `token` under `format`, once its size is within `max_token_bytes` (checked
/// first, whatever the kind: neither a JWT nor an introspection call takes a larger one).
pub fn classify(
    token: &str,
    format: TokenFormat,
    max_token_bytes: usize,
) -> Result<Kind, TokenError> {
    classify_recorded(token, format, max_token_bytes, &mut Silent)
}

/// [`classify`], recording the size and format checks in `rec`.
pub fn classify_recorded<R: Recorder>(
    token: &str,
    format: TokenFormat,
    max_token_bytes: usize,
    rec: &mut R,
) -> Result<Kind, TokenError> {
    within_size(token, max_token_bytes, rec)?;
    let kind = if format.introspects(token.as_bytes()) {
        Kind::Introspected
    } else {
        Kind::Jwt
    };
    rec.pass(Check::Format, || {
        let name = format.name();
        match (kind, format) {
            (Kind::Jwt, TokenFormat::Auto) => {
                "token_format auto, and shaped as a JWT (two dots): verified here".into()
            }
            (Kind::Jwt, _) => format!("token_format {name}: verified here as a JWT"),
            (Kind::Introspected, TokenFormat::Auto) => {
                "token_format auto, and not shaped as a JWT: introspected".into()
            }
            (Kind::Introspected, _) => format!("token_format {name}: introspected"),
        }
    });
    Ok(kind)
}

/// The keys one validation may use.
#[derive(Debug, Clone)]
pub enum KeyRing<'k> {
    /// One key set for every trusted issuer.
    Shared(&'k KeySet),
    /// The key sets of some trusted issuers, by issuer; the token's unverified `iss` picks one.
    /// An issuer missing here has no keys at hand yet (`Unsettled::NoKeys`).
    ByIssuer(Vec<(&'k str, &'k KeySet)>),
}

impl<'k> KeyRing<'k> {
    /// The keys for a token of `issuer`.
    pub fn for_issuer(&self, issuer: &str) -> Option<&'k KeySet> {
        match self {
            Self::Shared(keys) => Some(keys),
            Self::ByIssuer(sets) => sets
                .iter()
                .find(|(name, _)| *name == issuer)
                .map(|(_, keys)| *keys),
        }
    }

    pub fn routes(&self) -> bool {
        matches!(self, Self::ByIssuer(_))
    }
}

/// Why a validation gave no user.
#[derive(Debug, Clone, PartialEq)]
pub enum Unsettled {
    /// The token is refused; `missed` when it failed at the keys.
    Refused {
        error: TokenError,
        missed: Option<KeyMissed>,
    },
    /// The token names a trusted issuer whose keys the ring does not hold.
    NoKeys { issuer: String },
}

/// Which keys a token failed at (no key selected, or its signature did not verify): what a
/// caller needs to refresh them and try again without reading the token a second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMissed {
    /// The unverified `iss` whose keys were tried, when the ring chose the keys by it.
    pub issuer: Option<String>,
    /// The header's `kid`.
    pub kid: Option<String>,
}

impl From<TokenError> for Unsettled {
    fn from(error: TokenError) -> Self {
        Self::Refused {
            error,
            missed: None,
        }
    }
}

impl Unsettled {
    /// The refusal, whatever the issuer (`NoKeys` is no refusal: None).
    pub fn error(&self) -> Option<&TokenError> {
        match self {
            Self::Refused { error, .. } => Some(error),
            Self::NoKeys { .. } => None,
        }
    }
}

/// The unverified `iss` of a decoded payload, read strictly (the whole document is checked, as
/// the claim rules will check it): `Ok(Shape::Absent)` when there is none.
pub(crate) fn unverified_issuer(payload: &[u8]) -> Result<Shape<'_>, JsonProblem> {
    let mut issuer = Issuer(Shape::Absent);
    json::read_object(payload, &mut issuer)?;
    Ok(issuer.0)
}

/// Keeps the value of `iss` alone.
struct Issuer<'a>(Shape<'a>);

impl<'a> Members<'a> for Issuer<'a> {
    fn find(&mut self, name: &str) -> Result<Option<usize>, JsonProblem> {
        match (name, &self.0) {
            ("iss", Shape::Absent) => Ok(Some(0)),
            ("iss", _) => Err(JsonProblem::DuplicateMember),
            _ => Ok(None),
        }
    }

    fn keep(&mut self, _index: usize, reader: &mut Reader<'a>) -> Result<(), JsonProblem> {
        self.0 = reader.shape()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_classify_by_shape_alone() {
        let jws_shaped = [
            &b"a.b.c"[..],
            b"..",
            b"eyJhbGciOiJub25lIn0.e30.",
            b"x.y.z==",
        ];
        let other = [&b"opaque"[..], b"a.b", b"a.b.c.d", b"a.b.c.d.e", b""];
        for token in jws_shaped {
            assert!(!TokenFormat::Auto.introspects(token), "{token:?}");
            assert!(TokenFormat::Opaque.introspects(token));
            assert!(!TokenFormat::Jwt.introspects(token));
        }
        for token in other {
            assert!(TokenFormat::Auto.introspects(token), "{token:?}");
            assert!(TokenFormat::Opaque.introspects(token));
            assert!(!TokenFormat::Jwt.introspects(token));
        }
        for name in TokenFormat::NAMES {
            assert!(TokenFormat::parse(name).is_ok());
        }
        let err = TokenFormat::parse("JWT").expect_err("case matters");
        assert!(err.0.contains("\"jwt\", \"opaque\", \"auto\""), "{}", err.0);
    }

    #[test]
    fn the_size_limit_comes_before_the_kind() {
        let long = "a".repeat(300);
        for format in [TokenFormat::Jwt, TokenFormat::Opaque, TokenFormat::Auto] {
            assert_eq!(
                classify(&long, format, 256),
                Err(TokenError::TooLarge {
                    size: 300,
                    limit: 256
                })
            );
        }
        assert_eq!(
            classify(&long, TokenFormat::Auto, 300),
            Ok(Kind::Introspected)
        );
        assert_eq!(classify("a.b.c", TokenFormat::Auto, 300), Ok(Kind::Jwt));
        assert_eq!(classify("abc", TokenFormat::Jwt, 300), Ok(Kind::Jwt));
    }

    #[test]
    fn the_issuer_is_read_strictly() {
        assert_eq!(
            unverified_issuer(br#"{"sub":"u","iss":"https://as"}"#),
            Ok(Shape::Text("https://as".into()))
        );
        assert_eq!(unverified_issuer(br#"{"sub":"u"}"#), Ok(Shape::Absent));
        assert_eq!(unverified_issuer(br#"{"iss":7}"#), Ok(Shape::Number(7.0)));
        assert_eq!(
            unverified_issuer(br#"{"iss":"a","iss":"b"}"#),
            Err(JsonProblem::DuplicateMember)
        );
        assert_eq!(
            unverified_issuer(br#"{"iss":"a","x":{"k":1,"k":2}}"#),
            Err(JsonProblem::DuplicateMember)
        );
        assert_eq!(unverified_issuer(b"[1]"), Err(JsonProblem::NotAnObject));
        assert_eq!(unverified_issuer(b"{"), Err(JsonProblem::Invalid));
    }
}

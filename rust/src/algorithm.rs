//! JWS signature algorithms (RFC 7518, RFC 8037) and the key types each one needs.

use aws_lc_rs::signature::{self, VerificationAlgorithm};

/// An asymmetric JWS algorithm this crate verifies.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

/// The key a given algorithm needs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ec(Curve),
    Ed25519,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            "P-521" => Some(Self::P521),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    /// Length in bytes of one coordinate, and of each of r and s in a JWS signature.
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }
}

/// Outcome of reading a header `alg` value.
#[derive(Debug, PartialEq, Eq)]
pub enum AlgorithmName {
    Supported(Algorithm),
    /// `none` or an HMAC algorithm: never accepted, whatever the configuration says.
    Forbidden,
    Unknown,
}

impl Algorithm {
    pub const ALL: [Algorithm; 10] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::ES512,
        Self::EdDSA,
    ];

    /// Reads a JWS `alg` value. Names are case-sensitive (RFC 7515 section 4.1.1), except that
    /// `none` and `HS*` are recognised in any casing so that they can be refused outright.
    pub fn parse(name: &str) -> AlgorithmName {
        let found = match name {
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "ES512" => Self::ES512,
            // RFC 9864 registers the fully-specified "Ed25519"; it names the same primitive.
            "EdDSA" | "Ed25519" => Self::EdDSA,
            _ => {
                let lower = name.to_ascii_lowercase();
                return if lower == "none" || lower.starts_with("hs") {
                    AlgorithmName::Forbidden
                } else {
                    AlgorithmName::Unknown
                };
            }
        };
        AlgorithmName::Supported(found)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Position in [`Algorithm::ALL`], for bit sets and per-algorithm slots.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Position among the six RSA algorithms (RS*, PS*), for per-algorithm RSA key slots;
    /// `None` for every other algorithm.
    pub fn rsa_slot(self) -> Option<usize> {
        match self {
            Self::RS256 => Some(0),
            Self::RS384 => Some(1),
            Self::RS512 => Some(2),
            Self::PS256 => Some(3),
            Self::PS384 => Some(4),
            Self::PS512 => Some(5),
            _ => None,
        }
    }

    pub fn key_kind(self) -> KeyKind {
        match self {
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                KeyKind::Rsa
            }
            Self::ES256 => KeyKind::Ec(Curve::P256),
            Self::ES384 => KeyKind::Ec(Curve::P384),
            Self::ES512 => KeyKind::Ec(Curve::P521),
            Self::EdDSA => KeyKind::Ed25519,
        }
    }

    /// The aws-lc-rs verification parameters. ECDSA uses the fixed-width r||s encoding of
    /// RFC 7518 section 3.4 (never DER); RSA accepts moduli of 2048 to 8192 bits.
    pub fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Self::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Self::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            Self::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Self::ES512 => &signature::ECDSA_P521_SHA512_FIXED,
            Self::EdDSA => &signature::ED25519,
        }
    }
}

/// A small set of algorithms (the validator's allowlist).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    pub fn insert(&mut self, alg: Algorithm) {
        self.0 |= 1 << alg.index();
    }

    pub fn contains(self, alg: Algorithm) -> bool {
        self.0 & (1 << alg.index()) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.name()), AlgorithmName::Supported(alg));
        }
        assert_eq!(
            Algorithm::parse("Ed25519"),
            AlgorithmName::Supported(Algorithm::EdDSA)
        );
    }

    #[test]
    fn none_and_hmac_are_forbidden_in_any_casing() {
        for name in [
            "none", "None", "NONE", "nOnE", "HS256", "hs384", "Hs512", "HS1",
        ] {
            assert_eq!(Algorithm::parse(name), AlgorithmName::Forbidden, "{name}");
        }
    }

    #[test]
    fn names_are_case_sensitive() {
        for name in ["rs256", "Rs256", "es256", "eddsa", "", "RS256 ", "ES256K"] {
            assert_eq!(Algorithm::parse(name), AlgorithmName::Unknown, "{name}");
        }
    }

    #[test]
    fn set_operations() {
        let mut set = AlgorithmSet::default();
        assert!(set.is_empty());
        set.insert(Algorithm::ES256);
        set.insert(Algorithm::EdDSA);
        assert!(set.contains(Algorithm::ES256) && !set.contains(Algorithm::RS256));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Algorithm::ES256, Algorithm::EdDSA]
        );
    }
}

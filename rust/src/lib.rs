//! Native validation core of mcp-oauth2: JWS compact access tokens (RFC 7515, RFC 7519,
//! RFC 9068) verified with aws-lc-rs against a key set parsed once from a JWKS (RFC 7517), and
//! the admission of a request around it: the `Authorization` header (`authorization`), the
//! token's kind and its issuer's keys (`admission`), and the scope rules (`scopes`).
//!
//! The core has no Python types in it; `python` (behind the `python` feature) is the thin pyo3
//! binding layer.

pub mod admission;
pub mod algorithm;
pub mod authorization;
pub mod base64url;
pub mod claim_path;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod json;
pub mod jwk;
pub mod keyset;
pub mod policy;
pub mod scopes;
pub mod token;
pub mod trace;
pub mod verified_cache;

#[cfg(feature = "python")]
mod python;

pub use admission::{KeyRing, TokenFormat, Unsettled};
pub use algorithm::Algorithm;
pub use error::{ConfigError, JwksError, KeyMiss, TokenError, WrongKind};
pub use keyset::KeySet;
pub use policy::{Policy, PolicyOptions, Verified};
pub use scopes::ScopeRules;

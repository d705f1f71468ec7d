//! Where core errors become Python exceptions: the classes are defined in `mcp_oauth2/errors.py`
//! and imported here, and each kind of core error crosses the boundary at one conversion.

use crate::admission::KeyMissed;
use crate::authorization::BadCredentials;
use crate::error::{ConfigError, JwksError, TokenError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

pyo3::import_exception!(mcp_oauth2.errors, ConfigurationError);
pyo3::import_exception!(mcp_oauth2.errors, JWKSError);
pyo3::import_exception!(mcp_oauth2.errors, MalformedTokenError);
pyo3::import_exception!(mcp_oauth2.errors, TokenTooLargeError);
pyo3::import_exception!(mcp_oauth2.errors, UnsupportedAlgorithmError);
pyo3::import_exception!(mcp_oauth2.errors, AlgorithmNotAllowedError);
pyo3::import_exception!(mcp_oauth2.errors, KeyNotFoundError);
pyo3::import_exception!(mcp_oauth2.errors, InvalidSignatureError);
pyo3::import_exception!(mcp_oauth2.errors, ExpiredTokenError);
pyo3::import_exception!(mcp_oauth2.errors, NotYetValidError);
pyo3::import_exception!(mcp_oauth2.errors, IssuedInFutureError);
pyo3::import_exception!(mcp_oauth2.errors, InvalidIssuerError);
pyo3::import_exception!(mcp_oauth2.errors, InvalidAudienceError);
pyo3::import_exception!(mcp_oauth2.errors, MissingClaimError);
pyo3::import_exception!(mcp_oauth2.errors, InvalidClaimError);
pyo3::import_exception!(mcp_oauth2.errors, InsufficientScopeError);
pyo3::import_exception!(mcp_oauth2.errors, InvalidTokenTypeError);
pyo3::import_exception!(mcp_oauth2.errors, InactiveTokenError);
// The base of every refusal of a token.
pyo3::import_exception!(mcp_oauth2.errors, TokenValidationError);
// The refusal of a malformed `Authorization` header.
pyo3::import_exception!(mcp_oauth2.errors, InvalidRequestError);

impl From<TokenError> for PyErr {
    fn from(err: TokenError) -> PyErr {
        let description = err.description();
        match err {
            TokenError::Malformed(_) => MalformedTokenError::new_err(description),
            TokenError::TooLarge { .. } => TokenTooLargeError::new_err(description),
            TokenError::UnsupportedAlgorithm => UnsupportedAlgorithmError::new_err(description),
            TokenError::AlgorithmNotAllowed(_) => AlgorithmNotAllowedError::new_err(description),
            TokenError::KeyNotFound(_) => KeyNotFoundError::new_err(description),
            TokenError::InvalidSignature => InvalidSignatureError::new_err(description),
            TokenError::Expired { .. } => ExpiredTokenError::new_err(description),
            TokenError::NotYetValid { .. } => NotYetValidError::new_err(description),
            TokenError::IssuedInFuture { .. } => IssuedInFutureError::new_err(description),
            TokenError::InvalidIssuer => InvalidIssuerError::new_err(description),
            TokenError::InvalidAudience => InvalidAudienceError::new_err(description),
            TokenError::MissingClaim(_) => MissingClaimError::new_err(description),
            TokenError::InvalidClaim(_) => InvalidClaimError::new_err(description),
            TokenError::InsufficientScope { required, .. } => {
                InsufficientScopeError::new_err((description, required))
            }
            TokenError::InvalidType(_) => InvalidTokenTypeError::new_err(description),
            TokenError::Inactive => InactiveTokenError::new_err(description),
        }
    }
}

impl From<BadCredentials> for PyErr {
    fn from(err: BadCredentials) -> PyErr {
        InvalidRequestError::new_err(err.description())
    }
}

impl From<JwksError> for PyErr {
    fn from(err: JwksError) -> PyErr {
        JWKSError::new_err((err.detail, err.reasons))
    }
}

impl From<ConfigError> for PyErr {
    fn from(err: ConfigError) -> PyErr {
        ConfigurationError::new_err(err.0)
    }
}

/// `error` as its exception; after a key miss, carrying in `issuer` and `kid` the keys it
/// missed (`KeyMissed`), so that the caller can refresh them without reading the token again.
pub(crate) fn refusal(py: Python<'_>, error: TokenError, missed: Option<KeyMissed>) -> PyErr {
    let err = PyErr::from(error);
    if let Some(missed) = missed {
        let value = err.value(py);
        // Plain attributes of a class from errors.py: setting them fails only without memory,
        // and then the error is still raised, without them.
        let _ = value.setattr("issuer", missed.issuer);
        let _ = value.setattr("kid", missed.kid);
    }
    err
}

/// Each error code with its fixed, client-safe words: where `errors.py` takes the
/// `default_description` of every class the core raises.
#[pyfunction]
pub(crate) fn token_error_descriptions(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let table = PyDict::new(py);
    for error in TokenError::examples() {
        table.set_item(error.code(), error.fixed_description())?;
    }
    Ok(table)
}

/// What a call came to, as a value: its result, or the validation error it raised (as the
/// exception object); any other error is raised.
pub(crate) fn verdict_of<'py>(
    py: Python<'py>,
    outcome: PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    match outcome {
        Ok(value) => Ok(value),
        Err(error) if error.is_instance_of::<TokenValidationError>(py) => {
            Ok(error.into_value(py).into_bound(py).into_any())
        }
        Err(error) => Err(error),
    }
}

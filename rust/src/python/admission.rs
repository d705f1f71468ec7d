//! The functions about a bearer token before it is validated: the header's token
//! (`bearer_token`), its kind under a token format (`introspected`), the unverified peeks the
//! command-line tool prints (`peek_header`, `peek_issuer`), and `Referral`, what
//! `TokenValidator.authorize` hands back for a token it cannot settle by itself.

use super::convert::{header_bytes, object_to_py, token_text};
use crate::admission::TokenFormat;
use crate::authorization::bearer_credentials;
use crate::token::{decode_object, CompactJws};
use pyo3::prelude::*;
use serde_json::Value;

/// A bearer token that one `authorize` call could not settle by itself: to be introspected
/// (`issuer` is None), or a JWT of the trusted `issuer` whose keys the call was not given.
#[pyclass(frozen, name = "Referral", module = "mcp_oauth2")]
pub(crate) struct Referral {
    #[pyo3(get)]
    token: String,
    #[pyo3(get)]
    issuer: Option<String>,
}

impl Referral {
    pub(crate) fn refer<'py>(
        py: Python<'py>,
        token: &str,
        issuer: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let referral = Self {
            token: token.to_owned(),
            issuer,
        };
        Ok(Bound::new(py, referral)?.into_any())
    }
}

#[pymethods]
impl Referral {
    fn __repr__(&self) -> String {
        // The token itself is a credential: its length only.
        format!(
            "Referral(issuer={:?}, token=<{} bytes>)",
            self.issuer,
            self.token.len()
        )
    }
}

/// The bearer token of an `Authorization` header value, as `TokenValidator.authorize` reads it:
/// None for another scheme; `InvalidRequestError` for empty or malformed Bearer credentials.
#[pyfunction]
pub(crate) fn bearer_token(authorization: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    Ok(bearer_credentials(header_bytes(authorization)?)?.map(str::to_owned))
}

/// Whether `token` is introspected rather than verified locally under `token_format`, as
/// `TokenValidator.authorize` decides it (by the token's shape alone).
#[pyfunction]
pub(crate) fn introspected(token: &Bound<'_, PyAny>, token_format: &str) -> PyResult<bool> {
    let format = TokenFormat::parse(token_format)?;
    Ok(format.introspects(token_text(token, usize::MAX)?.as_bytes()))
}

#[pyfunction]
#[pyo3(signature = (token, max_token_bytes = 8192))]
pub(crate) fn peek_header<'py>(
    py: Python<'py>,
    token: &Bound<'py, PyAny>,
    max_token_bytes: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let text = token_text(token, max_token_bytes)?;
    let jws = CompactJws::split(text, max_token_bytes)?;
    let header = decode_object(jws.header, "header")?;
    object_to_py(py, &header)
}

#[pyfunction]
#[pyo3(signature = (token, max_token_bytes = 8192))]
pub(crate) fn peek_issuer(token: &Bound<'_, PyAny>, max_token_bytes: usize) -> Option<String> {
    let text = token_text(token, max_token_bytes).ok()?;
    let jws = CompactJws::split(text, max_token_bytes).ok()?;
    match decode_object(jws.payload, "payload").ok()?.get("iss") {
        Some(Value::String(iss)) => Some(iss.clone()),
        _ => None,
    }
}

//! A bearer token before it is validated: the header's token (`bearer_token`), and `Referral`,
//! what `TokenValidator.authorize` hands back for a token it cannot settle by itself.

use super::convert::header_bytes;
use super::scopes::PyScopeRules;
use super::user::AuthenticatedUser;
use super::validator::admitted;
use crate::authorization::bearer_credentials;
use crate::dpop::{self, Presented};
use crate::trace::Silent;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// A token that one `authorize` call could not settle by itself: to be introspected (`issuer`
/// is None), or a JWT of the trusted `issuer` whose keys the call was not given. It keeps how
/// the token was presented (a DPoP proof that passed), for `admit`.
#[pyclass(frozen, name = "Referral", module = "mcp_oauth2")]
pub(crate) struct Referral {
    #[pyo3(get)]
    token: String,
    #[pyo3(get)]
    issuer: Option<String>,
    presented: Presented,
}

impl Referral {
    pub(crate) fn refer<'py>(
        py: Python<'py>,
        token: &str,
        issuer: Option<String>,
        presented: Presented,
    ) -> PyResult<Bound<'py, PyAny>> {
        let referral = Self {
            token: token.to_owned(),
            issuer,
            presented,
        };
        Ok(Bound::new(py, referral)?.into_any())
    }

    /// Whether the token is referred to introspection (rather than for its issuer's keys).
    pub(crate) fn introspects(&self) -> bool {
        self.issuer.is_none()
    }
}

#[pymethods]
impl Referral {
    /// The introspected `user` of this token admitted as `authorize` admits a verified one: the
    /// DPoP binding (the answer's `cnf.jkt` against the proof's key, or no `cnf.jkt` for a
    /// bearer token), then `(user, effective scopes sorted)` under `scopes`, with the
    /// `DPoPProof` third when there is one.
    #[pyo3(signature = (user, scopes = None))]
    pub(crate) fn admit<'py>(
        &self,
        py: Python<'py>,
        user: &Bound<'py, AuthenticatedUser>,
        scopes: Option<&Bound<'py, PyScopeRules>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        dpop::bind(&self.presented, user.get().verified.confirmation())?;
        let presented = self.presented.clone();
        admitted(py, user.clone().unbind(), scopes, presented, &mut Silent)
    }

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

//! `AuthenticatedUser`: a verified token as Python sees it, with views built on first use.

use super::convert::frozen_object;
use crate::error::TokenError;
use crate::policy::Verified;
use crate::scopes::ScopeRules;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFrozenSet, PyTuple};
use std::hash::{Hash, Hasher};

#[pyclass(
    frozen,
    freelist = 64,
    name = "AuthenticatedUser",
    module = "mcp_oauth2"
)]
pub(crate) struct AuthenticatedUser {
    pub(crate) verified: Verified,
    // Python views are built on first access and kept: a validation that nobody inspects costs
    // no dict, and a cached user object builds each view once.
    audience: PyOnceLock<Py<PyTuple>>,
    scopes: PyOnceLock<Py<PyFrozenSet>>,
    /// The claims, read-only at every depth (objects as `ReadOnlyDict`, arrays as tuples): the
    /// user object is shared through the cache, so no request may change what another one sees.
    claims: PyOnceLock<Py<PyAny>>,
    /// The verdict of the first scope rules that asked (by their id): the effective scopes,
    /// sorted, or the refusal.
    admitted: PyOnceLock<(u64, Result<Py<PyTuple>, TokenError>)>,
}

impl AuthenticatedUser {
    pub(crate) fn new(verified: Verified) -> Self {
        Self {
            verified,
            audience: PyOnceLock::new(),
            scopes: PyOnceLock::new(),
            claims: PyOnceLock::new(),
            admitted: PyOnceLock::new(),
        }
    }

    fn identity_text(&self) -> &str {
        self.verified
            .subject()
            .or(self.verified.client_id())
            .unwrap_or("")
    }

    /// The effective scopes (sorted) under `rules`, told apart from other rules by `id`, or
    /// the refusal when a required scope is missing. Decided once for the first rules that ask:
    /// a cached user object answers every later request under the same rules from here.
    pub(crate) fn admitted(
        &self,
        py: Python<'_>,
        id: u64,
        rules: &ScopeRules,
    ) -> PyResult<Py<PyTuple>> {
        let decide = || -> PyResult<Result<Py<PyTuple>, TokenError>> {
            Ok(match rules.admit(self.verified.scopes()) {
                Ok(effective) => Ok(PyTuple::new(py, effective)?.unbind()),
                Err(refusal) => Err(refusal),
            })
        };
        let (first, verdict) = self
            .admitted
            .get_or_try_init(py, || Ok::<_, PyErr>((id, decide()?)))?;
        let verdict = if *first == id {
            verdict
                .as_ref()
                .map(|t| t.clone_ref(py))
                .map_err(Clone::clone)
        } else {
            decide()?
        };
        verdict.map_err(PyErr::from)
    }
}

#[pymethods]
impl AuthenticatedUser {
    #[getter]
    fn subject(&self) -> Option<&str> {
        self.verified.subject()
    }

    #[getter]
    fn issuer(&self) -> &str {
        self.verified.issuer()
    }

    #[getter]
    fn audience(&self, py: Python<'_>) -> PyResult<Py<PyTuple>> {
        self.audience
            .get_or_try_init(py, || {
                PyTuple::new(py, self.verified.audience()).map(Bound::unbind)
            })
            .map(|t| t.clone_ref(py))
    }

    #[getter]
    fn scopes(&self, py: Python<'_>) -> PyResult<Py<PyFrozenSet>> {
        self.scopes
            .get_or_try_init(py, || {
                PyFrozenSet::new(py, self.verified.scopes()).map(Bound::unbind)
            })
            .map(|s| s.clone_ref(py))
    }

    #[getter]
    fn client_id(&self) -> Option<&str> {
        self.verified.client_id()
    }

    #[getter]
    fn expires_at(&self) -> Option<i64> {
        self.verified.expires_at
    }

    #[getter]
    fn issued_at(&self) -> Option<i64> {
        self.verified.issued_at
    }

    #[getter]
    fn token_id(&self) -> Option<&str> {
        self.verified.token_id()
    }

    #[getter]
    fn claims(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.claims
            .get_or_try_init(py, || {
                let claims = self.verified.claims()?;
                frozen_object(py, &claims).map(Bound::unbind)
            })
            .map(|c| c.clone_ref(py))
    }

    /// The `act` claim (RFC 8693 section 4.1), read from `claims`: the actor's `sub` and the
    /// earlier actors nested under `act`; None when the token names no actor (or its `act` is
    /// not an object).
    #[getter]
    fn actor(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let claims = self.claims(py)?;
        let act = claims.bind(py).cast::<PyDict>()?.get_item("act")?;
        Ok(act
            .filter(|a| a.is_instance_of::<PyDict>())
            .map(Bound::unbind))
    }

    #[getter]
    fn is_authenticated(&self) -> bool {
        true
    }

    #[getter]
    fn username(&self) -> Option<&str> {
        self.verified.username()
    }

    #[getter]
    fn display_name(&self) -> &str {
        let v = &self.verified;
        v.subject().or(v.username()).or(v.client_id()).unwrap_or("")
    }

    #[getter]
    fn identity(&self) -> &str {
        self.identity_text()
    }

    #[pyo3(signature = (*scopes))]
    fn has_scopes(&self, scopes: Vec<String>) -> bool {
        scopes.iter().all(|s| self.verified.has_scope(s))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        let Ok(other) = other.cast::<AuthenticatedUser>() else {
            return false;
        };
        let (mine, theirs) = (&self.verified, &other.get().verified);
        // The same payload text is the same claims; otherwise compare what it says.
        mine.payload() == theirs.payload()
            || matches!((mine.claims(), theirs.claims()), (Ok(a), Ok(b)) if a == b)
    }

    fn __hash__(&self) -> u64 {
        let v = &self.verified;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (v.issuer(), v.subject(), v.expires_at, v.token_id()).hash(&mut hasher);
        hasher.finish()
    }

    fn __repr__(&self) -> String {
        let mut scopes: Vec<&str> = self.verified.scopes().collect();
        scopes.sort_unstable();
        let text = |value: Option<&str>| value.map_or("None".to_string(), |v| format!("{v:?}"));
        format!(
            "AuthenticatedUser(subject={}, client_id={}, issuer={:?}, scopes={:?}, expires_at={})",
            text(self.verified.subject()),
            text(self.verified.client_id()),
            self.verified.issuer(),
            scopes,
            self.verified
                .expires_at
                .map_or("None".to_string(), |e| e.to_string())
        )
    }
}

//! `AuthenticatedUser`: a verified token as Python sees it, with views built on first use.

use super::convert::frozen_object;
use crate::claim_path::{self, Step};
use crate::error::TokenError;
use crate::policy::Verified;
use crate::scopes::ScopeRules;
use crate::trace::Recorder;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFrozenSet, PyString, PyTuple};
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

#[pyclass(
    frozen,
    freelist = 64,
    name = "AuthenticatedUser",
    module = "mcp_oauth2"
)]
pub(crate) struct AuthenticatedUser {
    pub(crate) verified: Verified,
    /// Python views, built on first access and kept: a validation that nobody inspects costs no
    /// dict, and a cached user object builds each view once. Apart, on the heap: most users in
    /// the cache are never asked for one.
    views: OnceLock<Box<Views>>,
    /// The verdict of the first scope rules that asked (by their id): the effective scopes,
    /// sorted, or the refusal.
    admitted: PyOnceLock<(u64, Admitted)>,
}

struct Views {
    audience: PyOnceLock<Py<PyTuple>>,
    scopes: PyOnceLock<Py<PyFrozenSet>>,
    roles: PyOnceLock<Py<PyFrozenSet>>,
    /// The claims, read-only at every depth (objects as `ReadOnlyDict`, arrays as tuples): the
    /// user object is shared through the cache, so no request may change what another one sees.
    claims: PyOnceLock<Py<PyAny>>,
}

/// The effective scopes under some rules, sorted, or the refusal (boxed: rare, and large beside
/// the rest of the user).
type Admitted = Result<Py<PyTuple>, Box<TokenError>>;

impl AuthenticatedUser {
    pub(crate) fn new(verified: Verified) -> Self {
        Self {
            verified,
            views: OnceLock::new(),
            admitted: PyOnceLock::new(),
        }
    }

    fn views(&self) -> &Views {
        self.views.get_or_init(|| {
            Box::new(Views {
                audience: PyOnceLock::new(),
                scopes: PyOnceLock::new(),
                roles: PyOnceLock::new(),
                claims: PyOnceLock::new(),
            })
        })
    }

    fn identity_text(&self) -> &str {
        self.verified
            .subject()
            .or(self.verified.client_id())
            .unwrap_or("")
    }

    /// The effective scopes (sorted) under `rules`, told apart from other rules by `id`, or
    /// the refusal when a required scope is missing. Decided once for the first rules that ask:
    /// a cached user object answers every later request under the same rules from here. A
    /// recorder that keeps its steps has the rules applied anew, and remembers nothing.
    pub(crate) fn admitted<R: Recorder>(
        &self,
        py: Python<'_>,
        id: u64,
        rules: &ScopeRules,
        rec: &mut R,
    ) -> PyResult<Py<PyTuple>> {
        let decide = |rec: &mut R| -> PyResult<Admitted> {
            Ok(match rules.admit_recorded(self.verified.scopes(), rec) {
                // Interned: every cached user granted a scope shares one string of it.
                Ok(effective) => {
                    let effective = effective.iter().map(|s| PyString::intern(py, s));
                    Ok(PyTuple::new(py, effective)?.unbind())
                }
                Err(refusal) => Err(Box::new(refusal)),
            })
        };
        if R::KEEPS {
            return decide(rec)?.map_err(|refusal| PyErr::from(*refusal));
        }
        let (first, verdict) = self
            .admitted
            .get_or_try_init(py, || Ok::<_, PyErr>((id, decide(rec)?)))?;
        let verdict = if *first == id {
            verdict
                .as_ref()
                .map(|t| t.clone_ref(py))
                .map_err(Clone::clone)
        } else {
            decide(rec)?
        };
        verdict.map_err(|refusal| PyErr::from(*refusal))
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
        self.views()
            .audience
            .get_or_try_init(py, || {
                PyTuple::new(py, self.verified.audience()).map(Bound::unbind)
            })
            .map(|t| t.clone_ref(py))
    }

    #[getter]
    fn scopes(&self, py: Python<'_>) -> PyResult<Py<PyFrozenSet>> {
        self.views()
            .scopes
            .get_or_try_init(py, || {
                PyFrozenSet::new(py, self.verified.scopes()).map(Bound::unbind)
            })
            .map(|s| s.clone_ref(py))
    }

    #[getter]
    fn roles(&self, py: Python<'_>) -> PyResult<Py<PyFrozenSet>> {
        self.views()
            .roles
            .get_or_try_init(py, || {
                PyFrozenSet::new(py, self.verified.roles()).map(Bound::unbind)
            })
            .map(|s| s.clone_ref(py))
    }

    #[getter]
    fn client_id(&self) -> Option<&str> {
        self.verified.client_id()
    }

    #[getter]
    fn expires_at(&self) -> Option<i64> {
        self.verified.expires_at()
    }

    #[getter]
    fn issued_at(&self) -> Option<i64> {
        self.verified.issued_at()
    }

    #[getter]
    fn token_id(&self) -> Option<&str> {
        self.verified.token_id()
    }

    #[getter]
    fn claims(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.views()
            .claims
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
        (v.issuer(), v.subject(), v.expires_at(), v.token_id()).hash(&mut hasher);
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
                .expires_at()
                .map_or("None".to_string(), |e| e.to_string())
        )
    }
}

/// Every value at the dotted claim `path` of `user`'s claims (`crate::claim_path`), in document
/// order: none when the path leads nowhere, more than one only when the claims hold both readings
/// of a dotted name. The values are the read-only ones of `user.claims`.
#[pyfunction]
pub(crate) fn claim_values<'py>(
    py: Python<'py>,
    user: &Bound<'py, AuthenticatedUser>,
    path: &str,
) -> PyResult<Bound<'py, PyTuple>> {
    let claims = user.get().claims(py)?.into_bound(py);
    let mut found = Vec::new();
    if let Ok(object) = claims.cast::<PyDict>() {
        values_at(object, path, &mut found)?;
    }
    PyTuple::new(py, found)
}

fn values_at<'py>(
    object: &Bound<'py, PyDict>,
    path: &str,
    found: &mut Vec<Bound<'py, PyAny>>,
) -> PyResult<()> {
    if !path.contains('.') {
        // Without a dot only the member of that very name is on the path: one lookup.
        if let Some(value) = object.get_item(path)? {
            found.push(value);
        }
        return Ok(());
    }
    for (name, value) in object.iter() {
        let Ok(name) = name.cast::<PyString>() else {
            continue;
        };
        match claim_path::step(path, name.to_str()?) {
            Some(Step::Here) => found.push(value),
            Some(Step::Into(rest)) => {
                if let Ok(inner) = value.cast::<PyDict>() {
                    values_at(inner, rest, found)?;
                }
            }
            None => {}
        }
    }
    Ok(())
}

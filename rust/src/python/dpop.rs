//! `DPoPPolicy` (what a resource accepts of DPoP: `crate::dpop`) and `DPoPProof` (a proof that
//! passed, which the caller's replay check records).

use super::convert::{clock, string_list};
use crate::dpop::{DpopPolicy, Mode, Proof, Request, Step, DEFAULT_ALGORITHMS, DEFAULT_MAX_AGE};
use crate::error::{ProofProblem, TokenError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

#[pyclass(frozen, name = "DPoPPolicy", module = "mcp_oauth2")]
pub(crate) struct PyDpopPolicy {
    pub(crate) inner: DpopPolicy,
    algorithm_names: Vec<String>,
}

#[pymethods]
impl PyDpopPolicy {
    #[new]
    #[pyo3(signature = (
        mode,
        resource,
        *,
        algorithms = None,
        max_age = DEFAULT_MAX_AGE,
        nonce = false,
        nonce_secret = None,
    ),
    text_signature = "(mode, resource, *, algorithms=('ES256', 'ES384', 'RS256', 'PS256', \
        'EdDSA'), max_age=300, nonce=False, nonce_secret=None)")]
    fn new(
        mode: &str,
        resource: &str,
        algorithms: Option<&Bound<'_, PyAny>>,
        max_age: i64,
        nonce: bool,
        nonce_secret: Option<&[u8]>,
    ) -> PyResult<Self> {
        let algorithm_names = match algorithms {
            Some(value) => string_list(value, "dpop_algorithms")?,
            None => DEFAULT_ALGORITHMS.iter().map(|a| a.to_string()).collect(),
        };
        let inner = DpopPolicy::new(
            Mode::parse(mode)?,
            resource,
            &algorithm_names,
            max_age,
            nonce,
            nonce_secret,
        )?;
        Ok(Self {
            inner,
            algorithm_names,
        })
    }

    #[getter]
    fn mode(&self) -> &'static str {
        self.inner.mode.name()
    }

    #[getter]
    fn algorithms<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.algorithm_names)
    }

    #[getter]
    fn max_age(&self) -> i64 {
        self.inner.max_age
    }

    #[getter]
    fn nonce(&self) -> bool {
        self.inner.uses_nonces()
    }

    /// The nonce a client is given now (the `DPoP-Nonce` header), or None when nonces are off.
    #[pyo3(signature = (*, now = None))]
    fn current_nonce(&self, now: Option<f64>) -> PyResult<Option<String>> {
        Ok(self.inner.nonce(clock(now)?))
    }

    /// Checks one proof (RFC 9449 section 4.3) for a request to `path` of this resource with
    /// `method` and `access_token`; the binding to a token is `TokenValidator.authorize`'s.
    /// Raises `InvalidDPoPProofError` or `UseDPoPNonceError`.
    #[pyo3(signature = (proof, *, method, path, access_token, now = None))]
    fn check_proof(
        &self,
        py: Python<'_>,
        proof: &str,
        method: &str,
        path: &str,
        access_token: &str,
        now: Option<f64>,
    ) -> PyResult<PyProof> {
        let now = clock(now)?;
        let request = Request {
            method,
            path,
            access_token,
        };
        let proof = py.detach(|| self.inner.check(proof, &request, now))?;
        Ok(PyProof::from(proof))
    }

    /// Each check of a proof, in the order they are made, with what became of it in the words
    /// of `TokenValidator.trace`: `"pass"`, `"fail"` (with the refusal's words) or
    /// `"not_reached"`; for a token bound to `confirmation` (its `cnf.jkt`), the binding too.
    /// From the same checks as `check_proof`.
    #[pyo3(signature = (proof, *, method, path, access_token, confirmation = None, now = None))]
    #[allow(clippy::too_many_arguments)]
    fn explain(
        &self,
        py: Python<'_>,
        proof: &str,
        method: &str,
        path: &str,
        access_token: &str,
        confirmation: Option<&str>,
        now: Option<f64>,
    ) -> PyResult<Vec<(&'static str, &'static str, String)>> {
        let now = clock(now)?;
        let request = Request {
            method,
            path,
            access_token,
        };
        let outcome = py.detach(|| {
            self.inner.check(proof, &request, now).and_then(|proof| {
                crate::dpop::bind(&crate::dpop::Presented::Proven(proof), confirmation)
            })
        });
        let failed = outcome
            .as_ref()
            .err()
            .and_then(|error| Step::of(error).map(|step| (step, error.description())));
        Ok(Step::ALL
            .iter()
            .filter(|step| **step != Step::Nonce || self.inner.uses_nonces())
            .map(|step| {
                let (status, words) = match &failed {
                    Some((at, why)) if at == step => ("fail", why.clone()),
                    Some((at, _)) if at < step => ("not_reached", String::new()),
                    _ => ("pass", String::new()),
                };
                (step.describe(), status, words)
            })
            .collect())
    }

    fn __repr__(&self) -> String {
        format!(
            "DPoPPolicy(mode={:?}, algorithms={:?}, max_age={}, nonce={})",
            self.inner.mode.name(),
            self.algorithm_names,
            self.inner.max_age,
            if self.inner.uses_nonces() {
                "True"
            } else {
                "False"
            },
        )
    }
}

/// A proof that passed: its key's thumbprint, and what a replay check keeps of it.
#[pyclass(frozen, name = "DPoPProof", module = "mcp_oauth2")]
pub(crate) struct PyProof {
    proof: Proof,
}

impl From<Proof> for PyProof {
    fn from(proof: Proof) -> Self {
        Self { proof }
    }
}

#[pymethods]
impl PyProof {
    /// The RFC 7638 thumbprint of the proof's key (what a bound token's `cnf.jkt` holds).
    #[getter]
    fn thumbprint(&self) -> &str {
        &self.proof.thumbprint
    }

    /// 32 bytes naming the proof (its key and `jti`) in a replay cache.
    #[getter]
    fn replay_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.proof.replay_key)
    }

    /// Unix time after which the proof no longer passes the time check: how long a replay cache
    /// must remember it.
    #[getter]
    fn expires_at(&self) -> f64 {
        self.proof.expires_at
    }

    /// The refusal of this proof when it was seen before (an `InvalidDPoPProofError`).
    fn replayed(&self, py: Python<'_>) -> Py<PyAny> {
        PyErr::from(TokenError::InvalidProof(ProofProblem::Replayed))
            .into_value(py)
            .into_any()
    }

    fn __repr__(&self) -> String {
        format!("DPoPProof(thumbprint={:?})", self.proof.thumbprint)
    }
}

//! `KeySet`: an immutable set of public keys parsed once from a JWKS document.

use super::convert::json_module;
use crate::algorithm::{Algorithm, AlgorithmName};
use crate::error::TokenError;
use crate::keyset::KeySet;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyMapping, PyString, PyTuple};

#[pyclass(frozen, name = "KeySet", module = "mcp_oauth2")]
pub(crate) struct PyKeySet {
    pub(crate) inner: KeySet,
}

#[pymethods]
impl PyKeySet {
    #[staticmethod]
    fn from_jwks(py: Python<'_>, jwks: &Bound<'_, PyAny>) -> PyResult<Self> {
        let text: Vec<u8> = if let Ok(bytes) = jwks.cast::<PyBytes>() {
            bytes.as_bytes().to_vec()
        } else if let Ok(text) = jwks.cast::<PyString>() {
            text.to_str()?.as_bytes().to_vec()
        } else if jwks.cast::<PyMapping>().is_ok() || jwks.cast::<PyDict>().is_ok() {
            let dumped = json_module(py)?.call_method1("dumps", (jwks,))?;
            dumped.cast::<PyString>()?.to_str()?.as_bytes().to_vec()
        } else {
            return Err(PyTypeError::new_err(
                "a JWKS must be a dict, or its JSON text as str or bytes",
            ));
        };
        let inner = py.detach(|| KeySet::from_json(&text))?;
        Ok(Self { inner })
    }

    #[getter]
    fn key_ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.key_ids().collect::<Vec<_>>())
    }

    #[getter]
    fn skipped<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.skipped())
    }

    #[getter]
    fn fingerprint<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.fingerprint())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __contains__(&self, kid: &Bound<'_, PyAny>) -> bool {
        kid.cast::<PyString>()
            .ok()
            .and_then(|s| s.to_str().ok().map(|s| self.inner.contains_kid(s)))
            .unwrap_or(false)
    }

    #[pyo3(signature = (algorithm, message, signature, *, kid = None))]
    fn verify_signature(
        &self,
        py: Python<'_>,
        algorithm: &str,
        message: &[u8],
        signature: &[u8],
        kid: Option<&str>,
    ) -> PyResult<bool> {
        let alg = match Algorithm::parse(algorithm) {
            AlgorithmName::Supported(alg) => alg,
            AlgorithmName::Forbidden => return Err(TokenError::AlgorithmNotAllowed(None).into()),
            AlgorithmName::Unknown => return Err(TokenError::UnsupportedAlgorithm.into()),
        };
        match py.detach(|| self.inner.verify(kid, alg, message, signature).map(|_| ())) {
            Ok(()) => Ok(true),
            Err(TokenError::InvalidSignature) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    fn __repr__(&self) -> String {
        let kids: Vec<&str> = self.inner.key_ids().collect();
        format!(
            "KeySet(keys={}, key_ids={:?}, skipped={})",
            self.inner.len(),
            kids,
            self.inner.skipped().len()
        )
    }
}

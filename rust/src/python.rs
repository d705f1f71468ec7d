//! The pyo3 binding layer: Python types over the core, and the one place where core errors
//! become Python exceptions (classes defined in `mcp_oauth2/errors.py`).

use crate::algorithm::{Algorithm, AlgorithmName};
use crate::error::{ConfigError, JwksError, TokenError};
use crate::keyset::KeySet;
use crate::policy::{is_scope_token, IntrospectionFailure, Policy, PolicyOptions, Verified};
use crate::token::{decode_object, CompactJws};
use crate::verified_cache::{Entry, VerifiedCache};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PyMapping, PyString, PyTuple,
};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

mod errors {
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
}

impl From<TokenError> for PyErr {
    fn from(err: TokenError) -> PyErr {
        let description = err.description();
        match err {
            TokenError::Malformed(_) => errors::MalformedTokenError::new_err(description),
            TokenError::TooLarge { .. } => errors::TokenTooLargeError::new_err(description),
            TokenError::UnsupportedAlgorithm => {
                errors::UnsupportedAlgorithmError::new_err(description)
            }
            TokenError::AlgorithmNotAllowed(_) => {
                errors::AlgorithmNotAllowedError::new_err(description)
            }
            TokenError::KeyNotFound(_) => errors::KeyNotFoundError::new_err(description),
            TokenError::InvalidSignature => errors::InvalidSignatureError::new_err(description),
            TokenError::Expired { .. } => errors::ExpiredTokenError::new_err(description),
            TokenError::NotYetValid { .. } => errors::NotYetValidError::new_err(description),
            TokenError::IssuedInFuture { .. } => errors::IssuedInFutureError::new_err(description),
            TokenError::InvalidIssuer => errors::InvalidIssuerError::new_err(description),
            TokenError::InvalidAudience => errors::InvalidAudienceError::new_err(description),
            TokenError::MissingClaim(_) => errors::MissingClaimError::new_err(description),
            TokenError::InvalidClaim(_) => errors::InvalidClaimError::new_err(description),
            TokenError::InsufficientScope { required, .. } => {
                errors::InsufficientScopeError::new_err((description, required))
            }
            TokenError::InvalidType => errors::InvalidTokenTypeError::new_err(description),
            TokenError::Inactive => errors::InactiveTokenError::new_err(description),
        }
    }
}

/// Each error code with its fixed, client-safe words: where `errors.py` takes the
/// `default_description` of every class the core raises.
#[pyfunction]
fn token_error_descriptions(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let table = PyDict::new(py);
    for error in TokenError::examples() {
        table.set_item(error.code(), error.fixed_description())?;
    }
    Ok(table)
}

/// One error of every kind the core raises, as `(code, description, exception)`, the exception
/// made by the one conversion above: the tests hold the Python classes to the same codes and words.
#[pyfunction]
fn token_error_examples(py: Python<'_>) -> Vec<(&'static str, String, Py<PyAny>)> {
    TokenError::examples()
        .into_iter()
        .map(|error| {
            let (code, description) = (error.code(), error.description());
            let exception = PyErr::from(error).into_value(py).into_any();
            (code, description, exception)
        })
        .collect()
}

// The middleware's own refusal of a malformed `Authorization` header (`authorize`).
mod request_errors {
    pyo3::import_exception!(mcp_oauth2.errors, InvalidRequestError);
}

impl From<JwksError> for PyErr {
    fn from(err: JwksError) -> PyErr {
        errors::JWKSError::new_err((err.detail, err.reasons))
    }
}

impl From<ConfigError> for PyErr {
    fn from(err: ConfigError) -> PyErr {
        errors::ConfigurationError::new_err(err.0)
    }
}

/// Borrows a token's text without copying. The length is checked before any UTF-8 conversion.
fn token_text<'a>(token: &'a Bound<'_, PyAny>, max_bytes: usize) -> PyResult<&'a str> {
    let too_large = |size| TokenError::TooLarge {
        size,
        limit: max_bytes,
    };
    if let Ok(text) = token.cast::<PyString>() {
        let chars = text.len()?;
        if chars > max_bytes {
            return Err(too_large(chars).into());
        }
        return text.to_str().map_err(|_| {
            TokenError::malformed("the token contains characters outside the base64url alphabet")
                .into()
        });
    }
    if let Ok(bytes) = token.cast::<PyBytes>() {
        let raw = bytes.as_bytes();
        if raw.len() > max_bytes {
            return Err(too_large(raw.len()).into());
        }
        return std::str::from_utf8(raw).map_err(|_| {
            TokenError::malformed("the token contains characters outside the base64url alphabet")
                .into()
        });
    }
    Err(PyTypeError::new_err("the token must be str or bytes"))
}

#[pyclass(frozen, name = "KeySet", module = "mcp_oauth2")]
struct PyKeySet {
    inner: KeySet,
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

#[pyclass(
    frozen,
    freelist = 64,
    name = "AuthenticatedUser",
    module = "mcp_oauth2"
)]
struct AuthenticatedUser {
    verified: Verified,
    // Python views are built on first access and kept: a validation that nobody inspects costs
    // no dict, and a cached user object builds each view once.
    audience: PyOnceLock<Py<PyTuple>>,
    scopes: PyOnceLock<Py<PyFrozenSet>>,
    /// The claims, read-only at every depth (objects as `types.MappingProxyType`, arrays as
    /// tuples): the user object is shared through the cache, so no request may change what
    /// another one sees.
    claims: PyOnceLock<Py<PyAny>>,
    /// The effective scopes under the first `ScopeRules` that asked (by its id), sorted.
    effective: PyOnceLock<(u64, Py<PyTuple>)>,
}

impl AuthenticatedUser {
    fn new(verified: Verified) -> Self {
        Self {
            verified,
            audience: PyOnceLock::new(),
            scopes: PyOnceLock::new(),
            claims: PyOnceLock::new(),
            effective: PyOnceLock::new(),
        }
    }

    fn identity_text(&self) -> &str {
        self.verified
            .subject()
            .or(self.verified.client_id())
            .unwrap_or("")
    }

    /// The effective scopes under `rules`, sorted; computed once for the first rules that ask.
    fn effective_scopes(&self, py: Python<'_>, rules: &ScopeRules) -> PyResult<Py<PyTuple>> {
        let compute =
            || PyTuple::new(py, rules.closure_of(self.verified.scopes())).map(Bound::unbind);
        let (id, scopes) = self
            .effective
            .get_or_try_init(py, || Ok::<_, PyErr>((rules.id, compute()?)))?;
        if *id == rules.id {
            Ok(scopes.clone_ref(py))
        } else {
            compute()
        }
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

/// Scope implications and the scopes every request needs, for `TokenValidator.authorize`.
///
/// A broader scope grants the narrower ones it implies, transitively (`mcp:admin` ->
/// `mcp:write` -> `mcp:read`); the closure is computed once, here.
#[pyclass(frozen, name = "ScopeRules", module = "mcp_oauth2")]
struct ScopeRules {
    /// Tells rules apart for the effective scopes memoized on a user object.
    id: u64,
    implied: HashMap<String, Vec<String>>,
    required: Vec<String>,
}

impl ScopeRules {
    /// `granted` plus everything it implies, sorted, without repeats.
    fn closure_of<'a>(&'a self, granted: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        for scope in granted {
            out.push(scope);
            if let Some(implied) = self.implied.get(scope) {
                out.extend(implied.iter().map(String::as_str));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Keeps the first of each repeated name, in order.
fn dedup_in_order(names: &mut Vec<String>) {
    let mut index = 0;
    while index < names.len() {
        if names[..index].contains(&names[index]) {
            names.remove(index);
        } else {
            index += 1;
        }
    }
}

static SCOPE_RULES_IDS: AtomicU64 = AtomicU64::new(1);

#[pymethods]
impl ScopeRules {
    #[new]
    #[pyo3(signature = (implications = None, required = None))]
    fn new(
        implications: Option<&Bound<'_, PyAny>>,
        required: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut direct: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(implications) = implications {
            let mapping = implications.cast::<PyMapping>().map_err(|_| {
                ConfigError(
                    "implications must be a mapping of a scope to the scopes it grants, e.g. \
                     {\"mcp:admin\": [\"mcp:tools\"]}"
                        .into(),
                )
            })?;
            for item in mapping.items()?.iter() {
                let (broad, narrow): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
                let broad = broad
                    .cast::<PyString>()
                    .map_err(|_| ConfigError("implications must map scope strings".into()))?
                    .to_str()?
                    .to_owned();
                direct.insert(broad, string_list(&narrow, "implied scopes")?);
            }
        }
        let implied = direct
            .keys()
            .map(|broad| {
                let mut seen: Vec<String> = Vec::new();
                let mut stack: Vec<&String> = direct[broad].iter().collect();
                while let Some(scope) = stack.pop() {
                    if !seen.contains(scope) {
                        seen.push(scope.clone());
                        stack.extend(direct.get(scope).into_iter().flatten());
                    }
                }
                (broad.clone(), seen)
            })
            .collect();
        let mut required = match required {
            Some(value) => string_list(value, "required")?,
            None => Vec::new(),
        };
        dedup_in_order(&mut required);
        if let Some(bad) = required.iter().find(|s| !is_scope_token(s)) {
            return Err(ConfigError(format!(
                "required holds {bad:?}, which is not a scope token (RFC 6749 section 3.3)"
            ))
            .into());
        }
        Ok(Self {
            id: SCOPE_RULES_IDS.fetch_add(1, Ordering::Relaxed),
            implied,
            required,
        })
    }

    #[getter]
    fn required<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.required)
    }

    /// The granted scopes plus everything they imply.
    fn effective<'py>(
        &self,
        py: Python<'py>,
        granted: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyFrozenSet>> {
        let granted = scope_strings(granted)?;
        PyFrozenSet::new(py, self.closure_of(granted.iter().map(String::as_str)))
    }

    /// The required scopes (default: this object's) that `granted` does not cover, in order.
    #[pyo3(signature = (granted, required = None))]
    fn missing<'py>(
        &self,
        py: Python<'py>,
        granted: &Bound<'py, PyAny>,
        required: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let granted = scope_strings(granted)?;
        let effective = self.closure_of(granted.iter().map(String::as_str));
        let required = match required {
            Some(required) => scope_strings(required)?,
            None => self.required.clone(),
        };
        let mut missing: Vec<String> = required
            .into_iter()
            .filter(|s| effective.binary_search(&s.as_str()).is_err())
            .collect();
        dedup_in_order(&mut missing);
        PyTuple::new(py, missing)
    }

    fn __repr__(&self) -> String {
        let mut implied: Vec<(&String, &Vec<String>)> = self.implied.iter().collect();
        implied.sort();
        format!(
            "ScopeRules(implications={{{}}}, required={:?})",
            implied
                .iter()
                .map(|(broad, narrow)| format!("{broad:?}: {narrow:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.required
        )
    }
}

/// The strings of any iterable of scopes (a set, a tuple, a list).
fn scope_strings(scopes: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if scopes.is_instance_of::<PyString>() || scopes.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "scopes must be an iterable of strings, not a string",
        ));
    }
    scopes
        .try_iter()?
        .map(|scope| Ok(scope?.cast::<PyString>()?.to_str()?.to_owned()))
        .collect()
}

/// The token of an `Authorization` header value, as RFC 6750 section 2.1 has it: `Ok(None)`
/// for another scheme, `Err` (a client-safe reason) for Bearer credentials that are empty or
/// not one b64token.
fn bearer_credentials(header: &[u8]) -> Result<Option<&str>, &'static str> {
    // As Python's bytes.strip() (space, \t, \n, \r, \x0b, \x0c; `trim_ascii` leaves \x0b), then
    // the scheme up to the first space.
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c');
    let start = header
        .iter()
        .position(|b| !blank(b))
        .unwrap_or(header.len());
    let end = header
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |last| last + 1);
    let header = &header[start..end];
    let (scheme, credentials) = match header.iter().position(|b| *b == b' ') {
        Some(space) => (&header[..space], &header[space + 1..]),
        None => (header, &header[header.len()..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let start = credentials.iter().position(|b| *b != b' ');
    let end = credentials.iter().rposition(|b| *b != b' ');
    let credentials = match (start, end) {
        (Some(start), Some(end)) => &credentials[start..=end],
        _ => return Err("the Bearer credentials are empty"),
    };
    let body_len = credentials.len() - credentials.iter().rev().take_while(|b| **b == b'=').count();
    if body_len == 0 || !all_b64token(&credentials[..body_len]) {
        return Err(
            "the Authorization header must hold exactly one bearer token (RFC 6750 section 2.1)",
        );
    }
    // Only ASCII passed: the text is the bytes.
    Ok(std::str::from_utf8(credentials).ok())
}

/// The token of an `Authorization` header value (bytes or str): None for another scheme,
/// `InvalidRequestError` for Bearer credentials that are empty or not one b64token.
fn bearer_token_of<'a>(authorization: &'a Bound<'_, PyAny>) -> PyResult<Option<&'a str>> {
    let header = if let Ok(bytes) = authorization.cast::<PyBytes>() {
        bytes.as_bytes()
    } else if let Ok(text) = authorization.cast::<PyString>() {
        text.to_str()?.as_bytes()
    } else {
        return Err(PyTypeError::new_err(
            "the Authorization header value must be bytes or str",
        ));
    };
    bearer_credentials(header).map_err(request_errors::InvalidRequestError::new_err)
}

/// The bearer token of an `Authorization` header value, as `TokenValidator.authorize` reads it:
/// None for another scheme; `InvalidRequestError` for empty or malformed Bearer credentials.
#[pyfunction]
fn bearer_token(authorization: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    Ok(bearer_token_of(authorization)?.map(str::to_owned))
}

/// Whether every byte is a b64token character (RFC 6750 section 2.1: ALPHA, DIGIT and
/// `-._~+/`). Branch-free within blocks of 64 bytes, which the compiler vectorizes: a token of
/// 700 bytes is read in tens of nanoseconds, not hundreds.
fn all_b64token(bytes: &[u8]) -> bool {
    fn allowed(b: u8) -> bool {
        let lower = b | 0x20; // ASCII letters to lower case; no other allowed byte maps onto them
        (lower.wrapping_sub(b'a') < 26)
            | (b.wrapping_sub(b'0') < 10)
            | (b == b'-')
            | (b == b'.')
            | (b == b'_')
            | (b == b'~')
            | (b == b'+')
            | (b == b'/')
    }
    bytes
        .chunks(64)
        .all(|block| block.iter().fold(true, |ok, &b| ok & allowed(b)))
}

/// Sequence-of-strings arguments accept a single string too (`issuer="https://as"`).
fn string_list(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<String>> {
    let wrong = || {
        ConfigError(format!(
            "{name} must be a string or a sequence of strings, e.g. {name}=\"...\""
        ))
    };
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(vec![text.to_str()?.to_owned()]);
    }
    if value.is_instance_of::<PyBytes>() || value.cast::<PyMapping>().is_ok() {
        return Err(wrong().into());
    }
    let mut out = Vec::new();
    for item in value.try_iter().map_err(|_| wrong())? {
        let item = item?;
        let text = item.cast::<PyString>().map_err(|_| wrong())?;
        out.push(text.to_str()?.to_owned());
    }
    Ok(out)
}

#[pyclass(frozen, name = "TokenValidator", module = "mcp_oauth2")]
struct PyTokenValidator {
    policy: Policy,
    algorithm_names: Vec<String>,
    accepted_type_names: Option<Vec<String>>,
    cache: VerifiedCache<Py<AuthenticatedUser>>,
}

/// Tokens longer than this are validated but never cached, which bounds each entry's size.
const MAX_CACHED_TOKEN_BYTES: usize = 8192;
const DEFAULT_CACHE_SIZE: i64 = 16_384;
const MAX_CACHE_SIZE: i64 = 1 << 20;

#[pymethods]
impl PyTokenValidator {
    #[new]
    #[pyo3(signature = (
        issuer,
        audience,
        *,
        algorithms = None,
        leeway = None,
        required_claims = None,
        required_scopes = None,
        accepted_types = None,
        max_token_bytes = None,
        cache_size = None,
    ),
    text_signature = "(issuer, audience, *, algorithms=('RS256', 'ES256'), leeway=60, \
        required_claims=('exp', 'iss', 'aud', 'sub'), required_scopes=(), accepted_types=None, \
        max_token_bytes=8192, cache_size=16384)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        issuer: &Bound<'_, PyAny>,
        audience: &Bound<'_, PyAny>,
        algorithms: Option<&Bound<'_, PyAny>>,
        leeway: Option<&Bound<'_, PyAny>>,
        required_claims: Option<&Bound<'_, PyAny>>,
        required_scopes: Option<&Bound<'_, PyAny>>,
        accepted_types: Option<&Bound<'_, PyAny>>,
        max_token_bytes: Option<&Bound<'_, PyAny>>,
        cache_size: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let defaults = PolicyOptions::default();
        let integer = |value: Option<&Bound<'_, PyAny>>, name: &str, default: i64| {
            let Some(value) = value else {
                return Ok(default);
            };
            if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
                return Err(PyErr::from(ConfigError(format!(
                    "{name} must be an integer"
                ))));
            }
            value
                .extract::<i64>()
                .map_err(|_| ConfigError(format!("{name} is out of range")).into())
        };
        let algorithms = match algorithms {
            Some(value) => string_list(value, "algorithms")?,
            None => defaults.algorithms,
        };
        let accepted_types = accepted_types
            .map(|value| string_list(value, "accepted_types"))
            .transpose()?;
        let max_token_bytes = integer(
            max_token_bytes,
            "max_token_bytes",
            defaults.max_token_bytes as i64,
        )?;
        let options = PolicyOptions {
            issuers: string_list(issuer, "issuer")?,
            audiences: string_list(audience, "audience")?,
            algorithms: algorithms.clone(),
            leeway: integer(leeway, "leeway", defaults.leeway)?,
            required_claims: match required_claims {
                Some(value) => string_list(value, "required_claims")?,
                None => defaults.required_claims,
            },
            required_scopes: match required_scopes {
                Some(value) => string_list(value, "required_scopes")?,
                None => Vec::new(),
            },
            accepted_types: accepted_types.clone(),
            max_token_bytes: usize::try_from(max_token_bytes).unwrap_or(0),
        };
        let cache_size = integer(cache_size, "cache_size", DEFAULT_CACHE_SIZE)?;
        if !(0..=MAX_CACHE_SIZE).contains(&cache_size) {
            return Err(ConfigError(format!(
                "cache_size must be between 0 (no cache) and {MAX_CACHE_SIZE}; \
                 {DEFAULT_CACHE_SIZE} is the default"
            ))
            .into());
        }
        Ok(Self {
            policy: Policy::new(options)?,
            algorithm_names: algorithms,
            accepted_type_names: accepted_types,
            cache: VerifiedCache::new(usize::try_from(cache_size).unwrap_or(0)),
        })
    }

    #[getter]
    fn issuers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.policy.issuers)
    }

    #[getter]
    fn audiences<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.policy.audiences)
    }

    #[getter]
    fn algorithms<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.algorithm_names)
    }

    #[getter]
    fn leeway(&self) -> i64 {
        self.policy.leeway
    }

    #[getter]
    fn required_claims<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.policy.required_claims)
    }

    #[getter]
    fn required_scopes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.policy.required_scopes)
    }

    #[getter]
    fn accepted_types<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.accepted_type_names
            .as_ref()
            .map(|types| PyTuple::new(py, types))
            .transpose()
    }

    #[getter]
    fn max_token_bytes(&self) -> usize {
        self.policy.max_token_bytes
    }

    #[pyo3(signature = (token, keys, *, now = None))]
    fn validate(
        &self,
        py: Python<'_>,
        token: &Bound<'_, PyAny>,
        keys: &Bound<'_, PyKeySet>,
        now: Option<f64>,
    ) -> PyResult<Py<AuthenticatedUser>> {
        let text = token_text(token, self.policy.max_token_bytes)?;
        self.validated(py, text, &keys.get().inner, clock(now)?)
    }

    /// One call from an `Authorization` header value to the user and its effective scopes:
    /// the RFC 6750 b64token check, the verified-token cache, validation, and `scopes` (scope
    /// implications and the scopes every request needs). Returns `(user, effective scopes
    /// sorted)`, or None when the header names another scheme; raises `InvalidRequestError`
    /// for broken Bearer credentials, the validation errors, and `InsufficientScopeError`.
    #[pyo3(signature = (authorization, keys, scopes = None, *, now = None))]
    fn authorize<'py>(
        &self,
        py: Python<'py>,
        authorization: &Bound<'py, PyAny>,
        keys: &Bound<'py, PyKeySet>,
        scopes: Option<&Bound<'py, ScopeRules>>,
        now: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some(token) = bearer_token_of(authorization)? else {
            return Ok(None);
        };
        if token.len() > self.policy.max_token_bytes {
            return Err(TokenError::TooLarge {
                size: token.len(),
                limit: self.policy.max_token_bytes,
            }
            .into());
        }
        let user = self.validated(py, token, &keys.get().inner, clock(now)?)?;
        let effective = match scopes {
            None => {
                let mut granted: Vec<&str> = user.get().verified.scopes().collect();
                granted.sort_unstable();
                PyTuple::new(py, granted)?.unbind()
            }
            Some(rules) => {
                let rules = rules.get();
                let effective = user.get().effective_scopes(py, rules)?;
                let granted = effective.bind(py);
                let missing: Vec<String> = rules
                    .required
                    .iter()
                    .filter(|needed| !granted.contains(needed.as_str()).unwrap_or(false))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    return Err(TokenError::InsufficientScope {
                        required: rules.required.clone(),
                        missing,
                    }
                    .into());
                }
                effective
            }
        };
        Ok(Some(PyTuple::new(
            py,
            [user.into_any(), effective.into_any()],
        )?))
    }

    /// The claim rules of an RFC 7662 introspection response (`Policy::check_introspection`),
    /// read strictly from its JSON text; an answer that is not one JSON object (or repeats a
    /// member) is a `ValueError`: the endpoint misbehaved, the token is not to blame.
    #[pyo3(signature = (response, *, now = None, require_audience = true, issuer = None))]
    fn validate_introspection(
        &self,
        py: Python<'_>,
        response: &[u8],
        now: Option<f64>,
        require_audience: bool,
        issuer: Option<String>,
    ) -> PyResult<Py<AuthenticatedUser>> {
        let now = clock(now)?;
        let issuer = match issuer {
            Some(issuer) if !self.policy.issuers.contains(&issuer) => {
                return Err(PyValueError::new_err(
                    "issuer must be one of the validator's issuers",
                ))
            }
            Some(issuer) => issuer,
            None => self.policy.issuers.first().cloned().unwrap_or_default(),
        };
        let verified = self
            .policy
            .check_introspection(response, now, require_audience, &issuer)
            .map_err(|failure| match failure {
                IntrospectionFailure::Token(error) => PyErr::from(error),
                IntrospectionFailure::Response(problem) => PyValueError::new_err(format!(
                    "the introspection response {}",
                    problem.describe()
                )),
            })?;
        Py::new(py, AuthenticatedUser::new(verified))
    }

    /// The verified-token cache's counters.
    fn cache_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.cache.stats();
        let info = PyDict::new(py);
        info.set_item("size", stats.size)?;
        info.set_item("capacity", stats.capacity)?;
        info.set_item("hits", stats.hits)?;
        info.set_item("misses", stats.misses)?;
        info.set_item("evictions", stats.evictions)?;
        Ok(info)
    }

    fn cache_clear(&self) {
        self.cache.clear();
    }

    fn __repr__(&self) -> String {
        format!(
            "TokenValidator(issuer={:?}, audience={:?}, algorithms={:?}, leeway={})",
            self.policy.issuers, self.policy.audiences, self.algorithm_names, self.policy.leeway
        )
    }
}

impl PyTokenValidator {
    /// A verified user for `text`: from the verified-token cache, or validated (with the GIL
    /// released) and then cached.
    fn validated(
        &self,
        py: Python<'_>,
        text: &str,
        keys: &KeySet,
        now: f64,
    ) -> PyResult<Py<AuthenticatedUser>> {
        let caching = self.cache.capacity() > 0 && text.len() <= MAX_CACHED_TOKEN_BYTES;
        if caching {
            let hit = self
                .cache
                .get(text, keys, &self.policy, now, |user| user.clone_ref(py))?;
            if let Some(user) = hit {
                return Ok(user);
            }
        }
        // Signature verification is the slow part: let other threads run meanwhile.
        let verified = py.detach(|| self.policy.validate(text, keys, now))?;
        let (exp, nbf, key_digest) = (verified.exp, verified.nbf, verified.key_digest);
        let user = Py::new(py, AuthenticatedUser::new(verified))?;
        if caching {
            let entry = Entry {
                value: user.clone_ref(py),
                exp,
                nbf,
                key_digest,
            };
            self.cache.insert(text, entry);
        }
        Ok(user)
    }
}

/// The caller's clock (`now=`, for tests), or the system's.
fn clock(now: Option<f64>) -> PyResult<f64> {
    match now {
        Some(now) if now.is_finite() => Ok(now),
        Some(_) => Err(PyTypeError::new_err(
            "now must be a finite number of seconds",
        )),
        None => Ok(unix_now()),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[pyfunction]
#[pyo3(signature = (token, max_token_bytes = 8192))]
fn peek_header<'py>(
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
fn peek_issuer(token: &Bound<'_, PyAny>, max_token_bytes: usize) -> Option<String> {
    let text = token_text(token, max_token_bytes).ok()?;
    let jws = CompactJws::split(text, max_token_bytes).ok()?;
    match decode_object(jws.payload, "payload").ok()?.get("iss") {
        Some(Value::String(iss)) => Some(iss.clone()),
        _ => None,
    }
}

fn json_module(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static JSON: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    JSON.get_or_try_init(py, || py.import("json").map(|m| m.into_any().unbind()))
        .map(|m| m.bind(py))
}

fn mapping_proxy(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static PROXY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    PROXY
        .get_or_try_init(py, || {
            py.import("types")?
                .getattr("MappingProxyType")
                .map(Bound::unbind)
        })
        .map(|m| m.bind(py))
}

fn object_to_py<'py>(py: Python<'py>, map: &Map<String, Value>) -> PyResult<Bound<'py, PyAny>> {
    let dict = PyDict::new(py);
    for (name, value) in map {
        dict.set_item(name, value_to_py(py, value)?)?;
    }
    Ok(dict.into_any())
}

/// A JSON object as a read-only mapping whose objects and arrays are read-only too.
fn frozen_object<'py>(py: Python<'py>, map: &Map<String, Value>) -> PyResult<Bound<'py, PyAny>> {
    let dict = PyDict::new(py);
    for (name, value) in map {
        dict.set_item(name, frozen_value(py, value)?)?;
    }
    mapping_proxy(py)?.call1((dict,))
}

fn frozen_value<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    match value {
        Value::Array(items) => {
            let items = items
                .iter()
                .map(|item| frozen_value(py, item))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyTuple::new(py, items)?.into_any())
        }
        Value::Object(map) => frozen_object(py, map),
        scalar => value_to_py(py, scalar),
    }
}

fn value_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => object_to_py(py, map)?,
    })
}

#[pymodule(gil_used = false)]
fn _rust(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<PyKeySet>()?;
    m.add_class::<PyTokenValidator>()?;
    m.add_class::<AuthenticatedUser>()?;
    m.add_class::<ScopeRules>()?;
    m.add_function(wrap_pyfunction!(peek_header, m)?)?;
    m.add_function(wrap_pyfunction!(peek_issuer, m)?)?;
    m.add_function(wrap_pyfunction!(bearer_token, m)?)?;
    m.add_function(wrap_pyfunction!(token_error_descriptions, m)?)?;
    m.add_function(wrap_pyfunction!(token_error_examples, m)?)?;
    Ok(())
}

//! `TokenValidator`: a validation policy with its verified-token cache, and admission in one
//! call: from an `Authorization` header value (or a bare token) to the user and its effective
//! scopes, a token for introspection, or the issuer whose keys are needed. The rules are the
//! core's (`crate::authorization`, `crate::admission`, `crate::policy`, `crate::scopes`).

use super::admission::Referral;
use super::convert::header_bytes;
use super::convert::{clock, string_list, token_text};
use super::dpop::{PyDpopPolicy, PyProof};
use super::errors::{refusal, verdict_of};
use super::keyset::PyKeySet;
use super::scopes::{PyScopeRules, NO_RULES_ID};
use super::user::AuthenticatedUser;
use crate::admission::{classify_recorded, KeyRing, Kind, TokenFormat, Unsettled};
use crate::authorization::{credentials, Scheme};
use crate::dpop::{self, Presented, Request};
use crate::error::{ConfigError, TokenError};
use crate::policy::{IntrospectionFailure, Policy, PolicyOptions};
use crate::scopes::ScopeRules;
use crate::trace::{Check, Recorder, Silent, Step, Trace};
use crate::verified_cache::{Cached, TokenKey, VerifiedCache};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyMapping, PyString, PyTuple};

#[pyclass(frozen, name = "TokenValidator", module = "mcp_oauth2")]
pub(crate) struct PyTokenValidator {
    policy: Policy,
    algorithm_names: Vec<String>,
    accepted_type_names: Option<Vec<String>>,
    cache: VerifiedCache<Py<AuthenticatedUser>>,
    /// What this resource accepts of DPoP; None: as `off`.
    dpop: Option<Py<PyDpopPolicy>>,
}

/// Tokens longer than this are validated but never cached, which bounds each entry's size (the
/// payload a user keeps).
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
        roles_claims = None,
        dpop = None,
    ),
    text_signature = "(issuer, audience, *, algorithms=('RS256', 'ES256'), leeway=60, \
        required_claims=('exp', 'iss', 'aud', 'sub'), required_scopes=(), accepted_types=None, \
        max_token_bytes=8192, cache_size=16384, roles_claims=None, dpop=None)")]
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
        roles_claims: Option<&Bound<'_, PyAny>>,
        dpop: Option<Bound<'_, PyDpopPolicy>>,
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
            roles_claims: match roles_claims {
                Some(value) => string_list(value, "roles_claims")?,
                None => defaults.roles_claims,
            },
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
            dpop: dpop.map(Bound::unbind),
        })
    }

    #[getter]
    fn dpop(&self, py: Python<'_>) -> Option<Py<PyDpopPolicy>> {
        self.dpop.as_ref().map(|policy| policy.clone_ref(py))
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
        PyTuple::new(py, self.policy.required_scopes.required())
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

    #[getter]
    fn roles_claims<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.policy.roles_claims)
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
        let ring = KeyRing::Shared(&keys.get().inner);
        match self.verified(py, text, &ring, clock(now)?, &mut Silent)? {
            Verdict::User(user) => Ok(user),
            // A shared key set serves every issuer.
            Verdict::NoKeys(_) => Err(TokenError::InvalidIssuer.into()),
        }
    }

    /// One call from an `Authorization` header value to what becomes of the request: None when
    /// the header names a scheme this resource does not read; `(user, effective scopes
    /// sorted)` for a JWT verified with `keys` and admitted by `scopes`, with a third item, the
    /// `DPoPProof`, when the request proved possession (`dpop_proofs` are the values of its
    /// `DPoP` headers, `method` and `path` its own); a `Referral` for a token to introspect (by
    /// `token_format` and its shape) or a JWT whose issuer's keys `keys` does not hold. Raises
    /// `InvalidRequestError` for broken credentials, the validation errors (a key miss carries
    /// the issuer and key id it missed in `issuer` and `kid`), the DPoP refusals and
    /// `InsufficientScopeError`.
    #[pyo3(signature = (
        authorization,
        keys,
        scopes = None,
        *,
        token_format = "jwt",
        now = None,
        dpop_proofs = None,
        method = "GET",
        path = "/",
    ))]
    #[allow(clippy::too_many_arguments)]
    fn authorize<'py>(
        &self,
        py: Python<'py>,
        authorization: &Bound<'py, PyAny>,
        keys: &Bound<'py, PyAny>,
        scopes: Option<&Bound<'py, PyScopeRules>>,
        token_format: &str,
        now: Option<f64>,
        dpop_proofs: Option<&Bound<'py, PyAny>>,
        method: &str,
        path: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some((scheme, token)) = credentials(header_bytes(authorization)?)? else {
            return Ok(None);
        };
        let now = clock(now)?;
        let policy = self.dpop.as_ref().map(|policy| &policy.get().inner);
        let request = Request {
            method,
            path,
            access_token: token,
        };
        let presented = match scheme {
            Scheme::Bearer => dpop::present(policy, scheme, &[], &request, now)?,
            Scheme::DPoP => {
                let held = proof_values(dpop_proofs)?;
                let proofs: Vec<&[u8]> = held.iter().map(|value| value.as_bytes()).collect();
                // The proof's signature is checked with other threads running.
                py.detach(|| dpop::present(policy, scheme, &proofs, &request, now))?
            }
        };
        let Some(presented) = presented else {
            return Ok(None);
        };
        self.admit(
            py,
            token,
            keys,
            scopes,
            token_format,
            now,
            presented,
            &mut Silent,
        )
        .map(Some)
    }

    /// `authorize` for a bare token (str or bytes), as the MCP SDK hands one over: the same
    /// classification, routing, validation and scope rules, without the header.
    #[pyo3(signature = (token, keys, scopes = None, *, token_format = "jwt", now = None))]
    fn authorize_token<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
        keys: &Bound<'py, PyAny>,
        scopes: Option<&Bound<'py, PyScopeRules>>,
        token_format: &str,
        now: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let text = token_text(token, self.policy.max_token_bytes)?;
        let now = clock(now)?;
        self.admit(
            py,
            text,
            keys,
            scopes,
            token_format,
            now,
            Presented::Bearer,
            &mut Silent,
        )
    }

    /// `authorize_token`, explained: `(steps, verdict)`, where `steps` are the checks in the
    /// order made, each `(check, status, detail)` (status `pass`, `fail`, `skip` or
    /// `not_reached`; a failure's detail is the error's description), and `verdict` what
    /// `authorize_token` returns or raises, the raised error as a value. The same code path,
    /// with a recorder and without the verified-token cache (every check is made).
    #[pyo3(signature = (token, keys, scopes = None, *, token_format = "jwt", now = None))]
    fn trace<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
        keys: &Bound<'py, PyAny>,
        scopes: Option<&Bound<'py, PyScopeRules>>,
        token_format: &str,
        now: Option<f64>,
    ) -> PyResult<(Vec<StepTuple>, Bound<'py, PyAny>)> {
        // The size is a check of the trace, not a reason to raise.
        let text = token_text(token, usize::MAX)?;
        let now = clock(now)?;
        let mut trace = Trace::default();
        let presented = Presented::Bearer;
        let outcome = self.admit(
            py,
            text,
            keys,
            scopes,
            token_format,
            now,
            presented,
            &mut trace,
        );
        let verdict = verdict_of(py, outcome)?;
        let introspected = verdict
            .cast::<Referral>()
            .is_ok_and(|referral| referral.get().introspects());
        let plan = if introspected {
            &Check::TOKEN[..2]
        } else {
            &Check::TOKEN[..]
        };
        Ok((step_tuples(trace.finish(plan)), verdict))
    }

    /// `validate_introspection` and `referral.admit` in one call, for the request whose call
    /// to the endpoint fetched `response`: `(user, verdict)`, where `user` is the introspected
    /// user (to be cached for every request with this token) and `verdict` what
    /// `referral.admit(user, scopes)` returns, or the `TokenValidationError` it raises as a value
    /// (the DPoP binding or a missing scope refuses this request, not the answer). Raises as
    /// `validate_introspection` does when the answer itself is refused or is not JSON.
    #[pyo3(signature = (referral, response, *, now = None, require_audience = true, issuer = None, scopes = None))]
    #[allow(clippy::too_many_arguments)]
    fn admit_introspection<'py>(
        &self,
        py: Python<'py>,
        referral: &Bound<'py, Referral>,
        response: &[u8],
        now: Option<f64>,
        require_audience: bool,
        issuer: Option<String>,
        scopes: Option<&Bound<'py, PyScopeRules>>,
    ) -> PyResult<(Bound<'py, AuthenticatedUser>, Bound<'py, PyAny>)> {
        let asked = Asked {
            now,
            require_audience,
            issuer,
        };
        let user = self
            .introspected(py, response, asked, None, &mut Silent)?
            .cast_into::<AuthenticatedUser>()?;
        let admitted = referral.get().admit(py, &user, scopes).map(Bound::into_any);
        Ok((user, verdict_of(py, admitted)?))
    }

    /// The claim rules of an RFC 7662 introspection response (`Policy::check_introspection`),
    /// read strictly from its JSON text; an answer that is not one JSON object (or repeats a
    /// member) is a `ValueError`: the endpoint misbehaved, the token is not to blame. With
    /// `scopes`, the answer is `(user, effective scopes sorted)` as `authorize` gives it.
    #[pyo3(signature = (response, *, now = None, require_audience = true, issuer = None, scopes = None))]
    fn validate_introspection<'py>(
        &self,
        py: Python<'py>,
        response: &[u8],
        now: Option<f64>,
        require_audience: bool,
        issuer: Option<String>,
        scopes: Option<&Bound<'py, PyScopeRules>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let asked = Asked {
            now,
            require_audience,
            issuer,
        };
        self.introspected(py, response, asked, scopes, &mut Silent)
    }

    /// `validate_introspection`, explained: `(steps, verdict)` as `trace` gives them. An
    /// answer that is not one JSON object still raises `ValueError`.
    #[pyo3(signature = (response, *, now = None, require_audience = true, issuer = None, scopes = None))]
    fn trace_introspection<'py>(
        &self,
        py: Python<'py>,
        response: &[u8],
        now: Option<f64>,
        require_audience: bool,
        issuer: Option<String>,
        scopes: Option<&Bound<'py, PyScopeRules>>,
    ) -> PyResult<(Vec<StepTuple>, Bound<'py, PyAny>)> {
        let asked = Asked {
            now,
            require_audience,
            issuer,
        };
        let mut trace = Trace::default();
        let outcome = self.introspected(py, response, asked, scopes, &mut trace);
        let verdict = verdict_of(py, outcome)?;
        let plan = Check::introspection(scopes.is_some());
        Ok((step_tuples(trace.finish(&plan)), verdict))
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
    /// Classification, then routing, validation, the DPoP binding and the scope rules for one
    /// token presented as `presented` says.
    #[allow(clippy::too_many_arguments)]
    fn admit<'py, R: Recorder + Send>(
        &self,
        py: Python<'py>,
        token: &str,
        keys: &Bound<'py, PyAny>,
        scopes: Option<&Bound<'py, PyScopeRules>>,
        token_format: &str,
        now: f64,
        presented: Presented,
        rec: &mut R,
    ) -> PyResult<Bound<'py, PyAny>> {
        let format = TokenFormat::parse(token_format)?;
        if classify_recorded(token, format, self.policy.max_token_bytes, rec)? == Kind::Introspected
        {
            return Referral::refer(py, token, None, presented);
        }
        let verdict = if let Ok(shared) = keys.cast::<PyKeySet>() {
            self.verified(py, token, &KeyRing::Shared(&shared.get().inner), now, rec)?
        } else {
            let held = keys_by_issuer(keys)?;
            let mut sets = Vec::with_capacity(held.len());
            for (issuer, set) in &held {
                sets.push((issuer.to_str()?, &set.get().inner));
            }
            self.verified(py, token, &KeyRing::ByIssuer(sets), now, rec)?
        };
        match verdict {
            Verdict::User(user) => {
                dpop::bind(&presented, user.get().verified.confirmation())?;
                admitted(py, user, scopes, presented, rec).map(Bound::into_any)
            }
            Verdict::NoKeys(issuer) => Referral::refer(py, token, Some(issuer), presented),
        }
    }

    /// A verified user for `text`: from the verified-token cache (checked against the keys its
    /// issuer has in `ring`), or validated (with the GIL released) and then cached. A recorder
    /// that keeps its steps goes past the cache, both ways: every check is made, and nothing
    /// is left behind.
    fn verified<R: Recorder + Send>(
        &self,
        py: Python<'_>,
        text: &str,
        ring: &KeyRing<'_>,
        now: f64,
        rec: &mut R,
    ) -> PyResult<Verdict> {
        let caching =
            !R::KEEPS && self.cache.capacity() > 0 && text.len() <= MAX_CACHED_TOKEN_BYTES;
        let key = caching.then(|| TokenKey::of(text));
        if let Some(key) = key {
            let keys_for = |user: &Py<AuthenticatedUser>| match ring {
                KeyRing::Shared(keys) => Some(*keys),
                KeyRing::ByIssuer(_) => ring.for_issuer(user.get().verified.issuer()),
            };
            let hit = self
                .cache
                .get(key, keys_for, &self.policy, now, |user| user.clone_ref(py))?;
            if let Some(user) = hit {
                return Ok(Verdict::User(user));
            }
        }
        // Signature verification is the slow part: let other threads run meanwhile.
        let verified = match py.detach(|| self.policy.validate_recorded(text, ring, now, rec)) {
            Ok(verified) => verified,
            Err(Unsettled::NoKeys { issuer }) => return Ok(Verdict::NoKeys(issuer)),
            Err(Unsettled::Refused { error, missed }) => return Err(refusal(py, error, missed)),
        };
        let user = Py::new(py, AuthenticatedUser::new(verified))?;
        if let Some(key) = key {
            self.cache.insert(key, user.clone_ref(py));
        }
        Ok(Verdict::User(user))
    }

    /// The rules of an introspection answer, then (given `scopes`) the scope rules.
    fn introspected<'py, R: Recorder>(
        &self,
        py: Python<'py>,
        response: &[u8],
        asked: Asked,
        scopes: Option<&Bound<'py, PyScopeRules>>,
        rec: &mut R,
    ) -> PyResult<Bound<'py, PyAny>> {
        let now = clock(asked.now)?;
        let issuer = self
            .policy
            .introspection_issuer(asked.issuer.as_deref())
            .ok_or_else(|| {
                PyValueError::new_err("issuer must be one of the validator's issuers")
            })?;
        let verified = self
            .policy
            .check_introspection_recorded(response, now, asked.require_audience, issuer, rec)
            .map_err(|failure| match failure {
                IntrospectionFailure::Token(error) => PyErr::from(error),
                IntrospectionFailure::Response(problem) => PyValueError::new_err(format!(
                    "the introspection response {}",
                    problem.describe()
                )),
            })?;
        let user = Bound::new(py, AuthenticatedUser::new(verified))?;
        match scopes {
            None => Ok(user.into_any()),
            Some(rules) => admitted(py, user.unbind(), Some(rules), None, rec).map(Bound::into_any),
        }
    }
}

/// What `validate_introspection` is asked besides the answer.
struct Asked {
    now: Option<f64>,
    require_audience: bool,
    issuer: Option<String>,
}

/// A trace's step as Python sees it: `(check, status, detail)`.
type StepTuple = (&'static str, &'static str, String);

fn step_tuples(steps: Vec<Step>) -> Vec<StepTuple> {
    steps
        .into_iter()
        .map(|step| (step.check.name(), step.status.name(), step.detail))
        .collect()
}

/// A hit re-checks what the user's verified token says.
impl Cached for Py<AuthenticatedUser> {
    fn exp(&self) -> Option<f64> {
        self.get().verified.exp()
    }

    fn nbf(&self) -> Option<f64> {
        self.get().verified.nbf()
    }

    fn key_digest(&self) -> &[u8; 32] {
        &self.get().verified.key_digest
    }
}

/// What validation came to, short of a refusal.
enum Verdict {
    User(Py<AuthenticatedUser>),
    /// A trusted issuer whose keys were not given.
    NoKeys(String),
}

/// `(user, effective scopes sorted)` under `scopes` (none: the granted scopes, sorted), and the
/// `DPoPProof` third when the token came with one; or the refusal for a required scope that is
/// missing.
pub(crate) fn admitted<'py, R: Recorder>(
    py: Python<'py>,
    user: Py<AuthenticatedUser>,
    scopes: Option<&Bound<'py, PyScopeRules>>,
    presented: impl Into<Option<Presented>>,
    rec: &mut R,
) -> PyResult<Bound<'py, PyTuple>> {
    let effective = match scopes {
        Some(rules) => {
            let rules = rules.get();
            user.get().admitted(py, rules.id, &rules.rules, rec)?
        }
        None => user
            .get()
            .admitted(py, NO_RULES_ID, &ScopeRules::default(), rec)?,
    };
    match presented.into() {
        Some(Presented::Proven(proof)) => {
            let proof = Py::new(py, PyProof::from(proof))?;
            PyTuple::new(
                py,
                [user.into_any(), effective.into_any(), proof.into_any()],
            )
        }
        _ => PyTuple::new(py, [user.into_any(), effective.into_any()]),
    }
}

/// The values of a request's `DPoP` headers (a sequence of bytes; None: none), held while they
/// are read.
fn proof_values<'py>(values: Option<&Bound<'py, PyAny>>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let wrong = || PyTypeError::new_err("dpop_proofs must be a sequence of bytes (header values)");
    let Some(values) = values else {
        return Ok(Vec::new());
    };
    if values.is_instance_of::<PyBytes>() || values.is_instance_of::<PyString>() {
        return Err(wrong());
    }
    values
        .try_iter()
        .map_err(|_| wrong())?
        .map(|value| value?.cast_into::<PyBytes>().map_err(|_| wrong()))
        .collect()
}
/// The key sets of a mapping from issuer to `KeySet`, held while they are used.
fn keys_by_issuer<'py>(
    keys: &Bound<'py, PyAny>,
) -> PyResult<Vec<(Bound<'py, PyString>, Bound<'py, PyKeySet>)>> {
    let wrong = || PyTypeError::new_err("keys must be a KeySet or a mapping of issuer to KeySet");
    let items = if let Ok(dict) = keys.cast::<PyDict>() {
        dict.items()
    } else {
        keys.cast::<PyMapping>().map_err(|_| wrong())?.items()?
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        let (issuer, set): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item.extract()?;
        let issuer = issuer.cast_into::<PyString>().map_err(|_| wrong())?;
        let set = set.cast_into::<PyKeySet>().map_err(|_| wrong())?;
        out.push((issuer, set));
    }
    Ok(out)
}

//! `ScopeRules`: the scope engine (`crate::scopes`) as a Python object, for
//! `TokenValidator.authorize` and for the Python code that asks about scopes.

use super::convert::{scope_strings, string_list};
use super::user::AuthenticatedUser;
use crate::error::ConfigError;
use crate::scopes::ScopeRules;
use crate::trace::Silent;
use pyo3::prelude::*;
use pyo3::types::{PyFrozenSet, PyMapping, PyString, PyTuple};
use std::sync::atomic::{AtomicU64, Ordering};

/// Scope implications and the scopes every request needs.
#[pyclass(frozen, name = "ScopeRules", module = "mcp_oauth2")]
pub(crate) struct PyScopeRules {
    /// Tells rules apart for the verdict memoized on a user object (0: no rules at all).
    pub(crate) id: u64,
    pub(crate) rules: ScopeRules,
}

static IDS: AtomicU64 = AtomicU64::new(1);

/// What `authorize` applies when it is given no rules: the granted scopes, sorted.
pub(crate) const NO_RULES_ID: u64 = 0;

#[pymethods]
impl PyScopeRules {
    #[new]
    #[pyo3(signature = (implications = None, required = None))]
    fn new(
        implications: Option<&Bound<'_, PyAny>>,
        required: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut direct: Vec<(String, Vec<String>)> = Vec::new();
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
                direct.push((broad, string_list(&narrow, "implied scopes")?));
            }
        }
        let required = match required {
            Some(value) => string_list(value, "required")?,
            None => Vec::new(),
        };
        Ok(Self {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            rules: ScopeRules::new(direct, required, "required")?,
        })
    }

    #[getter]
    fn required<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.rules.required())
    }

    /// The granted scopes plus everything they imply.
    fn effective<'py>(
        &self,
        py: Python<'py>,
        granted: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyFrozenSet>> {
        let granted = scope_strings(granted)?;
        PyFrozenSet::new(py, self.rules.effective(granted.iter().map(String::as_str)))
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
        let effective = self.rules.effective(granted.iter().map(String::as_str));
        let needed = match required {
            Some(required) => scope_strings(required)?,
            None => self.rules.required().to_vec(),
        };
        PyTuple::new(
            py,
            ScopeRules::missing(&effective, needed.iter().map(String::as_str)),
        )
    }

    /// The user's effective scopes (sorted) under these rules, or `InsufficientScopeError`.
    fn admit(&self, py: Python<'_>, user: &Bound<'_, AuthenticatedUser>) -> PyResult<Py<PyTuple>> {
        user.get().admitted(py, self.id, &self.rules, &mut Silent)
    }

    fn __repr__(&self) -> String {
        format!(
            "ScopeRules(implications={{{}}}, required={:?})",
            self.rules
                .implications()
                .iter()
                .map(|(broad, narrow)| format!("{broad:?}: {narrow:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.rules.required()
        )
    }
}

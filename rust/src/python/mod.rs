//! The pyo3 binding layer, thin by design: Python types over the core, one file per concern.
//! No rule lives here; every decision is the core's.
//!
//! - `errors`: core errors as the Python classes of `mcp_oauth2/errors.py`;
//! - `convert`: Python values to and from the core's (texts, lists, JSON, claims);
//! - `keyset`: `KeySet`;
//! - `user`: `AuthenticatedUser`;
//! - `scopes`: `ScopeRules`;
//! - `validator`: `TokenValidator` (validation, admission, introspection answers);
//! - `admission`: `Referral` and the bearer token of a header.

mod admission;
mod convert;
mod errors;
mod keyset;
mod scopes;
mod user;
mod validator;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _rust(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<keyset::PyKeySet>()?;
    m.add_class::<validator::PyTokenValidator>()?;
    m.add_class::<user::AuthenticatedUser>()?;
    m.add_class::<scopes::PyScopeRules>()?;
    m.add_class::<admission::Referral>()?;
    m.add_function(wrap_pyfunction!(admission::bearer_token, m)?)?;
    m.add_function(wrap_pyfunction!(user::claim_values, m)?)?;
    m.add_function(wrap_pyfunction!(errors::token_error_descriptions, m)?)?;
    Ok(())
}

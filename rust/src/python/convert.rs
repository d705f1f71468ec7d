//! Python values to and from the core's: token and header texts, string lists, and JSON values
//! (plain, or read-only at every depth for a user's claims).

use crate::error::{ConfigError, TokenError};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyList, PyMapping, PyString, PyTuple};
use serde_json::{Map, Value};

/// Borrows a token's text without copying. The length is checked before any UTF-8 conversion.
pub(crate) fn token_text<'a>(token: &'a Bound<'_, PyAny>, max_bytes: usize) -> PyResult<&'a str> {
    let too_large = |size| TokenError::TooLarge {
        size,
        limit: max_bytes,
    };
    let not_text =
        || TokenError::malformed("the token contains characters outside the base64url alphabet");
    if let Ok(text) = token.cast::<PyString>() {
        let chars = text.len()?;
        if chars > max_bytes {
            return Err(too_large(chars).into());
        }
        return text.to_str().map_err(|_| not_text().into());
    }
    if let Ok(bytes) = token.cast::<PyBytes>() {
        let raw = bytes.as_bytes();
        if raw.len() > max_bytes {
            return Err(too_large(raw.len()).into());
        }
        return std::str::from_utf8(raw).map_err(|_| not_text().into());
    }
    Err(PyTypeError::new_err("the token must be str or bytes"))
}

/// The bytes of an `Authorization` header value (bytes or str), borrowed.
pub(crate) fn header_bytes<'a>(authorization: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    if let Ok(bytes) = authorization.cast::<PyBytes>() {
        Ok(bytes.as_bytes())
    } else if let Ok(text) = authorization.cast::<PyString>() {
        Ok(text.to_str()?.as_bytes())
    } else {
        Err(PyTypeError::new_err(
            "the Authorization header value must be bytes or str",
        ))
    }
}

/// Sequence-of-strings arguments accept a single string too (`issuer="https://as"`).
pub(crate) fn string_list(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<String>> {
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

/// The strings of any iterable of scopes (a set, a tuple, a list), but not of a string.
pub(crate) fn scope_strings(scopes: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
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

pub(crate) fn json_module(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static JSON: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    JSON.get_or_try_init(py, || py.import("json").map(|m| m.into_any().unbind()))
        .map(|m| m.bind(py))
}

/// `mcp_oauth2._claims.ReadOnlyDict`: a `dict` whose mutating methods raise, defined once in
/// Python so that every JSON encoder takes it for the dict it is.
fn read_only_dict(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    CLASS
        .get_or_try_init(py, || {
            py.import("mcp_oauth2._claims")?
                .getattr("ReadOnlyDict")
                .map(Bound::unbind)
        })
        .map(|class| class.bind(py))
}

/// A JSON object as a `dict`, its values converted by `value_to_py`.
pub(crate) fn object_to_py<'py>(
    py: Python<'py>,
    map: &Map<String, Value>,
) -> PyResult<Bound<'py, PyAny>> {
    let dict = PyDict::new(py);
    for (name, value) in map {
        dict.set_item(name, value_to_py(py, value)?)?;
    }
    Ok(dict.into_any())
}

/// A JSON object read-only at every depth: objects as `ReadOnlyDict`, arrays as tuples. The items
/// are stored through the C API, which the read-only methods do not guard.
pub(crate) fn frozen_object<'py>(
    py: Python<'py>,
    map: &Map<String, Value>,
) -> PyResult<Bound<'py, PyAny>> {
    let object = read_only_dict(py)?.call0()?;
    let dict = object.cast::<PyDict>()?;
    for (name, value) in map {
        dict.set_item(name, frozen_value(py, value)?)?;
    }
    Ok(object)
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

/// The caller's clock (`now=`, for tests), or the system's.
pub(crate) fn clock(now: Option<f64>) -> PyResult<f64> {
    match now {
        Some(now) if now.is_finite() => Ok(now),
        Some(_) => Err(PyTypeError::new_err(
            "now must be a finite number of seconds",
        )),
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())),
    }
}

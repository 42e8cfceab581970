//! Crossing the boundary: numpy arrays to and from [`Batch`], JSON-shaped results to Python
//! objects, and library errors to Python exceptions.

use numpy::{dtype, Element, PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use serde::de::DeserializeOwned;
use serde::Serialize;

use odeflow::runs::RunError;
use odeflow::{Batch, Real};

/// The floating-point type of a computation, chosen by the user's array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// `numpy.float32`.
    F32,
    /// `numpy.float64`.
    F64,
}

/// `obj` as a C-contiguous float array: float32 stays float32, float64 and anything
/// numeric that is not a float (lists, integers, booleans) become float64. Complex, object
/// or string data is a `TypeError` naming `what` and the dtype.
pub fn float_array<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<(Bound<'py, PyAny>, Dtype)> {
    let np = py.import("numpy")?;
    let arr = np.call_method1("asarray", (obj,)).map_err(|e| {
        PyTypeError::new_err(format!(
            "{what} must be an array of numbers; numpy cannot read it: {e}"
        ))
    })?;
    let dt = arr.getattr("dtype")?;
    let kind: String = dt.getattr("kind")?.extract()?;
    let size: usize = dt.getattr("itemsize")?.extract()?;
    let target = match (kind.as_str(), size) {
        ("f", 4) => Dtype::F32,
        ("f", _) | ("i", _) | ("u", _) | ("b", _) => Dtype::F64,
        _ => {
            return Err(PyTypeError::new_err(format!(
                "{what} has dtype {}: give a float32 or float64 array",
                dt.str()?
            )))
        }
    };
    let name = match target {
        Dtype::F32 => "float32",
        Dtype::F64 => "float64",
    };
    let arr = np.call_method1("ascontiguousarray", (arr, name))?;
    Ok((arr, target))
}

/// The shape of a numpy array (or any object with `.shape`).
pub fn shape_of(arr: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    arr.getattr("shape")?.extract()
}

/// `(2, 3)`-style text of a shape, as Python prints it.
pub fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The data of a C-contiguous float array of element type `T` as a batch of `rows` rows.
pub fn to_batch<T: Real + Element>(arr: &Bound<'_, PyAny>, rows: usize) -> PyResult<Batch<T>> {
    let a = arr.cast::<PyArrayDyn<T>>()?;
    let ro = a.readonly();
    let data = match ro.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => ro.as_array().iter().copied().collect(),
    };
    let cols = data.len().checked_div(rows).unwrap_or(0);
    Batch::from_vec(rows, cols, data).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A new numpy array of `shape` holding `data` (row-major).
pub fn to_numpy<'py, T: Element>(
    py: Python<'py>,
    data: &[T],
    shape: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    PyArray1::from_slice(py, data).reshape(shape.to_vec())
}

/// Copies the output `out` of the user's callable `what` into `dst`, which holds a value of
/// `shape`. Anything numpy can read (a torch CPU tensor, a JAX array, a list) is accepted
/// and cast to `T`; a different shape is a `ValueError` naming both shapes.
pub fn copy_output<T: Real + Element>(
    py: Python<'_>,
    out: &Bound<'_, PyAny>,
    shape: &[usize],
    dst: &mut [T],
    what: &str,
) -> PyResult<()> {
    if out.is_none() {
        return Err(PyTypeError::new_err(format!(
            "{what} returned None (NoneType): it must return an array of shape {}",
            shape_text(shape)
        )));
    }
    let arr = match out.cast::<PyArrayDyn<T>>() {
        Ok(a) => a.clone(),
        Err(_) => {
            let converted = py
                .import("numpy")?
                .call_method1("asarray", (out, dtype::<T>(py)))
                .map_err(|e| {
                    PyTypeError::new_err(format!(
                        "{what} returned a {} that is not an array of numbers ({e}); return an array of shape {}",
                        out.get_type().name().map_or_else(|_| "value".into(), |n| n.to_string()),
                        shape_text(shape)
                    ))
                })?;
            converted.cast_into::<PyArrayDyn<T>>()?
        }
    };
    if arr.shape() != shape {
        return Err(PyValueError::new_err(format!(
            "{what} returned an array of shape {} but it must have shape {}",
            shape_text(arr.shape()),
            shape_text(shape)
        )));
    }
    let ro = arr.readonly();
    match ro.as_slice() {
        Ok(s) => dst.copy_from_slice(s),
        Err(_) => dst
            .iter_mut()
            .zip(ro.as_array().iter())
            .for_each(|(d, v)| *d = *v),
    }
    Ok(())
}

/// A serialisable value as plain Python objects (dicts, lists, floats, strings), through
/// Python's `json` module.
pub fn to_python<'py, V: Serialize + ?Sized>(
    py: Python<'py>,
    value: &V,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// A Python value (dicts, lists, numbers, strings) read as `V`; `what` names it in errors.
pub fn from_python<V: DeserializeOwned>(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<V> {
    let py = obj.py();
    let text: String = py
        .import("json")?
        .call_method1("dumps", (obj,))
        .map_err(|e| PyTypeError::new_err(format!("{what} cannot be read: {e}")))?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// A path argument: `str` or any `os.PathLike`.
pub fn path_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<std::path::PathBuf> {
    if obj.is_instance_of::<PyString>() {
        return Ok(obj.extract::<String>()?.into());
    }
    let fspath = obj.py().import("os")?.call_method1("fspath", (obj,));
    match fspath {
        Ok(p) => Ok(p.extract::<String>()?.into()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{what} must be a path (str or os.PathLike), not {}",
            obj.get_type().name()?
        ))),
    }
}

/// A pipeline error as the Python exception of its kind: bad input → `ValueError`, a
/// failure while working → `RuntimeError`, a cancelled call → `KeyboardInterrupt`.
pub fn run_err(e: RunError) -> PyErr {
    match e {
        RunError::Input(m) => PyValueError::new_err(m),
        RunError::Runtime(m) => PyRuntimeError::new_err(m),
        RunError::Cancelled(m) => PyKeyboardInterrupt::new_err(m),
    }
}

/// Bad input with a message.
pub fn value_err(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

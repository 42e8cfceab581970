//! [`Verdict`]: the ODE-validity verdict as a Python object — the report of
//! `odeflow check --json` behind read-only attributes.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::Serialize;

use crate::convert;

/// The verdict of `odeflow.check_flow` and `odeflow.check`.
#[pyclass(frozen, module = "odeflow")]
pub struct Verdict {
    data: Py<PyDict>,
}

impl Verdict {
    /// Wraps a serialisable report whose top level holds the verdict's keys.
    pub fn from_report<V: Serialize>(py: Python<'_>, report: &V) -> PyResult<Self> {
        Ok(Self {
            data: convert::to_python(py, report)?
                .cast_into::<PyDict>()?
                .unbind(),
        })
    }

    fn get<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        let v = self.data.bind(py).get_item(key)?;
        Ok(v.unwrap_or_else(|| py.None().into_bound(py)))
    }
}

#[pymethods]
impl Verdict {
    /// `True` when every solver at least as accurate as the training solver keeps the
    /// score within `threshold` (beyond the noise of the test set).
    #[getter]
    fn valid<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, "valid")
    }
    /// The score (accuracy, or R² for `check_regression`) with the training solver.
    #[getter]
    fn train_accuracy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, "train_accuracy")
    }
    /// The qualifying solver with the largest drop: `method`, `steps` or `tol`,
    /// `accuracy`, `drop`, `changed` (fraction of changed predictions), `p_value`.
    #[getter]
    fn worst<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, "worst")
    }
    /// Every test solver: `method`, `order`, `steps` or `tol`, `accuracy`, `nfe`,
    /// `diverged`, `changed`, `p_value`.
    #[getter]
    fn results<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, "results")
    }
    /// The verdict in one sentence.
    #[getter]
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, "summary")
    }
    /// The largest tolerated drop.
    #[getter]
    fn threshold<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, "threshold")
    }
    /// How many solvers qualified for the comparison.
    #[getter]
    fn compared<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, "compared")
    }
    /// The training solver: `method`, `order`, `steps`, `step_size` or `tol`.
    #[getter]
    fn train<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, "train")
    }
    /// The whole report as a new dict (the JSON of `odeflow check --json`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("copy")?
            .call_method1("deepcopy", (self.data.bind(py),))
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Verdict(valid={}, train_accuracy={}, summary={})",
            self.get(py, "valid")?.repr()?,
            self.get(py, "train_accuracy")?.repr()?,
            self.get(py, "summary")?.repr()?
        ))
    }
}

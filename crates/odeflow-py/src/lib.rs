//! `odeflow._odeflow`: the Python extension of the `odeflow` package, a thin shell over the
//! library. Solving ([`solve`]), the ODE-validity check of any Python model
//! ([`flow::check_flow`], Ott et al., ICLR 2021), the run pipeline ([`runs`]), the method
//! catalogue and the inverse modified equation (Zhu et al., ICML 2022) are library calls;
//! this crate only converts arguments and results and maps errors to Python exceptions.
//!
//! Rust work runs with the GIL released ([`guarded`]); a user's callable is called back
//! with the GIL reacquired, and its exception is kept, stops the work and is re-raised
//! unchanged. A Rust panic becomes a `RuntimeError`, never an abort.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

mod convert;
mod flow;
mod runs;
mod solve;
mod verdict;

use odeflow::analysis::imde::{report_series, Expansion, ModifiedSeries, MAX_ORDER};
use odeflow::solve::method_catalogue;
use odeflow::systems::System;
use odeflow::Method;
use odeflow_cli::args::{system_and_state, FloatList};

pyo3::create_exception!(
    odeflow,
    SolveError,
    PyRuntimeError,
    "A solve that failed mid-run (step budget exhausted, step-size underflow, a NaN). \
     Attributes: `t` (time reached), `h` (step size of the failing step), `step` (its index), \
     `reason` (why, in words) and `partial` (the solution up to `t`, a `Solution`)."
);

/// Runs `work` with the GIL released and turns a panic into a `RuntimeError`.
pub(crate) fn guarded<R: Send>(py: Python<'_>, work: impl FnOnce() -> R + Send) -> PyResult<R> {
    py.detach(|| catch_unwind(AssertUnwindSafe(work)))
        .map_err(|payload| {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            PyRuntimeError::new_err(format!(
                "internal error in odeflow (please report it): {msg}"
            ))
        })
}

/// The method catalogue: one dict per method with `name`, `order`, `embedded_order`,
/// `stages`, `kind` (explicit, embedded, symplectic, implicit), `fsal`, `dense_output` and
/// `aliases` — the JSON of `odeflow methods`.
#[pyfunction]
fn methods(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    convert::to_python(py, &method_catalogue())
}

/// The inverse modified equation (IMDE, Zhu et al., ICML 2022) of `method` with step `h` for
/// the built-in `system` at the point `at` (default: the system's demo state): the field
/// `f_h = Σ_{k≤order} h^k f_k` that `method` with step `h` integrates exactly, i.e. what a
/// Neural ODE trained with that solver learns. `expansion="forward"` gives the classical
/// modified equation instead.
///
/// Returns a dict with the keys of `odeflow imde --json`: `system`, `state_names`,
/// `method`, `expansion`, `h`, `order`, `at`, `field` (f(y)), `imde` (the truncated series),
/// `term_norms` (‖h^k f_k(y)‖₂) and `terms` (f_0(y), …, f_K(y)).
#[pyfunction]
#[pyo3(signature = (system, method, h, *, order=3, at=None, expansion="inverse"))]
fn imde<'py>(
    py: Python<'py>,
    system: &str,
    method: &str,
    h: f64,
    order: usize,
    at: Option<Vec<f64>>,
    expansion: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let given = at.map(FloatList);
    let (sys, at) = system_and_state(system, given.as_ref(), "at").map_err(convert::value_err)?;
    if order > MAX_ORDER {
        return Err(PyValueError::new_err(format!(
            "order {order} is too large: the series is computed up to order {MAX_ORDER}"
        )));
    }
    let expansion = match expansion {
        "inverse" => Expansion::Inverse,
        "forward" => Expansion::Forward,
        other => {
            return Err(PyValueError::new_err(format!(
                "expansion '{other}' is unknown: use 'inverse' or 'forward'"
            )))
        }
    };
    let method = Method::from_name(method).map_err(convert::value_err)?;
    let report = guarded(py, || {
        let series = ModifiedSeries::for_method(expansion, &method, order)?;
        report_series(&sys, &series, h, &at)
    })?
    .map_err(convert::value_err)?;
    let out = convert::to_python(py, &report)?;
    out.set_item("system", sys.name())?;
    out.set_item("state_names", sys.state_names())?;
    Ok(out)
}

/// The extension module `odeflow._odeflow` (re-exported by the `odeflow` package).
#[pymodule]
fn _odeflow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("SolveError", m.py().get_type::<SolveError>())?;
    m.add_class::<solve::Solution>()?;
    m.add_class::<flow::Verdict>()?;
    m.add_function(wrap_pyfunction!(methods, m)?)?;
    m.add_function(wrap_pyfunction!(imde, m)?)?;
    m.add_function(wrap_pyfunction!(solve::solve, m)?)?;
    m.add_function(wrap_pyfunction!(flow::check_flow, m)?)?;
    m.add_function(wrap_pyfunction!(flow::check_regression, m)?)?;
    m.add_function(wrap_pyfunction!(runs::train, m)?)?;
    m.add_function(wrap_pyfunction!(runs::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(runs::check, m)?)?;
    m.add_function(wrap_pyfunction!(runs::load_data, m)?)?;
    Ok(())
}

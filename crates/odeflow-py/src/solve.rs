//! `odeflow.solve`: one ODE solve with any method of the catalogue, for a built-in system
//! or a Python callable `f(t, y) -> dy` on numpy arrays; the result is a [`Solution`], and
//! a failure mid-run raises `odeflow.SolveError` carrying the partial solution.

use numpy::Element;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use odeflow::solve::{
    method_catalogue, solve as solve_rhs, solve_split, MethodKind, Rhs, SaveAt, SolveOptions,
    Stepping,
};
use odeflow::systems::{BuiltinSystem, System, SystemField};
use odeflow::{Batch, Method, Real};
use odeflow_cli::args::{system_and_state, FloatList};

use crate::convert::{self, copy_output, to_batch, to_numpy, Dtype};
use crate::{guarded, SolveError};

/// A Python callable `f(t, y) -> dy` as the right-hand side of a solve. Each evaluation
/// reacquires the GIL, hands `y` to Python as a numpy array of the user's shape and copies
/// the answer back. The first exception (raised by the callable, or a wrong output shape) is
/// kept in `error`; from then on the field returns NaN without calling Python, which stops
/// the solve at its next finiteness check, and the caller re-raises the kept exception.
pub struct PyField<'a> {
    /// The callable.
    pub func: &'a Py<PyAny>,
    /// The shape of one sample (`batched`) or of the whole state.
    pub shape: &'a [usize],
    /// Whether the state's rows are a leading batch dimension added to `shape`.
    pub batched: bool,
    /// Where the first error goes.
    pub error: &'a mut Option<PyErr>,
    /// Name of the callable in messages (`field`, `f`).
    pub what: &'static str,
}

impl PyField<'_> {
    /// The numpy shape of a state with `rows` rows.
    pub fn full_shape(&self, rows: usize) -> Vec<usize> {
        if self.batched {
            std::iter::once(rows)
                .chain(self.shape.iter().copied())
                .collect()
        } else {
            self.shape.to_vec()
        }
    }
}

impl<T: Real + Element> Rhs<Batch<T>> for PyField<'_> {
    fn eval(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        if self.error.is_none() {
            let shape = self.full_shape(y.rows());
            let done = Python::attach(|py| -> PyResult<()> {
                let arr = to_numpy(py, y.as_slice(), &shape)?;
                let out = self.func.bind(py).call1((t, arr))?;
                copy_output(py, &out, &shape, dy.as_mut_slice(), self.what)
            });
            match done {
                Ok(()) => return,
                Err(e) => *self.error = Some(e),
            }
        }
        dy.as_mut_slice().fill(T::nan());
    }
}

/// The result of `odeflow.solve`.
#[pyclass(frozen, get_all, module = "odeflow")]
pub struct Solution {
    /// Saved times, shape `(n,)`.
    t: Py<PyAny>,
    /// Saved states, shape `(n, *y0.shape)`.
    y: Py<PyAny>,
    /// The state reached (at `t_final`), shape `y0.shape`.
    y_final: Py<PyAny>,
    /// The time reached: `t1`, or where a failed solve stopped.
    t_final: f64,
    /// `nfe`, `steps` (attempts), `accepted`, `rejected`, `h_min`, `h_max`,
    /// `implicit_iterations`.
    stats: Py<PyDict>,
}

#[pymethods]
impl Solution {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let shape: Vec<usize> = self.y.bind(py).getattr("shape")?.extract()?;
        Ok(format!(
            "Solution(t_final={}, y: {}, stats={})",
            self.t_final,
            convert::shape_text(&shape),
            self.stats.bind(py).repr()?
        ))
    }
}

fn solution<T: Real + Element>(
    py: Python<'_>,
    sol: &odeflow::Solution<Batch<T>>,
    shape: &[usize],
) -> PyResult<Solution> {
    let n = sol.t.len();
    let mut data = Vec::with_capacity(n * sol.y_final.as_slice().len());
    for y in &sol.y {
        data.extend_from_slice(y.as_slice());
    }
    let mut full = vec![n];
    full.extend_from_slice(shape);
    let stats = convert::to_python(py, &sol.stats)?.cast_into::<PyDict>()?;
    Ok(Solution {
        t: to_numpy(py, &sol.t, &[n])?.into_any().unbind(),
        y: to_numpy(py, &data, &full)?.into_any().unbind(),
        y_final: to_numpy(py, sol.y_final.as_slice(), shape)?
            .into_any()
            .unbind(),
        t_final: sol.t_final,
        stats: stats.unbind(),
    })
}

/// What to solve: a built-in system, or a Python callable with a shape.
enum Field {
    Builtin(BuiltinSystem),
    Python(Py<PyAny>),
}

/// Solves in `T`; a kept Python exception wins over the solver's own failure.
fn run<T: Real + Element>(
    py: Python<'_>,
    field: &Field,
    y0: Batch<T>,
    shape: &[usize],
    method: &Method,
    opts: &SolveOptions,
) -> PyResult<Solution>
where
    SystemField<BuiltinSystem>: Rhs<Batch<T>> + odeflow::solve::SplitRhs<Batch<T>>,
{
    let mut error = None;
    let result = match field {
        Field::Builtin(system) => {
            let mut f = SystemField(system.clone());
            guarded(py, || solve_split(method, &mut f, &y0, opts))?
        }
        Field::Python(func) => {
            let mut f = PyField {
                func,
                shape,
                batched: false,
                error: &mut error,
                what: "f",
            };
            guarded(py, || solve_rhs(method, &mut f, &y0, opts))?
        }
    };
    if let Some(e) = error {
        return Err(e);
    }
    match result {
        Ok(sol) => solution(py, &sol, shape),
        Err(odeflow::SolveError::Invalid(e)) => Err(convert::value_err(e)),
        Err(odeflow::SolveError::Failed(f)) => {
            let msg = format!(
                "solver failed at t = {}, h = {:e}, step {}: {}",
                f.t, f.h, f.step, f.reason
            );
            let err = SolveError::new_err(msg);
            let v = err.value(py);
            v.setattr("t", f.t)?;
            v.setattr("h", f.h)?;
            v.setattr("step", f.step)?;
            v.setattr("reason", f.reason.to_string())?;
            v.setattr("partial", solution(py, &f.partial, shape)?)?;
            Err(err)
        }
    }
}

/// The stepping of the arguments: a fixed grid from `dt` or `steps`, else adaptive
/// stepping for embedded pairs (rtol 1e-6, atol 1e-9 by default), as `odeflow solve`.
fn stepping(
    method: &Method,
    steps: Option<usize>,
    dt: Option<f64>,
    rtol: Option<f64>,
    atol: Option<f64>,
) -> PyResult<Stepping> {
    let fixed = match (steps, dt) {
        (Some(_), Some(_)) => {
            return Err(PyValueError::new_err(
                "give steps or dt, not both: they both fix the grid",
            ))
        }
        (Some(n), None) => Some(Stepping::FixedCount(n)),
        (None, Some(h)) => Some(Stepping::FixedStep(h)),
        (None, None) => None,
    };
    if let Some(s) = fixed {
        if rtol.is_some() || atol.is_some() {
            return Err(PyValueError::new_err(
                "rtol/atol need adaptive stepping, but steps or dt fixes the grid: give one or the other",
            ));
        }
        return Ok(s);
    }
    if !method.is_adaptive() {
        let embedded: Vec<String> = method_catalogue()
            .into_iter()
            .filter(|m| m.kind == MethodKind::Embedded)
            .map(|m| m.name)
            .collect();
        return Err(PyValueError::new_err(format!(
            "method '{}' is fixed-step: give dt or steps, or pick an embedded pair for adaptive stepping ({})",
            method.name(),
            embedded.join(", ")
        )));
    }
    Ok(Stepping::Adaptive(odeflow::solve::AdaptiveOptions::new(
        rtol.unwrap_or(1e-6),
        atol.unwrap_or(1e-9),
    )))
}

/// Solves `y' = f(t, y)`, `y(t0) = y0` on `[t0, t1]` with `method` (any name or alias of
/// `odeflow.methods()`).
///
/// `f` is a built-in system name (`"pendulum"`, `"harmonic"`, `"kepler"`, `"lorenz"`,
/// `"linear"`, `"damped-cubic"`, `"lotka-volterra"`, `"van-der-pol"`; `y0` defaults to its
/// demo state, and may carry a leading batch dimension) or a Python callable
/// `f(t, y) -> dy` on numpy arrays of `y0`'s shape (a leading batch dimension is the
/// user's business). The computation is float32 when `y0` is float32, float64 otherwise.
///
/// Stepping: `steps=N` (N equal steps) or `dt=H` (step H, the last one shortened) fixes the
/// grid; otherwise an embedded pair steps adaptively with `rtol` (1e-6) and `atol` (1e-9).
/// `t_eval` saves at those times (adaptive solves use dense output), otherwise every step
/// is saved. `max_steps` bounds the attempts of an adaptive solve (default 100000) or the
/// grid (default 1000000).
///
/// Returns a `Solution` with `t` (shape `(n,)`), `y` (shape `(n, *y0.shape)`), `y_final`,
/// `t_final` and `stats` (`nfe`, `steps`, `accepted`, `rejected`, `h_min`, `h_max`,
/// `implicit_iterations`). A solver failure raises `odeflow.SolveError` with `.t`, `.h`,
/// `.step`, `.reason` and `.partial`; an exception raised by `f` propagates unchanged.
#[pyfunction]
#[pyo3(signature = (f, y0=None, t0=0.0, t1=1.0, *, method="dopri5", steps=None, dt=None, rtol=None, atol=None, t_eval=None, max_steps=None))]
#[allow(clippy::too_many_arguments)]
pub fn solve(
    py: Python<'_>,
    f: &Bound<'_, PyAny>,
    y0: Option<&Bound<'_, PyAny>>,
    t0: f64,
    t1: f64,
    method: &str,
    steps: Option<usize>,
    dt: Option<f64>,
    rtol: Option<f64>,
    atol: Option<f64>,
    t_eval: Option<Vec<f64>>,
    max_steps: Option<usize>,
) -> PyResult<Solution> {
    let method = Method::from_name(method).map_err(convert::value_err)?;
    let (field, arr, dtype) = if let Ok(name) = f.extract::<String>() {
        let first = match y0 {
            None => None,
            Some(y) => {
                let (a, _) = convert::float_array(py, y, "y0")?;
                let flat: Vec<f64> = a.call_method0("ravel")?.extract()?;
                let width = convert::shape_of(&a)?.last().copied().unwrap_or(0);
                Some(FloatList(flat[..width.min(flat.len())].to_vec()))
            }
        };
        let (system, demo) =
            system_and_state(&name, first.as_ref(), "y0").map_err(convert::value_err)?;
        if matches!(method, Method::Splitting(_)) && !system.is_separable() {
            return Err(PyValueError::new_err(format!(
                "method '{}' is a splitting method for separable Hamiltonian systems, but system '{}' is not separable; use it with harmonic, pendulum or kepler, or pick another method",
                method.name(),
                system.name()
            )));
        }
        let (a, dtype) = match y0 {
            Some(y) => convert::float_array(py, y, "y0")?,
            None => convert::float_array(py, &demo.into_pyobject(py)?, "y0")?,
        };
        if convert::shape_of(&a)?.len() > 2 {
            return Err(PyValueError::new_err(format!(
                "y0 of shape {} has too many dimensions for system '{}': give (dim,) or (batch, dim)",
                convert::shape_text(&convert::shape_of(&a)?),
                system.name()
            )));
        }
        (Field::Builtin(system), a, dtype)
    } else if f.is_callable() {
        let Some(y) = y0 else {
            return Err(PyTypeError::new_err(
                "y0 is required when f is a callable: give the initial state as an array",
            ));
        };
        let (a, dtype) = convert::float_array(py, y, "y0")?;
        (Field::Python(f.clone().unbind()), a, dtype)
    } else {
        return Err(PyTypeError::new_err(format!(
            "f must be a built-in system name or a callable f(t, y) -> dy, not {}",
            f.get_type().name()?
        )));
    };
    let shape = convert::shape_of(&arr)?;
    let rows = if shape.len() >= 2 { shape[0] } else { 1 };
    let stepping = stepping(&method, steps, dt, rtol, atol)?;
    let adaptive = matches!(stepping, Stepping::Adaptive(_));
    let max = max_steps.unwrap_or(if adaptive { 100_000 } else { 1_000_000 });
    let opts = SolveOptions {
        t0,
        t1,
        stepping,
        save: t_eval.map_or(SaveAt::Steps, SaveAt::Times),
        max_steps: max,
    };
    opts.validate().map_err(convert::value_err)?;
    if !adaptive {
        let n = match opts.stepping {
            Stepping::FixedCount(n) => n as f64,
            Stepping::FixedStep(h) => ((t1 - t0).abs() / h).ceil(),
            Stepping::Adaptive(_) => 0.0,
        };
        if n > max as f64 {
            return Err(PyValueError::new_err(format!(
                "the grid on [{t0}, {t1}] takes {n:.0} steps, more than max_steps {max}; raise max_steps or take fewer, larger steps"
            )));
        }
    }
    match dtype {
        Dtype::F32 => run::<f32>(py, &field, to_batch(&arr, rows)?, &shape, &method, &opts),
        Dtype::F64 => run::<f64>(py, &field, to_batch(&arr, rows)?, &shape, &method, &opts),
    }
}

//! `odeflow.check_flow`: the ODE-validity verdict of Ott et al. (ICLR 2021) for a model
//! written in Python. The user's `field(t, z)` and `head(z)` become a
//! [`odeflow::runs::FlowModel`] ([`PyFlow`]), and [`odeflow::runs::check_classifier`] (or
//! [`odeflow::runs::check::check_regressor`]) does the rest with the GIL released: the same
//! grid, scores and verdict as `odeflow check`.

use std::sync::Mutex;

use numpy::Element;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use serde::Serialize;

use odeflow::analysis::solver_dependence::Verdict as LibVerdict;
use odeflow::data::Dataset;
use odeflow::runs::check::check_regressor;
use odeflow::runs::evaluate::{build_grid, default_check_grid, EvalReport};
use odeflow::runs::{check_classifier, FlowModel, Observer};
use odeflow::solve::{solve, SaveAt, SolveOptions, SolverSpec, Stats};
use odeflow::{Batch, Method, Real};

use crate::convert::{self, copy_output, shape_text, to_batch, to_numpy, Dtype};
use crate::guarded;
use crate::solve::PyField;
pub use crate::verdict::Verdict;

/// The first exception raised by the user's code (or a Ctrl-C), shared by the model and the
/// observer: once set, the model stops calling Python and the observer cancels the call.
#[derive(Default)]
pub struct Stop(Mutex<Option<PyErr>>);

impl Stop {
    fn set(&self, e: PyErr) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }
    fn is_set(&self) -> bool {
        self.0.lock().map_or(true, |s| s.is_some())
    }
    /// Checks for Ctrl-C (keeping the `KeyboardInterrupt`); `true` once anything stopped
    /// the work.
    pub fn poll_signals(&self) -> bool {
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            self.set(e);
        }
        self.is_set()
    }
    /// The kept exception, if any.
    pub fn take(&self) -> Option<PyErr> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A Python model `head(ODE(field)(x))` as a [`FlowModel`].
pub struct PyFlow<'a> {
    field: Py<PyAny>,
    head: Option<Py<PyAny>>,
    sample_shape: Vec<usize>,
    stop: &'a Stop,
}

impl PyFlow<'_> {
    fn head<T: Real + Element>(&self, z: Batch<T>) -> PyResult<Batch<T>> {
        let Some(head) = &self.head else {
            return Ok(z);
        };
        Python::attach(|py| {
            let mut shape = vec![z.rows()];
            shape.extend_from_slice(&self.sample_shape);
            let out = head
                .bind(py)
                .call1((to_numpy(py, z.as_slice(), &shape)?,))?;
            let out_shape: Vec<usize> = out
                .getattr("shape")
                .and_then(|s| s.extract())
                .unwrap_or_default();
            if out_shape.len() != 2 || out_shape[0] != z.rows() {
                return Err(PyValueError::new_err(format!(
                    "head returned an array of shape {} for a batch of shape {}: return one row of outputs per sample, shape ({}, classes)",
                    shape_text(&out_shape),
                    shape_text(&shape),
                    z.rows()
                )));
            }
            let mut logits = Batch::zeros(out_shape[0], out_shape[1]);
            copy_output(py, &out, &out_shape, logits.as_mut_slice(), "head")?;
            Ok(logits)
        })
    }
}

impl<T: Real + Element> FlowModel<T> for PyFlow<'_> {
    fn outputs(
        &mut self,
        x: &Batch<T>,
        method: &Method,
        opts: &SolveOptions,
    ) -> Result<(Batch<T>, Stats), String> {
        const STOPPED: &str = "stopped: the Python code raised an exception";
        if self.stop.is_set() {
            return Err(STOPPED.into());
        }
        let o = SolveOptions {
            save: SaveAt::Final,
            ..opts.clone()
        };
        let mut error = None;
        let mut f = PyField {
            func: &self.field,
            shape: &self.sample_shape,
            batched: true,
            error: &mut error,
            what: "field",
        };
        let sol = solve(method, &mut f, x, &o);
        if let Some(e) = error {
            self.stop.set(e);
            return Err(STOPPED.into());
        }
        let sol = sol.map_err(|e| e.to_string())?;
        match self.head(sol.y_final) {
            Ok(out) => Ok((out, sol.stats)),
            Err(e) => {
                self.stop.set(e);
                Err(STOPPED.into())
            }
        }
    }
}

/// Cancels the library call once Python code failed or Ctrl-C was pressed.
struct StopObserver<'a>(&'a Stop);

impl Observer for StopObserver<'_> {
    fn cancelled(&self) -> bool {
        self.0.poll_signals()
    }
}

/// The training solver of the arguments: a method with exactly one of steps, step size or
/// tolerance.
fn train_spec(
    method: &str,
    steps: Option<usize>,
    step_size: Option<f64>,
    tol: Option<f64>,
) -> PyResult<SolverSpec> {
    let spec = match (steps, step_size, tol) {
        (Some(n), None, None) => SolverSpec::fixed(method, n),
        (None, Some(h), None) => SolverSpec::step_size(method, h),
        (None, None, Some(t)) => SolverSpec::adaptive(method, t),
        _ => {
            return Err(PyValueError::new_err(format!(
                "give exactly one of train_steps, train_step_size, train_tol for the training solver '{method}'"
            )))
        }
    };
    let spec = spec.map_err(convert::value_err)?;
    if let Some(n) = spec.steps {
        let budget = odeflow::budget::Budget::from_env().map_err(convert::value_err)?;
        budget
            .check_steps(&format!("train_steps {n}"), n as u64)
            .map_err(convert::value_err)?;
    }
    Ok(spec)
}

/// The test grid: the CLI's default check grid for the training solver, or
/// `test_methods` × `test_steps` (× `test_tols` for adaptive methods), each defaulting to
/// what the default grid uses.
fn test_grid(
    train: &SolverSpec,
    methods: Option<Vec<String>>,
    steps: Option<Vec<usize>>,
    tols: Option<Vec<f64>>,
) -> PyResult<Option<Vec<SolverSpec>>> {
    if methods.is_none() && steps.is_none() && tols.is_none() {
        return Ok(None);
    }
    let default = default_check_grid(train);
    let mut dm: Vec<String> = Vec::new();
    let (mut ds, mut dt): (Vec<usize>, Vec<f64>) = (Vec::new(), Vec::new());
    for s in &default {
        if !dm.contains(&s.method) {
            dm.push(s.method.clone());
        }
        match (s.tol, s.steps) {
            (Some(t), _) if !dt.contains(&t) => dt.push(t),
            (None, Some(n)) if !ds.contains(&n) => ds.push(n),
            _ => {}
        }
    }
    let grid = build_grid(
        &methods.unwrap_or(dm),
        &steps.unwrap_or(ds),
        &tols.unwrap_or(dt),
    )
    .map_err(convert::run_err)?;
    Ok(Some(grid))
}

/// Checks the common arguments and gives the interval.
fn interval(t0: f64, t1: f64, batch_size: usize) -> PyResult<(f64, f64)> {
    SolveOptions::steps(t0, t1, 1)
        .validate()
        .map_err(convert::value_err)?;
    if batch_size == 0 {
        return Err(PyValueError::new_err(
            "batch_size 0 is invalid: give at least 1",
        ));
    }
    Ok((t0, t1))
}

fn callable(obj: Py<PyAny>, py: Python<'_>, what: &str, sig: &str) -> PyResult<Py<PyAny>> {
    if obj.bind(py).is_callable() {
        Ok(obj)
    } else {
        Err(PyTypeError::new_err(format!(
            "{what} must be a callable {sig}, not {}",
            obj.bind(py).get_type().name()?
        )))
    }
}

/// Integer class labels, one per sample.
fn labels(py: Python<'_>, y: &Bound<'_, PyAny>, n: usize) -> PyResult<Vec<usize>> {
    let arr = py.import("numpy")?.call_method1("asarray", (y,))?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    if kind != "i" && kind != "u" {
        return Err(PyTypeError::new_err(format!(
            "y has dtype {}: give integer class labels (use check_regression for real-valued targets)",
            arr.getattr("dtype")?.str()?
        )));
    }
    let shape = convert::shape_of(&arr)?;
    if shape != [n] {
        return Err(PyValueError::new_err(format!(
            "y has shape {} but x holds {n} samples: give one label per sample, shape ({n},)",
            shape_text(&shape)
        )));
    }
    let values: Vec<i64> = arr.call_method0("tolist")?.extract()?;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            usize::try_from(v).map_err(|_| {
                PyValueError::new_err(format!(
                    "y[{i}] = {v} is a negative label: class labels are 0, 1, …"
                ))
            })
        })
        .collect()
}

/// The report of `check_flow`: the verdict's keys at the top level, the training solver
/// and every test row.
#[derive(Serialize)]
struct FlowReport<'a> {
    #[serde(flatten)]
    verdict: &'a LibVerdict,
    train: &'a SolverSpec,
    dtype: &'a str,
    samples: usize,
    results: &'a [odeflow::runs::EvalRow],
}

fn finish(
    py: Python<'_>,
    stop: &Stop,
    result: Checked,
    plot: Option<&Bound<'_, PyAny>>,
) -> PyResult<Verdict> {
    if let Some(e) = stop.take() {
        return Err(e);
    }
    let (v, report) = result.map_err(convert::run_err)?;
    if let Some(p) = plot {
        let path = convert::path_arg(p, "plot")?;
        let fig = odeflow_cli::plot::runs::check_figure(&report, &v, "score by test solver");
        guarded(py, || odeflow_cli::plot::save(&fig, &path))?.map_err(|e| match e {
            odeflow_cli::error::CliError::Input(m) => PyValueError::new_err(m),
            other => pyo3::exceptions::PyOSError::new_err(other.to_string()),
        })?;
    }
    Verdict::from_report(
        py,
        &FlowReport {
            verdict: &v,
            train: &report.train.solver,
            dtype: &report.dtype,
            samples: report.samples,
            results: &report.results,
        },
    )
}

/// What a check compares: the training solver, the test grid (`None`: the default), the
/// interval, the threshold and the evaluation batch size.
struct Plan<'a> {
    train: &'a SolverSpec,
    grid: Option<&'a [SolverSpec]>,
    interval: (f64, f64),
    threshold: f64,
    batch: usize,
}

type Checked = Result<(LibVerdict, EvalReport), odeflow::runs::RunError>;

fn check_classifier_in<T: Real + Element>(
    py: Python<'_>,
    mut model: PyFlow<'_>,
    x: &Bound<'_, PyAny>,
    labels: Vec<usize>,
    plan: &Plan<'_>,
) -> PyResult<Checked> {
    let n = labels.len();
    let classes = labels.iter().max().map_or(1, |m| m + 1).max(2);
    let inputs = to_batch::<T>(x, n)?;
    let test = Dataset::new(inputs, labels, model.sample_shape.clone(), classes)
        .map_err(convert::value_err)?;
    let stop = model.stop;
    guarded(py, || {
        check_classifier(
            &mut model,
            "python",
            &test,
            plan.train,
            plan.grid,
            plan.interval,
            plan.threshold,
            plan.batch,
            &StopObserver(stop),
        )
    })
}

/// The ODE-validity verdict (Ott et al., ICLR 2021) for a Neural ODE classifier written in
/// any framework: is the model trained with this solver a real ODE flow, or does it only
/// work with its training solver?
///
/// The model is `head(z(t1))` where `z' = field(t, z)`, `z(t0) = x`:
///
/// * `field(t, z) -> dz`: any Python callable on numpy arrays shaped like a batch of `x`,
///   `(B, *x.shape[1:])` (wrap a torch module as
///   `lambda t, z: f(t, torch.from_numpy(z)).detach().numpy()`);
/// * `head(z) -> logits` of shape `(B, classes)`; default: `z` itself, flattened;
/// * `x`: the test inputs, shape `(N, ...)`, float32 or float64 (the computation follows);
///   `y`: their integer labels, shape `(N,)`.
///
/// The training solver is `train_method` with exactly one of `train_steps` (steps on
/// `[t0, t1]`), `train_step_size` or `train_tol` (adaptive). The test solvers are, by
/// default, the grid of `odeflow check`: the training method and the next higher-order
/// methods (midpoint, rk4, dopri5) at 1, 2, 4, 8 and 16 times the training steps (or at
/// the training tolerance and up to 10⁴ times tighter); `test_methods`, `test_steps` and
/// `test_tols` replace parts of it. Every solver at least as accurate as the training
/// solver (same or higher order, same or more steps, same or tighter tolerance) must keep
/// the test accuracy within `threshold` of the training solver's, beyond the noise of the
/// test set (McNemar's exact test); otherwise the model is not a valid ODE flow.
///
/// Returns a `Verdict` (`valid`, `train_accuracy`, `worst`, `results`, `summary`,
/// `to_dict()`); `plot="check.png"` (or `.svg`) also draws the check plot. The GIL is
/// released while odeflow works; an exception raised by `field` or `head` stops the work
/// and propagates unchanged, and an output of the wrong shape is a `ValueError` naming both
/// shapes.
///
/// Example: `v = odeflow.check_flow(field, x, y, train_method="euler", train_steps=2)`,
/// then `print(v.summary)`.
#[pyfunction]
#[pyo3(signature = (field, x, y, *, head=None, train_method, train_steps=None, train_step_size=None, train_tol=None, test_methods=None, test_steps=None, test_tols=None, threshold=0.02, t0=0.0, t1=1.0, batch_size=1000, plot=None))]
#[allow(clippy::too_many_arguments)]
pub fn check_flow(
    py: Python<'_>,
    field: Py<PyAny>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    head: Option<Py<PyAny>>,
    train_method: &str,
    train_steps: Option<usize>,
    train_step_size: Option<f64>,
    train_tol: Option<f64>,
    test_methods: Option<Vec<String>>,
    test_steps: Option<Vec<usize>>,
    test_tols: Option<Vec<f64>>,
    threshold: f64,
    t0: f64,
    t1: f64,
    batch_size: usize,
    plot: Option<&Bound<'_, PyAny>>,
) -> PyResult<Verdict> {
    let field = callable(field, py, "field", "field(t, z) -> dz")?;
    let head = head
        .map(|h| callable(h, py, "head", "head(z) -> logits"))
        .transpose()?;
    let (arr, dtype) = convert::float_array(py, x, "x")?;
    let shape = convert::shape_of(&arr)?;
    if shape.len() < 2 || shape[0] == 0 {
        return Err(PyValueError::new_err(format!(
            "x has shape {}: give a batch of samples, shape (N, ...) with N ≥ 1",
            shape_text(&shape)
        )));
    }
    let labels = labels(py, y, shape[0])?;
    let train = train_spec(train_method, train_steps, train_step_size, train_tol)?;
    let grid = test_grid(&train, test_methods, test_steps, test_tols)?;
    let interval = interval(t0, t1, batch_size)?;
    if let Some(p) = plot {
        let path = convert::path_arg(p, "plot")?;
        odeflow_cli::plot::Format::from_path(&path).map_err(convert::value_err)?;
    }
    let stop = Stop::default();
    let model = PyFlow {
        field,
        head,
        sample_shape: shape[1..].to_vec(),
        stop: &stop,
    };
    let plan = Plan {
        train: &train,
        grid: grid.as_deref(),
        interval,
        threshold,
        batch: batch_size,
    };
    let result = match dtype {
        Dtype::F32 => check_classifier_in::<f32>(py, model, &arr, labels, &plan)?,
        Dtype::F64 => check_classifier_in::<f64>(py, model, &arr, labels, &plan)?,
    };
    finish(py, &stop, result, plot)
}

fn check_regression_in<T: Real + Element>(
    py: Python<'_>,
    mut model: PyFlow<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    plan: &Plan<'_>,
) -> PyResult<Checked> {
    let n = convert::shape_of(x)?[0];
    let xb = to_batch::<T>(x, n)?;
    let yb = to_batch::<T>(y, n)?;
    let stop = model.stop;
    guarded(py, || {
        let r = check_regressor(
            &mut model,
            &xb,
            &yb,
            plan.train,
            plan.grid,
            plan.interval,
            plan.threshold,
            0,
        );
        if stop.is_set() {
            return Err(odeflow::runs::RunError::Cancelled("stopped".into()));
        }
        r
    })
}

/// The ODE-validity verdict for a learned dynamical model (Zhu et al., ICML 2022): the
/// outputs `head(z(t1))` (default `z(t1)` flattened) on `x` are scored against the real
/// targets `y` (shape `(N, outputs)`) by R² = 1 − mse / var(y), which plays the part of the
/// accuracy. Arguments and result as `check_flow`; the paired test is a seeded bootstrap of
/// the per-point error increase.
#[pyfunction]
#[pyo3(signature = (field, x, y, *, head=None, train_method, train_steps=None, train_step_size=None, train_tol=None, test_methods=None, test_steps=None, test_tols=None, threshold=0.02, t0=0.0, t1=1.0, plot=None))]
#[allow(clippy::too_many_arguments)]
pub fn check_regression(
    py: Python<'_>,
    field: Py<PyAny>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    head: Option<Py<PyAny>>,
    train_method: &str,
    train_steps: Option<usize>,
    train_step_size: Option<f64>,
    train_tol: Option<f64>,
    test_methods: Option<Vec<String>>,
    test_steps: Option<Vec<usize>>,
    test_tols: Option<Vec<f64>>,
    threshold: f64,
    t0: f64,
    t1: f64,
    plot: Option<&Bound<'_, PyAny>>,
) -> PyResult<Verdict> {
    let field = callable(field, py, "field", "field(t, z) -> dz")?;
    let head = head
        .map(|h| callable(h, py, "head", "head(z) -> outputs"))
        .transpose()?;
    let (arr, dtype) = convert::float_array(py, x, "x")?;
    let shape = convert::shape_of(&arr)?;
    if shape.len() < 2 || shape[0] == 0 {
        return Err(PyValueError::new_err(format!(
            "x has shape {}: give a batch of samples, shape (N, ...) with N ≥ 1",
            shape_text(&shape)
        )));
    }
    let name = if dtype == Dtype::F32 {
        "float32"
    } else {
        "float64"
    };
    let (yarr, _) = convert::float_array(py, y, "y")?;
    let yarr = yarr.call_method1("astype", (name,))?;
    let yshape = convert::shape_of(&yarr)?;
    if yshape.len() != 2 || yshape[0] != shape[0] {
        return Err(PyValueError::new_err(format!(
            "y has shape {} but x holds {} samples: give targets of shape ({}, outputs)",
            shape_text(&yshape),
            shape[0],
            shape[0]
        )));
    }
    let train = train_spec(train_method, train_steps, train_step_size, train_tol)?;
    let grid = test_grid(&train, test_methods, test_steps, test_tols)?;
    let interval = interval(t0, t1, 1)?;
    let stop = Stop::default();
    let model = PyFlow {
        field,
        head,
        sample_shape: shape[1..].to_vec(),
        stop: &stop,
    };
    let plan = Plan {
        train: &train,
        grid: grid.as_deref(),
        interval,
        threshold,
        batch: 1024,
    };
    let result = match dtype {
        Dtype::F32 => check_regression_in::<f32>(py, model, &arr, &yarr, &plan)?,
        Dtype::F64 => check_regression_in::<f64>(py, model, &arr, &yarr, &plan)?,
    };
    finish(py, &stop, result, plot)
}

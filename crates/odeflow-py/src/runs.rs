//! Run folders from Python: `odeflow.train`, `odeflow.evaluate`, `odeflow.check` and
//! `odeflow.load_data` call `odeflow::runs` and write the same files (and plots, through the
//! CLI's observer) as `odeflow train`, `eval` and `check`.

use std::path::{Path, PathBuf};

use numpy::Element;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use odeflow::runs::config::DataConfig;
use odeflow::runs::evaluate::{default_eval_grid, evaluate_run, report_table, EVAL_FILE};
use odeflow::runs::model_file::{ModelFile, MODEL_FILE};
use odeflow::runs::{
    self as lib, check::check_run, data::load_data as load_run_data, files, load_run_config,
    Compute, Observer, RunConfig, RunError,
};
use odeflow::solve::SolverSpec;
use odeflow::weights::{check_weights, Architecture, ExternalModel, WeightsError};
use odeflow::Real;
use odeflow_cli::progress::{Reporter, RunObserver};

use crate::convert::{self, run_err, to_numpy, value_err};
use crate::flow::{Stop, Verdict};
use crate::guarded;

/// The CLI's observer (plots into the run folder; quiet) that also stops on Ctrl-C.
struct PyObserver<'a> {
    inner: RunObserver<'a>,
    stop: &'a Stop,
}

impl Observer for PyObserver<'_> {
    fn note(&self, message: &str) {
        self.inner.note(message);
    }
    fn cancelled(&self) -> bool {
        self.stop.poll_signals()
    }
    fn trained(&self, dir: &Path, summary: &lib::RunSummary, log: &[serde_json::Value]) {
        self.inner.trained(dir, summary, log);
    }
    fn checked(&self, dir: &Path, report: &lib::CheckReport, eval: &lib::EvalReport) {
        self.inner.checked(dir, report, eval);
    }
}

/// Runs `work` with the GIL released and the CLI's quiet observer; a Ctrl-C cancels it
/// (training keeps its last checkpoint) and a plot that could not be written is an error.
fn with_observer<R: Send>(
    py: Python<'_>,
    work: impl FnOnce(&dyn Observer) -> Result<R, RunError> + Send,
) -> PyResult<R> {
    let stop = Stop::default();
    let out = guarded(py, || {
        let reporter = Reporter::new(true);
        let observer = PyObserver {
            inner: RunObserver::new(&reporter),
            stop: &stop,
        };
        let r = work(&observer);
        let plots = observer.inner.finish();
        r.map(|v| (v, plots.err().map(|e| e.to_string())))
    })?;
    if let Some(e) = stop.take() {
        return Err(e);
    }
    let (value, plot_error) = out.map_err(run_err)?;
    match plot_error {
        Some(e) => Err(pyo3::exceptions::PyOSError::new_err(e)),
        None => Ok(value),
    }
}

/// A run configuration: a dict with the TOML's structure, or the path of a TOML file.
fn config_arg(config: &Bound<'_, PyAny>) -> PyResult<RunConfig> {
    if config.is_instance_of::<PyDict>() {
        return convert::from_python(config, "config");
    }
    let path = convert::path_arg(config, "config").map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(
            "config must be a dict with the structure of config.toml, or the path of a TOML file",
        )
    })?;
    RunConfig::load(&path).map_err(run_err)
}

/// Trains a Neural ODE classifier into the new run folder `out_dir` (created if missing)
/// as `odeflow train` does: writes `config.toml`, `checkpoint.safetensors`, `metrics.jsonl`,
/// `model.json`, `summary.json` and `training.png` there, and returns the summary dict
/// (train/test accuracy with the training solver, time, adaptation counts).
///
/// `config` is a dict with the structure of `config.toml` (sections `data`, `model`,
/// `solver`, `train`, `adapt`, `check`; every key optional, e.g.
/// `{"solver": {"method": "euler", "steps": 2}, "train": {"iterations": 500}}`) or the path
/// of such a TOML file. Ctrl-C stops training after a checkpoint.
#[pyfunction]
pub fn train<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyAny>,
    out_dir: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let cfg = config_arg(config)?;
    let dir = convert::path_arg(out_dir, "out_dir")?;
    let summary = with_observer(py, |o| lib::train_new(&dir, cfg, o))?;
    convert::to_python(py, &summary)
}

/// Evaluates the trained run `run_dir` under a grid of test solvers, as `odeflow eval`:
/// `methods` (default euler, midpoint, rk4) at `steps` (default 1, 2, 4, …, 4096) on the
/// unit interval, and `tols` for the adaptive methods among them. Writes `eval.json`,
/// `eval.csv` and `eval.png` into the run folder and returns the report dict (`train`,
/// `results`: one row per solver with `accuracy`, `nfe`, `diverged`, `changed`, `p_value`).
#[pyfunction]
#[pyo3(signature = (run_dir, *, methods=None, steps=None, tols=None, batch_size=None))]
pub fn evaluate<'py>(
    py: Python<'py>,
    run_dir: &Bound<'py, PyAny>,
    methods: Option<Vec<String>>,
    steps: Option<Vec<usize>>,
    tols: Option<Vec<f64>>,
    batch_size: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let dir = convert::path_arg(run_dir, "run_dir")?;
    let cfg = load_run_config(&dir).map_err(run_err)?;
    let model = ModelFile::load(&dir.join(MODEL_FILE)).map_err(run_err)?;
    let grid = default_eval_grid(
        &model.train,
        methods.as_deref(),
        steps.as_deref(),
        &tols.unwrap_or_default(),
    )
    .map_err(run_err)?;
    let batch = batch_size.unwrap_or(cfg.check.batch_size).max(1);
    let report = with_observer(py, |o| evaluate_run(&dir, &grid, batch, o))?;
    files::write_json(&report, &dir.join(EVAL_FILE)).map_err(run_err)?;
    files::write_atomic(
        &dir.join("eval.csv"),
        report_table(&report).to_csv().as_bytes(),
    )
    .map_err(run_err)?;
    let title = format!(
        "{} trained with {} (test accuracy {:.3})",
        cfg.data.name,
        report.train.solver.label(),
        report.train.accuracy
    );
    let fig = odeflow_cli::commands::eval::eval_figure(&report, &title);
    let png = dir.join("eval.png");
    guarded(py, || odeflow_cli::plot::save(&fig, &png))?
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
    convert::to_python(py, &report)
}

/// The ODE-validity verdict of the trained run `run_dir`, as `odeflow check`: reuses the
/// run's `eval.json` when it belongs to the current model, otherwise evaluates the default
/// grid (the training method at 1×–16× its steps and the next higher-order methods).
/// Writes `check.json` and `check.png` into the run folder and returns a `Verdict`.
/// `threshold` and `batch_size` default to the run's configuration (0.02, 1000).
///
/// A model trained elsewhere is checked from its weights instead of a run folder, as
/// `odeflow check --weights`: `weights` (a safetensors file with PyTorch `state_dict`
/// names `field.*`, `head.*`), `model` (its architecture: `simple_odenet`, `odenet`,
/// `mlp-tanh`, …), `dataset` (`sphere2`, `mnist`, `cifar10`; `data_dir`, `test_size`,
/// `data_seed` as in a run's `[data]`), the solver it was trained with (`train_method`
/// and one of `train_steps`, `train_step_size`, `train_tol`), and `out_dir` for
/// `check.json` and `check.png`. `dtype` is the evaluation's scalar type.
#[pyfunction]
#[pyo3(signature = (run_dir=None, *, threshold=None, batch_size=None, weights=None, model=None,
    dataset=None, train_method=None, train_steps=None, train_step_size=None, train_tol=None,
    out_dir=None, data_dir=None, test_size=None, data_seed=0, dtype="f64"))]
#[allow(clippy::too_many_arguments)]
pub fn check(
    py: Python<'_>,
    run_dir: Option<&Bound<'_, PyAny>>,
    threshold: Option<f64>,
    batch_size: Option<usize>,
    weights: Option<&Bound<'_, PyAny>>,
    model: Option<String>,
    dataset: Option<String>,
    train_method: Option<String>,
    train_steps: Option<usize>,
    train_step_size: Option<f64>,
    train_tol: Option<f64>,
    out_dir: Option<&Bound<'_, PyAny>>,
    data_dir: Option<&Bound<'_, PyAny>>,
    test_size: Option<usize>,
    data_seed: u64,
    dtype: &str,
) -> PyResult<Verdict> {
    let report = match (run_dir, weights) {
        (Some(_), Some(_)) => {
            return Err(value_err(
                "give run_dir or weights=, not both (weights= checks a model trained elsewhere)",
            ))
        }
        (None, None) => {
            return Err(value_err(
                "give a run folder (run_dir) or a model trained elsewhere (weights=, model=, dataset=, train_method=, …)",
            ))
        }
        (Some(run_dir), None) => {
            let dir: PathBuf = convert::path_arg(run_dir, "run_dir")?;
            let cfg = load_run_config(&dir).map_err(run_err)?;
            let threshold = threshold.unwrap_or(cfg.check.threshold);
            let batch = batch_size.unwrap_or(cfg.check.batch_size).max(1);
            with_observer(py, |o| check_run(&dir, threshold, batch, o))?
        }
        (None, Some(weights)) => {
            let need = |v: Option<String>, name: &str| {
                v.ok_or_else(|| value_err(format!("check(weights=...) needs {name}=")))
            };
            let arch: Architecture = need(model, "model")?
                .parse()
                .map_err(|e: WeightsError| value_err(format!("model: {e}")))?;
            let method = need(train_method, "train_method")?;
            let train = match (train_steps, train_step_size, train_tol) {
                (Some(n), None, None) => SolverSpec::fixed(&method, n),
                (None, Some(h), None) => SolverSpec::step_size(&method, h),
                (None, None, Some(t)) => SolverSpec::adaptive(&method, t),
                _ => {
                    return Err(value_err(
                        "check(weights=...) needs the training stepping: exactly one of train_steps, train_step_size or train_tol",
                    ))
                }
            }
            .map_err(value_err)?;
            let out = out_dir
                .ok_or_else(|| value_err("check(weights=...) needs out_dir= for check.json and check.png"))
                .and_then(|d| convert::path_arg(d, "out_dir"))?;
            let m = ExternalModel {
                weights: convert::path_arg(weights, "weights")?,
                arch,
                data: DataConfig {
                    name: need(dataset, "dataset")?,
                    dir: data_dir.map(|d| convert::path_arg(d, "data_dir")).transpose()?,
                    train_size: None,
                    test_size,
                    data_seed,
                },
                train,
                dtype: dtype.to_string(),
            };
            let threshold = threshold.unwrap_or(0.02);
            let batch = batch_size.unwrap_or(1000).max(1);
            with_observer(py, |o| check_weights(&m, &out, threshold, batch, o, &Compute::Cpu))?
        }
    };
    Verdict::from_report(py, &report)
}

fn data_dict<'py, T: Real + Element>(
    py: Python<'py>,
    cfg: &RunConfig,
) -> PyResult<Bound<'py, PyDict>> {
    let data = guarded(py, || load_run_data::<T>(&cfg.data))?.map_err(run_err)?;
    let out = PyDict::new(py);
    for (name, set) in [("train", &data.train), ("test", &data.test)] {
        let mut shape = vec![set.len()];
        shape.extend_from_slice(set.sample_shape());
        out.set_item(
            format!("x_{name}"),
            to_numpy(py, set.inputs().as_slice(), &shape)?,
        )?;
        let labels: Vec<i64> = set.labels().iter().map(|&l| l as i64).collect();
        out.set_item(format!("y_{name}"), to_numpy(py, &labels, &[labels.len()])?)?;
    }
    out.set_item("classes", data.classes())?;
    Ok(out)
}

/// The data set of a run (`run_dir`, a folder with `config.toml`) or of a configuration
/// (a dict or TOML path as for `train`), exactly as training and `check` see it: a dict
/// with `x_train`, `y_train`, `x_test`, `y_test` (inputs shaped `(N, *sample_shape)` in the
/// configuration's dtype, int64 labels) and `classes`.
#[pyfunction]
pub fn load_data<'py>(py: Python<'py>, source: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let cfg = if source.is_instance_of::<PyDict>() {
        let mut c: RunConfig = convert::from_python(source, "config")?;
        c.resolve().map_err(run_err)?;
        c
    } else {
        let path = convert::path_arg(source, "source")?;
        if path.is_dir() {
            load_run_config(&path).map_err(run_err)?
        } else {
            let mut c = config_arg(source)?;
            c.resolve().map_err(run_err)?;
            c
        }
    };
    match cfg.dtype.as_str() {
        "f32" => data_dict::<f32>(py, &cfg),
        _ => data_dict::<f64>(py, &cfg),
    }
}

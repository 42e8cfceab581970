//! Evaluation and the ODE-validity check (Ott et al., ICLR 2021) of a classifier trained
//! elsewhere: a weights file, its architecture name, a data set and the solver it was
//! trained with stand in for a run folder. The reports are the same as a run's
//! ([`EvalReport`], [`CheckReport`]); the model is named by the FNV-1a fingerprint of its
//! parameters, as in `model.json`.

use std::path::{Path, PathBuf};

use super::{load_classifier, Architecture, TensorFile};
use crate::models::{FieldSpec, NeuralClassifier};
use crate::runs::check::{verdict_of, CheckReport, CHECK_FILE, CHECK_PLOT};
use crate::runs::config::DataConfig;
use crate::runs::data::{load_data, RunData};
use crate::runs::evaluate::{default_check_grid, evaluate_classifier_on, EvalReport};
use crate::runs::model_file::fingerprint;
use crate::runs::{files, Compute, Observer, RunError};
use crate::solve::SolverSpec;
use crate::train::Trainable;
use crate::Real;

/// A classifier trained elsewhere, as the check needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalModel {
    /// The safetensors file.
    pub weights: PathBuf,
    /// Its architecture.
    pub arch: Architecture,
    /// The data set it was trained on (its test part is used).
    pub data: DataConfig,
    /// The solver it was trained with, on `[0, 1]`.
    pub train: SolverSpec,
    /// `f32` or `f64`: the type of the evaluation.
    pub dtype: String,
}

struct Loaded<T: Real> {
    model: NeuralClassifier<T>,
    field: FieldSpec,
    data: RunData<T>,
    fingerprint: String,
}

fn load<T: Real>(m: &ExternalModel) -> Result<Loaded<T>, RunError> {
    let mut cfg = m.data.clone();
    cfg.resolve()?;
    let data = load_data::<T>(&cfg)?;
    let file = TensorFile::read(&m.weights)?;
    let in_file = |e: super::WeightsError| RunError::input(format!("{}: {e}", m.weights.display()));
    let (model, shape) = load_classifier::<T>(
        m.arch,
        &file,
        data.sample_shape(),
        m.train.method()?,
        m.train.options(),
    )
    .map_err(in_file)?;
    if shape.classes != Some(data.classes()) {
        return Err(RunError::input(format!(
            "{}: the head has {} classes (head.weight), but the data set {} has {}",
            m.weights.display(),
            shape.classes.unwrap_or(0),
            m.data.name,
            data.classes()
        )));
    }
    let mut p = vec![T::zero(); model.num_params()];
    model.read_params(&mut p);
    let p: Vec<f64> = p.iter().map(|v| v.f64()).collect();
    Ok(Loaded {
        model,
        field: shape.spec.field,
        data,
        fingerprint: fingerprint(&p),
    })
}

fn eval_typed<T: Real>(
    m: &ExternalModel,
    grid: &[SolverSpec],
    batch: usize,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<EvalReport, RunError> {
    let mut l = load::<T>(m)?;
    let (train, results) = evaluate_classifier_on(
        &mut l.model,
        &l.field,
        compute,
        &l.data.test,
        &m.train,
        grid,
        batch,
        observer,
    )?;
    Ok(EvalReport {
        model: l.fingerprint,
        dtype: T::NAME.into(),
        samples: l.data.test.len(),
        seeds: None,
        train,
        results,
    })
}

/// Evaluates the model on its data set's test part with its training solver and every
/// solver of `grid` on `compute` (a GPU needs `dtype` f32; the caller writes the report
/// where it wants it).
pub fn evaluate_weights(
    m: &ExternalModel,
    grid: &[SolverSpec],
    batch: usize,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<EvalReport, RunError> {
    match m.dtype.as_str() {
        "f64" => eval_typed::<f64>(m, grid, batch, observer, compute),
        "f32" => eval_typed::<f32>(m, grid, batch, observer, compute),
        other => Err(RunError::input(format!(
            "dtype '{other}' is not supported: use f32 or f64"
        ))),
    }
}

/// The validity verdict of the model: the default check grid of its training solver,
/// compared at `threshold`, evaluated on `compute`; writes `check.json` into `out_dir` (and
/// hands the reports to [`Observer::checked`], which draws the plot in the CLI).
pub fn check_weights(
    m: &ExternalModel,
    out_dir: &Path,
    threshold: f64,
    batch: usize,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<CheckReport, RunError> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(RunError::input(format!(
            "--threshold {threshold} is invalid: it must lie in [0, 1]"
        )));
    }
    let _lock = files::lock(out_dir, "check")?;
    let grid = default_check_grid(&m.train);
    let report = evaluate_weights(m, &grid, batch, observer, compute)?;
    let v = verdict_of(&report, threshold)?;
    let out = CheckReport {
        verdict: v,
        train: report.train.solver.clone(),
        model: report.model.clone(),
        source: "default grid".into(),
        plot: CHECK_PLOT.into(),
        results: report.results.clone(),
    };
    files::write_json(&out, &out_dir.join(CHECK_FILE))?;
    observer.checked(out_dir, &out, &report);
    Ok(out)
}

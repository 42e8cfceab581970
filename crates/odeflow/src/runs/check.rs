//! The ODE-validity check (criterion in [`crate::analysis::solver_dependence::verdict`]):
//! does any solver at least as accurate as the training solver lose more than `threshold`
//! of the test score — beyond the noise of the test set?
//!
//! [`check_classifier`] checks any [`FlowModel`] on labelled data; [`check_regressor`]
//! checks a learned dynamical model scored by its squared error against targets;
//! [`check_run`] checks the model of a run folder and writes `check.json`. The report holds
//! `valid`, `train_accuracy`, `worst` (`method`, `steps` or `tol`, `accuracy`, `drop`,
//! `changed`, `p_value`), `threshold`, `compared`, `summary` (one sentence), the training
//! solver, the results used and where they came from.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::evaluate::{
    default_check_grid, evaluate_model, evaluate_unlocked, load_report, EvalReport, EvalRow,
    TrainEval, EVAL_FILE,
};
use super::model_file::{ModelFile, MODEL_FILE};
use super::{files, Compute, Observer, RunError};
use crate::analysis::solver_dependence::{verdict, Verdict};
use crate::data::Dataset;
use crate::models::flow_model::{evaluate_regression, FlowModel, RegressionOutcome};
use crate::solve::SolverSpec;
use crate::state::Batch;
use crate::stats::bootstrap_mean_interval;
use crate::Real;

/// The check report's name inside a run folder.
pub const CHECK_FILE: &str = "check.json";
/// The check plot's name inside a run folder (drawn by the CLI).
pub const CHECK_PLOT: &str = "check.png";

/// `check.json`: the verdict with the evaluation it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The verdict (`valid`, `train_accuracy`, `worst`, `threshold`, `compared`, `summary`
    /// at the top level of the JSON).
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The training solver.
    pub train: SolverSpec,
    /// Fingerprint of the checked model.
    pub model: String,
    /// Where the results came from: `eval.json` or `default grid`.
    pub source: String,
    /// The plot's file name (in the run folder).
    pub plot: String,
    /// The evaluation matrix.
    pub results: Vec<EvalRow>,
}

/// The verdict of an evaluation report.
pub fn verdict_of(report: &EvalReport, threshold: f64) -> Result<Verdict, RunError> {
    Ok(verdict(
        &report.train.solver,
        report.train.accuracy,
        &report.results,
        threshold,
    )?)
}

/// `grid`, or the default grid of [`default_check_grid`] for `train`.
fn grid_or_default(grid: Option<&[SolverSpec]>, train: &SolverSpec) -> Vec<SolverSpec> {
    grid.map_or_else(|| default_check_grid(train), <[SolverSpec]>::to_vec)
}

fn check_threshold(threshold: f64) -> Result<(), RunError> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(RunError::input(format!(
            "--threshold {threshold} is invalid: it must lie in [0, 1]"
        )));
    }
    Ok(())
}

/// Checks any [`FlowModel`] classifier on the labelled `test` set: evaluates it with its
/// training solver `train` and with every solver of `grid` (the default grid of
/// [`default_check_grid`] when `None`) on `[t0, t1]`, and gives the verdict. `name` labels
/// the model in the report.
#[allow(clippy::too_many_arguments)]
pub fn check_classifier<T: Real, M: FlowModel<T> + ?Sized>(
    model: &mut M,
    name: &str,
    test: &Dataset<T>,
    train: &SolverSpec,
    grid: Option<&[SolverSpec]>,
    interval: (f64, f64),
    threshold: f64,
    batch: usize,
    observer: &dyn Observer,
) -> Result<(Verdict, EvalReport), RunError> {
    check_threshold(threshold)?;
    let grid = grid_or_default(grid, train);
    let (train_eval, results) =
        evaluate_model(model, test, train, &grid, interval, batch, observer)?;
    let report = EvalReport {
        model: name.into(),
        dtype: T::NAME.into(),
        samples: test.len(),
        seeds: None,
        train: train_eval,
        results,
    };
    let v = verdict_of(&report, threshold)?;
    Ok((v, report))
}

/// Checks a learned dynamical model (Zhu et al., ICML 2022): its outputs on `x` are scored
/// against the targets `y` by the coefficient of determination `R² = 1 − mse / var(y)`,
/// which plays the part of the accuracy (`accuracy` in the rows, `train_accuracy` in the
/// verdict), so a drop is a loss of explained variance. `changed` is the fraction of points
/// whose output moves by more than 1 % of its norm (label-free), and the paired test is a
/// seeded 95 % bootstrap interval of the per-point error increase (`p_value` 0.01 when it
/// excludes 0, 1 otherwise). `threshold` bounds the drop of R².
#[allow(clippy::too_many_arguments)]
pub fn check_regressor<T: Real, M: FlowModel<T> + ?Sized>(
    model: &mut M,
    x: &Batch<T>,
    y: &Batch<T>,
    train: &SolverSpec,
    grid: Option<&[SolverSpec]>,
    interval: (f64, f64),
    threshold: f64,
    seed: u64,
) -> Result<(Verdict, EvalReport), RunError> {
    check_threshold(threshold)?;
    let grid = grid_or_default(grid, train);
    let mut eval = |s: &SolverSpec| -> Result<RegressionOutcome, RunError> {
        let m = s.method()?;
        evaluate_regression(model, x, y, &m, &s.options_on(interval.0, interval.1), 1024)
            .map_err(RunError::runtime)
    };
    let d = y.cols().max(1);
    let n = y.rows().max(1) as f64;
    let var_y = {
        let ys = y.as_slice();
        let mut v = 0.0;
        for j in 0..d {
            let col: Vec<f64> = ys.iter().skip(j).step_by(d).map(|t| t.f64()).collect();
            let m = col.iter().sum::<f64>() / n;
            v += col.iter().map(|t| (t - m).powi(2)).sum::<f64>() / n;
        }
        v / d as f64
    };
    if !(var_y > 0.0 && var_y.is_finite()) {
        return Err(RunError::input(format!(
            "the targets have variance {var_y}: give targets that vary over the points"
        )));
    }
    let base = eval(train)?;
    if !base.mse.is_finite() {
        return Err(RunError::runtime(format!(
            "the model diverges with its training solver {}: nothing to compare against",
            train.label()
        )));
    }
    let mut results = Vec::with_capacity(grid.len());
    for s in &grid {
        let e = eval(s)?;
        let moved = base
            .outputs
            .chunks_exact(d)
            .zip(e.outputs.chunks_exact(d))
            .filter(|(a, b)| {
                let norm = a.iter().map(|v| v * v).sum::<f64>().sqrt();
                let diff = a
                    .iter()
                    .zip(*b)
                    .map(|(p, q)| (p - q).powi(2))
                    .sum::<f64>()
                    .sqrt();
                !(diff <= 0.01 * norm.max(f64::MIN_POSITIVE))
            })
            .count();
        let diffs: Vec<f64> = e
            .point_errors
            .iter()
            .zip(&base.point_errors)
            .map(|(a, b)| a - b)
            .collect();
        let (lo, _) = if diffs.iter().all(|v| v.is_finite()) {
            bootstrap_mean_interval(&diffs, 0.95, 1000, seed)
        } else {
            (f64::INFINITY, f64::INFINITY)
        };
        results.push(EvalRow {
            method: s.method.clone(),
            order: s.order,
            steps: if s.tol.is_some() { None } else { s.steps },
            tol: s.tol,
            accuracy: 1.0 - e.mse / var_y,
            accuracy_std: None,
            loss: e.mse.is_finite().then_some(e.mse),
            nfe: e.nfe,
            diverged: e.diverged,
            changed: Some(moved as f64 / x.rows().max(1) as f64),
            p_value: Some(if lo > 0.0 { 0.01 } else { 1.0 }),
        });
    }
    let report = EvalReport {
        model: "regressor".into(),
        dtype: T::NAME.into(),
        samples: x.rows(),
        seeds: None,
        train: TrainEval {
            solver: train.clone(),
            accuracy: 1.0 - base.mse / var_y,
            accuracy_std: None,
        },
        results,
    };
    let v = verdict_of(&report, threshold)?;
    Ok((v, report))
}

/// Checks the run in `dir` and writes `check.json` there (the CLI draws `check.png` from
/// [`Observer::checked`]). The run's `eval.json` is reused when it belongs to the current
/// model and holds a qualifying solver; otherwise the default grid is evaluated.
pub fn check_run(
    dir: &Path,
    threshold: f64,
    batch: usize,
    observer: &dyn Observer,
) -> Result<CheckReport, RunError> {
    check_run_on(dir, threshold, batch, observer, &Compute::Cpu)
}

/// [`check_run`] with the evaluations' ODE solves on `compute` (see
/// [`super::evaluate::evaluate_run_on`]).
pub fn check_run_on(
    dir: &Path,
    threshold: f64,
    batch: usize,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<CheckReport, RunError> {
    check_threshold(threshold)?;
    let _lock = files::lock(dir, "check")?;
    let model = ModelFile::load(&dir.join(MODEL_FILE))?;
    let eval_path = dir.join(EVAL_FILE);
    let mut reused = None;
    if eval_path.exists() {
        let r = load_report(&eval_path)?;
        if r.model == model.fingerprint {
            if let Ok(v) = verdict_of(&r, threshold) {
                reused = Some((r, v));
            }
        } else {
            observer.note(&format!(
                "{} belongs to an earlier state of the model; evaluating the default grid",
                eval_path.display()
            ));
        }
    }
    let (report, v, source) = match reused {
        Some((r, v)) => (r, v, EVAL_FILE.to_string()),
        None => {
            let grid = default_check_grid(&model.train);
            let r = evaluate_unlocked(dir, &grid, batch, observer, compute)?;
            let v = verdict_of(&r, threshold)?;
            (r, v, "default grid".to_string())
        }
    };
    let out = CheckReport {
        verdict: v,
        train: report.train.solver.clone(),
        model: model.fingerprint,
        source,
        plot: CHECK_PLOT.into(),
        results: report.results.clone(),
    };
    files::write_json(&out, &dir.join(CHECK_FILE))?;
    observer.checked(dir, &out, &report);
    Ok(out)
}

/// Reads a run's `check.json`.
pub fn load_check(dir: &Path) -> Result<CheckReport, RunError> {
    files::read_json(&dir.join(CHECK_FILE), "the check report")
}

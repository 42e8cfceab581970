//! Cross-solver evaluation: the test accuracy of one trained model under every test solver
//! of a grid (methods × step counts, or × tolerances for adaptive methods).
//!
//! The report (`eval.json`) has the keys `train` (the training method, its steps or
//! tolerance, and the test accuracy with it) and `results` (one object per test solver with
//! `method`, `steps` or `tol`, `accuracy`, and `order`, `loss`, `nfe`, `diverged`). A solve
//! that blows up counts its samples as wrong (`diverged`). The CSV has one row per result.

use std::fmt::Write as _;
use std::path::Path;

use indicatif::ProgressBar;
use odeflow::data::Dataset;
use odeflow::models::NeuralClassifier;
use odeflow::solve::Method;
use odeflow::Real;
use serde::{Deserialize, Serialize};

use super::data::load_data;
use super::model_file::{ModelFile, SolverSpec, MODEL_FILE};
use super::{load_run_config, model_file::short};
use crate::error::CliError;
use crate::progress::Reporter;

/// The evaluation report's name inside a run folder.
pub const EVAL_FILE: &str = "eval.json";

/// The training solver and its test accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainEval {
    /// Method, order, steps / step size / tolerance.
    #[serde(flatten)]
    pub solver: SolverSpec,
    /// Test accuracy with the training solver.
    pub accuracy: f64,
    /// Standard deviation over seeds (experiments with several seeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_std: Option<f64>,
}

/// The test accuracy with one test solver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// Method name.
    pub method: String,
    /// Its order.
    pub order: usize,
    /// Steps on [0, 1], for fixed-step results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Tolerance, for adaptive results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
    /// Test accuracy (correct / total; blown-up solves count as wrong).
    pub accuracy: f64,
    /// Standard deviation over seeds (experiments with several seeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_std: Option<f64>,
    /// Mean cross-entropy; absent when a solve blew up.
    #[serde(default)]
    pub loss: Option<f64>,
    /// Field evaluations per solve.
    pub nfe: f64,
    /// Samples whose solve blew up.
    pub diverged: usize,
}

impl EvalRow {
    /// The solver of this row.
    pub fn solver(&self) -> SolverSpec {
        SolverSpec {
            method: self.method.clone(),
            order: self.order,
            steps: self.steps,
            step_size: None,
            tol: self.tol,
        }
    }
}

/// `eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Fingerprint of the evaluated model (`model.json`).
    pub model: String,
    /// Scalar type of the evaluation.
    pub dtype: String,
    /// Test samples.
    pub samples: usize,
    /// Seeds averaged (experiments); absent for a single model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<usize>,
    /// The training solver and its test accuracy.
    pub train: TrainEval,
    /// One entry per test solver.
    pub results: Vec<EvalRow>,
}

/// `1, 2, 4, …` up to `max`.
pub fn powers_of_two(max: usize) -> Vec<usize> {
    std::iter::successors(Some(1usize), |&n| n.checked_mul(2))
        .take_while(|&n| n <= max)
        .collect()
}

/// The grid of `methods` × `steps`; methods with an error estimate run at `tols` instead
/// when `tols` is not empty.
pub fn build_grid(
    methods: &[String],
    steps: &[usize],
    tols: &[f64],
) -> Result<Vec<SolverSpec>, CliError> {
    let mut grid = Vec::new();
    for name in methods {
        let m = Method::from_name(name)?;
        if m.tableau().is_none() {
            return Err(CliError::input(format!(
                "method '{name}' cannot evaluate a Neural ODE classifier: use an explicit Runge–Kutta method"
            )));
        }
        if !tols.is_empty() && m.is_adaptive() {
            for &t in tols {
                grid.push(SolverSpec::adaptive(name, t)?);
            }
        } else {
            for &n in steps {
                if n == 0 {
                    return Err(CliError::input("test step counts must be at least 1"));
                }
                grid.push(SolverSpec::fixed(name, n)?);
            }
        }
    }
    if grid.is_empty() {
        return Err(CliError::input("the evaluation grid is empty"));
    }
    Ok(grid)
}

/// The grid `check` uses when the run has no evaluation: the training method at 1×, 2×, 4×,
/// 8× and 16× the training steps, and the next two higher-order methods among midpoint, rk4
/// and dopri5 at the same step counts (for adaptive training: the training method and dopri5 at
/// the training tolerance and 10, 100, 1000 and 10 000 times tighter).
pub fn default_check_grid(train: &SolverSpec) -> Vec<SolverSpec> {
    let mut methods = vec![train.method.clone()];
    for m in ["midpoint", "rk4", "dopri5"] {
        let order = Method::from_name(m).map_or(0, |x| x.order());
        if order > train.order && !methods.iter().any(|x| x == m) && methods.len() < 3 {
            methods.push(m.into());
        }
    }
    let mut grid = Vec::new();
    match (train.steps, train.tol) {
        (Some(n), _) => {
            for m in &methods {
                for k in [1, 2, 4, 8, 16] {
                    if let Ok(s) = SolverSpec::fixed(m, n * k) {
                        grid.push(s);
                    }
                }
            }
        }
        (_, Some(t)) => {
            let mut adaptive = vec![train.method.clone()];
            if train.method != "dopri5" {
                adaptive.push("dopri5".into());
            }
            for m in &adaptive {
                for k in 0..5 {
                    if let Ok(s) = SolverSpec::adaptive(m, t / 10f64.powi(k)) {
                        grid.push(s);
                    }
                }
            }
        }
        _ => {}
    }
    grid
}

fn row_of(spec: &SolverSpec, e: &odeflow::models::EvalOutcome) -> EvalRow {
    EvalRow {
        method: spec.method.clone(),
        order: spec.order,
        steps: if spec.tol.is_some() { None } else { spec.steps },
        tol: spec.tol,
        accuracy: e.accuracy,
        accuracy_std: None,
        loss: e.loss.is_finite().then_some(e.loss),
        nfe: e.nfe,
        diverged: e.diverged,
    }
}

/// Evaluates `model` on `test` with its training solver and with every solver of `grid`,
/// advancing `bar` once per solver.
pub fn evaluate_model<T: Real>(
    model: &mut NeuralClassifier<T>,
    test: &Dataset<T>,
    train: &SolverSpec,
    grid: &[SolverSpec],
    batch: usize,
    bar: &ProgressBar,
) -> Result<(TrainEval, Vec<EvalRow>), CliError> {
    let eval = |model: &mut NeuralClassifier<T>, s: &SolverSpec| {
        let m = s.method()?;
        model
            .evaluate(test, &m, &s.options(), batch)
            .map_err(CliError::runtime)
    };
    let t = eval(model, train)?;
    let train_eval = TrainEval {
        solver: train.clone(),
        accuracy: t.accuracy,
        accuracy_std: None,
    };
    let mut rows = Vec::with_capacity(grid.len());
    for s in grid {
        bar.set_message(format!("eval {}", s.label()));
        let e = eval(model, s)?;
        rows.push(row_of(s, &e));
        bar.inc(1);
    }
    Ok((train_eval, rows))
}

/// Evaluates the trained model of the run in `dir` on its test set with every solver of
/// `grid`.
pub fn evaluate_run(
    dir: &Path,
    grid: &[SolverSpec],
    batch: usize,
    reporter: &Reporter,
) -> Result<EvalReport, CliError> {
    let model = ModelFile::load(&dir.join(MODEL_FILE))?;
    match model.dtype.as_str() {
        "f64" => evaluate_typed::<f64>(dir, &model, grid, batch, reporter),
        _ => evaluate_typed::<f32>(dir, &model, grid, batch, reporter),
    }
}

fn evaluate_typed<T: Real>(
    dir: &Path,
    file: &ModelFile,
    grid: &[SolverSpec],
    batch: usize,
    reporter: &Reporter,
) -> Result<EvalReport, CliError> {
    let cfg = load_run_config(dir)?;
    let data = load_data::<T>(&cfg.data)?;
    let mut model = file.build::<T>()?;
    let bar = reporter.bar(grid.len() as u64, "eval");
    let (train, results) = evaluate_model(&mut model, &data.test, &file.train, grid, batch, &bar)?;
    bar.finish_and_clear();
    Ok(EvalReport {
        model: file.fingerprint.clone(),
        dtype: T::NAME.into(),
        samples: data.test.len(),
        seeds: None,
        train,
        results,
    })
}

/// Reads an evaluation report.
pub fn load_report(path: &Path) -> Result<EvalReport, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::input(format!("cannot read '{}': {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::input(format!(
            "'{}' is not an evaluation report: {e}",
            path.display()
        ))
    })
}

/// The report as CSV: `method,order,steps,tol,accuracy,accuracy_std,loss,nfe,diverged`, the
/// training solver first (marked `train` in the first column).
pub fn to_csv(report: &EvalReport) -> String {
    let mut s =
        String::from("role,method,order,steps,tol,accuracy,accuracy_std,loss,nfe,diverged\n");
    let opt = |v: Option<f64>| v.map(short).unwrap_or_default();
    let t = &report.train;
    let _ = writeln!(
        s,
        "train,{},{},{},{},{},{},,,",
        t.solver.method,
        t.solver.order,
        t.solver.steps.map(|n| n.to_string()).unwrap_or_default(),
        opt(t.solver.tol),
        t.accuracy,
        t.accuracy_std.map(|v| v.to_string()).unwrap_or_default(),
    );
    for r in &report.results {
        let _ = writeln!(
            s,
            "test,{},{},{},{},{},{},{},{},{}",
            r.method,
            r.order,
            r.steps.map(|n| n.to_string()).unwrap_or_default(),
            opt(r.tol),
            r.accuracy,
            r.accuracy_std.map(|v| v.to_string()).unwrap_or_default(),
            r.loss.map(|v| v.to_string()).unwrap_or_default(),
            r.nfe,
            r.diverged
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids() {
        assert_eq!(powers_of_two(4096).len(), 13);
        assert_eq!(powers_of_two(5), vec![1, 2, 4]);
        let g = build_grid(&["euler".into(), "dopri5".into()], &[1, 2], &[1e-3]).unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(g[2].tol, Some(1e-3));
        assert!(build_grid(&["verlet".into()], &[1], &[]).is_err());
        assert!(build_grid(&["nope".into()], &[1], &[]).is_err());
        let d = default_check_grid(&SolverSpec::fixed("euler", 2).unwrap());
        assert_eq!(d.len(), 15); // euler, midpoint, rk4 × 5
        assert_eq!(d[4].steps, Some(32));
        let d = default_check_grid(&SolverSpec::fixed("rk4", 8).unwrap());
        assert_eq!(d.len(), 10); // rk4 and dopri5
        let d = default_check_grid(&SolverSpec::adaptive("dopri5", 1e-3).unwrap());
        assert_eq!(d.len(), 5);
        assert!((d[4].tol.unwrap() - 1e-7).abs() < 1e-20);
    }
}

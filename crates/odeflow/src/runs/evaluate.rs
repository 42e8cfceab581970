//! Cross-solver evaluation: the test score of one trained model under every test solver of
//! a grid (methods × step counts, or × tolerances for adaptive methods), with the paired
//! comparison against the training solver on the same points.
//!
//! The report (`eval.json`) has the keys `model`, `dtype`, `samples`, `train` (the training
//! method, its steps or tolerance, and the test accuracy with it) and `results` (one
//! [`EvalRow`] per test solver: `method`, `order`, `steps` or `tol`, `accuracy`, `loss`,
//! `nfe`, `diverged`, and `changed` — the fraction of test points whose prediction differs
//! from the training solver's — and `p_value`, McNemar's exact test of the two solvers'
//! accuracies on the same points). A solve that blows up counts its samples as wrong
//! (`diverged`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::data::load_data;
use super::model_file::{ModelFile, MODEL_FILE};
use super::{files, load_run_config, Compute, Observer, RunError};
use crate::data::Dataset;
use crate::models::flow_model::{evaluate_flow, EvalOutcome, FlowModel};
use crate::report::{cell, Table};
use crate::solve::{Method, SolverSpec};
use crate::stats::mcnemar_exact;
use crate::Real;

pub use crate::analysis::solver_dependence::EvalRow;

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

/// `eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Fingerprint of the evaluated model (`model.json`), or a name for a model odeflow did
    /// not train.
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
/// when `tols` is not empty. Duplicate entries are an error (they would be counted twice).
pub fn build_grid(
    methods: &[String],
    steps: &[usize],
    tols: &[f64],
) -> Result<Vec<SolverSpec>, RunError> {
    let budget = crate::budget::Budget::from_env().map_err(|e| RunError::input(e.to_string()))?;
    for &n in steps {
        budget
            .check_steps(&format!("test steps {n}"), n as u64)
            .map_err(|e| RunError::input(e.to_string()))?;
    }
    for &t in tols {
        crate::budget::check_tolerance("test tolerance", t)
            .map_err(|e| RunError::input(e.to_string()))?;
    }
    if let Some(&t) = tols.first() {
        let mut adaptive = false;
        for name in methods {
            adaptive |= Method::from_name(name)?.is_adaptive();
        }
        if !adaptive {
            return Err(RunError::input(format!(
                "--tols {} does not apply: none of the test methods ({}) is adaptive; add an embedded pair such as dopri5, or drop --tols",
                crate::budget::readable(t),
                methods.join(", ")
            )));
        }
    }
    let mut grid: Vec<SolverSpec> = Vec::new();
    for name in methods {
        let m = Method::from_name(name)?;
        if m.tableau().is_none() {
            return Err(RunError::input(format!(
                "method '{name}' cannot evaluate a Neural ODE classifier: use an explicit Runge–Kutta method"
            )));
        }
        let specs: Vec<SolverSpec> = if !tols.is_empty() && m.is_adaptive() {
            tols.iter()
                .map(|&t| SolverSpec::adaptive(name, t))
                .collect::<Result<_, _>>()?
        } else {
            steps
                .iter()
                .map(|&n| SolverSpec::fixed(name, n))
                .collect::<Result<_, _>>()?
        };
        for s in specs {
            if grid.contains(&s) {
                return Err(RunError::input(format!(
                    "the test grid names {} twice: give each method, step count and tolerance once",
                    s.label()
                )));
            }
            grid.push(s);
        }
    }
    if grid.is_empty() {
        return Err(RunError::input("the evaluation grid is empty"));
    }
    Ok(grid)
}

/// The grid of `odeflow eval` for a model trained with `train`: `methods` (default euler,
/// midpoint, rk4) at `steps` (default 1, 2, 4, …, 4096) on the unit interval, and `tols` for
/// the adaptive methods among them. For a model trained adaptively, with neither `methods`
/// nor `tols` given, the training method joins the default methods at its tolerance ×10 and
/// 1, 10⁻¹, …, 10⁻⁴ times it.
pub fn default_eval_grid(
    train: &SolverSpec,
    methods: Option<&[String]>,
    steps: Option<&[usize]>,
    tols: &[f64],
) -> Result<Vec<SolverSpec>, RunError> {
    let steps = steps.map_or_else(|| powers_of_two(4096), <[usize]>::to_vec);
    let defaults = || ["euler", "midpoint", "rk4"].map(String::from).to_vec();
    let (methods, tols) = match (methods, train.tol) {
        (Some(m), _) => (m.to_vec(), tols.to_vec()),
        (None, Some(t)) if tols.is_empty() => {
            let mut m = defaults();
            m.push(train.method.clone());
            (m, (-1..5).map(|k| t / 10f64.powi(k)).collect())
        }
        (None, _) => (defaults(), tols.to_vec()),
    };
    build_grid(&methods, &steps, &tols)
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
        (Some(n), _) => {
            for m in &methods {
                for k in [1, 2, 4, 8, 16] {
                    if let Ok(s) = SolverSpec::fixed(m, n * k) {
                        grid.push(s);
                    }
                }
            }
        }
        _ => {}
    }
    grid
}

/// The row of `spec` from its outcome, compared point by point with the training solver's
/// outcome `train` on the same samples with labels `labels`.
pub fn row_of(
    spec: &SolverSpec,
    e: &EvalOutcome,
    train: &EvalOutcome,
    labels: &[usize],
) -> EvalRow {
    let (mut changed, mut train_only, mut test_only) = (0usize, 0usize, 0usize);
    for ((&a, &b), &y) in train.predictions.iter().zip(&e.predictions).zip(labels) {
        changed += usize::from(a != b);
        match (a == y, b == y) {
            (true, false) => train_only += 1,
            (false, true) => test_only += 1,
            _ => {}
        }
    }
    let n = e.predictions.len().min(train.predictions.len());
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
        changed: (n > 0).then(|| changed as f64 / n as f64),
        p_value: (n > 0).then(|| mcnemar_exact(train_only, test_only)),
    }
}

/// Evaluates any [`FlowModel`] on `test` with its training solver and with every solver
/// of `grid`, on `[t0, t1]`, reporting one `"eval"` stage to `observer`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_model<T: Real, M: FlowModel<T> + ?Sized>(
    model: &mut M,
    test: &Dataset<T>,
    train: &SolverSpec,
    grid: &[SolverSpec],
    interval: (f64, f64),
    batch: usize,
    observer: &dyn Observer,
) -> Result<(TrainEval, Vec<EvalRow>), RunError> {
    let eval = |model: &mut M, s: &SolverSpec| -> Result<EvalOutcome, RunError> {
        let m = s.method()?;
        evaluate_flow(
            model,
            test,
            &m,
            &s.options_on(interval.0, interval.1),
            batch,
        )
        .map_err(RunError::runtime)
    };
    observer.stage("eval", grid.len() as u64 + 1);
    observer.progress(0, &format!("eval {}", train.label()));
    let t = eval(model, train)?;
    let train_eval = TrainEval {
        solver: train.clone(),
        accuracy: t.accuracy,
        accuracy_std: None,
    };
    let mut rows = Vec::with_capacity(grid.len());
    for (i, s) in grid.iter().enumerate() {
        if observer.cancelled() {
            observer.stage_done();
            return Err(RunError::Cancelled(format!(
                "evaluation cancelled after {i} of {} test solvers",
                grid.len()
            )));
        }
        observer.progress(i as u64 + 1, &format!("eval {}", s.label()));
        let e = eval(model, s)?;
        rows.push(row_of(s, &e, &t, test.labels()));
    }
    observer.stage_done();
    Ok((train_eval, rows))
}

/// Evaluates the trained model of the run in `dir` on its test set with every solver of
/// `grid`. The model must belong to the run: its data set, architecture, dtype and data
/// shape are checked against the run's configuration and data.
pub fn evaluate_run(
    dir: &Path,
    grid: &[SolverSpec],
    batch: usize,
    observer: &dyn Observer,
) -> Result<EvalReport, RunError> {
    evaluate_run_on(dir, grid, batch, observer, &Compute::Cpu)
}

/// [`evaluate_run`] with the ODE block solved on `compute` (with [`Compute::Cuda`]:
/// [`crate::cuda::CudaFlowModel`], MLP fields, every solver, f32 on the device).
pub fn evaluate_run_on(
    dir: &Path,
    grid: &[SolverSpec],
    batch: usize,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<EvalReport, RunError> {
    let _lock = files::lock(dir, "eval")?;
    evaluate_unlocked(dir, grid, batch, observer, compute)
}

/// [`evaluate_run_on`] for a caller that holds the folder's lock.
pub(crate) fn evaluate_unlocked(
    dir: &Path,
    grid: &[SolverSpec],
    batch: usize,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<EvalReport, RunError> {
    let model = ModelFile::load(&dir.join(MODEL_FILE))?;
    match model.dtype.as_str() {
        "f64" => evaluate_typed::<f64>(dir, &model, grid, batch, observer, compute),
        _ => evaluate_typed::<f32>(dir, &model, grid, batch, observer, compute),
    }
}

fn evaluate_typed<T: Real>(
    dir: &Path,
    file: &ModelFile,
    grid: &[SolverSpec],
    batch: usize,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<EvalReport, RunError> {
    let cfg = load_run_config(dir)?;
    let data = load_data::<T>(&cfg.data)?;
    file.check_identity(
        &cfg.data.name,
        &cfg.model.spec(),
        &cfg.dtype,
        data.sample_shape(),
        data.classes(),
    )?;
    let mut model = file.build::<T>()?;
    let (train, results) = evaluate_classifier_on(
        &mut model,
        &file.spec.field,
        compute,
        &data.test,
        &file.train,
        grid,
        batch,
        observer,
    )?;
    Ok(EvalReport {
        model: file.fingerprint.clone(),
        dtype: T::NAME.into(),
        samples: data.test.len(),
        seeds: None,
        train,
        results,
    })
}

/// [`evaluate_model`] of a classifier on `[0, 1]` on `compute`: on the CPU the model itself;
/// on a GPU its ODE block ([`crate::cuda::CudaFlowModel`], built from `field`, f32 only;
/// the head stays on the host), so that a model trained on one device is evaluated on the
/// other with the same parameters.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_classifier_on<T: Real>(
    model: &mut crate::models::NeuralClassifier<T>,
    field: &crate::models::FieldSpec,
    compute: &Compute,
    test: &Dataset<T>,
    train: &SolverSpec,
    grid: &[SolverSpec],
    batch: usize,
    observer: &dyn Observer,
) -> Result<(TrainEval, Vec<EvalRow>), RunError> {
    match compute {
        Compute::Cpu => {
            let _ = field;
            evaluate_model(model, test, train, grid, (0.0, 1.0), batch, observer)
        }
        #[cfg(feature = "cuda")]
        Compute::Cuda(dev) => {
            if T::NAME != "f32" {
                return Err(RunError::input(format!(
                    "--device cuda: the GPU computes in f32 and this model is {}; evaluate it on the CPU or in f32",
                    T::NAME
                )));
            }
            let mut gpu = crate::cuda::CudaFlowModel::from_cpu(dev, field, model)
                .map_err(|e| RunError::input(format!("--device cuda: {e}")))?;
            evaluate_model(&mut gpu, test, train, grid, (0.0, 1.0), batch, observer)
        }
    }
}

/// Reads an evaluation report.
pub fn load_report(path: &Path) -> Result<EvalReport, RunError> {
    files::read_json(path, "the evaluation report")
}

/// The report as a table: `role,method,order,steps,tol,accuracy,accuracy_std,loss,nfe,
/// diverged,changed,p_value`, the training solver first (role `train`).
pub fn report_table(report: &EvalReport) -> Table {
    let mut t = Table::new(&[
        "role",
        "method",
        "order",
        "steps",
        "tol",
        "accuracy",
        "accuracy_std",
        "loss",
        "nfe",
        "diverged",
        "changed",
        "p_value",
    ]);
    let tr = &report.train;
    t.push(vec![
        cell("train"),
        cell(tr.solver.method.as_str()),
        cell(tr.solver.order),
        cell(tr.solver.steps),
        cell(tr.solver.tol),
        cell(tr.accuracy),
        cell(tr.accuracy_std),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ]);
    for r in &report.results {
        t.push(vec![
            cell("test"),
            cell(r.method.as_str()),
            cell(r.order),
            cell(r.steps),
            cell(r.tol),
            cell(r.accuracy),
            cell(r.accuracy_std),
            cell(r.loss),
            cell(r.nfe),
            cell(r.diverged),
            cell(r.changed),
            cell(r.p_value),
        ]);
    }
    t
}

/// The report as CSV (see [`report_table`]).
pub fn to_csv(report: &EvalReport) -> String {
    report_table(report).to_csv()
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
        let dup = build_grid(&["euler".into()], &[2, 2], &[]).unwrap_err();
        assert!(dup.message().contains("euler, 2 steps twice"), "{dup}");
        let d = default_check_grid(&SolverSpec::fixed("euler", 2).unwrap());
        assert_eq!(d.len(), 15); // euler, midpoint, rk4 × 5
        assert_eq!(d[4].steps, Some(32));
        let d = default_check_grid(&SolverSpec::fixed("rk4", 8).unwrap());
        assert_eq!(d.len(), 10); // rk4 and dopri5
        let d = default_check_grid(&SolverSpec::adaptive("dopri5", 1e-3).unwrap());
        assert_eq!(d.len(), 5);
        assert!((d[4].tol.unwrap() - 1e-7).abs() < 1e-20);
        // A step-size solver (h = 0.3 → 4 steps) gets the step-count grid.
        let d = default_check_grid(&SolverSpec::step_size("euler", 0.3).unwrap());
        assert_eq!(d[0].steps, Some(4));
    }

    #[test]
    fn eval_grid_defaults_follow_the_training_solver() {
        let fixed = SolverSpec::fixed("euler", 2).unwrap();
        let g = default_eval_grid(&fixed, None, None, &[]).unwrap();
        assert_eq!(g.len(), 3 * 13); // euler, midpoint, rk4 × 1…4096
        assert_eq!((g[0].method.as_str(), g[0].steps), ("euler", Some(1)));
        assert_eq!((g[38].method.as_str(), g[38].steps), ("rk4", Some(4096)));
        let adaptive = SolverSpec::adaptive("dopri5", 1e-3).unwrap();
        let g = default_eval_grid(&adaptive, None, Some(&[4]), &[]).unwrap();
        let tols: Vec<f64> = g.iter().filter_map(|s| s.tol).collect();
        assert_eq!(g.len(), 3 + 6);
        assert!((tols[0] - 1e-2).abs() < 1e-15 && (tols[5] - 1e-7).abs() < 1e-20);
        let mine = ["rk4".to_string()];
        let g = default_eval_grid(&adaptive, Some(&mine), Some(&[3, 5]), &[]).unwrap();
        assert_eq!(
            g,
            vec![
                SolverSpec::fixed("rk4", 3).unwrap(),
                SolverSpec::fixed("rk4", 5).unwrap()
            ]
        );
    }

    #[test]
    fn rows_count_changed_predictions_and_test_the_drop() {
        let outcome = |acc: f64, predictions: Vec<usize>| EvalOutcome {
            accuracy: acc,
            loss: 0.1,
            nfe: 2.0,
            samples: predictions.len(),
            diverged: 0,
            failure: None,
            predictions,
        };
        let labels = vec![0, 1, 0, 1, 0, 1, 0, 1, 0, 1];
        let train = outcome(1.0, labels.clone());
        let mut flipped = labels.clone();
        flipped.iter_mut().take(9).for_each(|p| *p = 1 - *p);
        let test = outcome(0.1, flipped);
        let spec = SolverSpec::fixed("rk4", 8).unwrap();
        let r = row_of(&spec, &test, &train, &labels);
        assert_eq!(r.changed, Some(0.9));
        // 9 discordant points, all in the training solver's favour: p = 2 / 2^9.
        assert!((r.p_value.unwrap() - 2.0 / 512.0).abs() < 1e-15);
    }
}

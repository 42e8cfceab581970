//! The solver-dependence study of Ott et al. (ICLR 2021, Fig. 1) as one library call: train
//! a classifier with one method at several step counts (and seeds), evaluate each model
//! under a grid of test solvers, average over seeds and give the verdict per configuration.
//! `odeflow experiment solver-dependence` is this call plus its figure.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::check::verdict_of;
use super::config::{DataKind, RunConfig};
use super::evaluate::{build_grid, powers_of_two, EvalReport, EvalRow, TrainEval};
use super::pipeline::{ensure_checked, ensure_evaluated, ensure_trained};
use super::{files, Compute, Observer, RunError};
use crate::analysis::solver_dependence::WorstCase;
use crate::solve::SolverSpec;
use crate::stats::mean_std;
use crate::train::read_log;

/// Settings of the study (the experiment's flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverDependenceConfig {
    /// Concentric spheres `sphere<d>`.
    pub dataset: String,
    /// Training method.
    pub train_method: String,
    /// Training step counts (one configuration each).
    pub train_steps: Vec<usize>,
    /// Test methods.
    pub test_methods: Vec<String>,
    /// Test step counts.
    pub test_steps: Vec<usize>,
    /// Training iterations.
    pub iterations: u64,
    /// Adam learning rate.
    pub lr: f64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Seeds 0, 1, …, `seeds − 1`.
    pub seeds: u64,
    /// `f32` or `f64`.
    pub dtype: String,
    /// Largest tolerated accuracy drop.
    pub threshold: f64,
}

impl Default for SolverDependenceConfig {
    fn default() -> Self {
        Self {
            dataset: "sphere2".into(),
            train_method: "euler".into(),
            train_steps: vec![2, 256],
            test_methods: vec!["euler".into(), "midpoint".into(), "rk4".into()],
            test_steps: powers_of_two(4096),
            iterations: 2000,
            lr: 1e-3,
            batch_size: 128,
            seeds: 1,
            dtype: "f32".into(),
            threshold: 0.02,
        }
    }
}

/// One trained configuration, averaged over seeds: the keys of `eval.json` plus the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// `train`, `results` (means over seeds, with `accuracy_std` for several seeds), …
    #[serde(flatten)]
    pub report: EvalReport,
    /// Verdict on the mean accuracies.
    pub valid: bool,
    /// The worst qualifying test solver (on the means).
    pub worst: WorstCase,
    /// The verdict in one sentence.
    pub summary: String,
    /// Seeds whose own model is a valid ODE flow.
    pub seeds_valid: usize,
    /// The run folders, relative to the study's folder.
    pub runs: Vec<String>,
    /// Training time summed over seeds, in seconds.
    pub train_seconds: f64,
}

/// The study's result (`summary.json` holds its headline numbers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverDependenceStudy {
    /// The settings.
    pub config: SolverDependenceConfig,
    /// One entry per training step count, in order.
    pub models: Vec<ModelResult>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Averages the evaluation reports of several seeds of one configuration (accuracies:
/// mean ± std; `changed`: mean; the per-seed paired tests do not carry over to the mean).
pub fn average(reports: &[EvalReport]) -> EvalReport {
    let first = &reports[0];
    let n = reports.len();
    let seeds = (n > 1).then_some(n);
    let (acc, sd) = mean_std(&reports.iter().map(|r| r.train.accuracy).collect::<Vec<_>>());
    let results = (0..first.results.len())
        .map(|i| {
            let rows: Vec<&EvalRow> = reports.iter().map(|r| &r.results[i]).collect();
            if n == 1 {
                return rows[0].clone();
            }
            let (a, s) = mean_std(&rows.iter().map(|r| r.accuracy).collect::<Vec<_>>());
            let losses: Option<Vec<f64>> = rows.iter().map(|r| r.loss).collect();
            let changed: Option<Vec<f64>> = rows.iter().map(|r| r.changed).collect();
            EvalRow {
                accuracy: a,
                accuracy_std: Some(s),
                loss: losses.map(|l| l.iter().sum::<f64>() / n as f64),
                nfe: rows.iter().map(|r| r.nfe).sum::<f64>() / n as f64,
                diverged: rows.iter().map(|r| r.diverged).sum::<usize>() / n,
                changed: changed.map(|c| c.iter().sum::<f64>() / n as f64),
                p_value: None,
                ..rows[0].clone()
            }
        })
        .collect();
    EvalReport {
        model: reports
            .iter()
            .map(|r| r.model.as_str())
            .collect::<Vec<_>>()
            .join(","),
        dtype: first.dtype.clone(),
        samples: first.samples,
        seeds,
        train: TrainEval {
            solver: first.train.solver.clone(),
            accuracy: acc,
            accuracy_std: seeds.map(|_| sd),
        },
        results,
    }
}

/// Runs the study in `dir`: run folders under `dir/runs/` (an interrupted study resumes
/// from them), `<method>-<steps>.json` per configuration and `summary.json`.
pub fn solver_dependence(
    dir: &Path,
    cfg: &SolverDependenceConfig,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<SolverDependenceStudy, RunError> {
    let start = Instant::now();
    if cfg.seeds == 0 || cfg.train_steps.is_empty() {
        return Err(RunError::input(
            "--seeds and --train-steps need at least one value",
        ));
    }
    let grid = build_grid(&cfg.test_methods, &cfg.test_steps, &[])?;
    let mut base = RunConfig::default();
    base.data.name = cfg.dataset.clone();
    base.dtype = cfg.dtype.clone();
    base.solver.method = cfg.train_method.clone();
    base.train.iterations = cfg.iterations;
    base.train.lr = cfg.lr;
    base.train.batch_size = cfg.batch_size;
    base.check.threshold = cfg.threshold;
    if !matches!(base.data.kind()?, DataKind::Spheres(_)) {
        return Err(RunError::input(format!(
            "--dataset {} is not a concentric-spheres data set (sphere<d>)",
            cfg.dataset
        )));
    }
    let total = cfg.train_steps.len() as u64 * cfg.seeds;
    let mut done = 0;
    let mut models = Vec::new();
    for &steps in &cfg.train_steps {
        let (mut reports, mut runs) = (Vec::new(), Vec::new());
        let (mut seeds_valid, mut seconds) = (0, 0.0);
        for seed in 0..cfg.seeds {
            let mut run = base.clone();
            run.solver.steps = Some(steps);
            run.seed = seed;
            run.resolve()?;
            let name = format!("{}-{steps}-s{seed}", cfg.train_method);
            let run_dir: PathBuf = dir.join("runs").join(&name);
            done += 1;
            observer.note(&format!("[{done}/{total}] training {name}"));
            seconds += ensure_trained(&run_dir, &run, observer, compute)?.seconds;
            observer.note(&format!(
                "[{done}/{total}] evaluating {name} with {} test solvers",
                grid.len()
            ));
            let bs = run.check.batch_size;
            let report = ensure_evaluated(&run_dir, &grid, bs, observer, compute)?;
            let check = ensure_checked(&run_dir, cfg.threshold, bs, observer, compute)?;
            seeds_valid += usize::from(check.verdict.valid);
            reports.push(report);
            runs.push(format!("runs/{name}"));
        }
        let mean = average(&reports);
        let v = verdict_of(&mean, cfg.threshold)?;
        let m = ModelResult {
            report: mean,
            valid: v.valid,
            worst: v.worst,
            summary: v.summary,
            seeds_valid,
            runs,
            train_seconds: seconds,
        };
        files::write_json(&m, &dir.join(format!("{}.json", slug(&m))))?;
        models.push(m);
    }
    let study = SolverDependenceStudy {
        config: cfg.clone(),
        models,
        seconds: start.elapsed().as_secs_f64(),
    };
    files::write_json(&summary(&study), &dir.join("summary.json"))?;
    Ok(study)
}

fn slug(m: &ModelResult) -> String {
    m.report.train.solver.slug()
}

/// The headline numbers of a study (`summary.json`): per configuration the training solver,
/// its file, test accuracy and verdict.
pub fn summary(study: &SolverDependenceStudy) -> serde_json::Value {
    let c = &study.config;
    let models: Vec<serde_json::Value> = study
        .models
        .iter()
        .map(|m| {
            serde_json::json!({
                "train": m.report.train.solver,
                "file": format!("{}.json", slug(m)),
                "test_accuracy": m.report.train.accuracy,
                "valid": m.valid,
                "worst": m.worst,
                "summary": m.summary,
            })
        })
        .collect();
    serde_json::json!({
        "dataset": c.dataset, "iterations": c.iterations, "lr": c.lr,
        "batch_size": c.batch_size, "seeds": c.seeds, "dtype": c.dtype,
        "threshold": c.threshold, "seconds": study.seconds,
        "models": models, "figure": "solver-dependence.png",
    })
}

/// One trained model of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Name (`adapted`, `euler-2`, …).
    pub name: String,
    /// Run folder, relative to the output folder.
    pub run: String,
    /// Whether its step was adapted.
    pub adapted: bool,
    /// Step size at the start of training.
    pub initial_step_size: f64,
    /// Step size at the end of training.
    pub final_step_size: f64,
    /// Steps on [0, 1] at the end.
    pub final_steps: usize,
    /// Mean field evaluations per training forward solve.
    pub nfe_forward_mean: f64,
    /// Test accuracy with the (final) training solver.
    pub test_accuracy: f64,
    /// The verdict.
    pub valid: bool,
    /// The worst more-accurate solver.
    pub worst: WorstCase,
    /// The verdict in one sentence.
    pub summary: String,
    /// Training time in seconds.
    pub seconds: f64,
}

/// The models of one data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// Data set.
    pub dataset: String,
    /// Iterations.
    pub iterations: u64,
    /// Adapted and fixed-step models.
    pub models: Vec<ModelEntry>,
    /// `(iteration, h)` of the adapted run at each change of the step (and at both ends).
    pub trajectory: Vec<(u64, f64)>,
}

/// Ott et al.'s step-size adaptation next to fixed-step models, on one data set: trains
/// the adapted model (`base` with adaptation on) and one model per step count of `fixed`
/// into `out/label/<name>`, and checks each, on `compute` (`odeflow experiment
/// step-adaptation`).
pub fn adaptation_case(
    out: &Path,
    label: &str,
    base: &RunConfig,
    fixed: &[usize],
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<CaseResult, RunError> {
    let mut models = Vec::new();
    let mut trajectory = Vec::new();
    let mut jobs: Vec<(String, RunConfig)> = Vec::new();
    let mut adapted = base.clone();
    adapted.adapt.enabled = true;
    adapted.resolve()?;
    jobs.push(("adapted".into(), adapted));
    for &n in fixed {
        let mut c = base.clone();
        c.solver.steps = Some(n);
        c.resolve()?;
        jobs.push((format!("{}-{n}", base.solver.method), c));
    }
    for (name, cfg) in jobs {
        let dir = out.join(label).join(&name);
        observer.note(&format!("{label}: training {name}"));
        let s = ensure_trained(&dir, &cfg, observer, compute)?;
        let (t, bs) = (cfg.check.threshold, cfg.check.batch_size);
        let check = ensure_checked(&dir, t, bs, observer, compute)?;
        let is_adapted = s.adaptation.is_some();
        let initial = s
            .adaptation
            .as_ref()
            .map_or(s.train.clone(), |a| a.initial.clone());
        let h_of = |spec: &SolverSpec| {
            spec.step_size
                .unwrap_or_else(|| 1.0 / spec.steps.unwrap_or(1) as f64)
        };
        if is_adapted {
            let log = read_log(&dir.join(crate::train::METRICS_FILE)).map_err(|e| {
                RunError::runtime(format!(
                    "cannot read the metrics of '{}': {e}",
                    dir.display()
                ))
            })?;
            let mut last = f64::NAN;
            let n = log.len();
            for (i, r) in log.iter().enumerate() {
                let (Some(it), Some(h)) = (r["iteration"].as_u64(), r["h"].as_f64()) else {
                    continue;
                };
                if h != last || i + 1 == n {
                    trajectory.push((it, h));
                    last = h;
                }
            }
        }
        models.push(ModelEntry {
            run: format!("{label}/{name}"),
            name,
            adapted: is_adapted,
            initial_step_size: h_of(&initial),
            final_step_size: h_of(&s.train),
            final_steps: s.train.steps.unwrap_or(1),
            nfe_forward_mean: s.nfe_forward_mean,
            test_accuracy: s.test_accuracy,
            valid: check.verdict.valid,
            worst: check.verdict.worst,
            summary: check.verdict.summary,
            seconds: s.seconds,
        });
    }
    Ok(CaseResult {
        dataset: base.data.name.clone(),
        iterations: base.train.iterations,
        models,
        trajectory,
    })
}

//! `odeflow experiment solver-dependence`: the headline figure of Ott et al. (ICLR 2021).
//!
//! On `sphere2` (2-D concentric shells; the middle shell is class 1), train the
//! `simple_odenet` classifier with Euler at 2 steps and at 256 steps, then test each model
//! with Euler at 1, 2, 4, …, 4096 steps and with midpoint and RK4 at the same step counts.
//!
//! No homeomorphism of the plane followed by a linear head can separate the middle shell from
//! both others (the image of the middle annulus still encloses the inner disc), so a true ODE
//! flow tops out near 75 % here. Euler with 2 large steps is not a homeomorphism: the coarse
//! model reaches ~100 % with its training solver and collapses (or blows up) when the same
//! model is solved accurately — it is not an ODE flow. The fine model keeps whatever accuracy
//! it has under every solver.
//!
//! Defaults are chosen to show this in minutes on a laptop: 2000 iterations of Adam at
//! learning rate 1e-3, batch 128, f32, one seed. The paper's setting is `--iterations 10000
//! --lr 1e-4 --seeds 5`. With several seeds the curves are means with ± std bands.
//!
//! Output folder: `euler-2.json` and `euler-256.json` (keys of `odeflow eval`: `train`,
//! `results`; plus the verdict), `solver-dependence.png`, `summary.json`, and the run folders
//! under `runs/` (an interrupted experiment resumes from them).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use odeflow::analysis::solver_dependence::WorstCase;
use serde::{Deserialize, Serialize};

use crate::args::positive;
use crate::error::CliError;
use crate::output::{self, Layout};
use crate::plot::{self, Figure};
use crate::progress::Reporter;
use crate::runs::check::verdict_of;
use crate::runs::config::RunConfig;
use crate::runs::evaluate::{build_grid, powers_of_two, EvalReport, EvalRow, TrainEval};
use crate::runs::model_file::SolverSpec;
use crate::runs::pipeline::{ensure_checked, ensure_evaluated, ensure_trained};
use crate::runs::plots::accuracy_panels;
use crate::runs::sweep::mean_std;

/// Flags of `odeflow experiment solver-dependence`.
#[derive(Debug, Args)]
pub struct SolverDependenceArgs {
    /// Output folder.
    #[arg(
        long,
        value_name = "FOLDER",
        default_value = "results/solver-dependence"
    )]
    pub out_dir: PathBuf,
    /// Data set (concentric spheres sphere<d>).
    #[arg(long, default_value = "sphere2")]
    pub dataset: String,
    /// Training method.
    #[arg(long, default_value = "euler")]
    pub train_method: String,
    /// Training step counts, comma-separated (one model each).
    #[arg(long, value_delimiter = ',', default_value = "2,256")]
    pub train_steps: Vec<usize>,
    /// Test methods, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "euler,midpoint,rk4")]
    pub test_methods: Vec<String>,
    /// Test step counts (default 1, 2, 4, …, 4096).
    #[arg(long, value_delimiter = ',', value_name = "N,N")]
    pub test_steps: Option<Vec<usize>>,
    /// Training iterations (paper: 10000).
    #[arg(long, default_value_t = 2000)]
    pub iterations: u64,
    /// Adam learning rate (paper: 1e-4).
    #[arg(long, default_value_t = 1e-3, value_parser = positive)]
    pub lr: f64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Number of seeds (0, 1, …); curves are means ± std (paper: 5).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Scalar type: f32 or f64.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Largest tolerated accuracy drop of the validity verdict.
    #[arg(long, default_value_t = 0.02)]
    pub threshold: f64,
}

/// One trained configuration, averaged over seeds: the keys of `odeflow eval` plus the
/// verdict.
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
    /// The run folders.
    pub runs: Vec<String>,
    /// Training time summed over seeds, in seconds.
    pub train_seconds: f64,
}

/// Averages the evaluation reports of several seeds of one configuration.
pub fn average(reports: &[EvalReport]) -> EvalReport {
    let first = &reports[0];
    let n = reports.len();
    let seeds = (n > 1).then_some(n);
    let (acc, sd) = mean_std(&reports.iter().map(|r| r.train.accuracy).collect::<Vec<_>>());
    let results = (0..first.results.len())
        .map(|i| {
            let rows: Vec<&EvalRow> = reports.iter().map(|r| &r.results[i]).collect();
            let (a, s) = mean_std(&rows.iter().map(|r| r.accuracy).collect::<Vec<_>>());
            let losses: Option<Vec<f64>> = rows.iter().map(|r| r.loss).collect();
            EvalRow {
                accuracy: a,
                accuracy_std: seeds.map(|_| s),
                loss: losses.map(|l| l.iter().sum::<f64>() / n as f64),
                nfe: rows.iter().map(|r| r.nfe).sum::<f64>() / n as f64,
                diverged: rows.iter().map(|r| r.diverged).sum::<usize>() / n,
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

/// The experiment's summary file.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    dataset: &'a str,
    iterations: u64,
    lr: f64,
    batch_size: usize,
    seeds: u64,
    dtype: &'a str,
    threshold: f64,
    seconds: f64,
    models: Vec<SummaryModel>,
    figure: &'a str,
}

#[derive(Debug, Serialize)]
struct SummaryModel {
    train: SolverSpec,
    file: String,
    test_accuracy: f64,
    valid: bool,
    worst: WorstCase,
    summary: String,
}

/// Runs `odeflow experiment solver-dependence`.
pub fn run(args: SolverDependenceArgs, reporter: &Reporter) -> Result<(), CliError> {
    let start = Instant::now();
    if args.seeds == 0 || args.train_steps.is_empty() {
        return Err(CliError::input(
            "--seeds and --train-steps need at least one value",
        ));
    }
    let test_steps = args
        .test_steps
        .clone()
        .unwrap_or_else(|| powers_of_two(4096));
    let grid = build_grid(&args.test_methods, &test_steps, &[])?;
    let mut base = RunConfig::default();
    base.data.name = args.dataset.clone();
    base.dtype = args.dtype.clone();
    base.solver.method = args.train_method.clone();
    base.train.iterations = args.iterations;
    base.train.lr = args.lr;
    base.train.batch_size = args.batch_size;
    base.check.threshold = args.threshold;
    if !matches!(base.data.kind()?, crate::runs::config::DataKind::Spheres(_)) {
        return Err(CliError::input(format!(
            "--dataset {} is not a concentric-spheres data set (sphere<d>)",
            args.dataset
        )));
    }
    let mut models = Vec::new();
    let mut panels = Vec::new();
    let total = args.train_steps.len() as u64 * args.seeds;
    let mut done = 0;
    for &steps in &args.train_steps {
        let mut reports = Vec::new();
        let mut runs = Vec::new();
        let mut seeds_valid = 0;
        let mut seconds = 0.0;
        for seed in 0..args.seeds {
            let mut cfg = base.clone();
            cfg.solver.steps = Some(steps);
            cfg.seed = seed;
            cfg.resolve()?;
            let name = format!("{}-{steps}-s{seed}", args.train_method);
            let dir = args.out_dir.join("runs").join(&name);
            done += 1;
            reporter.note(format!("[{done}/{total}] training {name}"));
            let s = ensure_trained(&dir, &cfg, reporter)?;
            seconds += s.seconds;
            reporter.note(format!(
                "[{done}/{total}] evaluating {name} with {} test solvers",
                grid.len()
            ));
            let report = ensure_evaluated(&dir, &grid, cfg.check.batch_size, reporter)?;
            let check = ensure_checked(&dir, args.threshold, cfg.check.batch_size, reporter)?;
            seeds_valid += usize::from(check.valid);
            reports.push(report);
            runs.push(format!("runs/{name}"));
        }
        let mean = average(&reports);
        let v = verdict_of(&mean, args.threshold)?;
        let slug = mean.train.solver.slug();
        let title = format!(
            "trained with {}: {}",
            mean.train.solver.label(),
            if v.valid {
                "valid ODE flow".to_string()
            } else {
                format!("NOT an ODE flow (drop {:.2})", v.worst.drop)
            }
        );
        panels.extend(accuracy_panels(&title, &mean, Some(args.threshold)));
        let m = ModelResult {
            report: mean,
            valid: v.valid,
            worst: v.worst,
            summary: v.summary,
            seeds_valid,
            runs,
            train_seconds: seconds,
        };
        output::write_json(
            &m,
            Some(&args.out_dir.join(format!("{slug}.json"))),
            Layout::Pretty,
        )?;
        models.push((slug, m));
    }
    let fig_name = "solver-dependence.png";
    let fig = Figure {
        title: format!(
            "Solver dependence on {}: test accuracy of each model under other solvers{}",
            args.dataset,
            if args.seeds > 1 {
                format!(" (mean ± std, {} seeds)", args.seeds)
            } else {
                String::new()
            }
        ),
        panels,
    };
    plot::save(&fig, &args.out_dir.join(fig_name))?;
    let summary = Summary {
        dataset: &args.dataset,
        iterations: args.iterations,
        lr: args.lr,
        batch_size: args.batch_size,
        seeds: args.seeds,
        dtype: &args.dtype,
        threshold: args.threshold,
        seconds: start.elapsed().as_secs_f64(),
        figure: fig_name,
        models: models
            .iter()
            .map(|(slug, m)| SummaryModel {
                train: m.report.train.solver.clone(),
                file: format!("{slug}.json"),
                test_accuracy: m.report.train.accuracy,
                valid: m.valid,
                worst: m.worst.clone(),
                summary: m.summary.clone(),
            })
            .collect(),
    };
    output::write_json(
        &summary,
        Some(&args.out_dir.join("summary.json")),
        Layout::Pretty,
    )?;
    for (_, m) in &models {
        reporter.note(&m.summary);
    }
    reporter.note(format!(
        "figure: {} ({:.0} s)",
        args.out_dir.join(fig_name).display(),
        summary.seconds
    ));
    output::write_json(&summary, None, Layout::Pretty)
}

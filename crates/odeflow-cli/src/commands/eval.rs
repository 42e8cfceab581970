//! `odeflow eval`: the test accuracy of a trained run under every test solver of a grid.
//!
//! ```text
//! odeflow eval runs/e2                                   # euler, midpoint, rk4 × 1, 2, 4, …, 4096 steps
//! odeflow eval runs/e2 --methods euler,rk4 --steps 1,2,4,8,16
//! odeflow eval runs/d5 --methods dopri5 --tols 1e-2,1e-4,1e-6
//! ```
//!
//! Writes `eval.json` (keys `train` and `results`), `eval.csv` and `eval.png` (accuracy
//! against the number of test steps on a log axis, one line per test method, the training
//! configuration marked) into the run folder, or where `--out`, `--csv`, `--plot` say.

use std::path::PathBuf;

use clap::Args;

use crate::args::positive;
use crate::error::CliError;
use crate::output::{self, Layout};
use crate::plot::{self, Figure};
use crate::progress::Reporter;
use crate::runs::evaluate::{
    build_grid, evaluate_run, powers_of_two, to_csv, EvalReport, EVAL_FILE,
};
use crate::runs::load_run_config;
use crate::runs::model_file::{ModelFile, MODEL_FILE};
use crate::runs::plots::accuracy_panels;

/// Flags of `odeflow eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run folder (written by `odeflow train`).
    pub run: PathBuf,
    /// Test methods, comma-separated (default euler,midpoint,rk4; for a model trained with
    /// an adaptive method, also that method at its tolerance and 10…10⁴ times tighter).
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
    /// Test step counts on [0, 1], comma-separated (default 1, 2, 4, …, 4096).
    #[arg(long, value_delimiter = ',', value_name = "N,N")]
    pub steps: Option<Vec<usize>>,
    /// Tolerances for the adaptive methods among --methods (which then run adaptively).
    #[arg(long, value_delimiter = ',', value_name = "TOL,TOL", value_parser = positive)]
    pub tols: Vec<f64>,
    /// Samples per evaluation batch (default: the run's).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// The JSON report (default RUN/eval.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The CSV table (default RUN/eval.csv).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// The plot, .png or .svg (default RUN/eval.png).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

/// The evaluation figure of a report.
pub fn eval_figure(report: &EvalReport, title: &str) -> Figure {
    Figure {
        title: title.into(),
        panels: accuracy_panels("test accuracy by test solver", report, None),
    }
}

/// Runs `odeflow eval`.
pub fn run(args: EvalArgs, reporter: &Reporter) -> Result<(), CliError> {
    let cfg = load_run_config(&args.run)?;
    let steps = args.steps.clone().unwrap_or_else(|| powers_of_two(4096));
    let model = ModelFile::load(&args.run.join(MODEL_FILE))?;
    let (methods, tols) = match (&args.methods, model.train.tol) {
        (Some(m), _) => (m.clone(), args.tols.clone()),
        (None, Some(t)) if args.tols.is_empty() => {
            let mut m: Vec<String> = ["euler", "midpoint", "rk4"].map(String::from).to_vec();
            m.push(model.train.method.clone());
            (m, (-1..5).map(|k| t / 10f64.powi(k)).collect())
        }
        (None, _) => (
            ["euler", "midpoint", "rk4"].map(String::from).to_vec(),
            args.tols.clone(),
        ),
    };
    let grid = build_grid(&methods, &steps, &tols)?;
    if let Some(p) = &args.plot {
        plot::Format::from_path(p)?;
    }
    let batch = args.batch_size.unwrap_or(cfg.check.batch_size).max(1);
    let report = evaluate_run(&args.run, &grid, batch, reporter)?;
    // The report always lands in the run folder (or --out); without --out it also goes to
    // stdout.
    if args.out.is_none() {
        output::write_json(&report, None, Layout::Pretty)?;
    }
    let out = args.out.unwrap_or_else(|| args.run.join(EVAL_FILE));
    output::write_json(&report, Some(&out), Layout::Pretty)?;
    let csv = args.csv.unwrap_or_else(|| args.run.join("eval.csv"));
    output::write_atomic(&csv, to_csv(&report).as_bytes())?;
    let png = args.plot.unwrap_or_else(|| args.run.join("eval.png"));
    let title = format!(
        "{} trained with {} (test accuracy {:.3})",
        cfg.data.name,
        report.train.solver.label(),
        report.train.accuracy
    );
    plot::save(&eval_figure(&report, &title), &png)?;
    reporter.note(format!(
        "trained with {}: test accuracy {:.4}",
        report.train.solver.label(),
        report.train.accuracy
    ));
    for r in &report.results {
        reporter.note(format!(
            "  {:<28} {:.4}{}",
            r.solver().label(),
            r.accuracy,
            if r.diverged > 0 {
                format!("  ({} diverged)", r.diverged)
            } else {
                String::new()
            }
        ));
    }
    reporter.note(format!(
        "wrote {}, {}, {}",
        out.display(),
        csv.display(),
        png.display()
    ));
    Ok(())
}

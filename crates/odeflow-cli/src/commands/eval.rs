//! `odeflow eval`: the test accuracy of a trained run under every test solver of a grid.
//!
//! ```text
//! odeflow eval runs/e2                                   # euler, midpoint, rk4 × 1, 2, 4, …, 4096 steps
//! odeflow eval runs/e2 --methods euler,rk4 --steps 1,2,4,8,16
//! odeflow eval runs/d5 --methods dopri5 --tols 1e-2,1e-4,1e-6
//! odeflow eval --weights model.safetensors --model simple_odenet --dataset sphere2 \
//!     --train-method euler --train-steps 2 --out-dir evals/torch-e2
//! ```
//!
//! Writes `eval.json` (keys `train` and `results`), `eval.csv` and `eval.png` (accuracy
//! against the number of test steps on a log axis, one line per test method, the training
//! configuration marked) into the run folder (`--out-dir` with `--weights`) (the CSV and plot where `--csv`, `--plot` say),
//! and prints a table of the test solvers (`--json`: the report).

use std::path::PathBuf;

use clap::Args;

use odeflow::runs::evaluate::{
    default_eval_grid, evaluate_run_on, report_table, EvalReport, EVAL_FILE,
};
use odeflow::runs::load_run_config;
use odeflow::runs::model_file::{ModelFile, MODEL_FILE};

use odeflow::weights::evaluate_weights;

use crate::args::positive;
use crate::commands::external::ExternalArgs;
use crate::device::DeviceArg;
use crate::error::CliError;
use crate::output::{self, Layout};
use crate::plot::runs::accuracy_panels;
use crate::plot::{self, Figure};
use crate::progress::{Reporter, RunObserver};

/// Flags of `odeflow eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run folder (written by `odeflow train`); or give --weights instead.
    #[arg(required_unless_present = "weights", conflicts_with = "weights")]
    pub run: Option<PathBuf>,
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
    #[arg(long, value_name = "N", value_parser = crate::args::count)]
    pub batch_size: Option<usize>,
    /// The CSV table (default RUN/eval.csv).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// The plot, .png or .svg (default RUN/eval.png).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// A model trained elsewhere instead of a run folder.
    #[command(flatten)]
    pub external: ExternalArgs,
}

/// The evaluation figure of a report.
pub fn eval_figure(report: &EvalReport, title: &str) -> Figure {
    Figure {
        title: title.into(),
        panels: accuracy_panels("test accuracy by test solver", report, None),
    }
}

/// Runs `odeflow eval`.
pub fn run(args: EvalArgs, reporter: &Reporter, device: DeviceArg) -> Result<(), CliError> {
    let ext = args.external.resolve()?;
    if let Some((m, _)) = &ext {
        crate::device::require_f32(device, &m.dtype)?;
    }
    let compute = crate::device::open(device)?;
    let (dir, train, data_name, default_batch) = match (&ext, &args.run) {
        (Some((m, out)), _) => (out.clone(), m.train.clone(), m.data.name.clone(), 1000),
        (None, Some(run)) => {
            let cfg = load_run_config(run)?;
            let model = ModelFile::load(&run.join(MODEL_FILE))?;
            (
                run.clone(),
                model.train,
                cfg.data.name,
                cfg.check.batch_size,
            )
        }
        (None, None) => return Err(CliError::input("give a run folder or --weights FILE")),
    };
    let grid = default_eval_grid(
        &train,
        args.methods.as_deref(),
        args.steps.as_deref(),
        &args.tols,
    )?;
    if let Some(p) = &args.plot {
        plot::Format::from_path(p)?;
    }
    for p in [args.csv.as_deref(), args.plot.as_deref()]
        .into_iter()
        .flatten()
    {
        output::check_target(p)?;
    }
    let batch = args.batch_size.unwrap_or(default_batch).max(1);
    let observer = RunObserver::new(reporter);
    let report = match &ext {
        Some((m, _)) => evaluate_weights(m, &grid, batch, &observer, &compute)?,
        None => evaluate_run_on(&dir, &grid, batch, &observer, &compute)?,
    };
    let json = dir.join(EVAL_FILE);
    output::write_json(&report, Some(&json), Layout::Pretty)?;
    let table = report_table(&report);
    let csv = args.csv.unwrap_or_else(|| dir.join("eval.csv"));
    output::write_atomic(&csv, table.to_csv().as_bytes())?;
    let png = args.plot.unwrap_or_else(|| dir.join("eval.png"));
    let title = format!(
        "{} trained with {} (test accuracy {:.3})",
        data_name,
        report.train.solver.label(),
        report.train.accuracy
    );
    plot::save(&eval_figure(&report, &title), &png)?;
    reporter.result(&report, || {
        let mut t =
            odeflow::report::Table::new(&["test solver", "accuracy", "changed", "diverged"]);
        for r in &report.results {
            t.push(vec![
                r.solver().label(),
                format!("{:.4}", r.accuracy),
                r.changed
                    .map(|c| format!("{:.1}%", 100.0 * c))
                    .unwrap_or_default(),
                r.diverged.to_string(),
            ]);
        }
        format!(
            "trained with {}: test accuracy {:.4} on {} samples\n{}wrote {}, {}, {}\n",
            report.train.solver.label(),
            report.train.accuracy,
            report.samples,
            t.to_text(),
            json.display(),
            csv.display(),
            png.display()
        )
    })
}

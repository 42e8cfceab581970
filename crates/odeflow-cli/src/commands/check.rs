//! `odeflow check`: the ODE-validity verdict of a trained run.
//!
//! ```text
//! odeflow check runs/e2                  # exit 0: valid ODE flow, 3: not valid
//! odeflow check runs/e2 --threshold 0.05
//! odeflow check --weights model.safetensors --model simple_odenet --dataset sphere2 \
//!     --train-method euler --train-steps 2 --out-dir checks/torch-e2
//! ```
//!
//! A trained model is a valid ODE flow when every solver of equal or smaller numerical error
//! (same or higher order, same or more steps, same or tighter tolerance) keeps its test
//! accuracy within `--threshold` of the training solver's. The run's `eval.json` is reused
//! when it belongs to the current model; otherwise the training method at 1×–16× the training
//! steps and the next higher-order methods are evaluated. Writes `check.json` and `check.png`
//! into the run folder (`--out-dir` with `--weights`) and prints the verdict, a table of the qualifying solvers (accuracy,
//! drop, the fraction of changed predictions, McNemar's p-value) and the files written on
//! stdout (`--json`: the JSON report).

use std::path::PathBuf;

use clap::Args;
use odeflow::runs::check::{check_run_on, CheckReport, CHECK_FILE};
use odeflow::runs::load_run_config;
use odeflow::weights::check_weights;

use crate::commands::external::ExternalArgs;
use crate::device::DeviceArg;
use crate::error::{CliError, EXIT_NOT_VALID};
use crate::plot::runs::noise_label;
use crate::progress::{Reporter, RunObserver};

/// Flags of `odeflow check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The run folder (written by `odeflow train`); or give --weights instead.
    #[arg(required_unless_present = "weights", conflicts_with = "weights")]
    pub run: Option<PathBuf>,
    /// Largest tolerated drop of test accuracy (default: the run's, 0.02).
    #[arg(long, value_name = "DROP", value_parser = crate::args::finite, allow_hyphen_values = true)]
    pub threshold: Option<f64>,
    /// Samples per evaluation batch (default: the run's).
    #[arg(long, value_name = "N", value_parser = crate::args::count)]
    pub batch_size: Option<usize>,
    /// Exit with 0 also when the model is not a valid ODE flow.
    #[arg(long)]
    pub exit_zero: bool,
    /// A model trained elsewhere instead of a run folder.
    #[command(flatten)]
    pub external: ExternalArgs,
}

/// The check for people: the verdict line, a table of the qualifying solvers (accuracy,
/// drop, changed predictions, p-value) and where the files went — one screen.
pub fn human_check(report: &CheckReport, files: &str) -> String {
    use odeflow::report::{cell, Table};
    let v = &report.verdict;
    let mut t = Table::new(&["test solver", "accuracy", "drop", "changed", "p"]);
    let mut rows: Vec<_> = report
        .results
        .iter()
        .filter(|r| odeflow::analysis::solver_dependence::qualifies(r, &report.train))
        .collect();
    rows.sort_by(|a, b| a.accuracy.total_cmp(&b.accuracy));
    let shown = rows.len().min(12);
    for r in &rows[..shown] {
        t.push(vec![
            cell(r.solver().label()),
            format!("{:.4}", r.accuracy),
            format!("{:+.4}", v.train_accuracy - r.accuracy),
            r.changed
                .map(|c| format!("{:.1}%", 100.0 * c))
                .unwrap_or_default(),
            cell(r.p_value),
        ]);
    }
    let more = if rows.len() > shown {
        format!(
            "  … and {} more (the {} lowest shown)\n",
            rows.len() - shown,
            shown
        )
    } else {
        String::new()
    };
    format!(
        "{}\n\ntrained with {}: test accuracy {:.4}; {} qualifying solvers ({}), worst: {}\n{}{more}\n{files}\n",
        v.summary,
        report.train.label(),
        v.train_accuracy,
        v.compared,
        report.source,
        noise_label(&v.worst),
        t.to_text()
    )
}

/// Runs `odeflow check`.
pub fn run(args: CheckArgs, reporter: &Reporter, device: DeviceArg) -> Result<(), CliError> {
    let external = args.external.resolve()?;
    if let Some((m, _)) = &external {
        crate::device::require_f32(device, &m.dtype)?;
    }
    let compute = crate::device::open(device)?;
    let observer = RunObserver::new(reporter);
    let (dir, report) = match (external, &args.run) {
        (Some((m, out)), _) => {
            let threshold = args.threshold.unwrap_or(0.02);
            let batch = args.batch_size.unwrap_or(1000).max(1);
            let report = check_weights(&m, &out, threshold, batch, &observer, &compute)?;
            (out, report)
        }
        (None, Some(run)) => {
            let cfg = load_run_config(run)?;
            let threshold = args.threshold.unwrap_or(cfg.check.threshold);
            let batch = args.batch_size.unwrap_or(cfg.check.batch_size).max(1);
            (
                run.clone(),
                check_run_on(run, threshold, batch, &observer, &compute)?,
            )
        }
        (None, None) => return Err(CliError::input("give a run folder or --weights FILE")),
    };
    observer.finish()?;
    let files = format!(
        "wrote {} and {}",
        dir.join(CHECK_FILE).display(),
        dir.join(&report.plot).display()
    );
    reporter.result(&report, || human_check(&report, &files))?;
    if report.verdict.valid || args.exit_zero {
        Ok(())
    } else {
        Err(CliError::Status(EXIT_NOT_VALID))
    }
}

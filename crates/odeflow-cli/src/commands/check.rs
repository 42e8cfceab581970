//! `odeflow check`: the ODE-validity verdict of a trained run.
//!
//! ```text
//! odeflow check runs/e2                  # exit 0: valid ODE flow, 3: not valid
//! odeflow check runs/e2 --threshold 0.05
//! ```
//!
//! A trained model is a valid ODE flow when every solver of equal or smaller numerical error
//! (same or higher order, same or more steps, same or tighter tolerance) keeps its test
//! accuracy within `--threshold` of the training solver's. The run's `eval.json` is reused
//! when it belongs to the current model; otherwise the training method at 1×–16× the training
//! steps and the next higher-order methods are evaluated. Writes `check.json` and `check.png`
//! into the run folder and prints the one-line verdict on stdout.

use std::path::PathBuf;

use clap::Args;

use crate::error::{CliError, EXIT_NOT_VALID};
use crate::output::{self, Layout};
use crate::progress::Reporter;
use crate::runs::check::{check_run, CHECK_FILE};
use crate::runs::load_run_config;

/// Flags of `odeflow check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The run folder (written by `odeflow train`).
    pub run: PathBuf,
    /// Largest tolerated drop of test accuracy (default: the run's, 0.02).
    #[arg(long, value_name = "DROP")]
    pub threshold: Option<f64>,
    /// Samples per evaluation batch (default: the run's).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Exit with 0 also when the model is not a valid ODE flow.
    #[arg(long)]
    pub exit_zero: bool,
}

/// Runs `odeflow check`.
pub fn run(args: CheckArgs, reporter: &Reporter) -> Result<(), CliError> {
    let cfg = load_run_config(&args.run)?;
    let threshold = args.threshold.unwrap_or(cfg.check.threshold);
    let batch = args.batch_size.unwrap_or(cfg.check.batch_size).max(1);
    let report = check_run(&args.run, threshold, batch, reporter)?;
    reporter.note(&report.summary);
    output::write_json(&report, None, Layout::Pretty)?;
    reporter.note(format!(
        "evaluated: {} ({} qualifying solvers); wrote {} and {}",
        report.source,
        report.compared,
        args.run.join(CHECK_FILE).display(),
        args.run.join(&report.plot).display()
    ));
    if report.valid || args.exit_zero {
        Ok(())
    } else {
        Err(CliError::Status(EXIT_NOT_VALID))
    }
}

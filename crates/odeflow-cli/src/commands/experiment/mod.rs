//! `odeflow experiment`: the papers' experiments end to end, each writing its results (JSON)
//! and figures into one output folder.
//!
//! ```text
//! odeflow experiment --list
//! odeflow experiment solver-dependence --out-dir runs/solver-dependence
//! odeflow experiment step-adaptation --out-dir runs/step-adaptation
//! ```

pub mod solver_dependence;
pub mod step_adaptation;

use clap::{Args, Subcommand};

use crate::error::CliError;
use crate::output;
use crate::progress::Reporter;

/// Flags of `odeflow experiment`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExperimentArgs {
    /// List the experiments and exit.
    #[arg(long)]
    pub list: bool,
    /// The experiment to run.
    #[command(subcommand)]
    pub which: Option<Experiment>,
}

/// The experiments.
#[derive(Debug, Subcommand)]
pub enum Experiment {
    /// Ott et al. (ICLR 2021): train on sphere2 with Euler at 2 and at 256 steps, test each
    /// with Euler, midpoint and RK4 at 1…4096 steps; the coarse model collapses under finer
    /// solvers, the fine one holds its accuracy.
    SolverDependence(solver_dependence::SolverDependenceArgs),
    /// Ott et al.'s step-size adaptation during training on sphere2 (and MNIST when its files
    /// are found): the step-size trajectory and the validity verdict next to fixed-step models.
    StepAdaptation(step_adaptation::StepAdaptationArgs),
}

/// `name — description` of every experiment, from the clap definitions.
pub fn listing() -> Vec<(String, String)> {
    let cmd = <Experiment as Subcommand>::augment_subcommands(clap::Command::new("experiment"));
    cmd.get_subcommands()
        .map(|c| {
            let about = c.get_about().map(|a| a.to_string()).unwrap_or_default();
            (c.get_name().to_string(), crate::error::one_line(about))
        })
        .collect()
}

/// Runs `odeflow experiment`.
pub fn run(args: ExperimentArgs, reporter: &Reporter) -> Result<(), CliError> {
    match args.which {
        Some(Experiment::SolverDependence(a)) => solver_dependence::run(a, reporter),
        Some(Experiment::StepAdaptation(a)) => step_adaptation::run(a, reporter),
        None => {
            let text: String = listing()
                .into_iter()
                .map(|(name, about)| format!("{name:<20} {about}\n"))
                .collect();
            output::write_stdout(text.as_bytes())
        }
    }
}

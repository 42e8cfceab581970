//! `odeflow experiment`: the papers' experiments as reproducible commands.
//!
//! ```text
//! odeflow experiment --list
//! odeflow experiment imde --out-dir results/imde
//! odeflow experiment conservation --iterations 300000 --seeds 5
//! ```
//!
//! Every experiment follows the same conventions: progress bars on stderr; its summary JSON
//! on stdout (or in `--out`); the full results (JSON with every number, CSV where tabular)
//! and PNG plots in `--out-dir` (default `experiments/<name>`); defaults that finish in
//! minutes on a laptop CPU and flags (`--iterations`, `--seeds`, `--hidden`,
//! `--train-points`) that scale to the papers' budgets.
//!
//! Adding an experiment is one file in this folder (its clap `Args` struct and `run`) and
//! one variant of [`Experiment`] with its arm in [`Experiment::run`]; the variant's doc
//! comment is what `--list` prints.

mod bars;
pub mod common;
pub mod conservation;
pub mod imde;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::error::CliError;
use crate::output::{self, Layout};
use crate::progress::Reporter;

/// Flags of `odeflow experiment`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExperimentArgs {
    /// List the experiments and what each one reproduces.
    #[arg(long)]
    list: bool,

    /// With --list: print a JSON array instead of a table.
    #[arg(long, requires = "list")]
    json: bool,

    /// The experiment to run.
    #[command(subcommand)]
    experiment: Option<Experiment>,
}

/// The experiments.
#[derive(Debug, Subcommand)]
pub enum Experiment {
    /// Zhu et al. (ICML 2022) §5.1: a field learned through S steps of a method is the
    /// inverse modified equation, not the true field — errors against both over sweeps of
    /// T and S with fitted log–log slopes, field errors, and rollouts of the true, IMDE and
    /// learned fields.
    Imde(Box<imde::ImdeExperimentArgs>),
    /// Zhu et al. (ICML 2022) §5.2: energy conservation of learned pendulum models —
    /// euler/midpoint/rk4 on an MLP against Störmer–Verlet on a separable Hamiltonian
    /// network and the implicit midpoint rule; energy drift over 10⁴-step rollouts and
    /// phase portraits.
    Conservation(Box<conservation::ConservationArgs>),
}

impl Experiment {
    /// Runs the experiment.
    pub fn run(self, reporter: &Reporter) -> Result<(), CliError> {
        match self {
            Experiment::Imde(args) => imde::run(*args, reporter),
            Experiment::Conservation(args) => conservation::run(*args, reporter),
        }
    }
}

/// One line of `--list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExperimentInfo {
    /// Name as the command line accepts it.
    pub name: String,
    /// What it reproduces.
    pub description: String,
}

/// Every experiment with its description (the variants' doc comments).
pub fn catalogue() -> Vec<ExperimentInfo> {
    let cmd = Experiment::augment_subcommands(clap::Command::new("experiment"));
    cmd.get_subcommands()
        .map(|c| ExperimentInfo {
            name: c.get_name().to_string(),
            description: c
                .get_long_about()
                .or(c.get_about())
                .map(|s| crate::error::one_line(s.to_string()))
                .unwrap_or_default(),
        })
        .collect()
}

/// Runs `odeflow experiment`.
pub fn run(args: ExperimentArgs, reporter: &Reporter) -> Result<(), CliError> {
    match args.experiment {
        Some(e) => e.run(reporter),
        None if args.list => {
            let list = catalogue();
            if args.json {
                return output::write_json(&list, None, Layout::Pretty);
            }
            let width = list.iter().map(|e| e.name.len()).max().unwrap_or(0);
            let text: String = list
                .iter()
                .map(|e| format!("{:width$}  {}\n", e.name, e.description))
                .collect();
            output::write_stdout(text.as_bytes())
        }
        None => {
            let names: Vec<String> = catalogue().into_iter().map(|e| e.name).collect();
            Err(CliError::input(format!(
                "name an experiment ({}) or give --list",
                names.join(", ")
            )))
        }
    }
}

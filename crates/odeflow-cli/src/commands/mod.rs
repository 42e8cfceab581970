//! One module per command; [`Command`] lists them and dispatches.
//!
//! A command is a clap `Args` struct and a `run(args, &Reporter) -> Result<(), CliError>`
//! function. Adding one is a new module here, one variant in [`Command`] and one arm in
//! [`Command::run`].

pub mod bench;
pub mod experiment;
pub mod methods;
pub mod solve;

use clap::Subcommand;

use crate::error::CliError;
use crate::progress::Reporter;

/// The `odeflow` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Solve a built-in ODE with one method; write the trajectory, statistics and invariant
    /// drift as JSON, and optionally a plot.
    Solve(Box<solve::SolveArgs>),
    /// List the built-in methods: order, stages, family, FSAL, dense output, aliases.
    Methods(methods::MethodsArgs),
    /// Time one training iteration (forward, backward, Adam) of a benchmark workload; print
    /// the median milliseconds per iteration and the peak memory as JSON.
    Bench(bench::BenchArgs),
    /// Run one of the papers' experiments (`--list` describes them).
    Experiment(experiment::ExperimentArgs),
}

impl Command {
    /// Runs the command.
    pub fn run(self, reporter: &Reporter) -> Result<(), CliError> {
        match self {
            Command::Solve(args) => solve::run(*args, reporter),
            Command::Methods(args) => methods::run(args, reporter),
            Command::Bench(args) => bench::run(args, reporter),
            Command::Experiment(args) => experiment::run(args, reporter),
        }
    }
}

//! One module per command; [`Command`] lists them and dispatches.
//!
//! A command is a clap `Args` struct and a `run(args, &Reporter) -> Result<(), CliError>`
//! function. Adding one is a new module here, one variant in [`Command`] and one arm in
//! [`Command::run`].

pub mod experiment;
pub mod imde;
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
    /// The inverse modified equation (or the classical modified equation) of a method for a
    /// built-in system at one point, as JSON.
    Imde(imde::ImdeArgs),
    /// Run one of the papers' experiments (`--list` shows them), with plots and JSON.
    Experiment(experiment::ExperimentArgs),
}

impl Command {
    /// Runs the command.
    pub fn run(self, reporter: &Reporter) -> Result<(), CliError> {
        match self {
            Command::Solve(args) => solve::run(*args, reporter),
            Command::Methods(args) => methods::run(args, reporter),
            Command::Imde(args) => imde::run(args, reporter),
            Command::Experiment(args) => experiment::run(args, reporter),
        }
    }
}

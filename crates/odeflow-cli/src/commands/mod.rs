//! One module per command; [`Command`] lists them and dispatches.
//!
//! A command is a clap `Args` struct and a `run(args, &Reporter) -> Result<(), CliError>`
//! function. Adding one is a new module here, one variant in [`Command`] and one arm in
//! [`Command::run`].

pub mod bench;
mod bench_cuda;
pub mod check;
pub mod critical_step;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod export;
pub mod external;
pub mod imde;
pub mod merge;
pub mod methods;
pub mod predict;
pub mod solve;
pub mod sweep;
pub mod train;

use clap::Subcommand;

use crate::device::{check_built, require_cpu, DeviceArg};
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
    /// Train an ODE classifier with a given solver (and optional step adaptation) into a run
    /// folder, then print its ODE-validity verdict.
    Train(Box<train::TrainArgs>),
    /// Test accuracy of a trained run under many test solvers (methods × step counts or
    /// tolerances), as JSON, CSV and a plot.
    Eval(eval::EvalArgs),
    /// The ODE-validity verdict of a trained run: does a more accurate solver keep its
    /// accuracy? Exit code 0 (valid) or 3 (not valid).
    Check(check::CheckArgs),
    /// Train, evaluate and check a grid of runs (method × step size or tolerance × seed);
    /// --shard k/n runs one slice, for cluster array jobs.
    Sweep(Box<sweep::SweepArgs>),
    /// Join the shards of a sweep into one table (JSON, CSV) and plot.
    Merge(merge::MergeArgs),
    /// The critical step size of a sweep: the largest training step whose models pass the
    /// validity check, with the plot of accuracy drop against training step.
    CriticalStep(critical_step::CriticalStepArgs),
    /// The inverse modified equation (or the classical modified equation) of a method for a
    /// built-in system at one point, as JSON.
    Imde(imde::ImdeArgs),
    /// Run one of the papers' experiments (`--list` shows them), with plots and JSON.
    Experiment(experiment::ExperimentArgs),
    /// Download MNIST, Fashion-MNIST or CIFAR-10 (checked against built-in SHA-256
    /// digests), or list the data sets on disk.
    Data(data::DataArgs),
    /// Write a run's trained classifier as a safetensors file with PyTorch state_dict names
    /// (field.*, head.*); --out names the file.
    Export(export::ExportArgs),
    /// Run a model from a safetensors file on the inputs of an NPY file with a given solver;
    /// --out names the NPY file of logits or final states.
    Predict(predict::PredictArgs),
}

impl Command {
    /// The command's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Solve(_) => "solve",
            Command::Methods(_) => "methods",
            Command::Bench(_) => "bench",
            Command::Train(_) => "train",
            Command::Eval(_) => "eval",
            Command::Check(_) => "check",
            Command::Sweep(_) => "sweep",
            Command::Merge(_) => "merge",
            Command::CriticalStep(_) => "critical-step",
            Command::Imde(_) => "imde",
            Command::Experiment(_) => "experiment",
            Command::Data(_) => "data",
            Command::Export(_) => "export",
            Command::Predict(_) => "predict",
        }
    }

    /// Runs the command on `device` (commands without a GPU path refuse `cuda`).
    pub fn run(self, reporter: &Reporter, device: DeviceArg) -> Result<(), CliError> {
        check_built(device)?;
        if !matches!(
            self,
            Command::Bench(_)
                | Command::Train(_)
                | Command::Eval(_)
                | Command::Check(_)
                | Command::Sweep(_)
                | Command::Experiment(_)
                | Command::Predict(_)
        ) {
            require_cpu(device, self.name())?;
        }
        match self {
            Command::Solve(args) => solve::run(*args, reporter),
            Command::Methods(args) => methods::run(args, reporter),
            Command::Bench(args) => bench::run(args, reporter, device),
            Command::Train(args) => train::run(*args, reporter, device),
            Command::Eval(args) => eval::run(args, reporter, device),
            Command::Check(args) => check::run(args, reporter, device),
            Command::Sweep(args) => sweep::run(*args, reporter, device),
            Command::Merge(args) => merge::run(args, reporter),
            Command::CriticalStep(args) => critical_step::run(args, reporter),
            Command::Imde(args) => imde::run(args, reporter),
            Command::Experiment(args) => experiment::run(args, reporter, device),
            Command::Data(args) => data::run(args, reporter),
            Command::Export(args) => export::run(args, reporter),
            Command::Predict(args) => predict::run(args, reporter, device),
        }
    }
}

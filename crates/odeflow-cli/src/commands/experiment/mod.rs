//! `odeflow experiment`: the papers' experiments, one subcommand each.
//!
//! ```text
//! odeflow experiment --list
//! odeflow experiment resnet-gradients --out-dir results/gradients
//! ```
//!
//! Every experiment shows a progress bar on stderr, prints a JSON summary on stdout (or
//! into `--out`), and writes its full results (`result.json`, CSV tables) and PNG plots into
//! `--out-dir` (default `results/<experiment>`). Seeds are flags; the defaults finish in
//! minutes on a 2-core CPU, and flags scale each experiment to the paper's budget.

pub mod linear_resnet;
pub mod resnet_common;
pub mod resnet_depth;
pub mod resnet_distance;
pub mod resnet_gradients;
pub mod resnet_memory;
pub mod resnet_reconstruction;

use clap::{Args, Subcommand};

use crate::error::CliError;
use crate::output;
use crate::progress::Reporter;

/// Flags of `odeflow experiment`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExperimentArgs {
    /// List the experiments: name, paper, what each shows.
    #[arg(long)]
    list: bool,

    /// The experiment to run.
    #[command(subcommand)]
    which: Option<Experiment>,
}

/// The experiments.
#[derive(Debug, Subcommand)]
pub enum Experiment {
    /// Sander et al.: reconstruction error of the reverse pass against depth.
    ResnetReconstruction(resnet_reconstruction::ReconstructionArgs),
    /// Sander et al.: reversible against backprop gradients against depth.
    ResnetGradients(resnet_gradients::GradientsArgs),
    /// Sander et al.: ResNet–ODE distance and weight smoothness during training.
    ResnetDistance(Box<resnet_distance::DistanceArgs>),
    /// Sander et al.: linear ResNets stay smooth in depth.
    LinearResnet(linear_resnet::LinearArgs),
    /// Sander et al.: peak memory of backprop against reversible, against depth.
    ResnetMemory(resnet_memory::MemoryArgs),
    /// Sander et al.: test accuracy against depth, Euler/Heun × backprop/reversible.
    ResnetDepth(Box<resnet_depth::DepthArgs>),
}

/// `(name, paper, what it shows, default cost)` of every experiment.
pub const CATALOGUE: &[(&str, &str, &str, &str)] = &[
    (
        "resnet-reconstruction",
        "Sander et al. 2022",
        "relative error of reconstructing a ResNet's input by reverse steps against depth; log-log slopes (Euler -1, Heun -3 smooth / -2 piecewise / about -1.4 i.i.d.)",
        "seconds",
    ),
    (
        "resnet-gradients",
        "Sander et al. 2022",
        "reversible vs backprop gradients per weight tensor (relative MSE, cosine) against depth; slopes for Euler and Heun, smooth/piecewise/i.i.d. weights",
        "seconds",
    ),
    (
        "resnet-distance",
        "Sander et al. 2022",
        "ResNet-ODE distance and weight smoothness in depth tracked while training TinyResNets (i.i.d. vs constant init)",
        "minutes (MNIST)",
    ),
    (
        "linear-resnet",
        "Sander et al. 2022",
        "linear ResNets trained from zero: weights A_n[i,j] against n at several steps; N*max|A_{n+1}-A_n| bounded for N = 25..200",
        "seconds",
    ),
    (
        "resnet-memory",
        "Sander et al. 2022",
        "peak resident memory of one training iteration (500x500 input, Linear(500,8)-tanh-Linear(8,500)) against depth, backprop vs reversible",
        "seconds",
    ),
    (
        "resnet-depth",
        "Sander et al. 2022",
        "TinyResNet test accuracy against depth for Euler/Heun x backprop/reversible on MNIST or CIFAR-10",
        "minutes (MNIST)",
    ),
];

/// The catalogue as an aligned text table.
fn table() -> String {
    let w = CATALOGUE.iter().map(|e| e.0.len()).max().unwrap_or(0);
    let mut s = String::new();
    for (name, paper, what, cost) in CATALOGUE {
        s.push_str(&format!("{name:w$}  {what}  [{paper}; {cost}]\n"));
    }
    s
}

/// Runs `odeflow experiment`.
pub fn run(args: ExperimentArgs, reporter: &Reporter) -> Result<(), CliError> {
    match args.which {
        None if args.list => output::write_stdout(table().as_bytes()),
        None => Err(CliError::input(
            "name an experiment (see odeflow experiment --list)",
        )),
        Some(Experiment::ResnetReconstruction(a)) => resnet_reconstruction::run(a, reporter),
        Some(Experiment::ResnetGradients(a)) => resnet_gradients::run(a, reporter),
        Some(Experiment::ResnetDistance(a)) => resnet_distance::run(*a, reporter),
        Some(Experiment::LinearResnet(a)) => linear_resnet::run(a, reporter),
        Some(Experiment::ResnetMemory(a)) => resnet_memory::run(a, reporter),
        Some(Experiment::ResnetDepth(a)) => resnet_depth::run(*a, reporter),
    }
}

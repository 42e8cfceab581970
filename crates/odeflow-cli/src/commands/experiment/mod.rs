//! `odeflow experiment`: the papers' experiments end to end, one subcommand each.
//!
//! ```text
//! odeflow experiment --list
//! odeflow experiment solver-dependence --out-dir runs/solver-dependence
//! odeflow experiment resnet-gradients --out-dir results/gradients
//! ```
//!
//! Every experiment shows a progress bar on stderr, prints a JSON summary on stdout (or into
//! `--out`), and writes its full results (JSON, CSV tables) and PNG plots into its output
//! folder. Seeds are flags; the defaults finish in minutes on a 2-core CPU, and flags scale
//! each experiment to the paper's budget. Adding an experiment is one module here and one
//! variant (with its one-line description) in [`Experiment`].

pub mod linear_resnet;
pub mod resnet_common;
pub mod resnet_depth;
pub mod resnet_distance;
pub mod resnet_gradients;
pub mod resnet_memory;
pub mod resnet_reconstruction;
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
    /// List the experiments (name, paper, what each shows, default cost) and exit.
    #[arg(long)]
    pub list: bool,

    /// The experiment to run.
    #[command(subcommand)]
    pub which: Option<Experiment>,
}

/// The experiments. The first line of each doc comment is its `--list` entry.
#[derive(Debug, Subcommand)]
pub enum Experiment {
    /// [Ott et al. 2021; ~2 min] Train on sphere2 with Euler at 2 and at 256 steps, test each with Euler, midpoint and RK4 at 1…4096 steps: the coarse model collapses under finer solvers, the fine one holds its accuracy.
    SolverDependence(solver_dependence::SolverDependenceArgs),
    /// [Ott et al. 2021; ~1 min] Step-size adaptation during training on sphere2 (and MNIST when its files are found): the step-size trajectory and the validity verdict next to fixed-step models.
    StepAdaptation(step_adaptation::StepAdaptationArgs),
    /// [Sander et al. 2022; seconds] Relative error of reconstructing a ResNet's input by reverse steps against depth; log-log slopes (Euler −1, Heun −3 smooth / −2 piecewise / ≈ −1.4 i.i.d.).
    ResnetReconstruction(resnet_reconstruction::ReconstructionArgs),
    /// [Sander et al. 2022; seconds] Reversible against backprop gradients per weight tensor (relative MSE, cosine) against depth, Euler and Heun, smooth / piecewise / i.i.d. weights.
    ResnetGradients(resnet_gradients::GradientsArgs),
    /// [Sander et al. 2022; minutes, MNIST] ResNet–ODE distance and weight smoothness in depth, tracked while training TinyResNets (i.i.d. against constant initialisation).
    ResnetDistance(Box<resnet_distance::DistanceArgs>),
    /// [Sander et al. 2022; seconds] Linear ResNets trained from zero: A_n[i,j] against n at several steps; N·max‖A_{n+1} − A_n‖ stays bounded for N = 25…200.
    LinearResnet(linear_resnet::LinearArgs),
    /// [Sander et al. 2022; seconds] Peak resident memory of one training iteration (500×500 input, Linear(500→8)→tanh→Linear(8→500)) against depth, backprop against reversible.
    ResnetMemory(resnet_memory::MemoryArgs),
    /// [Sander et al. 2022; minutes, MNIST] TinyResNet test accuracy against depth for Euler/Heun × backprop/reversible on MNIST or CIFAR-10.
    ResnetDepth(Box<resnet_depth::DepthArgs>),
}

/// `(name, description)` of every experiment, from the clap definitions.
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
        None if args.list => {
            let list = listing();
            let w = list.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            let text: String = list
                .into_iter()
                .map(|(name, about)| format!("{name:w$}  {about}\n"))
                .collect();
            output::write_stdout(text.as_bytes())
        }
        None => Err(CliError::input(
            "name an experiment (see odeflow experiment --list)",
        )),
        Some(Experiment::SolverDependence(a)) => solver_dependence::run(a, reporter),
        Some(Experiment::StepAdaptation(a)) => step_adaptation::run(a, reporter),
        Some(Experiment::ResnetReconstruction(a)) => resnet_reconstruction::run(a, reporter),
        Some(Experiment::ResnetGradients(a)) => resnet_gradients::run(a, reporter),
        Some(Experiment::ResnetDistance(a)) => resnet_distance::run(*a, reporter),
        Some(Experiment::LinearResnet(a)) => linear_resnet::run(a, reporter),
        Some(Experiment::ResnetMemory(a)) => resnet_memory::run(a, reporter),
        Some(Experiment::ResnetDepth(a)) => resnet_depth::run(*a, reporter),
    }
}

//! `odeflow experiment`: the papers' experiments end to end, one subcommand each.
//!
//! ```text
//! odeflow experiment --list            # for people; --list --json for scripts
//! odeflow experiment solver-dependence            # writes results/solver-dependence/
//! odeflow experiment imde --out-dir results/imde
//! odeflow experiment resnet-gradients --out-dir results/gradients
//! ```
//!
//! Every experiment follows the same conventions: progress bars on stderr; a short summary
//! on stdout (`--json`: its summary JSON; `--out FILE`: the JSON in a file); the full results (JSON with every number, CSV where tabular)
//! and PNG plots in its output folder; seeds as flags; defaults that finish in minutes on a
//! 2-core CPU, and flags that scale to the papers' budgets.
//!
//! Adding an experiment is one module in this folder (its clap `Args` struct and `run`) and
//! one variant of [`Experiment`] with its arm in [`Experiment::run`]; the variant's doc
//! comment is what `--list` prints.

mod bars;
pub mod common;
pub mod conservation;
pub mod imde;
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
use serde::Serialize;

use crate::device::{require_cpu, DeviceArg};
use crate::error::CliError;
use crate::progress::Reporter;

/// Flags of `odeflow experiment`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExperimentArgs {
    /// List the experiments and what each one reproduces.
    #[arg(long)]
    pub list: bool,

    /// The experiment to run.
    #[command(subcommand)]
    pub experiment: Option<Experiment>,
}

/// The experiments.
#[derive(Debug, Subcommand)]
pub enum Experiment {
    /// Ott et al. (ICLR 2021), ~2 min: train on sphere2 with Euler at 2 and at 256 steps, test
    /// each with Euler, midpoint and RK4 at 1…4096 steps — the coarse model collapses under
    /// finer solvers, the fine one holds its accuracy.
    SolverDependence(solver_dependence::SolverDependenceArgs),
    /// Ott et al. (ICLR 2021), ~1 min: step-size adaptation during training on sphere2 (and
    /// MNIST when its files are found) — the step-size trajectory and the validity verdict
    /// next to fixed-step models.
    StepAdaptation(step_adaptation::StepAdaptationArgs),
    /// Zhu et al. (ICML 2022) §5.1, ~1.5 min: a field learned through S steps of a method is
    /// the inverse modified equation, not the true field — errors against both over sweeps
    /// of T and S with fitted log–log slopes, field errors, and rollouts of the true, IMDE
    /// and learned fields.
    Imde(Box<imde::ImdeExperimentArgs>),
    /// Zhu et al. (ICML 2022) §5.2, ~3 min: energy conservation of learned pendulum models —
    /// euler/midpoint/rk4 on an MLP against Störmer–Verlet on a separable Hamiltonian network
    /// and the implicit midpoint rule; energy drift over 10⁴-step rollouts and phase
    /// portraits.
    Conservation(Box<conservation::ConservationArgs>),
    /// Sander et al. (NeurIPS 2022), seconds: relative error of reconstructing a ResNet's
    /// input by reverse steps against depth; log–log slopes (Euler −1, Heun −3 smooth / −2
    /// piecewise / ≈ −1.4 i.i.d.).
    ResnetReconstruction(resnet_reconstruction::ReconstructionArgs),
    /// Sander et al. (NeurIPS 2022), seconds: reversible against backprop gradients per
    /// weight tensor (relative MSE, cosine) against depth, Euler and Heun, smooth / piecewise
    /// / i.i.d. weights.
    ResnetGradients(resnet_gradients::GradientsArgs),
    /// Sander et al. (NeurIPS 2022), minutes (MNIST): ResNet–ODE distance and weight
    /// smoothness in depth, tracked while training TinyResNets (i.i.d. against constant
    /// initialisation).
    ResnetDistance(Box<resnet_distance::DistanceArgs>),
    /// Sander et al. (NeurIPS 2022), seconds: linear ResNets trained from zero — A_n[i,j]
    /// against n at several steps; N·max‖A_{n+1} − A_n‖ stays bounded for N = 25…200.
    LinearResnet(linear_resnet::LinearArgs),
    /// Sander et al. (NeurIPS 2022), seconds: peak resident memory of one training iteration
    /// (500×500 input, Linear(500→8)→tanh→Linear(8→500)) against depth, backprop against
    /// reversible.
    ResnetMemory(resnet_memory::MemoryArgs),
    /// Sander et al. (NeurIPS 2022), minutes (MNIST): TinyResNet test accuracy against depth
    /// for Euler/Heun × backprop/reversible on MNIST or CIFAR-10.
    ResnetDepth(Box<resnet_depth::DepthArgs>),
}

impl Experiment {
    /// The name, as on the command line.
    fn name(&self) -> &'static str {
        match self {
            Experiment::SolverDependence(_) => "solver-dependence",
            Experiment::StepAdaptation(_) => "step-adaptation",
            Experiment::Imde(_) => "imde",
            Experiment::Conservation(_) => "conservation",
            Experiment::ResnetReconstruction(_) => "resnet-reconstruction",
            Experiment::ResnetGradients(_) => "resnet-gradients",
            Experiment::ResnetDistance(_) => "resnet-distance",
            Experiment::LinearResnet(_) => "linear-resnet",
            Experiment::ResnetMemory(_) => "resnet-memory",
            Experiment::ResnetDepth(_) => "resnet-depth",
        }
    }

    /// Runs the experiment on `device` (solver-dependence, step-adaptation, resnet-distance
    /// and resnet-depth have a GPU path).
    pub fn run(self, reporter: &Reporter, device: DeviceArg) -> Result<(), CliError> {
        if !matches!(
            self,
            Experiment::SolverDependence(_)
                | Experiment::StepAdaptation(_)
                | Experiment::ResnetDistance(_)
                | Experiment::ResnetDepth(_)
        ) {
            require_cpu(device, &format!("experiment {}", self.name()))?;
        }
        match self {
            Experiment::SolverDependence(a) => solver_dependence::run(a, reporter, device),
            Experiment::StepAdaptation(a) => step_adaptation::run(a, reporter, device),
            Experiment::Imde(a) => imde::run(*a, reporter),
            Experiment::Conservation(a) => conservation::run(*a, reporter),
            Experiment::ResnetReconstruction(a) => resnet_reconstruction::run(a, reporter),
            Experiment::ResnetGradients(a) => resnet_gradients::run(a, reporter),
            Experiment::ResnetDistance(a) => resnet_distance::run(*a, reporter, device),
            Experiment::LinearResnet(a) => linear_resnet::run(a, reporter),
            Experiment::ResnetMemory(a) => resnet_memory::run(a, reporter),
            Experiment::ResnetDepth(a) => resnet_depth::run(*a, reporter, device),
        }
    }
}

/// One line of `--list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExperimentInfo {
    /// Name as the command line accepts it.
    pub name: String,
    /// What it reproduces (the variant's doc comment).
    pub description: String,
}

/// Every experiment with its description.
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
pub fn run(args: ExperimentArgs, reporter: &Reporter, device: DeviceArg) -> Result<(), CliError> {
    match args.experiment {
        Some(e) => e.run(reporter, device),
        None if args.list => {
            let list = catalogue();
            reporter.result(&list, || {
                let width = list.iter().map(|e| e.name.len()).max().unwrap_or(0);
                list.iter()
                    .map(|e| format!("{:width$}  {}\n", e.name, e.description))
                    .collect()
            })
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

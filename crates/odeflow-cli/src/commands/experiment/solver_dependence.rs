//! `odeflow experiment solver-dependence`: the headline figure of Ott et al. (ICLR 2021).
//!
//! On `sphere2` (2-D concentric shells; the middle shell is class 1), train the
//! `simple_odenet` classifier with Euler at 2 steps and at 256 steps, then test each model
//! with Euler at 1, 2, 4, …, 4096 steps and with midpoint and RK4 at the same step counts.
//!
//! No homeomorphism of the plane followed by a linear head can separate the middle shell from
//! both others (the image of the middle annulus still encloses the inner disc), so a true ODE
//! flow tops out near 75 % here. Euler with 2 large steps is not a homeomorphism: the coarse
//! model reaches ~100 % with its training solver and collapses (or blows up) when the same
//! model is solved accurately — it is not an ODE flow. The fine model keeps whatever accuracy
//! it has under every solver.
//!
//! Defaults are chosen to show this in minutes on a laptop: 2000 iterations of Adam at
//! learning rate 1e-3, batch 128, f32, one seed. The paper's setting is `--iterations 10000
//! --lr 1e-4 --seeds 5`. With several seeds the curves are means with ± std bands.
//!
//! Output folder: `euler-2.json` and `euler-256.json` (keys of `odeflow eval`: `train`,
//! `results`; plus the verdict), `solver-dependence.png`, `summary.json`, and the run folders
//! under `runs/` (an interrupted experiment resumes from them).

use std::path::PathBuf;

use clap::Args;
use odeflow::runs::evaluate::powers_of_two;
use odeflow::runs::study::{solver_dependence, summary, SolverDependenceConfig};

use crate::args::positive;
use crate::error::CliError;
use crate::plot::runs::accuracy_panels;
use crate::plot::{self, Figure};
use crate::progress::{Reporter, RunObserver};

/// Flags of `odeflow experiment solver-dependence`.
#[derive(Debug, Args)]
pub struct SolverDependenceArgs {
    /// Output folder.
    #[arg(
        long,
        value_name = "FOLDER",
        default_value = "results/solver-dependence"
    )]
    pub out_dir: PathBuf,
    /// Data set (concentric spheres sphere<d>).
    #[arg(long, default_value = "sphere2")]
    pub dataset: String,
    /// Training method.
    #[arg(long, default_value = "euler")]
    pub train_method: String,
    /// Training step counts, comma-separated (one model each).
    #[arg(long, value_delimiter = ',', default_value = "2,256")]
    pub train_steps: Vec<usize>,
    /// Test methods, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "euler,midpoint,rk4")]
    pub test_methods: Vec<String>,
    /// Test step counts (default 1, 2, 4, …, 4096).
    #[arg(long, value_delimiter = ',', value_name = "N,N")]
    pub test_steps: Option<Vec<usize>>,
    /// Training iterations (paper: 10000).
    #[arg(long, default_value_t = 2000)]
    pub iterations: u64,
    /// Adam learning rate (paper: 1e-4).
    #[arg(long, default_value_t = 1e-3, value_parser = positive)]
    pub lr: f64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Number of seeds (0, 1, …); curves are means ± std (paper: 5).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Scalar type: f32 or f64.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Largest tolerated accuracy drop of the validity verdict.
    #[arg(long, default_value_t = 0.02)]
    pub threshold: f64,
}

/// Runs `odeflow experiment solver-dependence`: the library's study, then its figure.
pub fn run(
    args: SolverDependenceArgs,
    reporter: &Reporter,
    device: crate::device::DeviceArg,
) -> Result<(), CliError> {
    let compute = crate::device::open(device)?;
    let cfg = SolverDependenceConfig {
        dataset: args.dataset.clone(),
        train_method: args.train_method.clone(),
        train_steps: args.train_steps.clone(),
        test_methods: args.test_methods.clone(),
        test_steps: args
            .test_steps
            .clone()
            .unwrap_or_else(|| powers_of_two(4096)),
        iterations: args.iterations,
        lr: args.lr,
        batch_size: args.batch_size,
        seeds: args.seeds,
        dtype: args.dtype.clone(),
        threshold: args.threshold,
    };
    super::common::create_dir(&args.out_dir)?;
    let observer = RunObserver::new(reporter);
    let study = solver_dependence(&args.out_dir, &cfg, &observer, &compute)?;
    observer.finish()?;
    let mut panels = Vec::new();
    for m in &study.models {
        let title = format!(
            "trained with {}: {}",
            m.report.train.solver.label(),
            if m.valid {
                "valid ODE flow".to_string()
            } else {
                format!("NOT an ODE flow (drop {:.2})", m.worst.drop)
            }
        );
        panels.extend(accuracy_panels(&title, &m.report, Some(args.threshold)));
    }
    let fig_name = "solver-dependence.png";
    let fig = Figure {
        title: format!(
            "Solver dependence on {}: test accuracy of each model under other solvers{}",
            args.dataset,
            if args.seeds > 1 {
                format!(" (mean ± std, {} seeds)", args.seeds)
            } else {
                String::new()
            }
        ),
        panels,
    };
    plot::save(&fig, &args.out_dir.join(fig_name))?;
    reporter.result(&summary(&study), || {
        let lines: Vec<String> = study
            .models
            .iter()
            .map(|m| {
                format!(
                    "{:<24} test accuracy {:.4}  {}",
                    m.report.train.solver.label(),
                    m.report.train.accuracy,
                    m.summary
                )
            })
            .collect();
        format!(
            "{}\nfigure: {} ({:.0} s)\n",
            lines.join("\n"),
            args.out_dir.join(fig_name).display(),
            study.seconds
        )
    })
}

//! `odeflow experiment step-adaptation`: Ott et al.'s step-size adaptation during training
//! (ICLR 2021, Algorithm 1), next to fixed-step models.
//!
//! On `sphere2`, the classifier is trained with Euler whose step starts from the Hairer-style
//! initial step on the first batch and is adapted every 50 iterations: when the batch
//! accuracy of the training solver and of the test solver (midpoint) differ by more than 0.1
//! the step is halved, otherwise a 10 % larger step is tried. Fixed-step models (Euler at 2,
//! 8 and 32 steps) are trained with the same budget. Every model gets the validity check.
//!
//! With MNIST (`--mnist DIR`, by default MNIST in odeflow's data store when present) the
//! same is done on a small budget: the first 2000 training and 1000 test images of the
//! folder, 500 iterations, and an MLP field with 64 hidden units on the flattened image
//! (`--mnist-model odenet` uses Ott et al.'s convolutional field, about 15× slower per
//! iteration on a CPU); fixed-step models at 1 and 8 Euler steps.
//!
//! Output folder: `step-adaptation.json` (per data set: every model's final step, test
//! accuracy, verdict and worst drop, and the adapted step-size trajectory),
//! `step-adaptation.png` (the trajectory, and each model's accuracy with its training solver
//! against its worst accuracy under a more accurate solver), and the run folders.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use odeflow::report::short;
use odeflow::runs::study::{adaptation_case, CaseResult};
use odeflow::runs::RunConfig;
use serde::Serialize;

use crate::args::positive;
use crate::error::CliError;
use crate::output::{self, Layout};
use crate::plot::{self, Figure, Legend, Panel, Scale, Series};
use crate::progress::{Reporter, RunObserver};

/// Flags of `odeflow experiment step-adaptation`.
#[derive(Debug, Args)]
pub struct StepAdaptationArgs {
    /// Output folder.
    #[arg(long, value_name = "FOLDER", default_value = "results/step-adaptation")]
    pub out_dir: PathBuf,
    /// Training method whose step is adapted: euler or midpoint.
    #[arg(long, default_value = "euler")]
    pub method: String,
    /// Training iterations on sphere2.
    #[arg(long, default_value_t = 2000)]
    pub iterations: u64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = positive)]
    pub lr: f64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Seed of the models.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Scalar type: f32 or f64.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Step counts of the fixed-step sphere2 models, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,8,32")]
    pub fixed_steps: Vec<usize>,
    /// Adaptation: check every N iterations.
    #[arg(long, default_value_t = 50)]
    pub adapt_interval: u64,
    /// Adaptation: largest tolerated batch-accuracy gap.
    #[arg(long, default_value_t = 0.1)]
    pub adapt_threshold: f64,
    /// Largest tolerated accuracy drop of the validity check.
    #[arg(long, default_value_t = 0.02)]
    pub threshold: f64,
    /// Folder of the MNIST IDX files (default: $ODEFLOW_DATA/mnist, else
    /// ~/.cache/odeflow/data/mnist, when it holds them; see `odeflow data`).
    #[arg(long, value_name = "FOLDER")]
    pub mnist: Option<PathBuf>,
    /// Skip MNIST.
    #[arg(long)]
    pub no_mnist: bool,
    /// MNIST: training iterations.
    #[arg(long, default_value_t = 500)]
    pub mnist_iterations: u64,
    /// MNIST: training images used.
    #[arg(long, default_value_t = 2000)]
    pub mnist_train_size: usize,
    /// MNIST: test images used.
    #[arg(long, default_value_t = 1000)]
    pub mnist_test_size: usize,
    /// MNIST: model, mlp (64 hidden units) or odenet (8 channels).
    #[arg(long, default_value = "mlp")]
    pub mnist_model: String,
    /// MNIST: step counts of the fixed-step models.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub mnist_fixed_steps: Vec<usize>,
}

/// The MNIST folder under the data root (`$ODEFLOW_DATA/mnist`, else the platform cache
/// folder; see `odeflow data`), when it holds the files.
fn default_mnist() -> Option<PathBuf> {
    odeflow::data::store::dataset_dir("mnist", None).ok()
}

/// The two panels of one data set: the adapted step against iterations (fixed steps as
/// horizontal lines), and each model's accuracy with its training solver against its worst
/// accuracy under a more accurate solver, at its final step size.
fn case_panels(c: &CaseResult) -> Vec<Panel> {
    let mut traj = Panel::new(
        format!("{}: training step size", c.dataset),
        "iteration",
        "step size h",
    )
    .scales(Scale::Linear, Scale::Log)
    .legend(Legend::LowerLeft);
    let pts: Vec<(f64, f64)> = c.trajectory.iter().map(|&(i, h)| (i as f64, h)).collect();
    // Draw the piecewise-constant step as a staircase.
    let mut stairs = Vec::new();
    for w in pts.windows(2) {
        stairs.push(w[0]);
        stairs.push((w[1].0, w[0].1));
    }
    if let Some(&p) = pts.last() {
        stairs.push(p);
    }
    traj = traj.with(Series::line("adapted", stairs));
    for m in c.models.iter().filter(|m| !m.adapted) {
        traj = traj.with(Series::line(
            format!("fixed: {}", m.name),
            vec![
                (0.0, m.final_step_size),
                (c.iterations as f64, m.final_step_size),
            ],
        ));
    }
    let mut acc = Panel::new(
        format!(
            "{}: training solver vs worst more accurate solver",
            c.dataset
        ),
        "final training step size h",
        "test accuracy",
    )
    .scales(Scale::Log, Scale::Linear)
    .y_limits(0.0, 1.02)
    .legend(Legend::LowerLeft);
    for m in &c.models {
        acc = acc.with(Series::line_markers(
            format!(
                "{}: {:.3} → {:.3} ({})",
                m.name,
                m.test_accuracy,
                m.worst.accuracy,
                if m.valid { "valid" } else { "NOT valid" }
            ),
            vec![
                (m.final_step_size, m.test_accuracy),
                (m.final_step_size, m.worst.accuracy),
            ],
        ));
    }
    vec![traj, acc]
}

/// Runs `odeflow experiment step-adaptation`.
pub fn run(
    args: StepAdaptationArgs,
    reporter: &Reporter,
    device: crate::device::DeviceArg,
) -> Result<(), CliError> {
    let start = Instant::now();
    crate::device::require_f32(device, &args.dtype)?;
    let mut base = RunConfig {
        seed: args.seed,
        dtype: args.dtype.clone(),
        ..RunConfig::default()
    };
    base.solver.method = args.method.clone();
    base.train.iterations = args.iterations;
    base.train.lr = args.lr;
    base.train.batch_size = args.batch_size;
    base.adapt.interval = args.adapt_interval;
    base.adapt.threshold = args.adapt_threshold;
    base.check.threshold = args.threshold;
    // The MNIST folder is looked up (and a bad --mnist refused) before any training.
    let mnist = if args.no_mnist {
        None
    } else {
        match &args.mnist {
            Some(d) if !d.is_dir() => {
                return Err(CliError::input(format!(
                    "--mnist {} is {}, not a folder",
                    d.display(),
                    odeflow::fsutil::describe_path(d)
                )))
            }
            Some(d) => Some(
                odeflow::data::store::dataset_dir("mnist", Some(d))
                    .map_err(|e| CliError::input(format!("--mnist {}: {e}", d.display())))?,
            ),
            None => default_mnist(),
        }
    };
    let compute = crate::device::open(device)?;
    let observer = RunObserver::new(reporter);
    let mut cases = vec![adaptation_case(
        &args.out_dir,
        "sphere2",
        &base,
        &args.fixed_steps,
        &observer,
        &compute,
    )?];
    match &mnist {
        Some(dir) => {
            let mut m = base.clone();
            m.data.name = "mnist".into();
            m.data.dir = Some(dir.clone());
            m.data.train_size = Some(args.mnist_train_size);
            m.data.test_size = Some(args.mnist_test_size);
            m.train.iterations = args.mnist_iterations;
            m.model.kind = args.mnist_model.clone();
            match args.mnist_model.as_str() {
                "mlp" => m.model.hidden = Some(vec![64]),
                _ => m.model.channels = Some(8),
            }
            cases.push(adaptation_case(
                &args.out_dir,
                "mnist",
                &m,
                &args.mnist_fixed_steps,
                &observer,
                &compute,
            )?);
        }
        None => {
            reporter.note("MNIST skipped: no folder found (give --mnist FOLDER with the IDX files)")
        }
    }
    observer.finish()?;
    let fig = Figure {
        title: format!(
            "Step-size adaptation (Ott et al.): {} with the step adapted during training vs fixed steps",
            args.method
        ),
        panels: cases.iter().flat_map(case_panels).collect(),
    };
    let fig_name = "step-adaptation.png";
    plot::save(&fig, &args.out_dir.join(fig_name))?;
    #[derive(Serialize)]
    struct Out<'a> {
        method: &'a str,
        threshold: f64,
        adapt_interval: u64,
        adapt_threshold: f64,
        seconds: f64,
        figure: &'a str,
        cases: &'a [CaseResult],
    }
    let seconds = start.elapsed().as_secs_f64();
    let out = Out {
        method: &args.method,
        threshold: args.threshold,
        adapt_interval: args.adapt_interval,
        adapt_threshold: args.adapt_threshold,
        seconds,
        figure: fig_name,
        cases: &cases,
    };
    output::write_json(
        &out,
        Some(&args.out_dir.join("step-adaptation.json")),
        Layout::Pretty,
    )?;
    let mut text = String::new();
    for c in &cases {
        for m in &c.models {
            text.push_str(&format!(
                "{} {:<10} h {} → {} ({} step{}), test accuracy {:.4}, {}\n",
                c.dataset,
                m.name,
                short(m.initial_step_size),
                short(m.final_step_size),
                m.final_steps,
                if m.final_steps == 1 { "" } else { "s" },
                m.test_accuracy,
                if m.valid {
                    "valid ODE flow".to_string()
                } else {
                    format!("NOT valid (drop {:.3})", m.worst.drop)
                }
            ));
        }
    }
    text.push_str(&format!(
        "figure: {} ({seconds:.0} s)\n",
        args.out_dir.join(fig_name).display()
    ));
    reporter.result(&out, || text)
}

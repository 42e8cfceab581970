//! `odeflow experiment resnet-depth`: test accuracy of TinyResNets against depth for the
//! four variants Euler/Heun × backprop/reversible (see
//! `odeflow::analysis::resnet::depth_sweep`).
//!
//! ```text
//! odeflow experiment resnet-depth --out-dir results/depth                 # MNIST, CPU budget
//! odeflow experiment resnet-depth --dataset cifar10 --data-dir ~/data/cifar-10-batches-bin \
//!     --depths 2,4,8,16,32 --iterations 30000 --batch-size 128 --milestones 15000,22500
//! odeflow --device cuda experiment resnet-depth --depths 8,16,32 \
//!     --out-dir results/depth-gpu                            # the bodies on the GPU
//! ```
//!
//! With `--device cuda` (a binary built with `--features cuda`) each network runs on the GPU
//! (`odeflow::cuda::CudaTinyResNet`, f32: stem, head and the ResNet or HeunNet body, backprop
//! and reversible through the same gradient solver as on the CPU; the optimizer step on the
//! host).
//!
//! The defaults fit a 2-core CPU in a few minutes: MNIST (the folder `--data-dir`, default
//! `$ODEFLOW_DATA/mnist`, else `~/.cache/odeflow/data/mnist` — see `odeflow data download
//! mnist`; with only the test files present a seeded 8 000/2 000 split of
//! them), depths 2, 4, 8, 300 iterations of batch 64, SGD (lr 0.1, momentum 0.9, weight
//! decay 5·10⁻⁴, ×0.1 at 2/3 of the run). The paper's budget is the full CIFAR-10 with crop
//! and flip for many epochs: raise `--iterations` and the depths.
//!
//! Files: `result.json`, `depth.csv`, `depth.png` (test accuracy and training time against
//! depth, one curve per variant).

use clap::Args;
use odeflow::analysis::resnet::depth_sweep::{depth_sweep_on, DepthSweepConfig};
use odeflow::models::tiny_resnet::TinyResNetConfig;
use serde_json::json;

use super::resnet_common::{
    cell, train_error, DepthSchemeArgs, GradsArgs, OutputArgs, Outputs, TrainArgs,
};
use crate::device::DeviceArg;
use crate::error::CliError;
use crate::plot::{Figure, Panel, Scale, Series};
use crate::progress::Reporter;

/// Flags of `odeflow experiment resnet-depth`.
#[derive(Debug, Args)]
#[command(mut_arg("depths", |a| a.default_value("2,4,8").help("Depths N of the body")))]
pub struct DepthArgs {
    #[command(flatten)]
    axes: DepthSchemeArgs,

    #[command(flatten)]
    grads: GradsArgs,

    /// Bodies shallower than this train with backprop even when reversible is asked for.
    #[arg(long, default_value_t = 0)]
    min_reversible_depth: usize,

    /// Batch size of the test evaluation.
    #[arg(long, default_value_t = 500)]
    eval_batch: usize,

    #[command(flatten)]
    train: TrainArgs,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs the experiment.
pub fn run(args: DepthArgs, reporter: &Reporter, device: DeviceArg) -> Result<(), CliError> {
    let (depths, schemes) = args.axes.checked()?;
    let grads = args.grads.list()?;
    let settings = args.train.settings(300)?;
    let mut cfg = DepthSweepConfig {
        depths,
        schemes,
        grads: grads.iter().map(|&g| g.into()).collect(),
        model: TinyResNetConfig {
            channels: args.train.channels,
            min_reversible_depth: args.min_reversible_depth,
            seed: args.train.seed,
            ..Default::default()
        },
        train: settings,
        eval_batch: args.eval_batch.max(1),
    };
    cfg.check()?;
    let compute = crate::device::open(device)?;
    let data = args.train.load(reporter)?;
    cfg.model.classes = data.train.num_classes();
    let mut out = Outputs::new(&args.output, "resnet-depth");
    let runs = (cfg.depths.len() * cfg.schemes.len() * cfg.grads.len()) as u64;
    let bar = reporter.bar(runs * cfg.train.iterations, "training");
    let result = depth_sweep_on(&data, &cfg, &compute, |p| {
        bar.set_position(p.run as u64 * cfg.train.iterations + p.record.iteration);
        bar.set_message(format!(
            "run {}/{} loss {:.3}",
            p.run + 1,
            p.runs,
            p.record.loss
        ));
    })
    .map_err(train_error)?;
    bar.finish_and_clear();

    out.json("result.json", &result)?;
    let rows: Vec<Vec<String>> = result
        .runs
        .iter()
        .map(|r| {
            vec![
                r.scheme.name().into(),
                r.grad.clone(),
                r.effective_grad.clone(),
                r.depth.to_string(),
                cell(r.test_accuracy),
                cell(r.test_loss),
                cell(r.final_train_loss),
                cell(r.train_seconds),
                r.tapes_peak.to_string(),
            ]
        })
        .collect();
    out.csv(
        "depth.csv",
        &[
            "scheme",
            "grad",
            "effective_grad",
            "depth",
            "test_accuracy",
            "test_loss",
            "final_train_loss",
            "train_seconds",
            "tapes_peak",
        ],
        &rows,
    )?;
    let mut acc = Panel::new(
        format!("{} test accuracy", result.dataset),
        "depth N",
        "accuracy",
    )
    .scales(Scale::Linear, Scale::Linear);
    let mut time =
        Panel::new("training time", "depth N", "seconds").scales(Scale::Linear, Scale::Linear);
    for &scheme in &cfg.schemes {
        for grad in &cfg.grads {
            let sel: Vec<_> = result
                .runs
                .iter()
                .filter(|r| r.scheme == scheme && r.grad == grad.name())
                .collect();
            let label = format!("{}/{}", scheme.name(), grad.name());
            acc = acc.with(Series::line_markers(
                label.clone(),
                sel.iter()
                    .map(|r| (r.depth as f64, r.test_accuracy))
                    .collect(),
            ));
            time = time.with(Series::line_markers(
                label,
                sel.iter()
                    .map(|r| (r.depth as f64, r.train_seconds))
                    .collect(),
            ));
        }
    }
    out.plot(
        "depth.png",
        &Figure {
            title: "TinyResNet: accuracy against depth".into(),
            panels: vec![acc, time],
        },
    )?;
    let runs_json: Vec<_> = result
        .runs
        .iter()
        .map(|r| {
            json!({
                "depth": r.depth,
                "scheme": r.scheme.name(),
                "grad": r.grad,
                "effective_grad": r.effective_grad,
                "test_accuracy": r.test_accuracy,
                "test_loss": r.test_loss,
                "train_seconds": r.train_seconds,
            })
        })
        .collect();
    let summary = json!({
        "experiment": "resnet-depth",
        "dataset": result.dataset,
        "train_size": result.sizes.0,
        "test_size": result.sizes.1,
        "iterations": cfg.train.iterations,
        "runs": runs_json,
        "seconds": out.seconds(),
        "files": out.files(),
    });
    let best = result
        .runs
        .iter()
        .map(|r| r.test_accuracy)
        .fold(0.0, f64::max);
    out.finish(
        &summary,
        &args.output,
        reporter,
        &format!("{} runs, best test accuracy {best:.4}", result.runs.len()),
    )
}

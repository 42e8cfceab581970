//! `odeflow experiment resnet-distance`: train TinyResNets from an i.i.d. or a
//! constant-in-depth initialisation and track, during training, the ResNet–ODE distance
//! `maxₙ ‖x_n − x(n/N)‖` (against the ODE whose weights interpolate the layers piecewise
//! linearly, solved by RK4) and the smoothness of the weights in depth,
//! `N · maxₙ ‖θ_{n+1} − θ_n‖` and `Σₙ ‖θ_{n+1} − θ_n‖` (see
//! `odeflow::analysis::resnet::distance`).
//!
//! ```text
//! odeflow experiment resnet-distance --out-dir results/distance
//! odeflow experiment resnet-distance --depths 8,16,32,64 --iterations 2000 --every 100
//! ```
//!
//! Data and optimisation flags are those of `resnet-depth` (MNIST by default). The
//! measurements use the stem features of the first `--probe` test images, in evaluation
//! mode. With `--device cuda` the networks train with their bodies on the GPU
//! (`odeflow::cuda::CudaTinyResNet`); the measurements run on the host model.
//!
//! Files: `result.json`, `distance.csv` (depth, init, iteration, loss, distance, relative
//! distance, smoothness), `distance.png` (distance and `N·max‖Δθ‖` during training, final
//! values against depth).

use clap::Args;
use odeflow::analysis::resnet::distance::{distance_sweep_on, DistanceSweepConfig};
use odeflow::models::tiny_resnet::{BodyInit, TinyResNetConfig};
use serde_json::json;

use super::resnet_common::{
    cell, non_empty, train_error, InitArg, OutputArgs, Outputs, SchemeArg, TrainArgs,
};
use crate::device::DeviceArg;
use crate::error::CliError;
use crate::plot::{Figure, Panel, Scale, Series};
use crate::progress::Reporter;

/// Flags of `odeflow experiment resnet-distance`.
#[derive(Debug, Args)]
pub struct DistanceArgs {
    /// Depths N of the body.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "4,8,16"
    )]
    depths: Vec<usize>,

    /// Initialisations of the body.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "iid,constant"
    )]
    inits: Vec<InitArg>,

    /// Scheme.
    #[arg(long, value_enum, default_value_t = SchemeArg::Euler)]
    scheme: SchemeArg,

    /// Measure every this many iterations (and after the last).
    #[arg(long, default_value_t = 25)]
    every: u64,

    /// Test images whose features are propagated.
    #[arg(long, default_value_t = 64)]
    probe: usize,

    /// RK4 steps per layer of the reference ODE solution.
    #[arg(long, default_value_t = 8)]
    substeps: usize,

    #[command(flatten)]
    train: TrainArgs,

    #[command(flatten)]
    output: OutputArgs,
}

fn init_name(i: BodyInit) -> &'static str {
    match i {
        BodyInit::Iid => "iid",
        BodyInit::Constant => "constant",
    }
}

/// Runs the experiment.
pub fn run(args: DistanceArgs, reporter: &Reporter, device: DeviceArg) -> Result<(), CliError> {
    non_empty("--depths", &args.depths)?;
    non_empty("--inits", &args.inits)?;
    if args.substeps == 0 {
        return Err(CliError::input("--substeps 0: give at least 1"));
    }
    let settings = args.train.settings(150)?;
    let mut cfg = DistanceSweepConfig {
        depths: args.depths.clone(),
        inits: args.inits.iter().map(|&i| i.into()).collect(),
        scheme: args.scheme.into(),
        model: TinyResNetConfig {
            channels: args.train.channels,
            seed: args.train.seed,
            ..Default::default()
        },
        train: settings,
        every: args.every.max(1),
        probe_size: args.probe,
        substeps: args.substeps,
        eval_batch: 500,
    };
    cfg.check()?;
    let compute = crate::device::open(device)?;
    let data = args.train.load(reporter)?;
    cfg.model.classes = data.train.num_classes();
    let mut out = Outputs::new(&args.output, "resnet-distance");
    let iters = cfg.train.iterations;
    let runs = (cfg.depths.len() * cfg.inits.len()) as u64;
    let bar = reporter.bar(runs * iters, "training");
    let result = distance_sweep_on(&data, &cfg, &compute, |run, _, it| {
        bar.set_position(run as u64 * iters + it);
    })
    .map_err(train_error)?;
    bar.finish_and_clear();

    out.json("result.json", &result)?;
    let mut rows = Vec::new();
    for r in &result.runs {
        for t in &r.records {
            rows.push(vec![
                r.depth.to_string(),
                init_name(r.init).into(),
                t.iteration.to_string(),
                cell(t.loss),
                cell(t.distance),
                cell(t.relative_distance),
                cell(t.smoothness_max),
                cell(t.smoothness_sum),
            ]);
        }
    }
    out.csv(
        "distance.csv",
        &[
            "depth",
            "init",
            "iteration",
            "loss",
            "distance",
            "relative_distance",
            "smoothness_max",
            "smoothness_sum",
        ],
        &rows,
    )?;
    let mut dist = Panel::new("ResNet–ODE distance", "iteration", "max_n ‖x_n − x(n/N)‖")
        .scales(Scale::Linear, Scale::Log);
    let mut smooth = Panel::new("weights in depth", "iteration", "N · max_n ‖θ_{n+1} − θ_n‖")
        .scales(Scale::Linear, Scale::Log);
    let mut last =
        Panel::new("after training", "depth N", "value").scales(Scale::Linear, Scale::Log);
    for r in &result.runs {
        let label = format!("N={} {}", r.depth, init_name(r.init));
        dist = dist.with(Series::line_markers(
            label.clone(),
            r.records
                .iter()
                .map(|t| (t.iteration as f64, t.distance))
                .collect(),
        ));
        smooth = smooth.with(Series::line_markers(
            label,
            r.records
                .iter()
                .map(|t| (t.iteration as f64, t.smoothness_max))
                .collect(),
        ));
    }
    for &init in &cfg.inits {
        let sel: Vec<_> = result.runs.iter().filter(|r| r.init == init).collect();
        let end = |f: fn(&odeflow::analysis::resnet::distance::TrackRecord) -> f64| {
            sel.iter()
                .filter_map(|r| r.records.last().map(|t| (r.depth as f64, f(t))))
                .collect::<Vec<_>>()
        };
        last = last
            .with(Series::line_markers(
                format!("distance ({})", init_name(init)),
                end(|t| t.distance),
            ))
            .with(Series::line_markers(
                format!("N·max‖Δθ‖ ({})", init_name(init)),
                end(|t| t.smoothness_max),
            ));
    }
    out.plot(
        "distance.png",
        &Figure {
            title: "Is the trained ResNet an ODE discretisation?".into(),
            panels: vec![dist, smooth, last],
        },
    )?;
    let runs_json: Vec<_> = result
        .runs
        .iter()
        .map(|r| {
            let t = r.records.last();
            json!({
                "depth": r.depth,
                "init": init_name(r.init),
                "test_accuracy": r.test_accuracy,
                "distance": t.map(|t| t.distance),
                "relative_distance": t.map(|t| t.relative_distance),
                "smoothness_max": t.map(|t| t.smoothness_max),
                "smoothness_sum": t.map(|t| t.smoothness_sum),
            })
        })
        .collect();
    let summary = json!({
        "experiment": "resnet-distance",
        "dataset": result.dataset,
        "scheme": cfg.scheme.name(),
        "iterations": iters,
        "runs": runs_json,
        "seconds": out.seconds(),
        "files": out.files(),
    });
    let headline = result
        .runs
        .iter()
        .filter_map(|r| {
            r.records.last().map(|t| {
                format!(
                    "N={} {}: d={:.2e} N·maxΔθ={:.2}",
                    r.depth,
                    init_name(r.init),
                    t.distance,
                    t.smoothness_max
                )
            })
        })
        .collect::<Vec<_>>()
        .join("; ");
    out.finish(&summary, &args.output, reporter, &headline)
}

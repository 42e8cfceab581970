//! `odeflow experiment linear-resnet`: deep linear ResNets `x_{n+1} = (I + A_n/N) x_n`
//! trained from zero by gradient descent; the weights' entries `A_n[i, j]` against `n` at
//! several optimisation steps, and the smoothness `N · maxₙ ‖A_{n+1} − A_n‖` for several
//! depths — bounded independently of `N` (see `odeflow::analysis::resnet::linear`).
//!
//! ```text
//! odeflow experiment linear-resnet --out-dir results/linear
//! odeflow experiment linear-resnet --depths 50,100,400 --dim 3 --snapshots 0,10,30
//! ```
//!
//! Files: `result.json` (every run, snapshots of the plotted depth), `linear_resnet.csv`
//! (one row per depth), `linear_weights.csv` (depth, step, n, i, j, value),
//! `linear_weights.png` (one panel per entry, one curve per step), and
//! `linear_smoothness.png` (smoothness against depth, loss curves).

use clap::Args;
use odeflow::analysis::resnet::linear::{train_linear_resnet, LinearResNetConfig};
use serde_json::json;

use super::common;
use super::resnet_common::{cell, non_empty, OutputArgs, Outputs};
use crate::error::CliError;
use crate::plot::{Figure, Panel, Scale, Series};
use crate::progress::Reporter;

/// Flags of `odeflow experiment linear-resnet`.
#[derive(Debug, Args)]
pub struct LinearArgs {
    /// Depths N.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "25,50,100,200"
    )]
    depths: Vec<usize>,

    /// Dimension d.
    #[arg(long, default_value_t = 2)]
    dim: usize,

    /// Learning rate at depth 100 (at depth N the rate is lr·N/100).
    #[arg(long, default_value_t = 100.0, value_parser = crate::args::positive)]
    lr: f64,

    /// Stop when the loss is below this.
    #[arg(long, default_value_t = 1e-5, value_parser = crate::args::positive)]
    tol: f64,

    /// Optimisation steps per depth at most.
    #[arg(long = "max-iterations", default_value_t = 10_000, value_parser = crate::args::count)]
    max_iterations: usize,

    /// Seed of the target B = I + G.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Optimisation steps whose weights are plotted (the final weights are added).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "0,2,5,10,20,50"
    )]
    snapshots: Vec<usize>,

    /// The depth whose weights are plotted [default: 100 if run, else the largest].
    #[arg(long, value_name = "N")]
    plot_depth: Option<usize>,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs the experiment.
pub fn run(args: LinearArgs, reporter: &Reporter) -> Result<(), CliError> {
    non_empty("--depths", &args.depths)?;
    let depth = args.depths.iter().copied().max().unwrap_or(0) as u64;
    let d = args.dim as u64;
    common::check_steps(&format!("--depths {depth}"), depth)?;
    // Weights, gradients and the snapshots of a depth-N linear ResNet: N matrices d × d each.
    common::check_memory(
        &format!("a linear ResNet of depth {depth} with {d} × {d} weights (--depths, --dim)"),
        &[&[depth, d, d, 4 + args.snapshots.len() as u64]],
        8,
    )?;
    let plot_depth = match args.plot_depth {
        Some(d) if !args.depths.contains(&d) => {
            return Err(CliError::input(format!(
                "--plot-depth {d} is not one of --depths {:?}",
                args.depths
            )))
        }
        Some(d) => d,
        None if args.depths.contains(&100) => 100,
        None => args.depths.iter().copied().max().unwrap_or(0),
    };
    let mut out = Outputs::new(&args.output, "linear-resnet");
    let bar = reporter.bar(
        (args.depths.len() * args.max_iterations) as u64,
        "linear ResNets",
    );
    let mut results = Vec::new();
    for (k, &depth) in args.depths.iter().enumerate() {
        let cfg = LinearResNetConfig {
            dim: args.dim,
            depth,
            lr: args.lr,
            tol: args.tol,
            max_steps: args.max_iterations,
            seed: args.seed,
            snapshots: args.snapshots.clone(),
            ..Default::default()
        };
        let base = (k * args.max_iterations) as u64;
        let r = train_linear_resnet(&cfg, |step, _| {
            if step % 50 == 0 {
                bar.set_position(base + step as u64);
            }
        })?;
        if !r.converged {
            reporter.note(format!(
                "depth {depth}: not converged after {} steps (loss {:.3e}); lower --lr or raise --max-iterations",
                r.steps, r.final_loss
            ));
        }
        results.push(r);
    }
    bar.finish_and_clear();

    // Keep the snapshots only for the plotted depth (they hold every layer's weights).
    let compact: Vec<_> = results
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if r.config.depth != plot_depth {
                r.snapshots.clear();
            }
            r
        })
        .collect();
    out.json("result.json", &compact)?;
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.config.depth.to_string(),
                r.steps.to_string(),
                r.converged.to_string(),
                cell(r.final_loss),
                cell(r.smoothness_max),
                cell(r.smoothness_sum),
            ]
        })
        .collect();
    out.csv(
        "linear_resnet.csv",
        &[
            "depth",
            "steps",
            "converged",
            "final_loss",
            "smoothness_max",
            "smoothness_sum",
        ],
        &rows,
    )?;
    let d = args.dim;
    let shown = results
        .iter()
        .find(|r| r.config.depth == plot_depth)
        .expect("plot depth is one of the depths");
    let mut wrows = Vec::new();
    for s in &shown.snapshots {
        for (n, a) in s.weights.iter().enumerate() {
            for (e, v) in a.iter().enumerate() {
                wrows.push(vec![
                    plot_depth.to_string(),
                    s.step.to_string(),
                    n.to_string(),
                    (e / d).to_string(),
                    (e % d).to_string(),
                    cell(*v),
                ]);
            }
        }
    }
    out.csv(
        "linear_weights.csv",
        &["depth", "step", "n", "i", "j", "value"],
        &wrows,
    )?;
    let entries = (d * d).min(4);
    let panels = (0..entries)
        .map(|e| {
            let mut p = Panel::new(
                format!("A_n[{}, {}], N = {plot_depth}", e / d, e % d),
                "layer n",
                "entry",
            );
            for s in &shown.snapshots {
                p = p.with(Series::line(
                    format!("step {}", s.step),
                    s.weights
                        .iter()
                        .enumerate()
                        .map(|(n, a)| (n as f64, a[e]))
                        .collect(),
                ));
            }
            p
        })
        .collect();
    out.plot(
        "linear_weights.png",
        &Figure {
            title: "Linear ResNet weights against depth during training".into(),
            panels,
        },
    )?;
    let mut smooth = Panel::new("smoothness of trained weights", "depth N", "value")
        .scales(Scale::Log, Scale::Linear);
    smooth = smooth
        .with(Series::line_markers(
            "N · max ‖A_{n+1} − A_n‖",
            results
                .iter()
                .map(|r| (r.config.depth as f64, r.smoothness_max))
                .collect(),
        ))
        .with(Series::line_markers(
            "Σ ‖A_{n+1} − A_n‖",
            results
                .iter()
                .map(|r| (r.config.depth as f64, r.smoothness_sum))
                .collect(),
        ));
    let mut losses = Panel::new("training loss", "step", "loss").scales(Scale::Linear, Scale::Log);
    for r in &results {
        losses = losses.with(Series::line(
            format!("N = {}", r.config.depth),
            r.losses
                .iter()
                .enumerate()
                .map(|(k, l)| (k as f64, *l))
                .collect(),
        ));
    }
    out.plot(
        "linear_smoothness.png",
        &Figure {
            title: "Trained linear ResNets are smooth in depth".into(),
            panels: vec![smooth, losses],
        },
    )?;
    let per_depth: Vec<_> = results
        .iter()
        .map(|r| {
            json!({
                "depth": r.config.depth,
                "lr": r.config.lr * r.config.depth as f64 / r.config.lr_reference_depth as f64,
                "steps": r.steps,
                "converged": r.converged,
                "final_loss": r.final_loss,
                "smoothness_max": r.smoothness_max,
                "smoothness_sum": r.smoothness_sum,
            })
        })
        .collect();
    let summary = json!({
        "experiment": "linear-resnet",
        "dim": d,
        "seed": args.seed,
        "runs": per_depth,
        "seconds": out.seconds(),
        "files": out.files(),
    });
    let headline = results
        .iter()
        .map(|r| format!("N={} {:.2}", r.config.depth, r.smoothness_max))
        .collect::<Vec<_>>()
        .join(", ");
    out.finish(
        &summary,
        &args.output,
        reporter,
        &format!("N·max‖ΔA‖: {headline}"),
    )
}

//! `odeflow experiment resnet-gradients`: for the same weights, the reversible (memory-free)
//! gradient against backprop's, per weight tensor, against depth, for Euler and Heun and
//! each weight profile (see `odeflow::analysis::resnet::gradients`).
//!
//! ```text
//! odeflow experiment resnet-gradients --out-dir results/gradients
//! odeflow experiment resnet-gradients --schemes heun --profiles smooth,piecewise --hidden 32
//! ```
//!
//! Reported per tensor: `rel_mse = mean((g_bp − g_rev)²)/mean(g_bp²)`, its square root
//! `rel_err`, and the cosine similarity. Slopes are fitted to `rel_err` (the order of the
//! method: −1 Euler, −3 Heun with C^∞ weights, −2 piecewise smooth) and to `rel_mse`
//! (twice as steep).
//!
//! Files: `result.json`, `gradients.csv` (one row per scheme, profile, depth and tensor,
//! with `all` and `input` rows), `gradients.png` (`rel_err` and `1 − cosine` against depth),
//! `gradients_per_layer.png` (`rel_err` of each layer at the largest depth).

use clap::Args;
use odeflow::analysis::resnet::gradients::{run as compare, GradError, GradientCurve};
use odeflow::models::resnet::Scheme;
use serde_json::json;

use super::resnet_common::{
    cell, run_sweep, slope_headline, slope_panels, sweep_summary, OutputArgs, Outputs,
    ProfileSweepArgs, SlopeCurve,
};
use crate::error::CliError;
use crate::plot::{Figure, Panel, Scale, Series};
use crate::progress::Reporter;

/// Flags of `odeflow experiment resnet-gradients`: those of `resnet-reconstruction` with
/// other default depths and help lines.
#[derive(Debug, Args)]
#[command(
    mut_arg("depths", |a| a.default_value("4,8,16,32,64,128,256,512,1024")),
    mut_arg("batch", |a| a.help("Samples in the batch")),
    mut_arg("seed", |a| a.help("Seed of the weights, the input and the target")),
)]
pub struct GradientsArgs {
    #[command(flatten)]
    sweep: ProfileSweepArgs,

    #[command(flatten)]
    output: OutputArgs,
}

fn row(scheme: &str, profile: &str, depth: usize, tensor: &str, e: &GradError) -> Vec<String> {
    vec![
        scheme.into(),
        profile.into(),
        depth.to_string(),
        tensor.into(),
        cell(e.rel_mse),
        cell(e.rel_err),
        cell(e.cosine),
    ]
}

impl From<&GradientCurve> for SlopeCurve {
    /// `rel_err` of all parameters against depth.
    fn from(c: &GradientCurve) -> Self {
        let points = c.points.iter().map(|p| (p.depth, p.params.rel_err));
        SlopeCurve::new(c.scheme, c.profile, points, c.slope_rel_err)
    }
}

/// Runs the experiment.
pub fn run(args: GradientsArgs, reporter: &Reporter) -> Result<(), CliError> {
    let cfg = args.sweep.config()?;
    let mut out = Outputs::new(&args.output, "resnet-gradients");
    let result = run_sweep(&cfg, reporter, "gradients", |cfg, p| compare(cfg, p))?;

    out.json("result.json", &result)?;
    let mut rows = Vec::new();
    for c in &result.curves {
        let (s, p) = (c.scheme.name(), c.profile.name());
        for pt in &c.points {
            rows.push(row(s, p, pt.depth, "all", &pt.params));
            rows.push(row(s, p, pt.depth, "input", &pt.input));
            for (name, e) in &pt.tensors {
                rows.push(row(s, p, pt.depth, name, e));
            }
        }
    }
    out.csv(
        "gradients.csv",
        &[
            "scheme", "profile", "depth", "tensor", "rel_mse", "rel_err", "cosine",
        ],
        &rows,
    )?;

    let curves: Vec<SlopeCurve> = result.curves.iter().map(SlopeCurve::from).collect();
    let title = |scheme: Scheme| format!("{}: ‖g_bp − g_rev‖ / ‖g_bp‖", scheme.name());
    let mut panels = slope_panels(&cfg, &curves, title, "relative error (all parameters)");
    let mut cos = Panel::new("1 − cosine similarity", "depth N", "1 − cos(g_bp, g_rev)")
        .scales(Scale::Log, Scale::Log);
    for c in &result.curves {
        cos = cos.with(Series::line_markers(
            format!("{}/{}", c.scheme.name(), c.profile.name()),
            c.points
                .iter()
                .map(|p| (p.depth as f64, 1.0 - p.params.cosine))
                .collect(),
        ));
    }
    panels.push(cos);
    out.plot(
        "gradients.png",
        &Figure {
            title: "Reversible (memory-free) against backprop gradients".into(),
            panels,
        },
    )?;
    let mut layers = Panel::new(
        format!(
            "per layer at N = {}",
            cfg.depths.iter().max().copied().unwrap_or(0)
        ),
        "layer n",
        "relative error of layer n's gradient",
    )
    .scales(Scale::Linear, Scale::Log);
    for c in &result.curves {
        layers = layers.with(Series::line(
            format!("{}/{}", c.scheme.name(), c.profile.name()),
            c.per_layer_at_max_depth
                .iter()
                .enumerate()
                .map(|(n, e)| (n as f64, *e))
                .collect(),
        ));
    }
    out.plot(
        "gradients_per_layer.png",
        &Figure {
            title: "Where the reversible gradient's error sits".into(),
            panels: vec![layers],
        },
    )?;

    let slopes = result
        .curves
        .iter()
        .map(|c| {
            let last = c.points.last();
            json!({
                "scheme": c.scheme.name(),
                "profile": c.profile.name(),
                "slope_rel_err": c.slope_rel_err,
                "slope_rel_mse": c.slope_rel_mse,
                "slope_input": c.slope_input,
                "rel_mse_at_max_depth": last.map(|p| p.params.rel_mse),
                "cosine_at_max_depth": last.map(|p| p.params.cosine),
            })
        })
        .collect();
    let summary = sweep_summary("resnet-gradients", &cfg, slopes, &out);
    let headline = format!("rel_err slopes: {}", slope_headline(&curves));
    out.finish(&summary, &args.output, reporter, &headline)
}

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
use odeflow::analysis::resnet::gradients::{run as compare, GradError, GradientConfig};
use odeflow::analysis::resnet::profiles::ProfileModel;
use serde_json::json;

use super::resnet_common::{
    cell, non_empty, power_law, resnet_error, OutputArgs, Outputs, ProfileArg, SchemeArg,
};
use crate::error::CliError;
use crate::plot::{Figure, Panel, Scale, Series};
use crate::progress::Reporter;

/// Flags of `odeflow experiment resnet-gradients`.
#[derive(Debug, Args)]
pub struct GradientsArgs {
    /// Depths N.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "4,8,16,32,64,128,256,512,1024"
    )]
    depths: Vec<usize>,

    /// Schemes.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "euler,heun")]
    schemes: Vec<SchemeArg>,

    /// Weight profiles in depth.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "smooth,piecewise,iid"
    )]
    profiles: Vec<ProfileArg>,

    /// Features d of the residual functions f(x) = tanh(Wx + b).
    #[arg(long, default_value_t = 16)]
    dim: usize,

    /// Hidden units: f(x) = W₂ tanh(W₁x + b₁) + b₂ instead.
    #[arg(long, value_name = "H")]
    hidden: Option<usize>,

    /// Scale of the weights.
    #[arg(long, default_value_t = 1.5, value_parser = crate::args::finite)]
    scale: f64,

    /// Samples in the batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,

    /// Fit slopes over depths ≥ this.
    #[arg(long, default_value_t = 8)]
    fit_from: usize,

    /// Seed of the weights, the input and the target.
    #[arg(long, default_value_t = 0)]
    seed: u64,

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

fn fmt_slope(s: Option<f64>) -> String {
    s.map_or("–".into(), |s| format!("{s:.2}"))
}

/// Runs the experiment.
pub fn run(args: GradientsArgs, reporter: &Reporter) -> Result<(), CliError> {
    non_empty("--depths", &args.depths)?;
    let cfg = GradientConfig {
        depths: args.depths.clone(),
        schemes: args.schemes.iter().map(|&s| s.into()).collect(),
        profiles: args.profiles.iter().map(|&p| p.into()).collect(),
        model: ProfileModel {
            dim: args.dim,
            hidden: args.hidden,
            scale: args.scale,
            seed: args.seed,
        },
        batch: args.batch,
        fit_from: args.fit_from,
    };
    let mut out = Outputs::new(&args.output, "resnet-gradients");
    let total = (cfg.depths.len() * cfg.schemes.len() * cfg.profiles.len()) as u64;
    let bar = reporter.bar(total, "gradients");
    let result = compare(&cfg, |done, _| bar.set_position(done as u64)).map_err(resnet_error)?;
    bar.finish_and_clear();

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

    let xs: Vec<f64> = cfg.depths.iter().map(|&d| d as f64).collect();
    let mut panels = Vec::new();
    for &scheme in &cfg.schemes {
        let mut panel = Panel::new(
            format!("{}: ‖g_bp − g_rev‖ / ‖g_bp‖", scheme.name()),
            "depth N",
            "relative error (all parameters)",
        )
        .scales(Scale::Log, Scale::Log);
        let mut first = None;
        for c in result.curves.iter().filter(|c| c.scheme == scheme) {
            let pts: Vec<(f64, f64)> = c
                .points
                .iter()
                .map(|p| (p.depth as f64, p.params.rel_err))
                .collect();
            first = first.or(pts.first().copied());
            panel = panel.with(Series::line_markers(
                format!(
                    "{} (slope {})",
                    c.profile.name(),
                    fmt_slope(c.slope_rel_err)
                ),
                pts,
            ));
        }
        if let Some((x0, y0)) = first {
            for k in 1..=3 {
                panel = panel.with(Series::line(
                    format!("∝ N^-{k}"),
                    power_law(&xs, x0, y0, -(k as f64)),
                ));
            }
        }
        panels.push(panel);
    }
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

    let slopes: Vec<_> = result
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
    let summary = json!({
        "experiment": "resnet-gradients",
        "depths": cfg.depths,
        "fit_from": cfg.fit_from,
        "slopes": slopes,
        "seconds": out.seconds(),
        "files": out.files(),
    });
    let headline = result
        .curves
        .iter()
        .map(|c| {
            format!(
                "{}/{} {}",
                c.scheme.name(),
                c.profile.name(),
                fmt_slope(c.slope_rel_err)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    out.finish(
        &summary,
        &args.output,
        reporter,
        &format!("rel_err slopes: {headline}"),
    )
}

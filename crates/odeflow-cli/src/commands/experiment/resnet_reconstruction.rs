//! `odeflow experiment resnet-reconstruction`: forward, then the reverse pass from `x_N`
//! back to `x̃₀`; the relative error `‖z − x̃₀‖/‖x̃₀‖` against depth, per scheme and weight
//! profile, with log–log slopes (see `odeflow::analysis::resnet::reconstruction`).
//!
//! ```text
//! odeflow experiment resnet-reconstruction --out-dir results/reconstruction
//! odeflow experiment resnet-reconstruction --depths 4,16,64,256,1024,4096 --dim 64
//! ```
//!
//! Files: `result.json` (every point), `reconstruction.csv`, `reconstruction.png` (log–log
//! error against depth, one panel per scheme, with `N⁻¹`, `N⁻²`, `N⁻³` guides).

use clap::Args;
use odeflow::analysis::resnet::profiles::ProfileModel;
use odeflow::analysis::resnet::reconstruction::{run as reconstruct, ReconstructionConfig};
use odeflow::models::resnet::Scheme;
use serde_json::json;

use super::resnet_common::{
    cell, non_empty, power_law, resnet_error, OutputArgs, Outputs, ProfileArg, SchemeArg,
};
use crate::error::CliError;
use crate::plot::{Figure, Panel, Scale, Series};
use crate::progress::Reporter;

/// Flags of `odeflow experiment resnet-reconstruction`.
#[derive(Debug, Args)]
pub struct ReconstructionArgs {
    /// Depths N.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "2,4,8,16,32,64,128,256,512,1024"
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

    /// Samples in the input batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,

    /// Fit slopes over depths ≥ this.
    #[arg(long, default_value_t = 8)]
    fit_from: usize,

    /// Seed of the weights and the input.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs the experiment.
pub fn run(args: ReconstructionArgs, reporter: &Reporter) -> Result<(), CliError> {
    non_empty("--depths", &args.depths)?;
    let cfg = ReconstructionConfig {
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
    let mut out = Outputs::new(&args.output, "resnet-reconstruction");
    let total = (cfg.depths.len() * cfg.schemes.len() * cfg.profiles.len()) as u64;
    let bar = reporter.bar(total, "reconstruction");
    let result =
        reconstruct(&cfg, |done, _| bar.set_position(done as u64)).map_err(resnet_error)?;
    bar.finish_and_clear();

    out.json("result.json", &result)?;
    let mut rows = Vec::new();
    for c in &result.curves {
        for p in &c.points {
            rows.push(vec![
                c.scheme.name().into(),
                c.profile.name().into(),
                p.depth.to_string(),
                cell(p.relative_error),
                cell(p.relative_displacement),
            ]);
        }
    }
    out.csv(
        "reconstruction.csv",
        &[
            "scheme",
            "profile",
            "depth",
            "relative_error",
            "relative_displacement",
        ],
        &rows,
    )?;
    let mut panels = Vec::new();
    for &scheme in &cfg.schemes {
        let mut panel = Panel::new(
            format!(
                "{} ({})",
                scheme.name(),
                if scheme == Scheme::Euler {
                    "ResNet"
                } else {
                    "HeunNet"
                }
            ),
            "depth N",
            "‖z − x̃₀‖ / ‖x̃₀‖",
        )
        .scales(Scale::Log, Scale::Log);
        let mut first = None;
        for c in result.curves.iter().filter(|c| c.scheme == scheme) {
            let pts: Vec<(f64, f64)> = c
                .points
                .iter()
                .map(|p| (p.depth as f64, p.relative_error))
                .collect();
            first = first.or(pts.first().copied());
            let slope = c.slope.map_or("–".into(), |s| format!("{s:.2}"));
            panel = panel.with(Series::line_markers(
                format!("{} (slope {slope})", c.profile.name()),
                pts,
            ));
        }
        if let Some((x0, y0)) = first {
            let xs: Vec<f64> = cfg.depths.iter().map(|&d| d as f64).collect();
            for k in 1..=3 {
                panel = panel.with(Series::line(
                    format!("∝ N^-{k}"),
                    power_law(&xs, x0, y0, -(k as f64)),
                ));
            }
        }
        panels.push(panel);
    }
    out.plot(
        "reconstruction.png",
        &Figure {
            title: "Reconstruction of the input by reverse steps".into(),
            panels,
        },
    )?;
    let slopes: Vec<_> = result
        .curves
        .iter()
        .map(|c| {
            json!({
                "scheme": c.scheme.name(),
                "profile": c.profile.name(),
                "slope": c.slope,
                "error_at_max_depth": c.points.last().map(|p| p.relative_error),
            })
        })
        .collect();
    let summary = json!({
        "experiment": "resnet-reconstruction",
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
                c.slope.map_or("–".into(), |s| format!("{s:.2}"))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    out.finish(
        &summary,
        &args.output,
        reporter,
        &format!("slopes: {headline}"),
    )
}

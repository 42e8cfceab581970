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
use odeflow::analysis::resnet::reconstruction::{run as reconstruct, ReconstructionCurve};
use odeflow::models::resnet::Scheme;
use serde_json::json;

use super::resnet_common::{
    cell, run_sweep, slope_headline, slope_panels, sweep_summary, OutputArgs, Outputs,
    ProfileSweepArgs, SlopeCurve,
};
use crate::error::CliError;
use crate::plot::Figure;
use crate::progress::Reporter;

/// Flags of `odeflow experiment resnet-reconstruction`.
#[derive(Debug, Args)]
pub struct ReconstructionArgs {
    #[command(flatten)]
    sweep: ProfileSweepArgs,

    #[command(flatten)]
    output: OutputArgs,
}

impl From<&ReconstructionCurve> for SlopeCurve {
    /// The relative error against depth.
    fn from(c: &ReconstructionCurve) -> Self {
        let points = c.points.iter().map(|p| (p.depth, p.relative_error));
        SlopeCurve::new(c.scheme, c.profile, points, c.slope)
    }
}

/// Runs the experiment.
pub fn run(args: ReconstructionArgs, reporter: &Reporter) -> Result<(), CliError> {
    let cfg = args.sweep.config()?;
    let mut out = Outputs::new(&args.output, "resnet-reconstruction");
    let result = run_sweep(&cfg, reporter, "reconstruction", |cfg, p| {
        reconstruct(cfg, p)
    })?;

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
    let curves: Vec<SlopeCurve> = result.curves.iter().map(SlopeCurve::from).collect();
    let title = |scheme: Scheme| {
        let net = if scheme == Scheme::Euler {
            "ResNet"
        } else {
            "HeunNet"
        };
        format!("{} ({net})", scheme.name())
    };
    out.plot(
        "reconstruction.png",
        &Figure {
            title: "Reconstruction of the input by reverse steps".into(),
            panels: slope_panels(&cfg, &curves, title, "‖z − x̃₀‖ / ‖x̃₀‖"),
        },
    )?;
    let slopes = result
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
    let summary = sweep_summary("resnet-reconstruction", &cfg, slopes, &out);
    let headline = format!("slopes: {}", slope_headline(&curves));
    out.finish(&summary, &args.output, reporter, &headline)
}

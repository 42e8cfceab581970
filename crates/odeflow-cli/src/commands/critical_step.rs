//! `odeflow critical-step`: from a sweep over training step sizes, the *critical step size*
//! of each method — the largest training step whose models pass the validity check.
//!
//! ```text
//! odeflow critical-step sweeps/s2                  # writes critical-step.json and .png
//! odeflow critical-step sweeps/s2 --threshold 0.05
//! ```
//!
//! A grid point passes when the model of every seed keeps its test accuracy within the
//! threshold under every more accurate solver (its worst drop ≤ threshold). The critical step
//! `h*` is the largest grid step such that it and every smaller grid step pass (for adaptive
//! methods: the largest such tolerance). Ott et al. (ICLR 2021) observe that models trained
//! above it exploit the discretisation and stop being ODE flows. The plot shows the worst
//! accuracy drop against the training step, the threshold and `h*`.

use std::path::PathBuf;

use clap::Args;
use odeflow::report::short;
use odeflow::runs::sweep::{critical_report, group_axis, group_rows, load_table, SweepGroup};

use super::merge::axis_label;
use crate::error::CliError;
use crate::plot::{self, Figure, Legend, Panel, Scale, Series};
use crate::progress::Reporter;

/// Flags of `odeflow critical-step`.
#[derive(Debug, Args)]
pub struct CriticalStepArgs {
    /// The sweep folder (`odeflow sweep --out-dir`).
    pub sweep: PathBuf,
    /// Largest tolerated accuracy drop (default: the sweep's check threshold).
    #[arg(long, value_name = "DROP", value_parser = crate::args::finite, allow_hyphen_values = true)]
    pub threshold: Option<f64>,
}

/// Runs `odeflow critical-step`.
pub fn run(args: CriticalStepArgs, reporter: &Reporter) -> Result<(), CliError> {
    let table = if args.sweep.join("sweep.json").exists() {
        load_table(&args.sweep)?
    } else {
        super::merge::write_merged(
            &args.sweep,
            &odeflow::runs::sweep::SweepPlan::load(&args.sweep)?,
        )?
    };
    let report = critical_report(&args.sweep, &table, args.threshold)?;
    let threshold = report.threshold;
    let groups = group_rows(&table.rows);
    let mut panel = Panel::new(
        "worst accuracy drop over seeds",
        axis_label(&groups),
        "accuracy drop",
    )
    .scales(Scale::Log, Scale::Linear)
    .legend(Legend::UpperLeft);
    for c in &report.methods {
        let mut mine: Vec<&SweepGroup> = groups.iter().filter(|g| g.method == c.method).collect();
        mine.sort_by(|a, b| group_axis(a).total_cmp(&group_axis(b)));
        panel = panel.with(Series::line_markers(
            c.method.clone(),
            mine.iter().map(|g| (group_axis(g), g.drop_max)).collect(),
        ));
    }
    for c in &report.methods {
        if let Some(x) = c.critical_step_size.or(c.critical_tol) {
            let y = groups
                .iter()
                .find(|g| g.method == c.method && group_axis(g) == x)
                .map_or(0.0, |g| g.drop_max);
            panel = panel.with(Series::markers(
                format!("critical: {} {}", c.method, short(x)),
                vec![(x, y)],
            ));
        }
    }
    let xs: Vec<f64> = groups.iter().map(group_axis).collect();
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo <= hi {
        panel = panel.with(Series::line(
            format!("threshold {threshold}"),
            vec![(lo, threshold), (hi, threshold)],
        ));
    }
    let fig = Figure {
        title: format!("critical step size on {}", table.plan.base.data.name),
        panels: vec![panel],
    };
    plot::save(&fig, &args.sweep.join("critical-step.png"))?;
    reporter.result(&report, || {
        let lines: Vec<String> = report.methods.iter().map(|c| c.summary.clone()).collect();
        format!(
            "{}\nwrote {} and critical-step.png\n",
            lines.join("\n"),
            args.sweep.join("critical-step.json").display()
        )
    })
}

//! `odeflow merge`: join the shards of a sweep into one table and plot.
//!
//! ```text
//! odeflow merge sweeps/s2        # writes sweeps/s2/sweep.json, sweep.csv, sweep.png
//! ```
//!
//! Every run of the plan must be finished (in its run folder, or in a shard file copied back
//! from another machine); otherwise the command names the missing runs.

use std::path::{Path, PathBuf};

use clap::Args;

use odeflow::report::{cell, Table};
use odeflow::runs::sweep::{group_axis, merge, methods_of, SweepGroup, SweepPlan, SweepTable};

use crate::error::CliError;
use crate::plot::{self, Figure, Legend, Panel, Scale, Series};
use crate::progress::Reporter;

/// Flags of `odeflow merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The sweep folder (`odeflow sweep --out-dir`).
    pub sweep: PathBuf,
}

/// The x-axis label for a set of groups.
pub fn axis_label(groups: &[SweepGroup]) -> &'static str {
    match (
        groups.iter().any(|g| g.tol.is_none()),
        groups.iter().any(|g| g.tol.is_some()),
    ) {
        (true, true) => "training step size h / tolerance",
        (false, true) => "training tolerance",
        _ => "training step size h",
    }
}

/// The sweep figure: accuracy with the training solver, and the worst accuracy drop under a
/// more accurate solver, against the training step (mean ± std over seeds).
pub fn sweep_figure(table: &SweepTable) -> Figure {
    let groups = &table.groups;
    let x_label = axis_label(groups);
    let mut acc = Panel::new(
        "test accuracy with the training solver",
        x_label,
        "test accuracy",
    )
    .scales(Scale::Log, Scale::Linear)
    .y_limits(0.0, 1.02)
    .legend(Legend::LowerLeft);
    let mut drop = Panel::new(
        "worst accuracy drop under a more accurate solver",
        x_label,
        "accuracy drop",
    )
    .scales(Scale::Log, Scale::Linear)
    .legend(Legend::UpperLeft);
    let mut xs = Vec::new();
    for m in methods_of(groups) {
        let mut mine: Vec<&SweepGroup> = groups.iter().filter(|g| g.method == m).collect();
        mine.sort_by(|a, b| group_axis(a).total_cmp(&group_axis(b)));
        let pts = |f: &dyn Fn(&SweepGroup) -> f64| -> Vec<(f64, f64)> {
            mine.iter().map(|g| (group_axis(g), f(g))).collect()
        };
        xs.extend(mine.iter().map(|g| group_axis(g)));
        acc = acc.with(Series::line_markers(m.clone(), pts(&|g| g.test_accuracy)));
        drop = drop.with(Series::line_markers(m.clone(), pts(&|g| g.drop)));
        if mine.iter().any(|g| g.seeds > 1) {
            acc = acc.with(Series::band(
                &pts(&|g| g.test_accuracy - g.test_accuracy_std),
                &pts(&|g| g.test_accuracy + g.test_accuracy_std),
            ));
            drop = drop.with(Series::band(
                &pts(&|g| g.drop - g.drop_std),
                &pts(&|g| g.drop + g.drop_std),
            ));
        }
    }
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo <= hi {
        drop = drop.with(Series::line(
            format!("threshold {}", table.threshold),
            vec![(lo, table.threshold), (hi, table.threshold)],
        ));
    }
    let seeds = table.plan.seeds.len();
    Figure {
        title: format!(
            "sweep on {} ({} run{}, {seeds} seed{})",
            table.plan.base.data.name,
            table.rows.len(),
            if table.rows.len() == 1 { "" } else { "s" },
            if seeds == 1 { "" } else { "s" }
        ),
        panels: vec![acc, drop],
    }
}

/// Merges the sweep in `dir` (library: `sweep.json`, `sweep.csv`) and draws `sweep.png`.
pub fn write_merged(dir: &Path, plan: &SweepPlan) -> Result<SweepTable, CliError> {
    let table = merge(dir, plan)?;
    plot::save(&sweep_figure(&table), &dir.join("sweep.png"))?;
    Ok(table)
}

/// The sweep for people: one line per group (method × step, mean ± std over seeds).
pub fn human_table(table: &SweepTable, dir: &Path) -> String {
    let mut t = Table::new(&[
        "method", "steps", "h / tol", "seeds", "accuracy", "± std", "drop", "valid",
    ]);
    for g in &table.groups {
        t.push(vec![
            cell(g.method.as_str()),
            cell(g.steps),
            cell(group_axis(g)),
            cell(g.seeds),
            format!("{:.4}", g.test_accuracy),
            format!("{:.4}", g.test_accuracy_std),
            format!("{:.4}", g.drop),
            format!("{}/{}", g.valid, g.seeds),
        ]);
    }
    let valid = table.rows.iter().filter(|r| r.valid).count();
    format!(
        "{} runs, {valid} valid ODE flows (threshold {})\n{}wrote {}, sweep.csv and sweep.png\n",
        table.rows.len(),
        table.threshold,
        t.to_text(),
        dir.join("sweep.json").display()
    )
}

/// Runs `odeflow merge`.
pub fn run(args: MergeArgs, reporter: &Reporter) -> Result<(), CliError> {
    let plan = SweepPlan::load(&args.sweep)?;
    let table = write_merged(&args.sweep, &plan)?;
    reporter.result(&table, || human_table(&table, &args.sweep))
}

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
use odeflow::analysis::solver_dependence::{critical_setting, CriticalSetting, SettingDrop};
use serde::{Deserialize, Serialize};

use super::merge::{axis_label, group_axis, methods_of, write_merged};
use crate::error::CliError;
use crate::output::{self, Layout};
use crate::plot::{self, Figure, Legend, Panel, Scale, Series};
use crate::progress::Reporter;
use crate::runs::model_file::short;
use crate::runs::sweep::{group_rows, SweepGroup, SweepPlan, SweepTable};

/// Flags of `odeflow critical-step`.
#[derive(Debug, Args)]
pub struct CriticalStepArgs {
    /// The sweep folder (`odeflow sweep --out-dir`).
    pub sweep: PathBuf,
    /// Largest tolerated accuracy drop (default: the sweep's check threshold).
    #[arg(long, value_name = "DROP")]
    pub threshold: Option<f64>,
}

/// The critical step of one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalStep {
    /// Method.
    pub method: String,
    /// The critical training step size (fixed-step methods), if any step passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical_step_size: Option<f64>,
    /// Steps on [0, 1] at the critical step size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical_steps: Option<usize>,
    /// The critical tolerance (adaptive methods), if any passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical_tol: Option<f64>,
    /// Grid values (step sizes or tolerances) whose models all pass.
    pub passing: Vec<f64>,
    /// Grid values with at least one failing model.
    pub failing: Vec<f64>,
    /// One sentence.
    pub summary: String,
}

/// `critical-step.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalReport {
    /// Threshold on the accuracy drop.
    pub threshold: f64,
    /// One entry per method.
    pub methods: Vec<CriticalStep>,
}

/// The critical step of `method` among `groups`.
pub fn critical_step(method: &str, groups: &[SweepGroup], threshold: f64) -> CriticalStep {
    let mine: Vec<&SweepGroup> = groups.iter().filter(|g| g.method == method).collect();
    let drops: Vec<SettingDrop> = mine
        .iter()
        .map(|g| SettingDrop {
            setting: group_axis(g),
            drop_max: g.drop_max,
        })
        .collect();
    let CriticalSetting {
        critical,
        passing,
        failing,
    } = critical_setting(&drops, threshold);
    let critical = critical.and_then(|c| mine.iter().find(|g| group_axis(g) == c).copied());
    let adaptive = mine.first().is_some_and(|g| g.tol.is_some());
    let summary = match critical {
        Some(g) if adaptive => format!(
            "{method}: critical tolerance {} — the largest training tolerance whose models (and those of every tighter one) pass the check at threshold {threshold}",
            short(group_axis(g))
        ),
        Some(g) => format!(
            "{method}: critical step size h* = {} ({} steps) — the largest training step whose models (and those of every smaller one) pass the check at threshold {threshold}",
            short(group_axis(g)),
            g.steps.unwrap_or_else(|| crate::runs::model_file::steps_of(group_axis(g)))
        ),
        None => format!(
            "{method}: no critical step — even the finest training setting of the sweep fails the check at threshold {threshold}; sweep finer steps"
        ),
    };
    CriticalStep {
        method: method.into(),
        critical_step_size: critical.filter(|_| !adaptive).map(group_axis),
        critical_steps: critical.filter(|_| !adaptive).map(|g| {
            g.steps
                .unwrap_or_else(|| crate::runs::model_file::steps_of(group_axis(g)))
        }),
        critical_tol: critical.filter(|_| adaptive).map(group_axis),
        passing,
        failing,
        summary,
    }
}

/// Runs `odeflow critical-step`.
pub fn run(args: CriticalStepArgs, reporter: &Reporter) -> Result<(), CliError> {
    let path = args.sweep.join("sweep.json");
    let table: SweepTable = if path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CliError::input(format!("cannot read '{}': {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| CliError::input(format!("'{}' is corrupt: {e}", path.display())))?
    } else {
        let plan = SweepPlan::load(&args.sweep)?;
        write_merged(&args.sweep, &plan)?
    };
    let threshold = args.threshold.unwrap_or(table.threshold);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(CliError::input(format!(
            "--threshold {threshold} is invalid: it must lie in [0, 1]"
        )));
    }
    let groups = group_rows(&table.rows);
    let methods: Vec<CriticalStep> = methods_of(&groups)
        .iter()
        .map(|m| critical_step(m, &groups, threshold))
        .collect();
    let mut panel = Panel::new(
        "worst accuracy drop over seeds",
        axis_label(&groups),
        "accuracy drop",
    )
    .scales(Scale::Log, Scale::Linear)
    .legend(Legend::UpperLeft);
    for c in &methods {
        let mut mine: Vec<&SweepGroup> = groups.iter().filter(|g| g.method == c.method).collect();
        mine.sort_by(|a, b| group_axis(a).total_cmp(&group_axis(b)));
        panel = panel.with(Series::line_markers(
            c.method.clone(),
            mine.iter().map(|g| (group_axis(g), g.drop_max)).collect(),
        ));
    }
    for c in &methods {
        let x = c.critical_step_size.or(c.critical_tol);
        if let Some(x) = x {
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
    let report = CriticalReport { threshold, methods };
    output::write_json(
        &report,
        Some(&args.sweep.join("critical-step.json")),
        Layout::Pretty,
    )?;
    reporter.note(format!(
        "wrote {} and critical-step.png",
        args.sweep.join("critical-step.json").display()
    ));
    for c in &report.methods {
        reporter.note(&c.summary);
    }
    output::write_json(&report, None, Layout::Pretty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(steps: usize, drop_max: f64) -> SweepGroup {
        SweepGroup {
            method: "euler".into(),
            steps: Some(steps),
            step_size: Some(1.0 / steps as f64),
            tol: None,
            seeds: 1,
            test_accuracy: 0.9,
            test_accuracy_std: 0.0,
            drop: drop_max,
            drop_std: 0.0,
            drop_max,
            valid: usize::from(drop_max <= 0.02),
        }
    }

    #[test]
    fn the_critical_step_is_the_largest_step_below_which_all_pass() {
        // h = 1/64, 1/16 pass; 1/8 fails; 1/4 passes again (by chance); 1/2 fails.
        let groups = vec![g(2, 0.4), g(4, 0.01), g(8, 0.3), g(16, 0.0), g(64, 0.01)];
        let c = critical_step("euler", &groups, 0.02);
        assert_eq!(c.critical_steps, Some(16));
        assert_eq!(c.critical_step_size, Some(1.0 / 16.0));
        assert_eq!(c.passing.len(), 3);
        assert_eq!(c.failing, vec![0.125, 0.5]);
        let none = critical_step("euler", &[g(64, 0.5)], 0.02);
        assert!(none.critical_step_size.is_none());
        assert!(none.summary.contains("no critical step"));
    }
}

//! The ODE-validity check of a trained run (criterion in
//! `odeflow::analysis::solver_dependence::verdict`): does any solver at least as accurate as
//! the training solver lose more than `threshold` of the test accuracy?
//!
//! The evaluation matrix is the run's `eval.json` when it belongs to the current model (same
//! fingerprint) and holds at least one qualifying solver; otherwise the default grid
//! ([`default_check_grid`]) is evaluated. The report (`check.json`) holds `valid`,
//! `train_accuracy`, `worst` (`method`, `steps` or `tol`, `accuracy`, `drop`), `threshold`,
//! `summary` (one sentence), the results used, and the plot's file name.

use std::path::Path;

use odeflow::analysis::solver_dependence::{verdict, EvalResult, Verdict, WorstCase};
use serde::{Deserialize, Serialize};

use super::evaluate::{
    default_check_grid, evaluate_run, load_report, EvalReport, EvalRow, EVAL_FILE,
};
use super::model_file::{ModelFile, SolverSpec, MODEL_FILE};
use super::plots::accuracy_panels;
use crate::error::CliError;
use crate::output::{self, Layout};
use crate::plot::{self, Figure, Series};
use crate::progress::Reporter;

/// The check report's name inside a run folder.
pub const CHECK_FILE: &str = "check.json";
/// The check plot's name inside a run folder.
pub const CHECK_PLOT: &str = "check.png";

/// `check.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// True when the model is a valid ODE flow.
    pub valid: bool,
    /// Test accuracy with the training solver.
    pub train_accuracy: f64,
    /// The qualifying solver with the lowest accuracy.
    pub worst: WorstCase,
    /// The largest tolerated drop.
    pub threshold: f64,
    /// Qualifying solvers compared.
    pub compared: usize,
    /// The verdict in one sentence.
    pub summary: String,
    /// The training solver.
    pub train: SolverSpec,
    /// Fingerprint of the checked model.
    pub model: String,
    /// Where the results came from: `eval.json` or `default grid`.
    pub source: String,
    /// The plot's file name (in the run folder).
    pub plot: String,
    /// The evaluation matrix.
    pub results: Vec<EvalRow>,
}

/// The verdict of an evaluation report.
pub fn verdict_of(report: &EvalReport, threshold: f64) -> Result<Verdict, CliError> {
    let results: Vec<EvalResult> = report
        .results
        .iter()
        .map(|r| EvalResult {
            method: r.method.clone(),
            steps: r.steps,
            tol: r.tol,
            accuracy: r.accuracy,
            order: r.order,
            nfe: Some(r.nfe.round() as usize),
        })
        .collect();
    Ok(verdict(
        &report.train.solver.setting(),
        report.train.accuracy,
        &results,
        threshold,
    )?)
}

/// The check figure: accuracy against test steps with the threshold line and the worst case.
pub fn check_figure(report: &EvalReport, v: &Verdict, title: &str) -> Figure {
    let head = if v.valid {
        "VALID ODE flow"
    } else {
        "NOT a valid ODE flow"
    };
    let mut panels = accuracy_panels(title, report, Some(v.threshold));
    let w = &v.worst;
    let x = w.steps.map(|s| s as f64).or(w.tol);
    if let Some(x) = x {
        let adaptive = w.tol.is_some();
        let idx = if adaptive { panels.len() - 1 } else { 0 };
        if let Some(p) = panels.get_mut(idx) {
            p.series.push(Series::markers(
                format!("worst: {} (drop {:.3})", w_label(w), w.drop),
                vec![(x, w.accuracy)],
            ));
        }
    }
    Figure {
        title: format!("{head}: {}", report.train.solver.label()),
        panels,
    }
}

fn w_label(w: &WorstCase) -> String {
    match (w.steps, w.tol) {
        (Some(n), _) => format!("{}, {n} steps", w.method),
        (_, Some(t)) => format!("{}, tol {}", w.method, super::model_file::short(t)),
        _ => w.method.clone(),
    }
}

/// Checks the run in `dir` and writes `check.json` and `check.png` there.
pub fn check_run(
    dir: &Path,
    threshold: f64,
    batch: usize,
    reporter: &Reporter,
) -> Result<CheckReport, CliError> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(CliError::input(format!(
            "--threshold {threshold} is invalid: it must lie in [0, 1]"
        )));
    }
    let model = ModelFile::load(&dir.join(MODEL_FILE))?;
    let eval_path = dir.join(EVAL_FILE);
    let mut reused = None;
    if eval_path.exists() {
        let r = load_report(&eval_path)?;
        if r.model == model.fingerprint {
            if let Ok(v) = verdict_of(&r, threshold) {
                reused = Some((r, v));
            }
        } else {
            reporter.note(format!(
                "{} belongs to an earlier state of the model; evaluating the default grid",
                eval_path.display()
            ));
        }
    }
    let (report, v, source) = match reused {
        Some((r, v)) => (r, v, EVAL_FILE.to_string()),
        None => {
            let grid = default_check_grid(&model.train);
            let r = evaluate_run(dir, &grid, batch, reporter)?;
            let v = verdict_of(&r, threshold)?;
            (r, v, "default grid".to_string())
        }
    };
    let fig = check_figure(&report, &v, "test accuracy by test solver");
    plot::save(&fig, &dir.join(CHECK_PLOT))?;
    let out = CheckReport {
        valid: v.valid,
        train_accuracy: v.train_accuracy,
        worst: v.worst,
        threshold: v.threshold,
        compared: v.compared,
        summary: v.summary,
        train: report.train.solver.clone(),
        model: model.fingerprint,
        source,
        plot: CHECK_PLOT.into(),
        results: report.results,
    };
    output::write_json(&out, Some(&dir.join(CHECK_FILE)), Layout::Pretty)?;
    Ok(out)
}

/// Reads a run's `check.json`.
pub fn load_check(dir: &Path) -> Result<CheckReport, CliError> {
    let path = dir.join(CHECK_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::input(format!("cannot read '{}': {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::input(format!("'{}' is corrupt: {e}", path.display())))
}

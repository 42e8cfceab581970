//! Train → evaluate → check for commands that manage many runs (sweeps, experiments): each
//! step is skipped when its result is already in the run folder and belongs to the current
//! model, so an interrupted sweep or experiment continues where it stopped.

use std::path::Path;

use super::check::{check_run_on, load_check, CheckReport, CHECK_FILE};
use super::config::{RunConfig, CONFIG_FILE};
use super::evaluate::{evaluate_run_on, load_report, EvalReport, EVAL_FILE};
use super::model_file::{ModelFile, MODEL_FILE};
use super::train::{load_summary, train_run_on, RunSummary, SUMMARY_FILE};
use super::{files, write_config, Compute, Observer, RunError};
use crate::solve::SolverSpec;

/// Trains the run in `dir` with `cfg` (resolved) unless it is finished; resumes a
/// half-trained run from its checkpoint. A folder configured differently is an error.
pub fn ensure_trained(
    dir: &Path,
    cfg: &RunConfig,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<RunSummary, RunError> {
    if dir.join(CONFIG_FILE).exists() {
        let old = super::load_run_config(dir)?;
        if old != *cfg {
            return Err(RunError::input(format!(
                "the run folder '{}' was configured differently; delete it to retrain with these settings",
                dir.display()
            )));
        }
        if dir.join(MODEL_FILE).exists() && dir.join(SUMMARY_FILE).exists() {
            let model = ModelFile::load(&dir.join(MODEL_FILE))?;
            let summary = load_summary(dir)?;
            if model.iterations == cfg.train.iterations && summary.fingerprint == model.fingerprint
            {
                return Ok(summary);
            }
        }
    } else {
        write_config(dir, cfg)?;
    }
    train_run_on(dir, cfg, observer, compute)
}

/// The run's evaluation on `grid`, computed unless `eval.json` already holds exactly this
/// grid for the current model.
pub fn ensure_evaluated(
    dir: &Path,
    grid: &[SolverSpec],
    batch: usize,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<EvalReport, RunError> {
    let path = dir.join(EVAL_FILE);
    let model = ModelFile::load(&dir.join(MODEL_FILE))?;
    if path.exists() {
        if let Ok(r) = load_report(&path) {
            let same = r.model == model.fingerprint
                && r.results.len() == grid.len()
                && r.results.iter().zip(grid).all(|(row, g)| {
                    row.method == g.method && row.steps == g.steps && row.tol == g.tol
                });
            if same {
                return Ok(r);
            }
        }
    }
    let r = evaluate_run_on(dir, grid, batch, observer, compute)?;
    files::write_json(&r, &path)?;
    Ok(r)
}

/// The run's check, computed unless `check.json` already belongs to the current model and
/// used `threshold`.
pub fn ensure_checked(
    dir: &Path,
    threshold: f64,
    batch: usize,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<CheckReport, RunError> {
    if dir.join(CHECK_FILE).exists() {
        let model = ModelFile::load(&dir.join(MODEL_FILE))?;
        if let Ok(c) = load_check(dir) {
            if c.model == model.fingerprint && c.verdict.threshold == threshold {
                return Ok(c);
            }
        }
    }
    check_run_on(dir, threshold, batch, observer, compute)
}

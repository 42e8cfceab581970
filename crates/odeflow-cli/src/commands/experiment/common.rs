//! What every experiment shares: output folders and files, progress over many training
//! runs, flag parsing helpers, and error mapping.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use odeflow::analysis::imde::learning::LearnError;
use odeflow::analysis::imde::sweep::StudyProgress;

use crate::error::CliError;
use crate::output;
use crate::progress::Reporter;

/// A learning failure as a CLI error: invalid settings are bad input, the rest a failure
/// while working (with a hint).
pub fn learn_error(e: LearnError) -> CliError {
    match e {
        LearnError::Arg(a) => CliError::input(a.to_string()),
        LearnError::Nn(n) => CliError::input(n.to_string()),
        other => CliError::runtime(format!(
            "{other}; try a smaller --lr or a smaller step (larger S, smaller T)"
        )),
    }
}

/// The seeds `base, base + 1, …` (`count` of them).
pub fn seeds(count: u64, base: u64) -> Vec<u64> {
    (0..count).map(|k| base + k).collect()
}

/// Creates the output folder (and its parents).
pub fn create_dir(dir: &Path) -> Result<PathBuf, CliError> {
    odeflow::fsutil::create_folder(dir).map_err(|e| CliError::runtime(e.to_string()))?;
    Ok(dir.to_path_buf())
}

/// The budget of this process (`--max-steps`, `--memory-budget` or their variables).
fn budget() -> Result<odeflow::budget::Budget, CliError> {
    odeflow::budget::Budget::from_env().map_err(|e| CliError::input(e.to_string()))
}

/// Checks, before any work starts, that `what` (the flags that size it, e.g. `--depths
/// 100000000`) needs at most the memory budget: `terms` are products of dimensions, each in
/// elements of `bytes` bytes, summed with overflow checked.
pub fn check_memory(what: &str, terms: &[&[u64]], bytes: u64) -> Result<(), CliError> {
    let b = budget()?;
    let mut total: u64 = 0;
    for dims in terms {
        let n = odeflow::budget::checked_product(dims)
            .and_then(|n| n.checked_mul(bytes))
            .and_then(|n| total.checked_add(n));
        total = match n {
            Some(t) => t,
            None => {
                return b
                    .check_shape(what, &[u64::MAX, 2], 1)
                    .map(|_| ())
                    .map_err(|e| CliError::input(e.to_string()))
            }
        };
    }
    b.check_bytes(what, total)
        .map_err(|e| CliError::input(e.to_string()))
}

/// Checks a count of steps (or layers, or iterations) against the step budget; `what` is
/// the flag and its value (`--depths 100000000`).
pub fn check_steps(what: &str, n: u64) -> Result<(), CliError> {
    let max = budget()?.max_steps();
    if n > max {
        return Err(CliError::input(format!(
            "{what} is over the step budget of {max} (raise it with --max-steps or {})",
            odeflow::budget::MAX_STEPS_VAR
        )));
    }
    Ok(())
}

/// A CSV table written atomically: a header row and rows of already formatted cells.
pub fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> Result<(), CliError> {
    let mut text = header.join(",");
    text.push('\n');
    for row in rows {
        text.push_str(&row.join(","));
        text.push('\n');
    }
    output::write_atomic(path, text.as_bytes())
}

/// Every `k`-th point (and the last), at most about `max` of them, for plots.
pub fn thin<T: Clone>(points: &[T], max: usize) -> Vec<T> {
    let step = points.len().div_ceil(max.max(1)).max(1);
    let mut out: Vec<T> = points.iter().step_by(step).cloned().collect();
    if let Some(last) = points.last() {
        if !(points.len() - 1).is_multiple_of(step) {
            out.push(last.clone());
        }
    }
    out
}

/// One progress bar over all iterations of all training runs of a study.
pub struct RunProgress {
    bar: ProgressBar,
    iterations: u64,
    started: Instant,
}

impl RunProgress {
    /// A bar for `runs` runs of `iterations` iterations each.
    pub fn new(reporter: &Reporter, runs: usize, iterations: u64, what: &str) -> Self {
        let bar = reporter.bar(runs as u64 * iterations, what.to_string());
        Self {
            bar,
            iterations,
            started: Instant::now(),
        }
    }

    /// Updates the bar from a study's progress callback.
    pub fn update(&self, p: StudyProgress<'_>) {
        let done = p.run as u64 * self.iterations + p.record.iteration;
        self.bar.set_position(done);
        if p.record.iteration == 1 || p.record.iteration.is_multiple_of(50) {
            self.bar.set_message(format!(
                "[{}/{}] {} loss {:.2e}",
                p.run + 1,
                p.runs,
                p.label,
                p.record.loss
            ));
        }
    }

    /// Clears the bar; returns the elapsed seconds.
    pub fn finish(self) -> f64 {
        self.bar.finish_and_clear();
        self.started.elapsed().as_secs_f64()
    }
}

/// Formats a number for CSV (shortest round-trip form; empty for `None`).
pub fn cell(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// `"1.02"` or `"–"`.
pub fn slope_text(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.2}")).unwrap_or_else(|| "–".into())
}

//! [`Observer`]: how long pipeline work reports progress and is cancelled. The library never
//! prints; a front end (the CLI's progress bars and plots, Python's callbacks) implements
//! the methods it cares about. Every method has a do-nothing default, and [`Silent`]
//! implements none.

use std::path::Path;

use super::check::CheckReport;
use super::evaluate::EvalReport;
use super::train::RunSummary;

/// Receives progress and results of pipeline calls, and may ask them to stop.
pub trait Observer {
    /// A log line for people (what is being done, what was found).
    fn note(&self, _message: &str) {}

    /// A stage of `len` units begins (`"train"`: iterations; `"eval"`: test solvers).
    fn stage(&self, _name: &str, _len: u64) {}

    /// Progress in the current stage: `position` units done, with a short status.
    fn progress(&self, _position: u64, _status: &str) {}

    /// The current stage ended.
    fn stage_done(&self) {}

    /// Polled between units of work: `true` stops the call with
    /// [`super::RunError::Cancelled`] after saving what was done (training checkpoints its
    /// last iteration).
    fn cancelled(&self) -> bool {
        false
    }

    /// A run finished training: its folder, summary and metrics log (one JSON object per
    /// iteration). The CLI draws `training.png` here.
    fn trained(&self, _dir: &Path, _summary: &RunSummary, _log: &[serde_json::Value]) {}

    /// A run was checked: its folder, the report and the evaluation it used. The CLI draws
    /// `check.png` here.
    fn checked(&self, _dir: &Path, _report: &CheckReport, _eval: &EvalReport) {}
}

/// An observer that ignores everything and never cancels.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {}

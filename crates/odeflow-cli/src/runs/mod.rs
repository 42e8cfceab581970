//! Training runs and their analysis (solver dependence, Ott et al., ICLR 2021), shared by
//! `train`, `eval`, `check`, `sweep`, `critical-step` and the experiments.
//!
//! A *run folder* holds everything about one trained model:
//!
//! | file | written by | content |
//! |------|------------|---------|
//! | `config.toml` | `train` | the full resolved configuration ([`config::RunConfig`]); authoritative on resume |
//! | `checkpoint.json` | `train` | parameters, optimizer and adaptation state (atomic; resumes bit for bit) |
//! | `metrics.jsonl` | `train` | one line per iteration: loss, accuracy, lr, NFE, ms, `h` or `tol`, adaptation events |
//! | `model.json` | `train` | final parameters, classifier description, final training solver ([`model_file`]) |
//! | `summary.json` | `train` | train/test accuracy with the training solver, time, adaptation counts ([`train`]) |
//! | `training.png` | `train` | loss and accuracy over iterations (and step size / NFE when adapting) |
//! | `eval.json`, `eval.csv`, `eval.png` | `eval` | test accuracy per test solver ([`evaluate`]) |
//! | `check.json`, `check.png` | `check` (and `train`) | the ODE-validity verdict ([`check`]) |

pub mod check;
pub mod config;
pub mod data;
pub mod evaluate;
pub mod model_file;
pub mod pipeline;
pub mod plots;
pub mod settings;
pub mod sweep;
pub mod train;

use std::path::Path;

use crate::error::CliError;
use config::{RunConfig, CONFIG_FILE};

/// Reads the resolved configuration of the run in `dir`.
pub fn load_run_config(dir: &Path) -> Result<RunConfig, CliError> {
    let path = dir.join(CONFIG_FILE);
    if !path.exists() {
        return Err(CliError::input(format!(
            "'{}' is not a run folder: it has no {CONFIG_FILE} (train one with odeflow train --out-dir {})",
            dir.display(),
            dir.display()
        )));
    }
    let mut cfg = RunConfig::load(&path)?;
    cfg.resolve()?;
    Ok(cfg)
}

//! The training pipeline as library calls (solver dependence, Ott et al., ICLR 2021): train
//! a run, evaluate it under a grid of test solvers, give the ODE-validity verdict, and run
//! sweeps of runs with shards, merge and the critical step. The `odeflow` CLI's `train`,
//! `eval`, `check`, `sweep`, `merge`, `critical-step` and experiments are thin shells over
//! these calls; long work reports to an [`Observer`] and can be cancelled through it; the
//! library never prints.
//!
//! A *run folder* holds everything about one trained model:
//!
//! | file | written by | content |
//! |------|------------|---------|
//! | `config.toml` | [`train::train_run`] | the full resolved configuration ([`RunConfig`]); authoritative on resume |
//! | `checkpoint.safetensors` | [`train::train_run`] | parameters and optimizer moments as tensors; iteration, adaptation state and a SHA-256 checksum as metadata (atomic; resumes bit for bit; an older version's `checkpoint.json` is still read) |
//! | `metrics.jsonl` | [`train::train_run`] | one line per iteration: loss, accuracy, lr, NFE, ms, `h` or `tol`, adaptation events |
//! | `model.json` | [`train::train_run`] | final parameters, architecture, data shape, dtype, training solver ([`model_file`]) |
//! | `summary.json` | [`train::train_run`] | train/test accuracy with the training solver, time, adaptation counts |
//! | `eval.json` | [`evaluate::evaluate_run`] | test accuracy per test solver |
//! | `check.json` | [`check::check_run`] | the ODE-validity verdict |
//!
//! The plots beside them (`training.png`, `eval.png`, `check.png`) are drawn by the CLI from
//! the [`Observer`] events and the reports.
//!
//! ```no_run
//! use odeflow::runs::{self, RunConfig, Silent};
//! let mut cfg = RunConfig::default();
//! cfg.solver.steps = Some(2);
//! cfg.train.iterations = 200;
//! let dir = std::path::Path::new("runs/euler-2");
//! let summary = runs::train_new(dir, cfg, &Silent)?;
//! let check = runs::check::check_run(dir, 0.02, 1000, &Silent)?;
//! println!("{:.3}: {}", summary.test_accuracy, check.verdict.summary);
//! # Ok::<(), odeflow::runs::RunError>(())
//! ```

pub mod check;
mod compute;
pub mod config;
pub mod data;
mod error;
pub mod evaluate;
pub mod files;
pub mod model_file;
mod observer;
pub mod pipeline;
pub mod settings;
pub mod study;
pub mod sweep;
pub mod train;
#[cfg(feature = "cuda")]
mod train_cuda;

use std::path::Path;

pub use check::{check_classifier, check_run, check_run_on, CheckReport};
pub use compute::Compute;
pub use config::{RunConfig, CONFIG_FILE};
pub use error::{one_line, RunError};
pub use evaluate::{evaluate_run, evaluate_run_on, EvalReport, EvalRow};
pub use observer::{Observer, Silent};
pub use train::{train_run, train_run_on, RunSummary};

pub use crate::models::flow_model::FlowModel;

/// Reads the resolved configuration of the run in `dir`.
pub fn load_run_config(dir: &Path) -> Result<RunConfig, RunError> {
    let path = dir.join(CONFIG_FILE);
    if !path.exists() {
        return Err(RunError::input(format!(
            "'{}' is not a run folder: it has no {CONFIG_FILE} (train one with odeflow train --out-dir {})",
            dir.display(),
            dir.display()
        )));
    }
    let mut cfg = RunConfig::load(&path)?;
    cfg.resolve()?;
    Ok(cfg)
}

/// Writes the run's `config.toml` (the resolved configuration, every default filled in).
pub fn write_config(dir: &Path, cfg: &RunConfig) -> Result<(), RunError> {
    let text = format!(
        "# odeflow run configuration (resolved: every default filled in)\n{}",
        cfg.to_toml()?
    );
    files::write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())
}

/// Starts a new run in `dir` with `cfg`: resolves it, refuses a folder that already holds a
/// run, writes `config.toml` and trains. Use [`resume`] to continue a run.
pub fn train_new(
    dir: &Path,
    mut cfg: RunConfig,
    observer: &dyn Observer,
) -> Result<RunSummary, RunError> {
    cfg.resolve()?;
    for f in [
        crate::train::CHECKPOINT_FILE,
        crate::train::LEGACY_CHECKPOINT_FILE,
        model_file::MODEL_FILE,
    ] {
        if dir.join(f).exists() {
            return Err(RunError::input(format!(
                "'{}' already holds a run; resume it, or choose another folder",
                dir.display()
            )));
        }
    }
    write_config(dir, &cfg)?;
    train_run(dir, &cfg, observer)
}

/// Continues the run in `dir` from its checkpoint with its own `config.toml`; `iterations`
/// extends it and `checkpoint_every` changes the checkpoint interval.
pub fn resume(
    dir: &Path,
    iterations: Option<u64>,
    checkpoint_every: Option<u64>,
    observer: &dyn Observer,
) -> Result<RunSummary, RunError> {
    let cfg = resumed_config(dir, iterations, checkpoint_every)?;
    train_run(dir, &cfg, observer)
}

/// The configuration of the run in `dir` with `iterations` / `checkpoint_every` applied and
/// written back (what [`resume`] trains with).
pub fn resumed_config(
    dir: &Path,
    iterations: Option<u64>,
    checkpoint_every: Option<u64>,
) -> Result<RunConfig, RunError> {
    if !dir.join(CONFIG_FILE).exists() {
        return Err(RunError::input(format!(
            "nothing to resume in '{}': it holds no {CONFIG_FILE}",
            dir.display()
        )));
    }
    let mut cfg = load_run_config(dir)?;
    if let Some(n) = iterations {
        cfg.train.iterations = n;
    }
    if let Some(n) = checkpoint_every {
        cfg.train.checkpoint_every = n;
    }
    cfg.resolve()?;
    write_config(dir, &cfg)?;
    Ok(cfg)
}

//! The training loop: mini-batches, gradient, hooks, optimizer step, metrics, checkpoints.
//!
//! The trainer owns the flat parameter vector and the optimizer; a model ([`Trainable`])
//! reads parameters from it before each step and writes its gradient in the same layout, so
//! one loop, one optimizer and one checkpoint format serve every model. Batches come from a
//! [`BatchSource`] that is a pure function of the iteration number, so a resumed run sees
//! exactly the batches an uninterrupted one would: with the same seed the numbers are
//! bitwise identical on the CPU.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::checkpoint::{Checkpoint, CheckpointError};
use super::log::MetricsLog;
use super::optim::{Optimizer, OptimizerConfig, OptimizerState};
use super::schedule::LrSchedule;
use crate::error::ArgError;
use crate::real::Real;

/// Why training stopped early.
#[derive(Debug, Error)]
pub enum TrainError {
    /// Invalid configuration.
    #[error(transparent)]
    Arg(#[from] ArgError),
    /// The solver failed inside a forward or backward pass.
    #[error("iteration {iteration}: {message}")]
    Solver {
        /// Iteration at which it failed.
        iteration: u64,
        /// The solver's message (with t, h and step).
        message: String,
    },
    /// The loss became NaN or infinite.
    #[error(
        "iteration {iteration}: the loss is {loss}; lower the learning rate or check the data"
    )]
    NonFiniteLoss {
        /// Iteration.
        iteration: u64,
        /// The value.
        loss: f64,
    },
    /// The caller asked to stop (see [`Trainer::run_until`]); the last completed iteration
    /// is checkpointed.
    #[error("cancelled after iteration {iteration}")]
    Cancelled {
        /// The last completed iteration.
        iteration: u64,
    },
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The metrics log could not be written.
    #[error("metrics log {path}: {source}")]
    Log {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl TrainError {
    /// A solver failure at `iteration`, from any error with a message.
    pub fn solver(iteration: u64, e: impl std::fmt::Display) -> Self {
        TrainError::Solver {
            iteration,
            message: e.to_string(),
        }
    }
}

/// What one training step measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Fraction of correct predictions, for classifiers.
    pub accuracy: Option<f64>,
    /// Field evaluations in the forward pass.
    pub nfe_forward: usize,
    /// Field evaluations and VJPs in the backward pass.
    pub nfe_backward: usize,
    /// Anything else worth logging (step size, tolerance, …).
    pub extra: BTreeMap<String, f64>,
}

/// A model the trainer can optimise.
pub trait Trainable<T: Real> {
    /// One mini-batch.
    type Batch;
    /// Number of parameters.
    fn num_params(&self) -> usize;
    /// Copies the parameters into `out` (length [`Trainable::num_params`]).
    fn read_params(&self, out: &mut [T]);
    /// Sets the parameters from `src`.
    fn write_params(&mut self, src: &[T]);
    /// Loss on `batch` and its gradient, written into `grad` (zeroed by the caller).
    fn loss_and_grad(
        &mut self,
        batch: &Self::Batch,
        grad: &mut [T],
        iteration: u64,
    ) -> Result<StepMetrics, TrainError>;
    /// A description saved in checkpoints.
    fn describe(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// A model that takes the optimizer step itself, where its parameters live (a training
    /// iteration captured on a GPU): `Some` makes the trainer call [`FusedStep::step`]
    /// instead of [`Trainable::loss_and_grad`] and its own optimizer, and bring parameters
    /// and optimizer state back for checkpoints and at the end. `None` (the default) for
    /// models whose gradient the trainer applies.
    fn fused(&mut self) -> Option<&mut dyn FusedStep<T, Self::Batch>> {
        None
    }
}

/// A whole training iteration — loss, gradient and optimizer update — done by the model
/// (see [`Trainable::fused`]). The trainer's parameters and optimizer state are handed over
/// with [`FusedStep::load`] and taken back with [`FusedStep::store`], so checkpoints, resume
/// and the metrics log are the same as for any model, and a run can continue on another
/// device.
pub trait FusedStep<T, B> {
    /// Takes the parameters and the optimizer state (at the start of a run or a resume).
    fn load(&mut self, params: &[T], opt: &OptimizerState) -> Result<(), TrainError>;
    /// One iteration at learning rate `lr` (`iteration` is 0-based): the batch's loss and
    /// metrics before the update, then the update.
    fn step(&mut self, batch: &B, lr: f64, iteration: u64) -> Result<StepMetrics, TrainError>;
    /// Copies the parameters and the optimizer state back.
    fn store(&mut self, params: &mut [T], opt: &mut OptimizerState) -> Result<(), TrainError>;
}

/// Where batches come from: batch `k` depends only on `k` (and the source's seed).
pub trait BatchSource<B> {
    /// An empty batch buffer.
    fn new_batch(&self) -> B;
    /// Fills `batch` with batch number `iteration`.
    fn fill(&mut self, iteration: u64, batch: &mut B);
}

/// Code that runs after the backward pass and before the optimizer step (e.g. the step-size
/// adaptation of Ott et al.), with state that checkpoints keep.
pub trait TrainHook<T: Real, M: Trainable<T>> {
    /// Called once per iteration; may change the model's solver settings and add metrics.
    fn after_backward(
        &mut self,
        iteration: u64,
        model: &mut M,
        batch: &M::Batch,
        metrics: &mut StepMetrics,
    ) -> Result<(), TrainError> {
        let _ = (iteration, model, batch, metrics);
        Ok(())
    }
    /// State to checkpoint.
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Restores checkpointed state (and applies it to the model).
    fn restore(&mut self, state: &serde_json::Value, model: &mut M) -> Result<(), TrainError> {
        let _ = (state, model);
        Ok(())
    }
}

/// A hook that does nothing.
pub struct NoHook;

impl<T: Real, M: Trainable<T>> TrainHook<T, M> for NoHook {}

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Total iterations.
    pub iterations: u64,
    /// Optimizer and base learning rate.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    #[serde(default = "constant")]
    pub schedule: LrSchedule,
    /// Checkpoint every this many iterations (and always at the end); 0: only at the end.
    #[serde(default)]
    pub checkpoint_every: u64,
    /// Folder for `checkpoint.safetensors` and `metrics.jsonl`; `None` keeps nothing on disk.
    #[serde(default)]
    pub out_dir: Option<PathBuf>,
}

fn constant() -> LrSchedule {
    LrSchedule::Constant
}

/// One line of the metrics log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IterationRecord {
    /// Iterations completed (1-based).
    pub iteration: u64,
    /// Batch loss.
    pub loss: f64,
    /// Batch accuracy, for classifiers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Learning rate used.
    pub lr: f64,
    /// Forward evaluations.
    pub nfe_forward: usize,
    /// Backward evaluations.
    pub nfe_backward: usize,
    /// Wall time of the iteration in milliseconds.
    pub ms: f64,
    /// Extra metrics.
    #[serde(flatten)]
    pub extra: BTreeMap<String, f64>,
}

/// Result of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Iterations completed in total.
    pub iterations: u64,
    /// Iteration the run started from (0, or the checkpoint it resumed).
    pub resumed_from: u64,
    /// Loss of the last iteration.
    pub final_loss: f64,
    /// Wall time of this run in seconds.
    pub seconds: f64,
}

/// Checkpoint file name inside the output folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The checkpoint file of odeflow versions before safetensors checkpoints: still read on
/// resume, and removed once the run's next checkpoint is in place.
pub const LEGACY_CHECKPOINT_FILE: &str = "checkpoint.json";
/// Metrics log file name inside the output folder.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// The training loop's state.
pub struct Trainer<T: Real> {
    cfg: TrainConfig,
    params: Vec<T>,
    grad: Vec<T>,
    opt: Optimizer<T>,
    iteration: u64,
    resumed_from: u64,
}

impl<T: Real> Trainer<T> {
    /// A fresh run starting from the model's current parameters.
    pub fn new<M: Trainable<T>>(cfg: TrainConfig, model: &M) -> Result<Self, TrainError> {
        cfg.schedule.validate()?;
        let n = model.num_params();
        let mut params = vec![T::zero(); n];
        model.read_params(&mut params);
        let opt = Optimizer::new(cfg.optimizer.clone(), n)?;
        Ok(Self {
            cfg,
            params,
            grad: vec![T::zero(); n],
            opt,
            iteration: 0,
            resumed_from: 0,
        })
    }

    /// Continues the run saved in `cfg.out_dir` (its `checkpoint.safetensors`, or the
    /// `checkpoint.json` of an older version): parameters, optimizer state, iteration and
    /// hook state are restored.
    pub fn resume<M: Trainable<T>, H: TrainHook<T, M>>(
        cfg: TrainConfig,
        model: &mut M,
        hook: &mut H,
    ) -> Result<Self, TrainError> {
        let dir = cfg.out_dir.clone().ok_or_else(|| {
            ArgError::invalid("out_dir", "none", "resuming needs the run's folder")
        })?;
        let path = existing_checkpoint(&dir).unwrap_or_else(|| checkpoint_path(&dir));
        let ck = Checkpoint::load(&path)?;
        let mut t = Self::new(cfg, model)?;
        if ck.dtype != T::NAME {
            return Err(CheckpointError::Mismatch {
                path,
                reason: format!(
                    "it holds {} parameters, this run computes in {}",
                    ck.dtype,
                    T::NAME
                ),
            }
            .into());
        }
        if ck.params.len() != t.params.len() {
            return Err(CheckpointError::Mismatch {
                path,
                reason: format!(
                    "{} parameters, the model has {}",
                    ck.params.len(),
                    t.params.len()
                ),
            }
            .into());
        }
        t.params
            .iter_mut()
            .zip(&ck.params)
            .for_each(|(a, b)| *a = T::of(*b));
        t.opt.restore(&ck.optimizer)?;
        t.iteration = ck.iteration;
        t.resumed_from = ck.iteration;
        model.write_params(&t.params);
        hook.restore(&ck.hook, model)?;
        Ok(t)
    }

    /// Iterations completed.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// The current parameters.
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Brings the trainer's parameters and optimizer state up to a fused model's.
    fn pull<M: Trainable<T>>(&mut self, model: &mut M) -> Result<(), TrainError> {
        if let Some(f) = model.fused() {
            let mut st = self.opt.state();
            f.store(&mut self.params, &mut st)?;
            self.opt.restore(&st)?;
        }
        Ok(())
    }

    fn save<M: Trainable<T>, H: TrainHook<T, M>>(
        &self,
        model: &M,
        hook: &H,
    ) -> Result<(), TrainError> {
        if let Some(dir) = &self.cfg.out_dir {
            let ck = Checkpoint::new(
                self.iteration,
                T::NAME,
                self.params.iter().map(|v| v.f64()).collect(),
                self.opt.state(),
                hook.state(),
                model.describe(),
            );
            ck.save(&checkpoint_path(dir))?;
            // The run is now resumable from the new file alone: a checkpoint of an older
            // version goes only after that (a crash in between leaves both, and the new one
            // is preferred).
            let legacy = dir.join(LEGACY_CHECKPOINT_FILE);
            match std::fs::remove_file(&legacy) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(CheckpointError::Io {
                        path: legacy,
                        source: e,
                    }
                    .into())
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Trains until `cfg.iterations`, calling `on_iter` after every iteration. On failure the
    /// last completed iteration is checkpointed before the error is returned.
    pub fn run<M, D, H>(
        &mut self,
        model: &mut M,
        data: &mut D,
        hook: &mut H,
        mut on_iter: impl FnMut(&IterationRecord),
    ) -> Result<TrainSummary, TrainError>
    where
        M: Trainable<T>,
        D: BatchSource<M::Batch>,
        H: TrainHook<T, M>,
    {
        self.run_until(model, data, hook, |r| {
            on_iter(r);
            true
        })
    }

    /// [`Trainer::run`], stopping early when `on_iter` returns `false`: the last completed
    /// iteration is then checkpointed and [`TrainError::Cancelled`] returned, so a later
    /// resume continues bit for bit.
    pub fn run_until<M, D, H>(
        &mut self,
        model: &mut M,
        data: &mut D,
        hook: &mut H,
        mut on_iter: impl FnMut(&IterationRecord) -> bool,
    ) -> Result<TrainSummary, TrainError>
    where
        M: Trainable<T>,
        D: BatchSource<M::Batch>,
        H: TrainHook<T, M>,
    {
        let start = Instant::now();
        let mut log = match &self.cfg.out_dir {
            Some(dir) => {
                let path = dir.join(METRICS_FILE);
                let r = if self.resumed_from > 0 {
                    MetricsLog::resume(&path, self.resumed_from)
                } else {
                    MetricsLog::create(&path)
                };
                Some(r.map_err(|source| TrainError::Log {
                    path: path.clone(),
                    source,
                })?)
            }
            None => None,
        };
        let mut batch = data.new_batch();
        let mut final_loss = f64::NAN;
        let lr0 = self.cfg.optimizer.lr();
        // A fused model runs ahead of the trainer's parameters and optimizer state, which
        // stay at iteration `synced` until the next checkpoint brings them up to date.
        let fused = model.fused().is_some();
        if let Some(f) = model.fused() {
            f.load(&self.params, &self.opt.state())?;
        }
        let mut synced = self.iteration;
        while self.iteration < self.cfg.iterations {
            let it = self.iteration;
            let t0 = Instant::now();
            data.fill(it, &mut batch);
            let lr = self.cfg.schedule.lr(lr0, it);
            let step = match model.fused() {
                Some(f) => f.step(&batch, lr, it),
                None => {
                    model.write_params(&self.params);
                    self.grad.iter_mut().for_each(|g| *g = T::zero());
                    model.loss_and_grad(&batch, &mut self.grad, it)
                }
            };
            let step = step.and_then(|mut m| {
                if !m.loss.is_finite() {
                    return Err(TrainError::NonFiniteLoss {
                        iteration: it + 1,
                        loss: m.loss,
                    });
                }
                hook.after_backward(it, model, &batch, &mut m)?;
                Ok(m)
            });
            let m = match step {
                Ok(m) => m,
                Err(e) => {
                    // A fused model has already applied the failed update: keep the state
                    // of the last synchronisation.
                    self.iteration = synced;
                    self.save(model, hook)?;
                    return Err(e);
                }
            };
            if !fused {
                self.opt.step(&mut self.params, &self.grad, lr);
            }
            self.iteration += 1;
            if !fused {
                synced = self.iteration;
            }
            final_loss = m.loss;
            let rec = IterationRecord {
                iteration: self.iteration,
                loss: m.loss,
                accuracy: m.accuracy,
                lr,
                nfe_forward: m.nfe_forward,
                nfe_backward: m.nfe_backward,
                ms: t0.elapsed().as_secs_f64() * 1e3,
                extra: m.extra,
            };
            if let Some(log) = log.as_mut() {
                log.write(&rec).map_err(|source| TrainError::Log {
                    path: log.path().to_path_buf(),
                    source,
                })?;
            }
            let go_on = on_iter(&rec);
            let every = self.cfg.checkpoint_every;
            if (every > 0 && self.iteration.is_multiple_of(every))
                || self.iteration == self.cfg.iterations
                || !go_on
            {
                if fused {
                    self.pull(model)?;
                    synced = self.iteration;
                }
                self.save(model, hook)?;
            }
            if !go_on && self.iteration < self.cfg.iterations {
                model.write_params(&self.params);
                return Err(TrainError::Cancelled {
                    iteration: self.iteration,
                });
            }
        }
        model.write_params(&self.params);
        Ok(TrainSummary {
            iterations: self.iteration,
            resumed_from: self.resumed_from,
            final_loss,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

/// Path of the checkpoint inside a run folder (where it is written).
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

/// The checkpoint a run in `dir` resumes from: `checkpoint.safetensors`, or else the
/// `checkpoint.json` of an older version; `None` when there is neither.
pub fn existing_checkpoint(dir: &Path) -> Option<PathBuf> {
    [CHECKPOINT_FILE, LEGACY_CHECKPOINT_FILE]
        .into_iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
}

//! Training: optimizers, learning-rate schedules, the training loop, checkpoints and the
//! metrics log.
//!
//! * [`Optimizer`] — Adam and SGD (momentum, Nesterov, weight decay) over flat parameters.
//! * [`LrSchedule`] — constant, step, exponential, exponential-to-a-final-rate.
//! * [`Trainer`] — the loop over a [`Trainable`] model and a [`BatchSource`], with
//!   [`TrainHook`]s between backward pass and optimizer step, a JSON Lines metrics log, and
//!   atomic checkpoints (safetensors: tensors for the parameters and optimizer moments,
//!   metadata for the rest, checksummed) from which a killed run resumes with nothing lost.

mod checkpoint;
mod log;
mod optim;
mod schedule;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fused;
mod trainer;

pub use checkpoint::{
    write_atomic, Checkpoint, CheckpointError, CHECKPOINT_FORMAT, CHECKPOINT_VERSION,
    MOMENT1_TENSOR, MOMENT2_TENSOR, PARAMS_TENSOR,
};
pub use log::{read_log, MetricsLog};
pub use optim::{Optimizer, OptimizerConfig, OptimizerState};
pub use schedule::LrSchedule;
pub use trainer::{
    checkpoint_path, existing_checkpoint, BatchSource, FusedStep, IterationRecord, NoHook,
    StepMetrics, TrainConfig, TrainError, TrainHook, TrainSummary, Trainable, Trainer,
    CHECKPOINT_FILE, LEGACY_CHECKPOINT_FILE, METRICS_FILE,
};

//! Training one run into its folder: data, model, adaptation hook, the training loop with
//! checkpoints, then `model.json`, `summary.json` and `training.png`.
//!
//! A folder with a `checkpoint.safetensors` (or the `checkpoint.json` of an older version)
//! is resumed from it (parameters, optimizer moments,
//! iteration and adapted step all restored; batches are a pure function of the iteration),
//! so a killed run continued with `--resume` ends with exactly the parameters of an
//! uninterrupted one.

use std::path::Path;

use crate::analysis::solver_dependence::{classifier_initial_step, AdaptationHook};
use crate::data::derive_seed;
use crate::models::{ClassBatch, DatasetSource};
use crate::solve::{AdaptiveOptions, Stepping};
use crate::train::{
    existing_checkpoint, read_log, BatchSource, CheckpointError, TrainConfig, TrainError,
    TrainHook, Trainable, Trainer, METRICS_FILE,
};
use crate::Real;
use serde::{Deserialize, Serialize};

use super::compute::Compute;
use super::config::RunConfig;
use super::data::load_data;
use super::model_file::{ModelFile, MODEL_FILE};
use super::{files, Observer, RunError};
use crate::report::short;
use crate::solve::spec::unit_options as options;
use crate::solve::SolverSpec;

/// The summary file's name inside a run folder.
pub const SUMMARY_FILE: &str = "summary.json";
/// The training-curve plot's name inside a run folder (drawn by the CLI).
pub const TRAINING_PLOT: &str = "training.png";

/// What the adaptation did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptationSummary {
    /// The training solver at the start (the initial step or tolerance).
    pub initial: SolverSpec,
    /// Checks done.
    pub checks: u64,
    /// Checks that made the step (tolerance) finer.
    pub refined: u64,
    /// Checks that made it coarser.
    pub coarsened: u64,
    /// Checks that kept it.
    pub kept: u64,
    /// Checks that wanted a finer step than the cap allows.
    pub at_cap: u64,
}

/// `summary.json`: the result of training, with the training solver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Data set name.
    pub dataset: String,
    /// Model kind.
    pub model: String,
    /// Scalar type.
    pub dtype: String,
    /// Seed.
    pub seed: u64,
    /// Iterations trained.
    pub iterations: u64,
    /// The training solver at the end of training.
    pub train: SolverSpec,
    /// Accuracy on the whole training set with the training solver.
    pub train_accuracy: f64,
    /// Accuracy on the test set with the training solver.
    pub test_accuracy: f64,
    /// Mean cross-entropy on the training set (absent when a solve blew up).
    pub train_loss: Option<f64>,
    /// Mean cross-entropy on the test set (absent when a solve blew up).
    pub test_loss: Option<f64>,
    /// Mean field evaluations of the training forward solves.
    pub nfe_forward_mean: f64,
    /// Training wall time in seconds, summed over all sessions of the run.
    pub seconds: f64,
    /// Parameters' fingerprint (as in `model.json`).
    pub fingerprint: String,
    /// The adaptation, when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptation: Option<AdaptationSummary>,
    /// Sizes the run used smaller than the configuration asked for, each as a sentence
    /// (e.g. a training batch larger than the training set); also said as a note when
    /// training starts. Nothing is capped silently.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capped: Vec<String>,
}

/// Trains (or resumes, when `dir` holds a checkpoint) the run in `dir` with `cfg` (already
/// resolved, see [`RunConfig::resolve`]) and writes `model.json`, `summary.json`,
/// `checkpoint.safetensors` and `metrics.jsonl`. Progress goes to `observer` (stage `"train"`, one
/// unit per iteration); when it asks to stop, the last iteration is checkpointed and
/// [`RunError::Cancelled`] returned.
pub fn train_run(
    dir: &Path,
    cfg: &RunConfig,
    observer: &dyn Observer,
) -> Result<RunSummary, RunError> {
    train_run_on(dir, cfg, observer, &Compute::Cpu)
}

/// [`train_run`] on `compute`. With [`Compute::Cuda`] (feature `cuda`) the training
/// iterations run on the GPU in f32: as one captured CUDA graph each where the device plan
/// covers the run ([`crate::cuda::CudaClassifier`]: MLP or convolutional field, explicit
/// method on a fixed grid, any gradient method, Adam), otherwise through the generic
/// gradient solvers on the device ([`crate::cuda::CudaSolverClassifier`]: every built-in
/// field and solver, all three gradient methods, and Ott et al.'s step-size adaptation). Checkpoints, the metrics log,
/// the final evaluation (on the CPU) and the files written are the same as on the CPU, so a
/// run trained on one device resumes and is checked on the other.
pub fn train_run_on(
    dir: &Path,
    cfg: &RunConfig,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<RunSummary, RunError> {
    let _lock = files::lock(dir, "train")?;
    if !compute.is_cpu() && cfg.dtype != "f32" {
        return Err(RunError::input(format!(
            "--device {}: the GPU trains in f32 and this run's dtype is {}; train it with --dtype f32 (or on the CPU)",
            compute.name(),
            cfg.dtype
        )));
    }
    match cfg.dtype.as_str() {
        "f64" => train_typed::<f64>(dir, cfg, observer, compute),
        _ => train_typed::<f32>(dir, cfg, observer, compute),
    }
}

fn train_error(e: TrainError, dir: &Path) -> RunError {
    match e {
        TrainError::Arg(a) => a.into(),
        TrainError::Cancelled { iteration } => RunError::Cancelled(format!(
            "training cancelled after iteration {iteration}; resume it with odeflow train --out-dir {} --resume",
            dir.display()
        )),
        TrainError::Checkpoint(
            c @ (CheckpointError::Corrupt { .. }
            | CheckpointError::Checksum { .. }
            | CheckpointError::Foreign { .. }
            | CheckpointError::Mismatch { .. }),
        ) => RunError::input(format!(
            "{c} (delete it to start the run in '{}' afresh)",
            dir.display()
        )),
        TrainError::Log { path, source } if source.kind() == std::io::ErrorKind::InvalidData => {
            RunError::input(format!("the metrics log '{}': {source}", path.display()))
        }
        other => RunError::runtime(format!(
            "training stopped at {other} (the last completed iteration is checkpointed in '{}')",
            dir.display()
        )),
    }
}

fn train_typed<T: Real>(
    dir: &Path,
    cfg: &RunConfig,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<RunSummary, RunError> {
    let data = load_data::<T>(&cfg.data)?;
    let method = cfg.solver.method()?;
    let grad = cfg.solver.grad()?;
    let given = cfg.solver.stepping()?;
    let spec = cfg.model.spec();
    let start_stepping = given.clone().unwrap_or(Stepping::FixedStep(1.0));
    let mut model = spec.build::<T>(
        data.sample_shape(),
        data.classes(),
        method.clone(),
        grad,
        options(start_stepping),
        cfg.seed,
    )?;
    let mut source =
        DatasetSource::new(&data.train, cfg.train.batch_size, derive_seed(cfg.seed, 21))?;
    let mut capped = Vec::new();
    if cfg.train.batch_size > data.train.len() {
        capped.push(format!(
            "train.batch_size {} is larger than the {} training samples: every batch is the whole training set (full-batch training)",
            cfg.train.batch_size,
            data.train.len()
        ));
    }
    for c in &capped {
        observer.note(&format!("note: {c}"));
    }
    let mut hook = AdaptationHook::log_only();
    let mut initial = None;
    if cfg.adapt.enabled {
        let acfg = cfg.adapt.library()?;
        let stepping = match given {
            Some(Stepping::FixedCount(n)) => Stepping::FixedStep(1.0 / n as f64),
            Some(s @ Stepping::FixedStep(_)) => s,
            Some(Stepping::Adaptive(a)) => Stepping::Adaptive(a),
            None if method.is_adaptive() => {
                Stepping::Adaptive(AdaptiveOptions::new(acfg.initial_tol, acfg.initial_tol))
            }
            None => {
                let mut first = source.new_batch();
                source.fill(0, &mut first);
                let h = classifier_initial_step(&mut model, &first.x, method.order(), acfg.max_h)?;
                Stepping::FixedStep(h)
            }
        };
        hook = match &stepping {
            Stepping::FixedStep(h) => AdaptationHook::fixed(acfg, method.name(), *h)?,
            Stepping::Adaptive(a) => {
                let mut c = acfg;
                c.initial_tol = a.rtol;
                AdaptationHook::tolerance(c, method.name())?
            }
            Stepping::FixedCount(_) => unreachable!("converted to a step size above"),
        };
        model.solver_mut().set_stepping(stepping.clone())?;
        initial = Some(SolverSpec::new(&method, &stepping));
    }
    let tcfg = TrainConfig {
        iterations: cfg.train.iterations,
        optimizer: cfg.train.optimizer()?,
        schedule: Default::default(),
        checkpoint_every: cfg.train.checkpoint_every,
        out_dir: Some(dir.to_path_buf()),
    };
    let intro = format!(
        "run '{}': {} with {} training and {} test samples{}",
        dir.display(),
        cfg.data.name,
        data.train.len(),
        data.test.len(),
        if compute.is_cpu() {
            String::new()
        } else {
            format!(", training on {}", compute.describe())
        }
    );
    let iterations = match compute {
        Compute::Cpu => run_trainer(
            dir,
            cfg,
            tcfg,
            &mut model,
            &mut source,
            &mut hook,
            observer,
            &intro,
        )?,
        #[cfg(feature = "cuda")]
        Compute::Cuda(dev) => super::train_cuda::train_on_cuda(
            dev,
            dir,
            cfg,
            tcfg,
            &mut model,
            &mut source,
            (&spec.field, &data, &method),
            observer,
            &intro,
            &mut hook,
        )?,
    };

    let log = read_log(&dir.join(METRICS_FILE)).map_err(|e| {
        RunError::runtime(format!(
            "cannot read the metrics log in '{}': {e}",
            dir.display()
        ))
    })?;
    // An adapted run ends with the step (tolerance) its last iteration trained with: the
    // adaptation's decision at the last check would only apply to the next iteration.
    let mut final_stepping = model.solver().options().stepping.clone();
    if cfg.adapt.enabled {
        let last = log.last();
        match (
            &final_stepping,
            last.and_then(|r| r["h"].as_f64()),
            last.and_then(|r| r["tol"].as_f64()),
        ) {
            (Stepping::FixedStep(_), Some(h), _) => final_stepping = Stepping::FixedStep(h),
            (Stepping::Adaptive(_), _, Some(t)) => {
                final_stepping = Stepping::Adaptive(AdaptiveOptions::new(t, t))
            }
            _ => {}
        }
        model.solver_mut().set_stepping(final_stepping.clone())?;
    }
    let final_spec = SolverSpec::new(&method, &final_stepping);
    let opts = options(final_stepping);
    let bs = cfg.check.batch_size;
    let tr = model
        .evaluate(&data.train, &method, &opts, bs)
        .map_err(RunError::runtime)?;
    let te = model
        .evaluate(&data.test, &method, &opts, bs)
        .map_err(RunError::runtime)?;
    let file = ModelFile::new(
        &model,
        &cfg.data.name,
        spec,
        data.sample_shape().to_vec(),
        data.classes(),
        cfg.seed,
        final_spec.clone(),
        iterations,
    );
    file.save(&dir.join(MODEL_FILE))?;
    let col = |k: &str| -> Vec<f64> { log.iter().filter_map(|r| r[k].as_f64()).collect() };
    let seconds = col("ms").iter().sum::<f64>() / 1e3;
    let nfe = col("nfe_forward");
    let finite = |v: f64| v.is_finite().then_some(v);
    let summary = RunSummary {
        dataset: cfg.data.name.clone(),
        model: cfg.model.kind.clone(),
        dtype: T::NAME.into(),
        seed: cfg.seed,
        iterations,
        train: final_spec,
        train_accuracy: tr.accuracy,
        test_accuracy: te.accuracy,
        train_loss: finite(tr.loss),
        test_loss: finite(te.loss),
        nfe_forward_mean: nfe.iter().sum::<f64>() / nfe.len().max(1) as f64,
        seconds,
        fingerprint: file.fingerprint.clone(),
        adaptation: initial.map(|initial| AdaptationSummary {
            initial,
            checks: hook.counts.checks,
            refined: hook.counts.refined,
            coarsened: hook.counts.coarsened,
            kept: hook.counts.kept,
            at_cap: hook.counts.at_cap,
        }),
        capped,
    };
    files::write_json(&summary, &dir.join(SUMMARY_FILE))?;
    observer.trained(dir, &summary, &log);
    observer.note(&format!(
        "trained {} iterations ({:.1} s): test accuracy {:.4} with {}",
        summary.iterations,
        summary.seconds,
        summary.test_accuracy,
        summary.train.label()
    ));
    Ok(summary)
}

/// The training loop of a run on any [`Trainable`] model (the CPU classifier, or its GPU
/// twin): new or resumed from the folder's checkpoint, with progress and cancellation through
/// `observer` (`intro` is said once the checkpoint, if any, has loaded). Returns the
/// iterations completed.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_trainer<T: Real, M: Trainable<T, Batch = ClassBatch<T>>, H: TrainHook<T, M>>(
    dir: &Path,
    cfg: &RunConfig,
    tcfg: TrainConfig,
    model: &mut M,
    source: &mut DatasetSource<'_, T>,
    hook: &mut H,
    observer: &dyn Observer,
    intro: &str,
) -> Result<u64, RunError> {
    let mut trainer = if existing_checkpoint(dir).is_some() {
        Trainer::resume(tcfg, model, hook).map_err(|e| train_error(e, dir))?
    } else {
        Trainer::new(tcfg, model).map_err(|e| train_error(e, dir))?
    };
    observer.note(intro);
    let done = trainer.iteration();
    if done > cfg.train.iterations {
        return Err(RunError::input(format!(
            "the run in '{}' has already trained {done} iterations, more than --iterations {}",
            dir.display(),
            cfg.train.iterations
        )));
    }
    if done > 0 && done < cfg.train.iterations {
        observer.note(&format!(
            "resuming '{}' at iteration {done} of {}",
            dir.display(),
            cfg.train.iterations
        ));
    }
    observer.stage("train", cfg.train.iterations);
    observer.progress(done, "");
    let every = (cfg.train.iterations / 200).max(1);
    let trained = trainer.run_until(model, source, hook, |rec| {
        if rec.iteration % every == 0 || rec.iteration == cfg.train.iterations {
            let step = match (rec.extra.get("h"), rec.extra.get("tol")) {
                (Some(h), _) => format!(" h {}", short(*h)),
                (_, Some(t)) => format!(" tol {}", short(*t)),
                _ => String::new(),
            };
            observer.progress(
                rec.iteration,
                &format!(
                    "loss {:.4} acc {:.3}{step}",
                    rec.loss,
                    rec.accuracy.unwrap_or(f64::NAN)
                ),
            );
        }
        !observer.cancelled()
    });
    observer.stage_done();
    trained.map_err(|e| train_error(e, dir))?;
    Ok(trainer.iteration())
}

/// Reads a run's `summary.json`.
pub fn load_summary(dir: &Path) -> Result<RunSummary, RunError> {
    files::read_json(&dir.join(SUMMARY_FILE), "the run summary")
}

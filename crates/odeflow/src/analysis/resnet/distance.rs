//! Is a trained ResNet close to an ODE? The ResNet–ODE distance and the smoothness of the
//! weights in depth, tracked during training (Sander, Ablin, Peyré 2022, §4).
//!
//! For a depth-`N` network with layer weights `θ_n` at `t_n = n/N`, let `x(t)` solve the ODE
//! `x' = f(x; θ(t))` whose weights interpolate the layers piecewise linearly,
//! `θ(t) = (1 − α)θ_n + αθ_{n+1}` for `tN = n + α` (see
//! [`crate::models::depth_field::DepthField::interpolated`]), from the same input. The
//! **ResNet–ODE distance** is `maxₙ ‖x_n − x(t_n)‖` over the network's states, with `x(t)`
//! computed by RK4 with `substeps` steps per layer (a reference far more accurate than the
//! network). Norms are root-mean-square over the batch of per-sample Euclidean norms; the
//! relative distance divides by `maxₙ ‖x(t_n)‖`.
//!
//! When the weights are smooth in depth — `N · maxₙ ‖θ_{n+1} − θ_n‖` and
//! `Σₙ ‖θ_{n+1} − θ_n‖` bounded independently of `N` — the distance is `O(1/N)` (Euler)
//! and the ResNet discretises one ODE whatever its depth. With i.i.d. layers both metrics
//! grow like `N`: there is no limit `θ(t)`. The distance to the interpolated ODE is then
//! not a test of that on its own: the interpolation averages neighbouring layers just as
//! the `1/N`-scaled network does (the first-order differences telescope), so it falls too
//! (measured about `N^(−0.9)` on random tanh layers); read it together with the smoothness.
//! [`DistanceTracker`] measures both during training, [`distance_sweep`] compares
//! initialisations (i.i.d. against constant in depth) across depths.

use serde::{Deserialize, Serialize};

use super::depth_sweep::{ImageData, TrainSettings};
use super::profiles::norm;
use super::trained::{train_tiny_resnet_on, TinyResNetHost};
use crate::error::ArgError;
use crate::models::resnet::{ResNet, ResNetError, Scheme};
use crate::models::tiny_resnet::{BodyInit, ImageBatch, TinyResNetConfig};
use crate::real::Real;
use crate::runs::Compute;
use crate::solve::{solve, Method, SaveAt, SolveOptions, Stepping};
use crate::state::Batch;
use crate::train::{StepMetrics, TrainError, TrainHook, Trainable};

/// The ResNet–ODE distance of one network on one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistanceReport {
    /// Depth `N`.
    pub depth: usize,
    /// `maxₙ ‖x_n − x(t_n)‖`.
    pub distance: f64,
    /// `distance / maxₙ ‖x(t_n)‖`.
    pub relative_distance: f64,
    /// `‖x_n − x(t_n)‖` for every state of the network.
    pub per_layer: Vec<f64>,
    /// `N · maxₙ ‖θ_{n+1} − θ_n‖`.
    pub smoothness_max: f64,
    /// `Σₙ ‖θ_{n+1} − θ_n‖`.
    pub smoothness_sum: f64,
}

/// RMS over the rows of the per-row Euclidean norm of `a − b`.
fn rms_row_norm<T: Real>(a: &Batch<T>, b: Option<&Batch<T>>) -> f64 {
    let rows = a.rows().max(1) as f64;
    let sq = match b {
        Some(b) => norm(
            a.as_slice()
                .iter()
                .zip(b.as_slice())
                .map(|(x, y)| x.f64() - y.f64()),
        ),
        None => norm(a.as_slice().iter().map(|x| x.f64())),
    };
    sq / rows.sqrt()
}

/// The ResNet–ODE distance of `net` from input `x0` (see the module docs). The network's
/// current mode is used; for batch norm use evaluation mode, whose running statistics are
/// interpolated along with the weights.
pub fn resnet_ode_distance<T: Real>(
    net: &mut ResNet<T>,
    x0: &Batch<T>,
    substeps: usize,
) -> Result<DistanceReport, ResNetError> {
    if substeps == 0 {
        return Err(ArgError::invalid("substeps", 0, "must be at least 1").into());
    }
    let xs = net.trajectory(x0)?;
    let depth = net.depth();
    let ts: Vec<f64> = (0..xs.len()).map(|n| n as f64 / depth as f64).collect();
    let t1 = *ts.last().unwrap_or(&0.0);
    let (smoothness_max, smoothness_sum) = net.field().smoothness();
    let mut per_layer = vec![0.0];
    let mut scale = rms_row_norm(x0, None);
    if t1 > 0.0 {
        let opts = SolveOptions {
            t0: 0.0,
            t1,
            stepping: Stepping::FixedStep(1.0 / (depth * substeps) as f64),
            save: SaveAt::Times(ts),
            max_steps: usize::MAX,
        };
        let rk4 = Method::from_name("rk4").expect("rk4 is in the catalogue");
        let sol = solve(&rk4, &mut net.field_mut().interpolated(), x0, &opts)?;
        per_layer = xs
            .iter()
            .zip(&sol.y)
            .map(|(a, b)| rms_row_norm(a, Some(b)))
            .collect();
        scale = sol
            .y
            .iter()
            .map(|y| rms_row_norm(y, None))
            .fold(0.0, f64::max);
    }
    let distance = per_layer.iter().copied().fold(0.0, f64::max);
    Ok(DistanceReport {
        depth,
        distance,
        relative_distance: if scale > 0.0 { distance / scale } else { 0.0 },
        per_layer,
        smoothness_max,
        smoothness_sum,
    })
}

/// The metrics of one measurement during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackRecord {
    /// Optimisation steps taken before the measurement.
    pub iteration: u64,
    /// The training loss of that iteration's batch (none for the final measurement).
    pub loss: Option<f64>,
    /// ResNet–ODE distance on the probe batch.
    pub distance: f64,
    /// Relative distance.
    pub relative_distance: f64,
    /// `N · maxₙ ‖θ_{n+1} − θ_n‖`.
    pub smoothness_max: f64,
    /// `Σₙ ‖θ_{n+1} − θ_n‖`.
    pub smoothness_sum: f64,
}

/// A training hook measuring the ResNet–ODE distance (on the stem features of a fixed
/// probe batch, in evaluation mode) and the smoothness every `every` iterations.
pub struct DistanceTracker<T: Real> {
    every: u64,
    probe: Batch<T>,
    substeps: usize,
    /// The measurements so far.
    pub records: Vec<TrackRecord>,
}

impl<T: Real> DistanceTracker<T> {
    /// Measures on `probe` (normalised images) every `every ≥ 1` iterations.
    pub fn new(probe: Batch<T>, every: u64, substeps: usize) -> Self {
        Self {
            every: every.max(1),
            probe,
            substeps,
            records: Vec::new(),
        }
    }

    /// Measures `model` now and records it as `iteration`.
    /// On a GPU the host model is measured, with the device's running statistics. A
    /// failure names `iteration`.
    pub fn measure<M: TinyResNetHost<T>>(
        &mut self,
        model: &mut M,
        iteration: u64,
        loss: Option<f64>,
    ) -> Result<&TrackRecord, TrainError> {
        self.measure_at(model, iteration, loss, iteration)
    }

    /// [`DistanceTracker::measure`], a failure naming `fail_at`.
    fn measure_at<M: TinyResNetHost<T>>(
        &mut self,
        model: &mut M,
        iteration: u64,
        loss: Option<f64>,
        fail_at: u64,
    ) -> Result<&TrackRecord, TrainError> {
        let model = model.host_model(fail_at)?;
        let failed = |e: ResNetError| TrainError::solver(fail_at, e);
        model.set_train(false);
        let feats = model.features(&self.probe).map_err(failed)?;
        let r = resnet_ode_distance(model.body_mut(), &feats, self.substeps);
        model.set_train(true);
        let r = r.map_err(failed)?;
        self.records.push(TrackRecord {
            iteration,
            loss,
            distance: r.distance,
            relative_distance: r.relative_distance,
            smoothness_max: r.smoothness_max,
            smoothness_sum: r.smoothness_sum,
        });
        Ok(self.records.last().expect("just pushed"))
    }
}

impl<T: Real, M> TrainHook<T, M> for DistanceTracker<T>
where
    M: Trainable<T, Batch = ImageBatch<T>> + TinyResNetHost<T>,
{
    fn after_backward(
        &mut self,
        iteration: u64,
        model: &mut M,
        _batch: &ImageBatch<T>,
        metrics: &mut StepMetrics,
    ) -> Result<(), TrainError> {
        if iteration.is_multiple_of(self.every) {
            let r = self
                .measure_at(model, iteration, Some(metrics.loss), iteration + 1)?
                .clone();
            metrics.extra.insert("distance".into(), r.distance);
            metrics
                .extra
                .insert("smoothness_max".into(), r.smoothness_max);
        }
        Ok(())
    }
}

/// Settings of [`distance_sweep`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistanceSweepConfig {
    /// Depths `N`.
    pub depths: Vec<usize>,
    /// Initialisations to compare.
    pub inits: Vec<BodyInit>,
    /// Euler or Heun.
    pub scheme: Scheme,
    /// The model (depth, scheme and initialisation are set per run).
    pub model: TinyResNetConfig,
    /// Optimisation.
    pub train: TrainSettings,
    /// Measure every this many iterations (and after the last).
    pub every: u64,
    /// Test images in the probe batch.
    pub probe_size: usize,
    /// RK4 steps per layer of the reference ODE solution.
    pub substeps: usize,
    /// Batch size of the final test evaluation.
    pub eval_batch: usize,
}

impl DistanceSweepConfig {
    /// Fails with one line for settings no run can train with (checked before any work,
    /// e.g. before a device opens).
    pub fn check(&self) -> Result<(), ArgError> {
        super::reconstruction::check_depths(&self.depths, &[self.scheme])?;
        if self.inits.is_empty() {
            return Err(ArgError::invalid(
                "initialisations",
                "[]",
                "give at least one",
            ));
        }
        Ok(())
    }
}

/// One network's measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistanceRun {
    /// Depth `N`.
    pub depth: usize,
    /// Initialisation.
    pub init: BodyInit,
    /// Measurements during training; the last is after the last step.
    pub records: Vec<TrackRecord>,
    /// Test accuracy after training.
    pub test_accuracy: f64,
}

/// Outcome of [`distance_sweep`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistanceSweepResult {
    /// Settings.
    pub config: DistanceSweepConfig,
    /// Data set name.
    pub dataset: String,
    /// One entry per depth and initialisation.
    pub runs: Vec<DistanceRun>,
}

/// Trains a TinyResNet per depth and initialisation, tracking distance and smoothness;
/// `progress(run, runs, iteration)` after every iteration.
pub fn distance_sweep<T: Real>(
    data: &ImageData<T>,
    cfg: &DistanceSweepConfig,
    progress: impl FnMut(usize, usize, u64),
) -> Result<DistanceSweepResult, TrainError> {
    distance_sweep_on(data, cfg, &Compute::Cpu, progress)
}

/// [`distance_sweep`] on `compute`: on a GPU each network trains on the device
/// ([`super::trained::train_tiny_resnet_on`]); the distance is measured on the host model.
pub fn distance_sweep_on<T: Real>(
    data: &ImageData<T>,
    cfg: &DistanceSweepConfig,
    compute: &Compute,
    mut progress: impl FnMut(usize, usize, u64),
) -> Result<DistanceSweepResult, TrainError> {
    cfg.check()?;
    let n_probe = cfg.probe_size.clamp(1, data.test.len().max(1));
    let probe = data.test.take(n_probe).inputs().clone();
    let total = cfg.depths.len() * cfg.inits.len();
    let mut runs = Vec::new();
    for &depth in &cfg.depths {
        for &init in &cfg.inits {
            let model_cfg = TinyResNetConfig {
                depth,
                scheme: cfg.scheme,
                body_init: init,
                ..cfg.model.clone()
            };
            let run = runs.len();
            let mut tracker = DistanceTracker::new(probe.clone(), cfg.every, cfg.substeps);
            let mut model =
                train_tiny_resnet_on(data, model_cfg, &cfg.train, compute, &mut tracker, |rec| {
                    progress(run, total, rec.iteration)
                })?;
            let end = cfg.train.iterations;
            tracker.measure(&mut model, end, None)?;
            let (_, test_accuracy) = model
                .evaluate(&data.test, cfg.eval_batch)
                .map_err(|e| TrainError::solver(end, e))?;
            runs.push(DistanceRun {
                depth,
                init,
                records: tracker.records,
                test_accuracy,
            });
        }
    }
    Ok(DistanceSweepResult {
        config: cfg.clone(),
        dataset: data.name.clone(),
        runs,
    })
}

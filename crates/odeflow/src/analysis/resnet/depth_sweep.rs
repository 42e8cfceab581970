//! Test accuracy of TinyResNets against depth, for ResNets (Euler) and HeunNets trained by
//! backprop or by the memory-free reversible method (Sander, Ablin, Peyré 2022, §5).
//!
//! Training follows the ResNet recipe: SGD with momentum and weight decay, a step schedule
//! (the rate is multiplied by `gamma` at each milestone), mini-batches from a seeded
//! shuffle per epoch, optional augmentation (random crop with 4 pixels of padding and
//! horizontal flip — CIFAR-10's standard; flips are wrong for digits, so MNIST runs
//! without), and per-channel normalisation. The reversible method's gradient is
//! approximate; the question is how much accuracy it costs as depth grows. Batch `k` is a
//! pure function of `k` and the seed, so runs are reproducible and resumable.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::{
    derive_seed, load_cifar10, load_mnist, BatchOrder, ChannelNorm, Cifar10Options, CropFlip,
    DataError, Dataset, MnistOptions,
};
use crate::error::ArgError;
use crate::grad::GradientMethod;
use crate::models::resnet::Scheme;
use crate::models::tiny_resnet::{ImageBatch, TinyResNet, TinyResNetConfig};
use crate::nn::Shape;
use crate::real::Real;
use crate::runs::Compute;
use crate::train::{
    BatchSource, IterationRecord, LrSchedule, OptimizerConfig, TrainConfig, TrainError, TrainHook,
    TrainSummary, Trainer,
};

/// An image classification data set: training images in `[0, 1]`, normalised test images.
#[derive(Debug, Clone)]
pub struct ImageData<T> {
    /// `"mnist"` or `"cifar10"` (or a caller's name).
    pub name: String,
    /// Training images, pixel values in `[0, 1]` (normalised per batch, after augmentation).
    pub train: Dataset<T>,
    /// Test images, normalised.
    pub test: Dataset<T>,
    /// The per-channel normalisation.
    pub norm: ChannelNorm,
    /// Shape of one image.
    pub shape: Shape,
}

impl<T: Real> ImageData<T> {
    /// Wraps `(C, H, W)` data sets; the test set is normalised here.
    pub fn new(
        name: impl Into<String>,
        train: Dataset<T>,
        mut test: Dataset<T>,
        norm: ChannelNorm,
    ) -> Result<Self, ArgError> {
        let shape = match *train.sample_shape() {
            [c, h, w] => Shape::image(c, h, w),
            ref s => {
                return Err(ArgError::invalid(
                    "sample shape",
                    format!("{s:?}"),
                    "images must be (C, H, W)",
                ))
            }
        };
        if test.sample_shape() != train.sample_shape() {
            return Err(ArgError::invalid(
                "test sample shape",
                format!("{:?}", test.sample_shape()),
                format!("differs from the training shape {:?}", train.sample_shape()),
            ));
        }
        norm.apply(&mut test)?;
        Ok(Self {
            name: name.into(),
            train,
            test,
            norm,
            shape,
        })
    }

    /// MNIST from IDX files in `dir` (see [`load_mnist`]).
    pub fn mnist(dir: impl AsRef<Path>, opts: &MnistOptions) -> Result<Self, DataError> {
        let m = load_mnist::<T>(dir, opts)?;
        Ok(Self::new(
            "mnist",
            m.data.train,
            m.data.test,
            ChannelNorm::mnist(),
        )?)
    }

    /// CIFAR-10 from binary batches in `dir` (see [`load_cifar10`]).
    pub fn cifar10(dir: impl AsRef<Path>, opts: &Cifar10Options) -> Result<Self, DataError> {
        let c = load_cifar10::<T>(dir, opts)?;
        Ok(Self::new(
            "cifar10",
            c.data.train,
            c.data.test,
            ChannelNorm::cifar10(),
        )?)
    }

    /// Keeps the first `train` training and `test` test samples (all when `None`).
    pub fn limit(mut self, train: Option<usize>, test: Option<usize>) -> Self {
        if let Some(n) = train {
            self.train = self.train.take(n);
        }
        if let Some(n) = test {
            self.test = self.test.take(n);
        }
        self
    }
}

/// Mini-batches of the training set: seeded shuffle per epoch, optional crop/flip, then
/// normalisation. Batch `k` depends only on `k` and the seed.
pub struct AugmentedBatches<'a, T: Real> {
    data: &'a ImageData<T>,
    order: BatchOrder,
    per_epoch: u64,
    position: Option<(u64, u64)>,
    crop: Option<CropFlip<T>>,
    seed: u64,
    cols: usize,
}

impl<'a, T: Real> AugmentedBatches<'a, T> {
    /// Batches of `batch_size` (the last partial batch of an epoch is dropped).
    pub fn new(
        data: &'a ImageData<T>,
        batch_size: usize,
        augment: bool,
        seed: u64,
    ) -> Result<Self, ArgError> {
        let n = data.train.len();
        if batch_size == 0 || batch_size > n {
            return Err(ArgError::invalid(
                "batch size",
                batch_size,
                format!("must be between 1 and the {n} training samples"),
            ));
        }
        let order = BatchOrder::new(n, batch_size, true, Some(seed))?;
        let crop = if augment {
            Some(CropFlip::new(data.train.sample_shape(), 4, true, seed)?)
        } else {
            None
        };
        Ok(Self {
            per_epoch: order.batches_per_epoch() as u64,
            order,
            position: None,
            crop,
            seed,
            cols: data.train.inputs().cols(),
            data,
        })
    }
}

impl<T: Real> BatchSource<ImageBatch<T>> for AugmentedBatches<'_, T> {
    fn new_batch(&self) -> ImageBatch<T> {
        ImageBatch::empty(self.cols)
    }

    fn fill(&mut self, iteration: u64, batch: &mut ImageBatch<T>) {
        let (epoch, k) = (iteration / self.per_epoch, iteration % self.per_epoch);
        let skip = match self.position {
            Some((e, last)) if e == epoch && last < k => k - last - 1,
            _ => {
                self.order.set_epoch(epoch);
                k
            }
        };
        for _ in 0..skip {
            self.order.next_indices();
        }
        let idx = self
            .order
            .next_indices()
            .expect("k < batches per epoch")
            .to_vec();
        self.position = Some((epoch, k));
        batch.inputs.gather_rows(self.data.train.inputs(), &idx);
        batch.labels.clear();
        batch
            .labels
            .extend(idx.iter().map(|&i| self.data.train.labels()[i]));
        if let Some(c) = self.crop.as_mut() {
            c.reseed(derive_seed(self.seed, iteration));
            c.apply(&mut batch.inputs)
                .expect("crop sized to the samples");
        }
        self.data
            .norm
            .apply_batch(&mut batch.inputs)
            .expect("normalisation sized to the channels");
    }
}

/// Optimisation settings (SGD with momentum, weight decay and a step schedule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Iterations (mini-batches).
    pub iterations: u64,
    /// Samples per mini-batch.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Iterations at which the rate is multiplied by `gamma`.
    pub milestones: Vec<u64>,
    /// Decay factor of the step schedule.
    pub gamma: f64,
    /// Random crop (padding 4) and horizontal flip.
    pub augment: bool,
    /// Seed of the batch order and augmentation.
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            iterations: 300,
            batch_size: 64,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            milestones: vec![200],
            gamma: 0.1,
            augment: false,
            seed: 0,
        }
    }
}

impl TrainSettings {
    /// The trainer's configuration (nothing kept on disk).
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            iterations: self.iterations,
            optimizer: OptimizerConfig::sgd(self.lr, self.momentum, self.weight_decay),
            schedule: LrSchedule::Step {
                gamma: self.gamma,
                every: 0,
                milestones: self.milestones.clone(),
            },
            checkpoint_every: 0,
            out_dir: None,
        }
    }
}

/// Trains a fresh TinyResNet on `data` and returns it with the run's summary.
pub fn train_tiny_resnet<T: Real, H: TrainHook<T, TinyResNet<T>>>(
    data: &ImageData<T>,
    cfg: TinyResNetConfig,
    settings: &TrainSettings,
    hook: &mut H,
    on_iter: impl FnMut(&IterationRecord),
) -> Result<(TinyResNet<T>, TrainSummary), TrainError> {
    let mut model = TinyResNet::new(data.shape, cfg).map_err(|e| TrainError::solver(0, e))?;
    let summary = train_images(&mut model, data, settings, hook, on_iter)?;
    Ok((model, summary))
}

/// Trains `model` (a TinyResNet on either device) on `data`'s training images with
/// `settings`: the batches, augmentation and optimizer of every TinyResNet run.
pub(crate) fn train_images<T, M, H>(
    model: &mut M,
    data: &ImageData<T>,
    settings: &TrainSettings,
    hook: &mut H,
    on_iter: impl FnMut(&IterationRecord),
) -> Result<TrainSummary, TrainError>
where
    T: Real,
    M: crate::train::Trainable<T, Batch = ImageBatch<T>>,
    H: TrainHook<T, M>,
{
    let mut batches =
        AugmentedBatches::new(data, settings.batch_size, settings.augment, settings.seed)?;
    let mut trainer = Trainer::new(settings.train_config(), model)?;
    trainer.run(model, &mut batches, hook, on_iter)
}

/// Settings of the depth sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthSweepConfig {
    /// Depths `N` of the body.
    pub depths: Vec<usize>,
    /// Euler and/or Heun.
    pub schemes: Vec<Scheme>,
    /// Gradient methods (`backprop`, `reversible`).
    pub grads: Vec<GradientMethod>,
    /// The model (depth, scheme and gradient method are set per run).
    pub model: TinyResNetConfig,
    /// Optimisation.
    pub train: TrainSettings,
    /// Batch size of the test evaluation.
    pub eval_batch: usize,
}

/// One trained network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthRun {
    /// Depth `N`.
    pub depth: usize,
    /// Euler or Heun.
    pub scheme: Scheme,
    /// The gradient method asked for.
    pub grad: String,
    /// The one used (backprop below the minimum reversible depth).
    pub effective_grad: String,
    /// Test accuracy after training.
    pub test_accuracy: f64,
    /// Test loss after training.
    pub test_loss: f64,
    /// Mean training loss over the last 10% of the iterations.
    pub final_train_loss: f64,
    /// Wall time of training in seconds.
    pub train_seconds: f64,
    /// Largest number of layer tapes held at once (memory of the body's backward pass).
    pub tapes_peak: usize,
}

/// Outcome of [`depth_sweep`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthSweepResult {
    /// Settings.
    pub config: DepthSweepConfig,
    /// Data set name.
    pub dataset: String,
    /// Training and test set sizes.
    pub sizes: (usize, usize),
    /// One entry per depth, scheme and gradient method.
    pub runs: Vec<DepthRun>,
}

impl DepthSweepConfig {
    /// Fails with one line for settings no run can train with (checked before any work,
    /// e.g. before a device opens).
    pub fn check(&self) -> Result<(), ArgError> {
        super::reconstruction::check_depths(&self.depths, &self.schemes)?;
        if self.grads.is_empty() {
            return Err(ArgError::invalid(
                "gradient methods",
                "[]",
                "give at least one",
            ));
        }
        if self.train.iterations == 0 {
            return Err(ArgError::invalid("iterations", 0, "must be at least 1"));
        }
        Ok(())
    }
}

/// Where a sweep is: run index (0-based) of the total, and the iteration record.
#[derive(Debug, Clone, Copy)]
pub struct SweepProgress<'a> {
    /// Index of the current run.
    pub run: usize,
    /// Number of runs.
    pub runs: usize,
    /// The iteration just finished.
    pub record: &'a IterationRecord,
}

/// Trains one TinyResNet per depth, scheme and gradient method and evaluates it on the
/// test set, on the CPU.
pub fn depth_sweep<T: Real>(
    data: &ImageData<T>,
    cfg: &DepthSweepConfig,
    progress: impl FnMut(SweepProgress<'_>),
) -> Result<DepthSweepResult, TrainError> {
    depth_sweep_on(data, cfg, &Compute::Cpu, progress)
}

/// The model of one run of the sweep.
fn run_config(
    cfg: &DepthSweepConfig,
    depth: usize,
    scheme: Scheme,
    grad: &GradientMethod,
) -> TinyResNetConfig {
    TinyResNetConfig {
        depth,
        scheme,
        grad: grad.clone(),
        ..cfg.model.clone()
    }
}

/// [`depth_sweep`] on `compute`: on a GPU each network's body runs on the device
/// ([`crate::cuda::CudaTinyResNet`], f32; every scheme and gradient method of the CPU).
pub fn depth_sweep_on<T: Real>(
    data: &ImageData<T>,
    cfg: &DepthSweepConfig,
    compute: &Compute,
    mut progress: impl FnMut(SweepProgress<'_>),
) -> Result<DepthSweepResult, TrainError> {
    cfg.check()?;
    let total = cfg.depths.len() * cfg.schemes.len() * cfg.grads.len();
    let mut plan = Vec::with_capacity(total);
    for &depth in &cfg.depths {
        for &scheme in &cfg.schemes {
            for grad in &cfg.grads {
                plan.push((depth, scheme, grad, run_config(cfg, depth, scheme, grad)));
            }
        }
    }
    let mut runs = Vec::new();
    for (depth, scheme, grad, model_cfg) in plan {
        let run = runs.len();
        let mut losses = Vec::new();
        let mut tapes_peak = 0usize;
        let on_iter = |rec: &IterationRecord| {
            losses.push(rec.loss);
            if let Some(t) = rec.extra.get("tapes_peak") {
                tapes_peak = tapes_peak.max(*t as usize);
            }
            progress(SweepProgress {
                run,
                runs: total,
                record: rec,
            });
        };
        let t = train_and_test(
            data,
            model_cfg,
            &cfg.train,
            cfg.eval_batch,
            compute,
            on_iter,
        )?;
        let tail = (losses.len() / 10).max(1);
        let final_train_loss = losses[losses.len() - tail..].iter().sum::<f64>() / tail as f64;
        runs.push(DepthRun {
            depth,
            scheme,
            grad: grad.name().into(),
            effective_grad: t.effective_grad,
            test_accuracy: t.accuracy,
            test_loss: t.loss,
            final_train_loss,
            train_seconds: t.train_seconds,
            tapes_peak,
        });
    }
    Ok(DepthSweepResult {
        config: cfg.clone(),
        dataset: data.name.clone(),
        sizes: (data.train.len(), data.test.len()),
        runs,
    })
}

/// What [`train_and_test`] reports of one network.
struct Tested {
    loss: f64,
    accuracy: f64,
    effective_grad: String,
    train_seconds: f64,
}

/// Trains one network on `compute` and evaluates it on the test set.
fn train_and_test<T: Real>(
    data: &ImageData<T>,
    model_cfg: TinyResNetConfig,
    settings: &TrainSettings,
    eval_batch: usize,
    compute: &Compute,
    on_iter: impl FnMut(&IterationRecord),
) -> Result<Tested, TrainError> {
    let start = Instant::now();
    let mut hook = crate::train::NoHook;
    let mut model = super::trained::train_tiny_resnet_on(
        data, model_cfg, settings, compute, &mut hook, on_iter,
    )?;
    let train_seconds = start.elapsed().as_secs_f64();
    let (loss, accuracy) = model
        .evaluate(&data.test, eval_batch)
        .map_err(|e| TrainError::solver(settings.iterations, e))?;
    Ok(Tested {
        loss,
        accuracy,
        effective_grad: model.effective_grad(),
        train_seconds,
    })
}

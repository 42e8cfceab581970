//! The GPU branch of [`super::train_run_on`] (feature `cuda`): the captured iteration when
//! the device plan covers the run ([`crate::cuda::CudaClassifier`]: MLP, `simple_odenet` or
//! `odenet` field, explicit method on a fixed grid, any gradient method, Adam), otherwise the generic gradient solvers on the
//! device ([`crate::cuda::CudaSolverClassifier`]: every built-in field, solver and gradient
//! method, head and optimizer on the host, and Ott et al.'s step-size adaptation, whose
//! probes solve on the device too). Either way the trainer, its checkpoints and the metrics
//! log are the CPU's, and the trained parameters come back into the CPU model.

use std::path::Path;
use std::sync::Arc;

use super::config::RunConfig;
use super::data::RunData;
use super::train::run_trainer;
use super::{Observer, RunError};
use crate::analysis::solver_dependence::AdaptationHook;
use crate::cuda::{
    f32s, plan_classifier, BuiltField, ClassifierSetup, CudaBatch, CudaClassifier, CudaError,
    CudaSolverClassifier, Device, DeviceParams, SteppingLog,
};
use crate::field::{Parameterized, VectorField};
use crate::grad::GradientMethod;
use crate::models::{DatasetSource, FieldSpec, NeuralClassifier};
use crate::nn::Network;
use crate::real::Real;
use crate::solve::Method;
use crate::solve::SolveOptions;
use crate::train::{TrainConfig, Trainable};

fn on_gpu(e: CudaError) -> RunError {
    match e {
        CudaError::Unsupported(m) => RunError::input(format!("--device cuda: {m}")),
        other => RunError::runtime(format!("--device cuda: {other}")),
    }
}

/// Trains `model` on `dev`; returns the iterations completed (the parameters are written
/// back into `model`).
#[allow(clippy::too_many_arguments)]
pub(super) fn train_on_cuda<T: Real>(
    dev: &Arc<Device>,
    dir: &Path,
    cfg: &RunConfig,
    tcfg: TrainConfig,
    model: &mut NeuralClassifier<T>,
    source: &mut DatasetSource<'_, T>,
    (field, data, method): (&FieldSpec, &RunData<T>, &Method),
    observer: &dyn Observer,
    intro: &str,
    hook: &mut AdaptationHook,
) -> Result<u64, RunError> {
    let mut params = vec![T::zero(); model.num_params()];
    model.read_params(&mut params);
    let opts = model.solver().options().clone();
    let grad = cfg.solver.grad()?;
    let setup = ClassifierSetup {
        field,
        input: data.sample_shape().iter().product(),
        state: model.head.in_shape(),
        classes: data.classes(),
        rows: cfg.train.batch_size.min(data.train.len()),
        method,
        opts: &opts,
        grad: grad.clone(),
        optimizer: &tcfg.optimizer,
    };
    // The captured graph bakes in its grid: a run that adapts its step takes the generic path.
    let captured = if cfg.adapt.enabled {
        Err(CudaError::Unsupported(
            "step-size adaptation changes the grid between iterations".into(),
        ))
    } else {
        plan_classifier(&setup).map(|_| ())
    };
    let n = match captured {
        Ok(()) => {
            let mut log = SteppingLog::new(&opts);
            let intro = format!("{intro}; GPU: one captured CUDA graph per training iteration");
            let mut gpu = CudaClassifier::new(dev, &setup, &f32s(&params)).map_err(on_gpu)?;
            let n = run_trainer(dir, cfg, tcfg, &mut gpu, source, &mut log, observer, &intro)?;
            Trainable::<T>::read_params(&gpu, &mut params);
            n
        }
        Err(CudaError::Unsupported(why)) => {
            let intro = format!(
                "{intro}; GPU: the generic gradient solvers on the device, head and optimizer on the host ({why}: the captured iteration does not cover this run)"
            );
            let fp: Vec<T> = model.field.params().to_vec();
            let p32 = f32s(&fp);
            let head = model.head.clone();
            let solver = (method, grad, opts.clone());
            let generic = Generic {
                dev,
                dir,
                cfg,
                tcfg,
                source,
                observer,
                intro: &intro,
            };
            match BuiltField::new(dev, field, head.in_shape(), &p32).map_err(on_gpu)? {
                BuiltField::Mlp(f) => {
                    generic.train(f, fp, head, model.augment(), solver, hook, &mut params)?
                }
                BuiltField::Conv(f) => {
                    generic.train(f, fp, head, model.augment(), solver, hook, &mut params)?
                }
            }
        }
        Err(other) => return Err(on_gpu(other)),
    };
    model.write_params(&params);
    Ok(n)
}

/// The generic path's trainer, for either kind of device field.
struct Generic<'a, 's, T: Real> {
    dev: &'a Arc<Device>,
    dir: &'a Path,
    cfg: &'a RunConfig,
    tcfg: TrainConfig,
    source: &'a mut DatasetSource<'s, T>,
    observer: &'a dyn Observer,
    intro: &'a str,
}

impl<T: Real> Generic<'_, '_, T> {
    /// Trains the device field `f` (its parameters `fp`) with the host `head`; returns the
    /// iterations completed and writes the classifier's parameters into `params`.
    #[allow(clippy::too_many_arguments)]
    fn train<F>(
        self,
        f: F,
        fp: Vec<T>,
        head: Network<T>,
        augment: usize,
        solver: (&Method, GradientMethod, SolveOptions),
        hook: &mut AdaptationHook,
        params: &mut [T],
    ) -> Result<u64, RunError>
    where
        F: VectorField<CudaBatch, Grad = CudaBatch> + DeviceParams,
    {
        let mut gpu =
            CudaSolverClassifier::new(self.dev, f, fp, head, augment, solver).map_err(on_gpu)?;
        let n = run_trainer(
            self.dir,
            self.cfg,
            self.tcfg,
            &mut gpu,
            self.source,
            hook,
            self.observer,
            self.intro,
        )?;
        gpu.read_params(params);
        Ok(n)
    }
}

//! [`PendulumCuda`]: the `pendulum-mlp128-euler2` benchmark workload on the device — the
//! same model, data and seed as the CPU [`crate::models::WorkloadRunner`], the whole
//! iteration (forward solve, the MSE loss, the backward pass of any of the three gradient
//! methods, Adam) one captured CUDA graph ([`ClassifierStep`] of a
//! [`PlanLoss::MeanSquaredError`] plan); and [`ClassifierCuda`], the classifier workloads.

use std::sync::Arc;

use cudarc::driver::CudaSlice;

use super::device::{CudaError, Device};
use super::loss::launch_mse;
use super::plan::act_code;
use super::state::CudaBatch;
use super::train_graph::ClassifierStep;
use super::train_plan::AdamHyper;
use super::trainable::{plan_regression, ClassifierSetup, CudaClassifier};
use crate::field::Parameterized;
use crate::grad::GradientMethod;
use crate::models::{ClassBatch, PendulumProblem, Workload, WorkloadRunner};
use crate::nn::zoo::mlp_field;
use crate::solve::{Method, SolveOptions};
use crate::state::{Batch, State};
use crate::train::{FusedStep, OptimizerConfig, StepMetrics, TrainError, Trainable};

/// The pendulum workload prepared on a GPU.
pub struct PendulumCuda {
    step: ClassifierStep,
    x: Batch<f32>,
    y: Batch<f32>,
    evals: (usize, usize),
    lr: f64,
}

impl PendulumCuda {
    /// Builds the workload for `seed` on `dev` with gradient method `grad`; the initial
    /// parameters are the CPU workload's, Adam's settings `OptimizerConfig::adam`'s.
    pub fn new(dev: &Arc<Device>, grad: GradientMethod, seed: u64) -> Result<Self, CudaError> {
        let bad = |e: String| CudaError::Unsupported(e);
        let p = PendulumProblem::new(seed);
        let cpu = mlp_field::<f32>(&p.dims, &p.opts, seed).map_err(|e| bad(e.to_string()))?;
        let act = act_code(Some(p.opts.activation))
            .ok_or_else(|| bad(format!("the activation {:?}", p.opts.activation)))?;
        let method = Method::from_name("euler").map_err(|e| bad(e.to_string()))?;
        let opts = SolveOptions::steps(0.0, p.t1, p.steps);
        let plan = plan_regression((&p.dims, act), p.x.rows(), (&method, &opts), &grad)?;
        let evals = (plan.forward_evaluations(), plan.backward_evaluations());
        let hyper = AdamHyper::of(&OptimizerConfig::adam(LR)).expect("Adam's settings");
        let mut step = ClassifierStep::new(dev, plan, cpu.network().params(), hyper)?;
        step.capture()?;
        Ok(Self {
            step,
            x: p.x,
            y: p.y,
            evals,
            lr: LR,
        })
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.step.plan().num_params()
    }

    /// One training iteration — forward solve, MSE, backward pass, Adam — as one replay of
    /// the captured graph; the loss and the finiteness slots are read back at its end.
    pub fn iteration(&mut self) -> Result<StepMetrics, CudaError> {
        let out = self.step.iteration_regression(&self.x, &self.y, self.lr)?;
        if let Some(e) = out.non_finite_error() {
            return Err(CudaError::call("pendulum iteration", e));
        }
        Ok(StepMetrics {
            loss: out.loss,
            nfe_forward: self.evals.0,
            nfe_backward: self.evals.1,
            ..Default::default()
        })
    }
}

/// `dy ← ∂L/∂y(t₁)` of the mean squared error against the targets; returns the loss (one
/// synchronisation).
pub(crate) fn mse_on_device(
    dev: &Arc<Device>,
    y1: &CudaBatch,
    y: &CudaBatch,
    dy: &mut CudaBatch,
) -> Result<f64, CudaError> {
    use cudarc::driver::DevicePtr;
    let s = dev.stream().clone();
    let loss: CudaSlice<f64> = s
        .alloc_zeros::<f64>(1)
        .map_err(|e| CudaError::call("allocation", e))?;
    let n = y1.len();
    let (Some(pred), Some(target), Some(grad)) = (y1.slice(), y.slice(), dy.slice_mut()) else {
        return dev.check().map(|()| f64::NAN);
    };
    let ptrs = [
        pred.device_ptr(&s).0,
        target.device_ptr(&s).0,
        grad.device_ptr(&s).0,
        loss.device_ptr(&s).0,
    ];
    launch_mse(dev, n, ptrs)?;
    let v = s
        .clone_dtoh(&loss)
        .map_err(|e| CudaError::call("device-to-host copy", e))?;
    Ok(v[0])
}

/// A classifier workload (`sphere2-euler256`, `sphere2-rk4-64`, `mnist-odenet64-euler8`,
/// `cifar-odenet128-euler8`) on the device: the CPU runner's model, batch and seed, the whole
/// iteration — forward solve, head, cross-entropy, the backward pass of any of the three
/// gradient methods and Adam — one captured CUDA graph ([`CudaClassifier`], as `odeflow
/// train --device cuda` runs it). **Not yet run on a GPU.**
pub struct ClassifierCuda {
    model: Box<CudaClassifier>,
    batch: ClassBatch<f32>,
}

/// The workloads' learning rate (Adam).
const LR: f64 = 1e-3;

impl ClassifierCuda {
    /// Builds `workload` for `seed` on `dev` with gradient method `grad`.
    pub fn new(
        dev: &Arc<Device>,
        workload: Workload,
        grad: GradientMethod,
        seed: u64,
    ) -> Result<Self, CudaError> {
        let bad = |e: String| CudaError::Unsupported(e);
        let cpu =
            WorkloadRunner::new(workload, grad.clone(), seed).map_err(|e| bad(e.to_string()))?;
        let (Some((model, batch)), Some(spec)) = (cpu.classifier(), workload.field()) else {
            return Err(bad(format!(
                "{} is not a classifier workload",
                workload.name()
            )));
        };
        let (name, steps) = workload.solver();
        let method = Method::from_name(name).map_err(|e| bad(e.to_string()))?;
        let opts = SolveOptions::steps(0.0, 1.0, steps);
        let mut params = vec![0.0; cpu.num_params()];
        model.read_params(&mut params);
        let optimizer = OptimizerConfig::adam(LR);
        let setup = ClassifierSetup {
            field: &spec,
            input: batch.x.cols(),
            state: model.head.in_shape(),
            classes: model.head.out_shape().len(),
            rows: batch.x.rows(),
            method: &method,
            opts: &opts,
            grad,
            optimizer: &optimizer,
        };
        Ok(Self {
            model: Box::new(CudaClassifier::new(dev, &setup, &params)?),
            batch: batch.clone(),
        })
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        Trainable::<f32>::num_params(self.model.as_ref())
    }

    /// One training iteration: forward solve, head, cross-entropy, backward pass, Adam.
    pub fn iteration(&mut self, it: u64) -> Result<StepMetrics, TrainError> {
        FusedStep::<f32, _>::step(self.model.as_mut(), &self.batch, LR, it)
    }
}

//! [`PendulumCuda`]: the `pendulum-mlp128-euler2` benchmark workload on the device — the
//! same model, data and seed as the CPU [`crate::models::WorkloadRunner`], with the forward
//! solve, the MSE loss, the backward pass (any of the three gradient methods, through the
//! generic [`GradSolver`]) and Adam all on the GPU.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::device::{CudaError, Device};
use super::mlp::CudaMlp;
use super::state::{config, CudaBatch};
use super::trainable::{ClassifierSetup, CudaClassifier};
use crate::field::{Parameterized, VectorField};
use crate::grad::{GradSolver, GradientMethod};
use crate::models::{ClassBatch, PendulumProblem, Workload, WorkloadRunner};
use crate::nn::zoo::mlp_field;
use crate::solve::{Method, SolveOptions};
use crate::state::State;
use crate::train::{FusedStep, OptimizerConfig, StepMetrics, TrainError, Trainable};

/// Adam's defaults, as `OptimizerConfig::adam`.
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// The pendulum workload prepared on a GPU.
pub struct PendulumCuda {
    dev: Arc<Device>,
    field: CudaMlp,
    solver: GradSolver<CudaBatch, CudaMlp>,
    x: CudaBatch,
    y: CudaBatch,
    dy: CudaBatch,
    grad: CudaBatch,
    m: CudaSlice<f32>,
    v: CudaSlice<f32>,
    /// The MSE of the last iteration (f64), read back at its end.
    loss: CudaSlice<f64>,
    t: u64,
    lr: f64,
}

impl PendulumCuda {
    /// Builds the workload for `seed` on `dev` with gradient method `grad`; the initial
    /// parameters are the CPU workload's.
    pub fn new(dev: &Arc<Device>, grad: GradientMethod, seed: u64) -> Result<Self, CudaError> {
        let p = PendulumProblem::new(seed);
        let cpu = mlp_field::<f32>(&p.dims, &p.opts, seed)
            .map_err(|e| CudaError::Unsupported(e.to_string()))?;
        let field = CudaMlp::new(dev, &p.dims, p.opts.activation, cpu.network().params())?;
        let method =
            Method::from_name("euler").map_err(|e| CudaError::Unsupported(e.to_string()))?;
        let solver = GradSolver::new(method, grad, SolveOptions::steps(0.0, p.t1, p.steps))
            .map_err(|e| CudaError::Unsupported(e.to_string()))?;
        let x = CudaBatch::from_host(dev, &p.x)?;
        let y = CudaBatch::from_host(dev, &p.y)?;
        let dy = CudaBatch::zeros(dev, p.x.rows(), p.x.cols())?;
        let n = field.num_params();
        let alloc = |what| {
            dev.stream()
                .alloc_zeros::<f32>(n)
                .map_err(|e| CudaError::call(what, e))
        };
        Ok(Self {
            dev: dev.clone(),
            grad: field.zero_grad(),
            m: alloc("allocation")?,
            v: alloc("allocation")?,
            loss: dev
                .stream()
                .alloc_zeros::<f64>(1)
                .map_err(|e| CudaError::call("allocation", e))?,
            field,
            solver,
            x,
            y,
            dy,
            t: 0,
            lr: 1e-3,
        })
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.field.num_params()
    }

    /// The field (its parameters are the model's).
    pub fn field(&self) -> &CudaMlp {
        &self.field
    }

    /// One training iteration: forward solve, MSE, backward, Adam. The loss is read back
    /// once, at the end (the one host synchronisation of the iteration besides the solver's
    /// finiteness check).
    pub fn iteration(&mut self) -> Result<StepMetrics, CudaError> {
        match self.solver.forward(&mut self.field, &self.x) {
            Ok(y1) => launch_mse(&self.dev, y1, &self.y, &mut self.dy, &mut self.loss),
            // A device error explains a solver failure (NaN norms): report it first.
            Err(e) => Err(self
                .dev
                .check()
                .err()
                .unwrap_or_else(|| CudaError::call("forward solve", e))),
        }?;
        self.grad.set_zero();
        let back = self
            .solver
            .backward(&mut self.field, &self.dy, &mut self.grad)
            .map(|_| ());
        self.dev.check()?;
        back.map_err(|e| CudaError::call("backward solve", e))?;
        self.adam()?;
        let loss = read_loss(&self.dev, &self.loss)?;
        self.dev.check()?;
        let s = self.solver.stats();
        Ok(StepMetrics {
            loss,
            nfe_forward: s.forward.nfe,
            nfe_backward: s.backward_vjp,
            ..Default::default()
        })
    }

    /// One Adam step on the device (PyTorch's conventions, as `train::Optimizer`).
    fn adam(&mut self) -> Result<(), CudaError> {
        self.t += 1;
        let t = self.t.min(i32::MAX as u64) as i32;
        let step = (self.lr / (1.0 - BETA1.powi(t))) as f32;
        let c2s = (1.0 - BETA2.powi(t)).sqrt() as f32;
        let (b1, b2, eps, wd) = (BETA1 as f32, BETA2 as f32, EPS as f32, 0.0f32);
        let n = self.field.num_params();
        let stream = self.dev.stream().clone();
        let Some(g) = self.grad.slice() else {
            return self.dev.check();
        };
        let n64 = n as i64;
        let mut b = stream.launch_builder(&self.dev.nn.adam);
        b.arg(&n64)
            .arg(self.field.params_mut())
            .arg(g)
            .arg(&mut self.m)
            .arg(&mut self.v)
            .arg(&b1)
            .arg(&b2)
            .arg(&step)
            .arg(&c2s)
            .arg(&eps)
            .arg(&wd);
        // SAFETY: adam_f32(long long n, float* p, const float* grad, float* m, float* v,
        // float b1, float b2, float step, float c2s, float eps, float wd), n components each.
        unsafe { b.launch(config(n)) }.map_err(|e| CudaError::call("adam_f32", e))?;
        Ok(())
    }
}

/// `dy ← ∂L/∂y(t₁)` of the mean squared error against the targets; returns the loss.
pub(crate) fn mse_on_device(
    dev: &Arc<Device>,
    y1: &CudaBatch,
    y: &CudaBatch,
    dy: &mut CudaBatch,
) -> Result<f64, CudaError> {
    let mut loss = dev
        .stream()
        .alloc_zeros::<f64>(1)
        .map_err(|e| CudaError::call("allocation", e))?;
    launch_mse(dev, y1, y, dy, &mut loss)?;
    read_loss(dev, &loss)
}

/// `dy ← ∂L/∂y(t₁)` and `loss ← L` (zeroed first, on the stream; nothing read back).
fn launch_mse(
    dev: &Arc<Device>,
    y1: &CudaBatch,
    y: &CudaBatch,
    dy: &mut CudaBatch,
    loss: &mut CudaSlice<f64>,
) -> Result<(), CudaError> {
    let stream = dev.stream().clone();
    stream
        .memset_zeros(loss)
        .map_err(|e| CudaError::call("memset", e))?;
    let n = y1.len();
    let (Some(pred), Some(target), Some(grad)) = (y1.slice(), y.slice(), dy.slice_mut()) else {
        return dev.check();
    };
    let n64 = n as i64;
    let mut b = stream.launch_builder(&dev.nn.mse);
    b.arg(&n64).arg(pred).arg(target).arg(grad).arg(loss);
    // SAFETY: mse_f32(long long n, const float* pred, const float* target, float* grad,
    // double* loss) on buffers of n components.
    unsafe { b.launch(config(n)) }.map_err(|e| CudaError::call("mse_f32", e))?;
    Ok(())
}

fn read_loss(dev: &Device, loss: &CudaSlice<f64>) -> Result<f64, CudaError> {
    let v = dev
        .stream()
        .clone_dtoh(loss)
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

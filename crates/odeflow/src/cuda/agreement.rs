//! GPU-vs-CPU agreement on the pendulum MLP: the final state, the MSE loss and the parameter
//! gradient of one forward/backward pass computed three ways from the same parameters and
//! data — on the device in f32, on the CPU in f32, and on the CPU in f64 (the reference) —
//! for any method and gradient method of the generic code. The device passes when its error
//! against f64 is within a small multiple of the CPU f32 error (both are f32 round-off; the
//! summation orders differ).

use std::sync::Arc;

use serde::Serialize;

use super::device::{CudaError, Device};
use super::mlp::CudaMlp;
use super::state::CudaBatch;
use super::workload::mse_on_device;
use crate::field::{Parameterized, VectorField};
use crate::grad::{GradSolver, GradientMethod};
use crate::models::PendulumProblem;
use crate::nn::loss::mse;
use crate::nn::zoo::mlp_field;
use crate::nn::NeuralField;
use crate::real::Real;
use crate::solve::{Method, SolveOptions};
use crate::state::{Batch, State};

/// The outcome of [`pendulum_agreement`].
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// Solver method.
    pub method: String,
    /// Gradient method.
    pub grad: String,
    /// Loss on the device (f32).
    pub loss_gpu: f64,
    /// Loss on the CPU in f32.
    pub loss_cpu_f32: f64,
    /// Loss on the CPU in f64 (reference).
    pub loss_cpu_f64: f64,
    /// `max |y₁ − y₁⁽⁶⁴⁾| / max |y₁⁽⁶⁴⁾|` of the device's final state.
    pub y1_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub y1_rel_cpu_f32: f64,
    /// `‖g − g⁽⁶⁴⁾‖ / ‖g⁽⁶⁴⁾‖` of the device's parameter gradient.
    pub grad_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub grad_rel_cpu_f32: f64,
    /// Field evaluations of the forward solve on the device and on the CPU (f32).
    pub nfe_gpu: usize,
    /// Field evaluations of the CPU forward solve (f32).
    pub nfe_cpu: usize,
    /// The device is within `max(10 × CPU f32 error, 1e-5)` on the state and gradient.
    pub passed: bool,
}

/// One pass on the CPU: `(loss, y₁, ∂L/∂θ, nfe)`, all as f64.
fn cpu_pass<T: Real>(
    field: &mut NeuralField<T>,
    p: &PendulumProblem,
    method: &Method,
    grad: &GradientMethod,
    opts: &SolveOptions,
) -> Result<(f64, Vec<f64>, Vec<f64>, usize), CudaError> {
    let fail = |e: String| CudaError::call("CPU reference", e);
    let (x, y) = (p.x.cast::<T>(), p.y.cast::<T>());
    let mut solver =
        GradSolver::<Batch<T>, NeuralField<T>>::new(method.clone(), grad.clone(), opts.clone())
            .map_err(|e| fail(e.to_string()))?;
    let y1 = solver
        .forward(field, &x)
        .map_err(|e| fail(e.to_string()))?
        .clone();
    let mut dy = Batch::zeros(0, 0);
    let loss = mse(&y1, &y, &mut dy).map_err(|e| fail(e.to_string()))?;
    let mut g = field.zero_grad();
    solver
        .backward(field, &dy, &mut g)
        .map_err(|e| fail(e.to_string()))?;
    Ok((
        loss,
        y1.to_f64_vec(),
        g.to_f64_vec(),
        solver.stats().forward.nfe,
    ))
}

/// The agreement checks' rule: the device's error `gpu` against the CPU f64 reference is
/// within ten times the CPU f32 error `cpu`, or within 1e-5.
pub(crate) fn within(gpu: f64, cpu: f64) -> bool {
    gpu <= (10.0 * cpu).max(1e-5)
}

pub(crate) fn max_rel(a: &[f64], reference: &[f64]) -> f64 {
    let scale = reference
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    a.iter()
        .zip(reference)
        .fold(0.0f64, |m, (x, r)| m.max((x - r).abs()))
        / scale
}

pub(crate) fn norm_rel(a: &[f64], reference: &[f64]) -> f64 {
    let d: f64 = a
        .iter()
        .zip(reference)
        .map(|(x, r)| (x - r) * (x - r))
        .sum();
    let n: f64 = reference.iter().map(|r| r * r).sum();
    (d / n.max(f64::MIN_POSITIVE)).sqrt()
}

/// Compares the device with the CPU on the pendulum workload's model and data (`seed`),
/// solving with `method` (`SolveOptions` as given: fixed steps or adaptive) and
/// differentiating with `grad`.
pub fn pendulum_agreement(
    dev: &Arc<Device>,
    method: &str,
    grad: GradientMethod,
    opts: &SolveOptions,
    seed: u64,
) -> Result<Agreement, CudaError> {
    let bad = |e: String| CudaError::Unsupported(e);
    let p = PendulumProblem::new(seed);
    let m = Method::from_name(method).map_err(|e| bad(e.to_string()))?;
    let mut f32_field = mlp_field::<f32>(&p.dims, &p.opts, seed).map_err(|e| bad(e.to_string()))?;
    let params: Vec<f32> = f32_field.network().params().to_vec();
    let mut f64_field = mlp_field::<f64>(&p.dims, &p.opts, seed).map_err(|e| bad(e.to_string()))?;
    for (d, s) in f64_field.network_mut().params_mut().iter_mut().zip(&params) {
        *d = f64::from(*s);
    }
    let (l32, y32, g32, nfe_cpu) = cpu_pass(&mut f32_field, &p, &m, &grad, opts)?;
    let (l64, y64, g64, _) = cpu_pass(&mut f64_field, &p, &m, &grad, opts)?;

    let mut field = CudaMlp::new(dev, &p.dims, p.opts.activation, &params)?;
    let mut solver = GradSolver::<CudaBatch, CudaMlp>::new(m, grad.clone(), opts.clone())
        .map_err(|e| bad(e.to_string()))?;
    let x = CudaBatch::from_host(dev, &p.x)?;
    let y = CudaBatch::from_host(dev, &p.y)?;
    let mut dy = CudaBatch::zeros(dev, p.x.rows(), p.x.cols())?;
    let (loss, y1) = match solver.forward(&mut field, &x) {
        Ok(y1) => (mse_on_device(dev, y1, &y, &mut dy)?, y1.to_host()?),
        Err(e) => {
            dev.check()?;
            return Err(CudaError::call("forward solve on the device", e));
        }
    };
    let mut g = field.zero_grad();
    let back = solver.backward(&mut field, &dy, &mut g).map(|_| ());
    dev.check()?;
    back.map_err(|e| CudaError::call("backward solve on the device", e))?;
    let g_gpu = g.to_host()?.cast::<f64>().into_vec();
    let y_gpu = y1.cast::<f64>().into_vec();

    let (y1_rel_gpu, y1_rel_cpu_f32) = (max_rel(&y_gpu, &y64), max_rel(&y32, &y64));
    let (grad_rel_gpu, grad_rel_cpu_f32) = (norm_rel(&g_gpu, &g64), norm_rel(&g32, &g64));
    Ok(Agreement {
        method: method.to_string(),
        grad: grad.name().to_string(),
        loss_gpu: loss,
        loss_cpu_f32: l32,
        loss_cpu_f64: l64,
        y1_rel_gpu,
        y1_rel_cpu_f32,
        grad_rel_gpu,
        grad_rel_cpu_f32,
        nfe_gpu: solver.stats().forward.nfe,
        nfe_cpu,
        passed: within(y1_rel_gpu, y1_rel_cpu_f32)
            && within(grad_rel_gpu, grad_rel_cpu_f32)
            && (loss - l64).abs() <= (10.0 * (l32 - l64).abs()).max(1e-5 * l64.abs()),
    })
}

//! GPU-vs-CPU agreement of one captured training iteration of an MSE regression (the plan
//! of the `pendulum-mlp128-euler2` workload, [`PlanLoss::MeanSquaredError`], replayed as a
//! CUDA graph by [`ClassifierStep::iteration_regression`]): loss, parameter gradient and the
//! parameters after one Adam step, on the device in f32 and on the CPU ([`FlowRegressor`]
//! with the generic gradient solver, the same gradient method) in f32 and in f64 (the
//! reference), from the same parameters and batch. The device passes when each of its
//! errors is within `max(10 × CPU f32 error, 1e-5)` ([`super::agreement::within`]).
//!
//! **Not yet run on a GPU** (`odeflow bench pendulum-mlp128-euler2 --device cuda
//! --check-cpu` reports it as "regression_agreement"); its CPU half is tested in
//! `tests/cuda_plan/agreement.rs`.

use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::agreement::{norm_rel, within};
use super::device::{CudaError, Device};
use super::plan::act_code;
use super::train_graph::ClassifierStep;
use super::train_plan::AdamHyper;
use super::trainable::plan_regression;
use crate::field::Parameterized;
use crate::grad::{FieldGradSolver, GradientMethod};
use crate::models::regressor::FlowRegressor;
use crate::nn::zoo::{mlp_field, MlpOptions};
use crate::nn::{Activation, Init};
use crate::real::Real;
use crate::solve::{Method, SolveOptions};
use crate::state::Batch;
use crate::train::{Optimizer, OptimizerConfig, Trainable};

/// The learning rate of the compared Adam step.
const LR: f64 = 1e-2;
/// The compared regression: an MLP `2 → 32 → 32 → 2` (tanh), 256 samples, Euler in two
/// steps on `[0, 0.04]` (the pendulum workload's solver).
const DIMS: [usize; 4] = [2, 32, 32, 2];
const ROWS: usize = 256;

/// The outcome of [`regression_agreement`].
#[derive(Debug, Clone, Serialize)]
pub struct RegressionAgreement {
    /// The gradient method, on both devices.
    pub grad: String,
    /// The mean squared error on the device.
    pub loss_gpu: f64,
    /// The same on the CPU in f32.
    pub loss_cpu_f32: f64,
    /// The same on the CPU in f64 (reference).
    pub loss_cpu_f64: f64,
    /// `‖g − g⁽⁶⁴⁾‖ / ‖g⁽⁶⁴⁾‖` of the device's parameter gradient.
    pub grad_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub grad_rel_cpu_f32: f64,
    /// `‖θ₁ − θ₁⁽⁶⁴⁾‖ / ‖θ₁⁽⁶⁴⁾‖` after one Adam step on the device.
    pub params_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub params_rel_cpu_f32: f64,
    /// Every device error within `max(10 × CPU f32 error, 1e-5)`.
    pub passed: bool,
}

/// The compared problem: the initial parameters (the f32 CPU field's), the inputs and the
/// targets.
pub type RegressionInputs = (Vec<f32>, Batch<f32>, Batch<f32>);

/// The compared problem for `seed` ([`RegressionInputs`]).
pub fn regression_inputs(seed: u64) -> Result<RegressionInputs, CudaError> {
    let bad = |e: String| CudaError::Unsupported(e);
    let field = mlp_field::<f32>(&DIMS, &mlp_options(), seed).map_err(|e| bad(e.to_string()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.5..1.5)).collect() };
    let d = DIMS[0];
    let x = Batch::from_vec(ROWS, d, draw(ROWS * d)).map_err(|e| bad(e.to_string()))?;
    let y = Batch::from_vec(ROWS, d, draw(ROWS * d)).map_err(|e| bad(e.to_string()))?;
    Ok((field.network().params().to_vec(), x, y))
}

fn mlp_options() -> MlpOptions {
    MlpOptions {
        activation: Activation::Tanh,
        init: Init::PyTorchDefault,
        time_input: false,
    }
}

fn solver() -> Result<(Method, SolveOptions), CudaError> {
    let m = Method::from_name("euler").map_err(|e| CudaError::Unsupported(e.to_string()))?;
    Ok((m, SolveOptions::steps(0.0, 0.04, 2)))
}

/// The CPU half in `T` from the f32 parameters `p0`: `(loss, ∂L/∂θ, θ₁)`.
pub fn regression_cpu_reference<T: Real>(
    grad: &GradientMethod,
    p0: &[f32],
    (x, y): (&Batch<f32>, &Batch<f32>),
) -> Result<(f64, Vec<f64>, Vec<f64>), CudaError> {
    let fail = |e: String| CudaError::call("CPU reference", e);
    let (m, opts) = solver()?;
    let field = mlp_field::<T>(&DIMS, &mlp_options(), 0).map_err(|e| fail(e.to_string()))?;
    let solve = FieldGradSolver::new(&m, grad.clone(), opts).map_err(|e| fail(e.to_string()))?;
    let mut model = FlowRegressor::new(field, solve);
    let mut params: Vec<T> = p0.iter().map(|&v| T::of(f64::from(v))).collect();
    model.write_params(&params);
    let mut g = vec![T::zero(); params.len()];
    let batch = (x.cast::<T>(), y.cast::<T>());
    let metrics = model
        .loss_and_grad(&batch, &mut g, 0)
        .map_err(|e| fail(e.to_string()))?;
    let mut opt = Optimizer::<T>::new(OptimizerConfig::adam(LR), params.len())
        .map_err(|e| fail(e.to_string()))?;
    opt.step(&mut params, &g, LR);
    let f = |v: &[T]| v.iter().map(|a| a.f64()).collect::<Vec<f64>>();
    Ok((metrics.loss, f(&g), f(&params)))
}

/// Compares one captured regression iteration with gradient method `grad` (parameters and
/// data from `seed`) on `dev` with the CPU.
pub fn regression_agreement(
    dev: &Arc<Device>,
    grad: &GradientMethod,
    seed: u64,
) -> Result<RegressionAgreement, CudaError> {
    let bad = |e: String| CudaError::Unsupported(e);
    let (p0, x, y) = regression_inputs(seed)?;
    let (m, opts) = solver()?;
    let act = act_code(Some(Activation::Tanh)).ok_or_else(|| bad("tanh".into()))?;
    let plan = plan_regression((&DIMS, act), ROWS, (&m, &opts), grad)?;
    let hyper = AdamHyper::of(&OptimizerConfig::adam(LR)).expect("Adam's settings");
    let (l32, g32, p32) = regression_cpu_reference::<f32>(grad, &p0, (&x, &y))?;
    let (l64, g64, p64) = regression_cpu_reference::<f64>(grad, &p0, (&x, &y))?;
    let mut step = ClassifierStep::new(dev, plan, &p0, hyper)?;
    step.capture()?;
    let out = step.iteration_regression(&x, &y, LR)?;
    if let Some(e) = out.non_finite_error() {
        return Err(CudaError::call("regression iteration on the device", e));
    }
    let f = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
    let (g, p) = (f(step.grad_to_host()?), f(step.params_to_host()?));
    let r = RegressionAgreement {
        grad: grad.name().into(),
        loss_gpu: out.loss,
        loss_cpu_f32: l32,
        loss_cpu_f64: l64,
        grad_rel_gpu: norm_rel(&g, &g64),
        grad_rel_cpu_f32: norm_rel(&g32, &g64),
        params_rel_gpu: norm_rel(&p, &p64),
        params_rel_cpu_f32: norm_rel(&p32, &p64),
        passed: false,
    };
    let rel = |l: f64| (l - l64).abs() / l64.abs().max(1e-30);
    let passed = within(r.grad_rel_gpu, r.grad_rel_cpu_f32)
        && within(r.params_rel_gpu, r.params_rel_cpu_f32)
        && within(rel(r.loss_gpu), rel(l32));
    Ok(RegressionAgreement { passed, ..r })
}

//! GPU-vs-CPU agreement of one training iteration of a classifier through
//! [`ClassifierStep`] (eager or as a captured CUDA graph) — the MLP field or one of Ott et
//! al.'s convolutional fields (`simple_odenet`, `odenet`, with ANODE channels), planned by
//! [`plan_classifier`] exactly as `odeflow train --device cuda` plans a run: logits, mean
//! cross-entropy, accuracy, parameter gradient and the parameters after one Adam step,
//! computed on the device in f32, on the CPU in f32 and on the CPU in f64 (the reference,
//! the CPU [`crate::models::ClassifierSpec`] model) from the same parameters and batch. The
//! device passes when each of its errors against f64 is within `max(10 × CPU f32 error,
//! 1e-5)`, as [`super::pendulum_agreement`].
//!
//! **Not yet run on a GPU** (`bench/gpu_check.sh` runs it through
//! `odeflow bench pendulum-mlp128-euler2 --device cuda --check-cpu --grad backprop` for the
//! MLP and `odeflow bench mnist-odenet64-euler8 --device cuda --check-cpu` for the
//! convolutional fields).

use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::agreement::{max_rel, norm_rel, within};
use super::device::{CudaError, Device};
use super::train_graph::ClassifierStep;
use super::trainable::{plan_classifier, ClassifierSetup};
use crate::grad::GradientMethod;
use crate::models::{ClassBatch, ClassifierSpec, FieldSpec, NeuralClassifier};
use crate::real::Real;
use crate::solve::{Method, SolveOptions};
use crate::state::Batch;
use crate::train::{Optimizer, OptimizerConfig, Trainable};

/// The learning rate of the compared Adam step.
const LR: f64 = 1e-2;

/// One classifier and solver to compare ([`classifier_agreement`]).
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierCase {
    /// The ODE block's field.
    pub field: FieldSpec,
    /// The shape of one sample (`[features]`, `[1, d]` or `[c, h, w]`).
    pub sample: Vec<usize>,
    /// ANODE zero channels.
    pub augment: usize,
    /// Samples in the batch.
    pub rows: usize,
    /// Classes.
    pub classes: usize,
    /// Explicit solver method (fixed steps on `[0, 1]`).
    pub method: String,
    /// Number of steps.
    pub steps: usize,
    /// Whether the device runs the iteration as a captured CUDA graph.
    pub captured: bool,
    /// The gradient method, on both devices.
    pub grad: GradientMethod,
}

impl ClassifierCase {
    /// The MLP case: a `[10 → 64 → 10]` tanh field on 8 features with two ANODE zeros, a
    /// Linear head to four classes, a batch of 64.
    pub fn mlp(method: &str, steps: usize, captured: bool) -> Self {
        Self {
            field: FieldSpec::Mlp {
                hidden: vec![64],
                activation: "tanh".into(),
            },
            sample: vec![8],
            augment: 2,
            rows: 64,
            classes: 4,
            method: method.into(),
            steps,
            captured,
            grad: GradientMethod::Backprop,
        }
    }

    /// The same case differentiated by `grad`.
    pub fn with_grad(self, grad: GradientMethod) -> Self {
        Self { grad, ..self }
    }

    /// A convolutional field on `sample`-shaped inputs with `augment` ANODE channels, a
    /// batch of four, ten classes.
    pub fn conv(
        field: FieldSpec,
        sample: Vec<usize>,
        augment: usize,
        method: &str,
        steps: usize,
        captured: bool,
    ) -> Self {
        Self {
            field,
            sample,
            augment,
            rows: 4,
            classes: 10,
            method: method.into(),
            steps,
            captured,
            grad: GradientMethod::Backprop,
        }
    }

    /// The case's solver: `method` in `steps` fixed steps on `[0, 1]`.
    pub fn solver(&self) -> Result<(Method, SolveOptions), CudaError> {
        let m =
            Method::from_name(&self.method).map_err(|e| CudaError::Unsupported(e.to_string()))?;
        Ok((m, SolveOptions::steps(0.0, 1.0, self.steps)))
    }

    /// The case's CPU classifier in `T` (its gradient, [`Self::solver`]), initialised from
    /// `seed`.
    pub fn cpu_model<T: Real>(&self, seed: u64) -> Result<NeuralClassifier<T>, CudaError> {
        let (method, opts) = self.solver()?;
        self.spec()
            .build::<T>(
                &self.sample,
                self.classes,
                method,
                self.grad.clone(),
                opts,
                seed,
            )
            .map_err(|e| CudaError::Unsupported(format!("the CPU model: {e}")))
    }

    /// The CPU model's specification.
    pub fn spec(&self) -> ClassifierSpec {
        ClassifierSpec {
            field: self.field.clone(),
            augment: self.augment,
            threads: 1,
        }
    }

    /// Features per sample.
    pub fn input(&self) -> usize {
        self.sample.iter().product()
    }
}

/// The outcome of [`classifier_agreement`].
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierAgreement {
    /// What was compared.
    pub case: ClassifierCase,
    /// Mean cross-entropy on the device (f32 logits, f64 sum).
    pub loss_gpu: f64,
    /// The same on the CPU in f32.
    pub loss_cpu_f32: f64,
    /// The same on the CPU in f64 (reference).
    pub loss_cpu_f64: f64,
    /// Accuracy on the device.
    pub accuracy_gpu: f64,
    /// Accuracy on the CPU (f64).
    pub accuracy_cpu: f64,
    /// `max |z − z⁽⁶⁴⁾| / max |z⁽⁶⁴⁾|` of the device's logits.
    pub logits_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub logits_rel_cpu_f32: f64,
    /// `‖g − g⁽⁶⁴⁾‖ / ‖g⁽⁶⁴⁾‖` of the device's parameter gradient.
    pub grad_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub grad_rel_cpu_f32: f64,
    /// `‖θ₁ − θ₁⁽⁶⁴⁾‖ / ‖θ₁⁽⁶⁴⁾‖` of the parameters after one Adam step on the device.
    pub params_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub params_rel_cpu_f32: f64,
    /// Every device error within `max(10 × CPU f32 error, 1e-5)`.
    pub passed: bool,
}

/// One CPU pass in `T` from the f32 parameters `p0`: `(loss, accuracy, logits, ∂L/∂θ, θ₁)`.
pub type CpuPass = (f64, f64, Vec<f64>, Vec<f64>, Vec<f64>);

/// The CPU half of [`classifier_agreement`]: one training iteration of `case`'s CPU model in
/// `T` from the f32 parameters `p0` on `batch` (Adam with the agreement's learning rate).
pub fn classifier_cpu_reference<T: Real>(
    case: &ClassifierCase,
    p0: &[f32],
    batch: &ClassBatch<f32>,
    seed: u64,
) -> Result<CpuPass, CudaError> {
    let fail = |e: String| CudaError::call("CPU reference", e);
    let (method, opts) = case.solver()?;
    let mut model = case.cpu_model::<T>(seed)?;
    let mut params: Vec<T> = p0.iter().map(|&v| T::of(f64::from(v))).collect();
    model.write_params(&params);
    let xt = batch.x.cast::<T>();
    let (logits, _) = model.logits_with(&xt, &method, &opts).map_err(fail)?;
    let mut grad = vec![T::zero(); params.len()];
    let batch = ClassBatch {
        x: xt,
        labels: batch.labels.clone(),
    };
    let m = model
        .loss_and_grad(&batch, &mut grad, 0)
        .map_err(|e| fail(e.to_string()))?;
    let mut opt = Optimizer::<T>::new(OptimizerConfig::adam(LR), params.len())
        .map_err(|e| fail(e.to_string()))?;
    opt.step(&mut params, &grad, LR);
    let f = |v: &[T]| v.iter().map(|x| x.f64()).collect::<Vec<f64>>();
    Ok((
        m.loss,
        m.accuracy.unwrap_or(f64::NAN),
        f(logits.as_slice()),
        f(&grad),
        f(&params),
    ))
}

/// Compares one training iteration of `case`'s classifier (initialised from `seed`, a
/// random batch and labels from `seed`) on `dev` with the CPU.
pub fn classifier_agreement(
    dev: &Arc<Device>,
    case: &ClassifierCase,
    seed: u64,
) -> Result<ClassifierAgreement, CudaError> {
    let bad = |e: String| CudaError::Unsupported(e);
    let (m, opts) = case.solver()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (rows, input) = (case.rows, case.input());
    let xs: Vec<f32> = (0..rows * input)
        .map(|_| rng.random_range(-1.5..1.5))
        .collect();
    let batch = ClassBatch {
        x: Batch::from_vec(rows, input, xs).map_err(|e| bad(e.to_string()))?,
        labels: (0..rows)
            .map(|_| rng.random_range(0..case.classes))
            .collect(),
    };

    // The f32 CPU model's initial parameters are everyone's.
    let cpu = case.cpu_model::<f32>(seed)?;
    let mut p0 = vec![0.0f32; cpu.num_params()];
    cpu.read_params(&mut p0);
    let adam = OptimizerConfig::adam(LR);
    let setup = ClassifierSetup {
        field: &case.field,
        input,
        state: cpu.head.in_shape(),
        classes: case.classes,
        rows,
        method: &m,
        opts: &opts,
        grad: case.grad.clone(),
        optimizer: &adam,
    };
    let (plan, hyper) = plan_classifier(&setup)?;
    let (l32, _, z32, g32, p32) = classifier_cpu_reference::<f32>(case, &p0, &batch, seed)?;
    let (l64, a64, z64, g64, p64) = classifier_cpu_reference::<f64>(case, &p0, &batch, seed)?;

    let mut step = ClassifierStep::new(dev, plan, &p0, hyper)?;
    if case.captured {
        step.capture()?;
    }
    let out = step.iteration(&batch.x, &batch.labels, LR)?;
    if let Some(e) = out.non_finite_error() {
        return Err(CudaError::call("classifier iteration on the device", e));
    }
    let f = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
    let z = f(step.logits_to_host()?);
    let g = f(step.grad_to_host()?);
    let p = f(step.params_to_host()?);
    let r = ClassifierAgreement {
        case: case.clone(),
        loss_gpu: out.loss,
        loss_cpu_f32: l32,
        loss_cpu_f64: l64,
        accuracy_gpu: out.accuracy.unwrap_or(f64::NAN),
        accuracy_cpu: a64,
        logits_rel_gpu: max_rel(&z, &z64),
        logits_rel_cpu_f32: max_rel(&z32, &z64),
        grad_rel_gpu: norm_rel(&g, &g64),
        grad_rel_cpu_f32: norm_rel(&g32, &g64),
        params_rel_gpu: norm_rel(&p, &p64),
        params_rel_cpu_f32: norm_rel(&p32, &p64),
        passed: false,
    };
    let passed = within(r.logits_rel_gpu, r.logits_rel_cpu_f32)
        && within(r.grad_rel_gpu, r.grad_rel_cpu_f32)
        && within(r.params_rel_gpu, r.params_rel_cpu_f32)
        && (r.loss_gpu - l64).abs() <= (10.0 * (l32 - l64).abs()).max(1e-5 * l64.abs());
    Ok(ClassifierAgreement { passed, ..r })
}

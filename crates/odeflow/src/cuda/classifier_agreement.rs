//! GPU-vs-CPU agreement of one training iteration of a small MLP classifier through
//! [`ClassifierStep`] (eager or as a captured CUDA graph): logits, mean cross-entropy,
//! accuracy, parameter gradient and the parameters after one Adam step, computed on the
//! device in f32, on the CPU in f32 and on the CPU in f64 (the reference) from the same
//! parameters and batch. The device passes when each of its errors against f64 is within
//! `max(10 × CPU f32 error, 1e-5)`, as [`super::pendulum_agreement`].
//!
//! **Not yet run on a GPU** (`bench/gpu_check.sh` runs it through
//! `odeflow bench pendulum-mlp128-euler2 --device cuda --check-cpu --grad backprop`).

use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::agreement::{max_rel, norm_rel};
use super::device::{CudaError, Device};
use super::plan::act_code;
use super::train_graph::ClassifierStep;
use super::train_plan::{AdamHyper, ClassifierShape, FieldShape, TrainPlan};
use crate::field::Parameterized;
use crate::grad::GradientMethod;
use crate::models::{ClassBatch, ClassifierParts, OdeClassifier};
use crate::nn::zoo::{linear_head, mlp_field, MlpOptions};
use crate::nn::{Activation, Init, Shape};
use crate::real::Real;
use crate::solve::{fixed_grid, Method, SolveOptions};
use crate::state::Batch;
use crate::train::{Optimizer, OptimizerConfig, Trainable};

/// Samples, input features, ANODE zeros, hidden width, classes of the agreement model.
const ROWS: usize = 64;
const INPUT: usize = 8;
const AUGMENT: usize = 2;
const HIDDEN: usize = 64;
const CLASSES: usize = 4;
const LR: f64 = 1e-2;

/// The outcome of [`classifier_agreement`].
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierAgreement {
    /// Solver method (fixed steps).
    pub method: String,
    /// Number of steps.
    pub steps: usize,
    /// Whether the device ran the iteration as a captured CUDA graph.
    pub captured: bool,
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
type CpuPass = (f64, f64, Vec<f64>, Vec<f64>, Vec<f64>);

fn cpu_pass<T: Real>(
    p0: &[f32],
    method: &Method,
    opts: &SolveOptions,
    x: &Batch<f32>,
    labels: &[usize],
    seed: u64,
) -> Result<CpuPass, CudaError> {
    let fail = |e: String| CudaError::call("CPU reference", e);
    let d = INPUT + AUGMENT;
    let mopts = MlpOptions {
        activation: Activation::Tanh,
        init: Init::PyTorchDefault,
        time_input: false,
    };
    let field = mlp_field::<T>(&[d, HIDDEN, d], &mopts, seed).map_err(|e| fail(e.to_string()))?;
    let head =
        linear_head::<T>(Shape::Flat(d), CLASSES, seed + 1).map_err(|e| fail(e.to_string()))?;
    let parts = ClassifierParts {
        encoder: None,
        field,
        field_dim: d,
        head,
        augment: AUGMENT,
    };
    let mut model = OdeClassifier::new(
        parts,
        method.clone(),
        GradientMethod::Backprop,
        opts.clone(),
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut params: Vec<T> = p0.iter().map(|&v| T::of(f64::from(v))).collect();
    model.write_params(&params);
    let xt = x.cast::<T>();
    let (logits, _) = model.logits_with(&xt, method, opts).map_err(fail)?;
    let mut grad = vec![T::zero(); params.len()];
    let batch = ClassBatch {
        x: xt,
        labels: labels.to_vec(),
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

/// Compares one training iteration of the agreement classifier (`[10 → 64 → 10]` tanh field
/// with two ANODE zeros, Linear head to four classes, a batch of 64) on `dev` with the CPU,
/// solving with the fixed-step explicit `method` in `steps` steps; `captured` replays the
/// iteration as a CUDA graph instead of issuing its launches eagerly.
pub fn classifier_agreement(
    dev: &Arc<Device>,
    method: &str,
    steps: usize,
    captured: bool,
    seed: u64,
) -> Result<ClassifierAgreement, CudaError> {
    let bad = |e: String| CudaError::Unsupported(e);
    let m = Method::from_name(method).map_err(|e| bad(e.to_string()))?;
    let tab = m
        .tableau()
        .ok_or_else(|| {
            bad(format!(
                "{method}: the device plan needs an explicit method"
            ))
        })?
        .clone();
    let opts = SolveOptions::steps(0.0, 1.0, steps);
    let grid = fixed_grid(&opts).map_err(|e| bad(e.to_string()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let xs: Vec<f32> = (0..ROWS * INPUT)
        .map(|_| rng.random_range(-1.5..1.5))
        .collect();
    let x = Batch::from_vec(ROWS, INPUT, xs).map_err(|e| bad(e.to_string()))?;
    let labels: Vec<usize> = (0..ROWS).map(|_| rng.random_range(0..CLASSES)).collect();

    // The f32 CPU model's initial parameters are everyone's.
    let d = INPUT + AUGMENT;
    let shape = ClassifierShape {
        field: FieldShape::Mlp {
            dims: vec![d, HIDDEN, d],
            act: act_code(Some(Activation::Tanh)).unwrap_or(1),
        },
        input: INPUT,
        classes: CLASSES,
        rows: ROWS,
    };
    let plan = TrainPlan::new(shape, &tab, &grid);
    let mut p0 = vec![0.0f32; plan.num_params()];
    {
        let mopts = MlpOptions {
            activation: Activation::Tanh,
            init: Init::PyTorchDefault,
            time_input: false,
        };
        let fail = |e: String| CudaError::call("initial parameters", e);
        let field =
            mlp_field::<f32>(&[d, HIDDEN, d], &mopts, seed).map_err(|e| fail(e.to_string()))?;
        let head = linear_head::<f32>(Shape::Flat(d), CLASSES, seed + 1)
            .map_err(|e| fail(e.to_string()))?;
        let nf = field.network().params().len();
        p0[..nf].copy_from_slice(field.network().params());
        p0[nf..].copy_from_slice(head.params());
    }
    let (l32, _, z32, g32, p32) = cpu_pass::<f32>(&p0, &m, &opts, &x, &labels, seed)?;
    let (l64, a64, z64, g64, p64) = cpu_pass::<f64>(&p0, &m, &opts, &x, &labels, seed)?;

    let hyper = AdamHyper {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut step = ClassifierStep::new(dev, plan, &p0, hyper)?;
    if captured {
        step.capture()?;
    }
    let out = step.iteration(&x, &labels, LR)?;
    if let Some((n, i)) = out.non_finite {
        return Err(CudaError::call(
            "classifier iteration on the device",
            format!("non-finite state at step {n}, component {i}"),
        ));
    }
    let f = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
    let z = f(step.logits_to_host()?);
    let g = f(step.grad_to_host()?);
    let p = f(step.params_to_host()?);
    let within = |gpu: f64, cpu: f64| gpu <= (10.0 * cpu).max(1e-5);
    let r = ClassifierAgreement {
        method: method.to_string(),
        steps,
        captured,
        loss_gpu: out.loss,
        loss_cpu_f32: l32,
        loss_cpu_f64: l64,
        accuracy_gpu: out.accuracy,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU half of the agreement: both references run from the same f32 parameters and
    /// agree to f32 round-off, with a gradient and an Adam step that are not trivial.
    #[test]
    fn cpu_references_agree_in_f32_and_f64() {
        let m = Method::from_name("rk4").expect("rk4");
        let opts = SolveOptions::steps(0.0, 1.0, 2);
        let d = INPUT + AUGMENT;
        let n = (d * HIDDEN + HIDDEN) + (HIDDEN * d + d) + (d * CLASSES + CLASSES);
        let p0: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 4e-3)
            .collect();
        let x = Batch::from_vec(
            ROWS,
            INPUT,
            (0..ROWS * INPUT)
                .map(|i| ((i % 13) as f32 - 6.0) * 0.2)
                .collect(),
        )
        .expect("sized");
        let labels: Vec<usize> = (0..ROWS).map(|i| i % CLASSES).collect();
        let (l32, _, z32, g32, p32) = cpu_pass::<f32>(&p0, &m, &opts, &x, &labels, 1).expect("f32");
        let (l64, _, z64, g64, p64) = cpu_pass::<f64>(&p0, &m, &opts, &x, &labels, 1).expect("f64");
        assert!((l32 - l64).abs() < 1e-5 * l64, "{l32} vs {l64}");
        assert!(max_rel(&z32, &z64) < 1e-5);
        assert!(norm_rel(&g32, &g64) < 1e-4);
        assert!(
            g64.iter().map(|g| g.abs()).sum::<f64>() > 1e-3,
            "a gradient"
        );
        let moved = norm_rel(&p64, &p0.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
        assert!(moved > 1e-3, "Adam moved the parameters by {moved}");
        assert!(norm_rel(&p32, &p64) < 1e-5);
    }
}

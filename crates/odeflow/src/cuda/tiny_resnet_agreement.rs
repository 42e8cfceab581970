//! GPU-vs-CPU agreement of a whole TinyResNet on the device
//! ([`CudaTinyResNet`]; Sander et al., NeurIPS 2022): one training step (loss and the
//! gradient of every parameter, stem, body and head) and then the logits in eval mode (which
//! read the running statistics the step moved), on the device in f32 and on the CPU
//! ([`TinyResNet`]) in f32 and in f64 (the reference), from the same parameters and batch.
//! The device passes when each of its errors is within ten times the CPU f32 error (or
//! 1e-5), the rule of [`super::conv_agreement`].
//!
//! The check to run when a GPU is at hand (`odeflow bench cifar-odenet128-euler8 --device
//! cuda --check-cpu` reports it as "tiny_resnet_agreement": ResNet and HeunNet bodies,
//! backprop and reversible, untied and tied, [`tiny_resnet_cases`]); the CPU half is tested
//! in `tests/cuda_plan/tiny_resnet.rs`, the blocks by [`super::res_block_agreement`].

use std::sync::Arc;

use serde::Serialize;

use super::agreement::{max_rel, norm_rel, within};
use super::device::{CudaError, Device};
use super::tiny_resnet::CudaTinyResNet;
use crate::grad::GradientMethod;
use crate::models::depth_field::Tying;
use crate::models::resnet::Scheme;
use crate::models::tiny_resnet::{TinyResNet, TinyResNetConfig};
use crate::nn::{Layer, Shape};
use crate::real::Real;
use crate::state::Batch;
use crate::train::Trainable;

/// The outcome of [`tiny_resnet_agreement`] for one body.
#[derive(Debug, Clone, Serialize)]
pub struct TinyResNetAgreement {
    /// `eager` (the step through the generic gradient solver, gradient to the host) or
    /// `captured` (one replay of the captured iteration at learning rate 0, so that the
    /// eval logits see the same parameters).
    pub path: String,
    /// `euler` (ResNet) or `heun` (HeunNet).
    pub scheme: String,
    /// The body's gradient method.
    pub grad: String,
    /// `untied` or `tied`.
    pub tying: String,
    /// Depth `N` of the body.
    pub depth: usize,
    /// Samples in the batch.
    pub rows: usize,
    /// `|L − L⁽⁶⁴⁾| / |L⁽⁶⁴⁾|` of the training loss on the device.
    pub loss_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub loss_rel_cpu_f32: f64,
    /// `‖g − g⁽⁶⁴⁾‖ / ‖g⁽⁶⁴⁾‖` of the whole parameter gradient on the device.
    pub grad_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub grad_rel_cpu_f32: f64,
    /// `max` relative error of the running statistics (stem and body) after the step, device.
    pub stats_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub stats_rel_cpu_f32: f64,
    /// `max` relative error of the eval-mode logits after the step, device.
    pub logits_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub logits_rel_cpu_f32: f64,
    /// Every device error within `max(10 × CPU f32 error, 1e-5)`.
    pub passed: bool,
}

/// `(loss, gradient, running statistics of stem and body, eval logits)` of one comparison,
/// as f64.
pub type TinyResNetPass = (f64, Vec<f64>, Vec<f64>, Vec<f64>);

/// The fixed inputs of one comparison, exactly representable in f32.
#[derive(Debug, Clone)]
pub struct TinyResNetInputs {
    /// The model's parameters `[stem | body | head]`.
    pub params: Vec<f32>,
    /// The images.
    pub x: Batch<f32>,
    /// Their labels.
    pub labels: Vec<usize>,
}

/// The compared model: 3×14×14 images, 8 channels (stem output 8×4×4, head `Linear(8 →
/// 10)`), a body of depth 3 with `scheme`, `grad` and `tying`, PyTorch's initialisation
/// from `seed`.
pub fn tiny_resnet_case(
    (scheme, grad, tying): (Scheme, GradientMethod, Tying),
    seed: u64,
) -> (Shape, TinyResNetConfig) {
    (
        Shape::image(3, 14, 14),
        TinyResNetConfig {
            channels: 8,
            depth: 3,
            scheme,
            grad,
            tying,
            seed,
            ..Default::default()
        },
    )
}

/// The bodies [`tiny_resnet_agreement`] compares: ResNet by backprop (untied and tied),
/// HeunNet by backprop, ResNet and HeunNet by the reversible adjoint (tied).
pub fn tiny_resnet_cases() -> Vec<(Scheme, GradientMethod, Tying)> {
    use GradientMethod::{Backprop, Reversible};
    vec![
        (Scheme::Euler, Backprop, Tying::Untied),
        (Scheme::Euler, Backprop, Tying::Tied),
        (Scheme::Heun, Backprop, Tying::Untied),
        (Scheme::Euler, Reversible, Tying::Tied),
        (Scheme::Heun, Reversible, Tying::Untied),
    ]
}

/// The compared parameters (the initialisation moved off its zeros, so that every block
/// contributes, and rounded to f32), batch of `rows` images and labels.
pub fn tiny_resnet_inputs(
    shape: Shape,
    cfg: &TinyResNetConfig,
    rows: usize,
) -> Result<TinyResNetInputs, CudaError> {
    let m = TinyResNet::<f64>::new(shape, cfg.clone())
        .map_err(|e| CudaError::Unsupported(e.to_string()))?;
    let mut p = vec![0.0; m.num_params()];
    m.read_params(&mut p);
    let params = p
        .iter()
        .enumerate()
        .map(|(i, v)| (v + 0.1 * ((i * 37 % 11) as f64 - 5.0) / 5.0) as f32)
        .collect();
    let d = shape.len();
    let x = (0..rows * d)
        .map(|i| ((i * 29 % 13) as f32 - 6.0) * 0.2)
        .collect();
    let x = Batch::from_vec(rows, d, x).map_err(|e| CudaError::call("batch", e.to_string()))?;
    let labels = (0..rows).map(|i| (i * 7) % cfg.classes).collect();
    Ok(TinyResNetInputs { params, x, labels })
}

fn cast<T: Real>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&a| T::of(f64::from(a))).collect()
}

fn batch_of<T: Real>(x: &Batch<f32>) -> Batch<T> {
    Batch::from_vec(x.rows(), x.cols(), cast(x.as_slice())).expect("same shape")
}

/// The running statistics of the stem's batch norm (mean, variance), then the body's.
fn running_stats<T: Real>(m: &TinyResNet<T>) -> Vec<f64> {
    let mut v: Vec<f64> = Vec::new();
    for l in m.stem().sequential().layers() {
        if let Layer::BatchNorm(b) = l {
            v.extend(
                b.running_mean()
                    .iter()
                    .chain(b.running_var())
                    .map(|x| x.f64()),
            );
        }
    }
    let f = m.body().field();
    for n in 0..f.depth() {
        v.extend(f.running_stats(n).iter().map(|x| x.f64()));
    }
    v
}

fn model<T: Real>(
    shape: Shape,
    cfg: &TinyResNetConfig,
    params: &[f32],
) -> Result<TinyResNet<T>, CudaError> {
    let mut m = TinyResNet::<T>::new(shape, cfg.clone())
        .map_err(|e| CudaError::Unsupported(e.to_string()))?;
    m.write_params(&cast::<T>(params));
    Ok(m)
}

/// The CPU half of [`tiny_resnet_agreement`]: the step and the eval logits in `T`.
pub fn tiny_resnet_cpu_reference<T: Real>(
    shape: Shape,
    cfg: &TinyResNetConfig,
    inputs: &TinyResNetInputs,
) -> Result<TinyResNetPass, CudaError> {
    let fail = |e: crate::models::resnet::ResNetError| CudaError::call("CPU reference", e);
    let TinyResNetInputs { params, x, labels } = inputs;
    let mut m = model::<T>(shape, cfg, params)?;
    let x = batch_of::<T>(x);
    let mut g = vec![T::zero(); m.num_params()];
    let step = m.train_step(&x, labels, &mut g).map_err(fail)?;
    let logits = m.logits(&x).map_err(fail)?;
    Ok((
        step.loss,
        g.iter().map(|v| v.f64()).collect(),
        running_stats(&m),
        logits.as_slice().iter().map(|v| v.f64()).collect(),
    ))
}

fn gpu_pass(
    dev: &Arc<Device>,
    shape: Shape,
    cfg: &TinyResNetConfig,
    inputs: &TinyResNetInputs,
    captured: bool,
) -> Result<TinyResNetPass, CudaError> {
    let TinyResNetInputs { params, x, labels } = inputs;
    let mut m = CudaTinyResNet::from_cpu(dev, model::<f32>(shape, cfg, params)?)?;
    let (loss, g) = if captured {
        // Learning rate 0: the update leaves the parameters as they were.
        m.capture_training(&crate::train::OptimizerConfig::sgd(0.1, 0.9, 5e-4))?;
        let out = m.captured_iteration(x, labels, 0.0)?;
        if let Some(e) = out.non_finite_error() {
            return Err(CudaError::call("captured TinyResNet iteration", e));
        }
        (out.loss, m.captured_grad()?)
    } else {
        let mut g = vec![0.0f32; m.num_params()];
        (m.train_step(x, labels, &mut g)?.loss, g)
    };
    let logits = m.logits(x)?;
    dev.check()?;
    let stats = running_stats(m.to_cpu()?);
    Ok((
        loss,
        g.iter().map(|&v| f64::from(v)).collect(),
        stats,
        logits.as_slice().iter().map(|&v| f64::from(v)).collect(),
    ))
}

/// Compares [`CudaTinyResNet`] with the CPU [`TinyResNet`] on [`tiny_resnet_case`] with a
/// batch of `rows` images, for each of [`tiny_resnet_cases`], on the eager path and on the
/// captured iteration.
pub fn tiny_resnet_agreement(
    dev: &Arc<Device>,
    rows: usize,
    seed: u64,
) -> Result<Vec<TinyResNetAgreement>, CudaError> {
    let mut out = Vec::new();
    for case in tiny_resnet_cases() {
        let (shape, cfg) = tiny_resnet_case(case.clone(), seed);
        let inputs = tiny_resnet_inputs(shape, &cfg, rows)?;
        let cpu32 = tiny_resnet_cpu_reference::<f32>(shape, &cfg, &inputs)?;
        let cpu64 = tiny_resnet_cpu_reference::<f64>(shape, &cfg, &inputs)?;
        for captured in [false, true] {
            let gpu = gpu_pass(dev, shape, &cfg, &inputs, captured)?;
            let path = if captured { "captured" } else { "eager" };
            out.push(compare(&case, (&cfg, rows, path), &gpu, &cpu32, &cpu64));
        }
    }
    Ok(out)
}

/// One row of [`tiny_resnet_agreement`]: the device's pass and the CPU's in f32 against the
/// CPU's in f64.
fn compare(
    case: &(Scheme, GradientMethod, Tying),
    (cfg, rows, path): (&TinyResNetConfig, usize, &str),
    (lg, gg, sg, zg): &TinyResNetPass,
    (l32, g32, s32, z32): &TinyResNetPass,
    (l64, g64, s64, z64): &TinyResNetPass,
) -> TinyResNetAgreement {
    let rel = |a: f64| (a - l64).abs() / l64.abs().max(f64::MIN_POSITIVE);
    let out = TinyResNetAgreement {
        path: path.into(),
        scheme: case.0.name().into(),
        grad: case.1.name().into(),
        tying: format!("{:?}", case.2).to_lowercase(),
        depth: cfg.depth,
        rows,
        loss_rel_gpu: rel(*lg),
        loss_rel_cpu_f32: rel(*l32),
        grad_rel_gpu: norm_rel(gg, g64),
        grad_rel_cpu_f32: norm_rel(g32, g64),
        stats_rel_gpu: max_rel(sg, s64),
        stats_rel_cpu_f32: max_rel(s32, s64),
        logits_rel_gpu: max_rel(zg, z64),
        logits_rel_cpu_f32: max_rel(z32, z64),
        passed: false,
    };
    let passed = within(out.loss_rel_gpu, out.loss_rel_cpu_f32)
        && within(out.grad_rel_gpu, out.grad_rel_cpu_f32)
        && within(out.stats_rel_gpu, out.stats_rel_cpu_f32)
        && within(out.logits_rel_gpu, out.logits_rel_cpu_f32);
    TinyResNetAgreement { passed, ..out }
}

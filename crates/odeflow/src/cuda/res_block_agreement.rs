//! GPU-vs-CPU agreement of a TinyResNet residual block ([`CudaResBlock`]; Sander et al.,
//! NeurIPS 2022): one forward pass and one VJP from a fixed batch and cotangent, in train
//! mode (batch statistics, running averages updated) and in eval mode (running statistics),
//! on the device in f32, on the CPU ([`conv_residual_block`]) in f32 and in f64 (the
//! reference), from the same parameters and running statistics. The device passes when its
//! errors in `f(x)`, the running statistics, `vᵀ∂f/∂x` and `vᵀ∂f/∂θ` are within ten times
//! the CPU f32 errors (or 1e-5), the rule of [`super::conv_agreement`].
//!
//! The check to run when a GPU is at hand (`odeflow bench cifar-odenet128-euler8 --device
//! cuda --check-cpu` reports it as "res_block_agreement"): the plan is tested on the CPU in
//! f64 (`tests/cuda_plan/res_block.rs`), the kernels by `tests/cuda_kernels/`, the device
//! glue only here.

use std::sync::Arc;

use serde::Serialize;

use super::agreement::{max_rel, norm_rel, within};
use super::device::{download, CudaError, Device};
use super::res_block::CudaResBlock;
use super::res_block_plan::ResBlockLayout;
use super::state::CudaBatch;
use crate::models::resnet::conv_residual_block;
use crate::nn::{Init, Layer, Sequential, Tape};
use crate::real::Real;
use crate::state::Batch;

/// One mode's outcome of [`res_block_agreement`].
#[derive(Debug, Clone, Serialize)]
pub struct ResBlockAgreement {
    /// `(C, h, w)` of the block.
    pub shape: (usize, usize, usize),
    /// Samples in the batch.
    pub rows: usize,
    /// Train mode (batch statistics) or eval mode (running statistics).
    pub train: bool,
    /// `max |f − f⁽⁶⁴⁾| / max |f⁽⁶⁴⁾|` on the device.
    pub out_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub out_rel_cpu_f32: f64,
    /// The same for both running means and variances after the pass.
    pub stats_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub stats_rel_cpu_f32: f64,
    /// `‖g − g⁽⁶⁴⁾‖ / ‖g⁽⁶⁴⁾‖` of `vᵀ∂f/∂x` on the device.
    pub gx_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub gx_rel_cpu_f32: f64,
    /// `‖g − g⁽⁶⁴⁾‖ / ‖g⁽⁶⁴⁾‖` of `vᵀ∂f/∂θ` on the device.
    pub grad_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub grad_rel_cpu_f32: f64,
    /// Every device error within `max(10 × CPU f32 error, 1e-5)`.
    pub passed: bool,
}

/// `(f(x), running statistics, vᵀ∂f/∂x, vᵀ∂f/∂θ)` as f64.
pub type ResBlockPass = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// The fixed inputs of one comparison, exactly representable in f32.
#[derive(Debug, Clone)]
pub struct ResBlockInputs {
    /// The block's flat parameters.
    pub params: Vec<f32>,
    /// The running mean and variance of batch norms 1 and 2 before the pass.
    pub stats: Vec<(Vec<f32>, Vec<f32>)>,
    /// The batch (NCHW).
    pub x: Vec<f32>,
    /// The cotangent of `f(x)`.
    pub v: Vec<f32>,
}

fn cast<T: Real>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&a| T::of(f64::from(a))).collect()
}

fn to_f64<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|a| a.f64()).collect()
}

fn batch_norms<T: Real>(net: &mut Sequential<T>) -> Vec<&mut crate::nn::BatchNorm<T>> {
    net.layers_mut()
        .iter_mut()
        .filter_map(|l| match l {
            Layer::BatchNorm(b) => Some(b),
            _ => None,
        })
        .collect()
}

/// The CPU half of [`res_block_agreement`]: one forward pass and VJP of the CPU block in `T`.
pub fn res_block_cpu_reference<T: Real>(
    (c, h, w): (usize, usize, usize),
    inp: &ResBlockInputs,
    train: bool,
) -> Result<ResBlockPass, CudaError> {
    let fail = |e: String| CudaError::call("CPU reference", e);
    let mut net = conv_residual_block::<T>(c, h, w).map_err(|e| fail(e.to_string()))?;
    for (bn, (m, v)) in batch_norms(&mut net).into_iter().zip(&inp.stats) {
        bn.set_running_stats(&cast::<T>(m), &cast::<T>(v))
            .map_err(|e| fail(e.to_string()))?;
    }
    net.set_train(train);
    let params = cast::<T>(&inp.params);
    let x = cast::<T>(&inp.x);
    let mut tape = Tape::new();
    let mut y = vec![T::zero(); x.len()];
    net.forward_taped(&params, T::zero(), &x, &mut y, &mut tape)
        .map_err(|e| fail(e.to_string()))?;
    let mut gx = vec![T::zero(); x.len()];
    let mut gp = vec![T::zero(); params.len()];
    net.backward(&params, &tape, &cast::<T>(&inp.v), &mut gx, &mut gp)
        .map_err(|e| fail(e.to_string()))?;
    let mut stats = Vec::new();
    for bn in batch_norms(&mut net) {
        stats.extend(to_f64(bn.running_mean()));
        stats.extend(to_f64(bn.running_var()));
    }
    Ok((to_f64(&y), stats, to_f64(&gx), to_f64(&gp)))
}

fn gpu_pass(
    dev: &Arc<Device>,
    layout: &ResBlockLayout,
    rows: usize,
    inp: &ResBlockInputs,
    train: bool,
) -> Result<ResBlockPass, CudaError> {
    let d = layout.sample_len();
    let batch = |v: &[f32]| {
        let b = Batch::from_vec(rows, d, v.to_vec())
            .map_err(|e| CudaError::call("batch", e.to_string()))?;
        CudaBatch::from_host(dev, &b)
    };
    let mut block = CudaResBlock::new(dev, layout.clone(), rows, &inp.params)?;
    for (l, (m, v)) in (1..=2).zip(&inp.stats) {
        block.set_running_stats(l, m, v)?;
    }
    let (x, v) = (batch(&inp.x)?, batch(&inp.v)?);
    let y = download(dev, block.forward(&x, train)?)?;
    let gx = download(dev, block.backward(&v)?)?;
    dev.check()?;
    let mut stats = Vec::new();
    for l in 1..=2 {
        let (m, v) = block.running_stats(l)?;
        stats.extend(m.iter().chain(&v).map(|&a| f64::from(a)));
    }
    let f = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
    Ok((f(y), stats, f(gx), f(block.grads_to_host()?)))
}

/// Compares the device block with the CPU block on `(channels, h, w)` images, a batch of
/// `rows` samples, parameters from `seed` (PyTorch's initialisation, with the second batch
/// norm's `γ`, `β` moved off Sander et al.'s zero start so that `f ≠ 0`), in train and eval
/// mode.
pub fn res_block_agreement(
    dev: &Arc<Device>,
    (channels, h, w): (usize, usize, usize),
    rows: usize,
    seed: u64,
) -> Result<Vec<ResBlockAgreement>, CudaError> {
    let layout = ResBlockLayout::new(channels, h, w).map_err(CudaError::Unsupported)?;
    let inp = res_block_inputs(&layout, rows, seed)?;
    let shape = (channels, h, w);
    [true, false]
        .into_iter()
        .map(|train| {
            let (y32, s32, gx32, g32) = res_block_cpu_reference::<f32>(shape, &inp, train)?;
            let (y64, s64, gx64, g64) = res_block_cpu_reference::<f64>(shape, &inp, train)?;
            let (yg, sg, gxg, gg) = gpu_pass(dev, &layout, rows, &inp, train)?;
            let out = ResBlockAgreement {
                shape,
                rows,
                train,
                out_rel_gpu: max_rel(&yg, &y64),
                out_rel_cpu_f32: max_rel(&y32, &y64),
                stats_rel_gpu: max_rel(&sg, &s64),
                stats_rel_cpu_f32: max_rel(&s32, &s64),
                gx_rel_gpu: norm_rel(&gxg, &gx64),
                gx_rel_cpu_f32: norm_rel(&gx32, &gx64),
                grad_rel_gpu: norm_rel(&gg, &g64),
                grad_rel_cpu_f32: norm_rel(&g32, &g64),
                passed: false,
            };
            let passed = within(out.out_rel_gpu, out.out_rel_cpu_f32)
                && within(out.stats_rel_gpu, out.stats_rel_cpu_f32)
                && within(out.gx_rel_gpu, out.gx_rel_cpu_f32)
                && within(out.grad_rel_gpu, out.grad_rel_cpu_f32);
            Ok(ResBlockAgreement { passed, ..out })
        })
        .collect()
}

/// The compared parameters (from `seed`), running statistics, batch and cotangent.
pub fn res_block_inputs(
    layout: &ResBlockLayout,
    rows: usize,
    seed: u64,
) -> Result<ResBlockInputs, CudaError> {
    let (channels, (h, w)) = (layout.channels(), layout.hw());
    let net = conv_residual_block::<f32>(channels, h, w)
        .map_err(|e| CudaError::Unsupported(e.to_string()))?;
    let mut params = net.init_params(&Init::PyTorchDefault, seed);
    for k in 0..channels {
        params[layout.gamma_offset(2) + k] = 0.7 + 0.1 * (k % 5) as f32;
        params[layout.beta_offset(2) + k] = 0.2 - 0.05 * (k % 7) as f32;
        params[layout.beta_offset(1) + k] = 0.1 * (k % 3) as f32 - 0.15;
    }
    let stats = (1..=2)
        .map(|l| {
            let m = (0..channels).map(|k| 0.1 * ((k + l) % 4) as f32 - 0.2);
            let v = (0..channels).map(|k| 0.5 + 0.3 * ((k * l) % 3) as f32);
            (m.collect(), v.collect())
        })
        .collect();
    let n = rows * layout.sample_len();
    Ok(ResBlockInputs {
        params,
        stats,
        x: (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect(),
        v: (0..n).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.25).collect(),
    })
}

//! Memory of backprop against the reversible method, against depth (Sander, Ablin, Peyré
//! 2022, Fig. 5).
//!
//! The workload is the paper's: the residual function `Linear(500 → 8) → tanh →
//! Linear(8 → 500)` applied `N` times (an Euler ResNet) to a `500 × 500` input (500 samples
//! of 500 features) in `f32`, one training iteration — forward, backward, SGD step. By
//! default the same function is applied at every depth ([`Tying::Tied`], as in the
//! benchmark of the training issue and the peer scripts); [`Tying::Untied`] gives every layer
//! its own weights, as in the paper's ResNets. Backprop keeps one tape per layer (the
//! function's input, 1 MB, plus the 8-unit hidden layer), so its peak memory grows by about
//! one activation per layer; the reversible method keeps one tape in all, so its memory is
//! flat when tied, and grows only by the parameters (34 kB per layer, times three with
//! gradient and momentum) when untied.
//!
//! Peak memory must be measured in a fresh process per depth (the high-water mark never
//! goes down): [`resnet_memory_workload`] runs one workload, [`peak_rss_bytes`] reads the
//! process's peak resident set (`VmHWM`) on Linux. The `odeflow` CLI runs each depth in a
//! child process.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::reconstruction::random_input;
use crate::data::derive_seed;
use crate::error::ArgError;
use crate::field::{Parameterized, VectorField};
use crate::grad::GradientMethod;
use crate::models::depth_field::{DepthField, Tying};
use crate::models::resnet::{mlp_residual, ResNet, ResNetError, Scheme};
use crate::nn::{Activation, Init};
use crate::state::Batch;
use crate::train::{Optimizer, OptimizerConfig};

/// Features of the workload (and samples in its batch).
pub const MEMORY_WIDTH: usize = 500;
/// Hidden units of its residual function.
pub const MEMORY_HIDDEN: usize = 8;

/// What one workload did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryWorkload {
    /// Depth `N`.
    pub depth: usize,
    /// Gradient method.
    pub grad: String,
    /// Parameters of the network.
    pub params: usize,
    /// Bytes of one activation (`500 × 500 × 4`).
    pub activation_bytes: usize,
    /// Largest number of layer tapes held at once.
    pub tapes_peak: usize,
    /// Loss `mean(x_N²)/2` before the step.
    pub loss: f64,
    /// Seconds of the forward pass.
    pub forward_seconds: f64,
    /// Seconds of the backward pass.
    pub backward_seconds: f64,
    /// Seconds of the SGD step.
    pub step_seconds: f64,
}

/// One training iteration (forward, backward, SGD step with momentum 0.9) of the depth-`N`
/// workload in `f32` with gradient method `grad`; weights and input drawn from `seed`.
pub fn resnet_memory_workload(
    depth: usize,
    grad: &GradientMethod,
    tying: Tying,
    seed: u64,
) -> Result<MemoryWorkload, ResNetError> {
    if matches!(grad, GradientMethod::Adjoint(_)) {
        return Err(ArgError::invalid(
            "gradient method",
            "adjoint",
            "the memory benchmark compares backprop and reversible",
        )
        .into());
    }
    let net = mlp_residual::<f32>(MEMORY_WIDTH, Some(MEMORY_HIDDEN), Activation::Tanh)?;
    let field = DepthField::new(
        net,
        depth,
        tying,
        &Init::PyTorchDefault,
        derive_seed(seed, 0),
    )?;
    let mut resnet = ResNet::new(field, Scheme::Euler, grad.clone(), 0)?;
    let x0: Batch<f32> = random_input(MEMORY_WIDTH, MEMORY_WIDTH, derive_seed(seed, 1)).cast();
    let t0 = Instant::now();
    let xn = resnet.forward(&x0)?.clone();
    let forward_seconds = t0.elapsed().as_secs_f64();
    let count = xn.as_slice().len() as f64;
    let loss = xn
        .as_slice()
        .iter()
        .map(|v| (*v as f64).powi(2))
        .sum::<f64>()
        / (2.0 * count);
    let cot = Batch::from_vec(
        xn.rows(),
        xn.cols(),
        xn.as_slice().iter().map(|v| v / count as f32).collect(),
    )
    .map_err(ArgError::from)?;
    let t1 = Instant::now();
    let mut g = resnet.field().zero_grad();
    resnet.backward(&cot, &mut g)?;
    let backward_seconds = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let params = resnet.field().num_params();
    let mut opt = Optimizer::<f32>::new(OptimizerConfig::sgd(0.01, 0.9, 0.0), params)?;
    opt.step(resnet.field_mut().params_mut(), &g, 0.01);
    let step_seconds = t2.elapsed().as_secs_f64();
    Ok(MemoryWorkload {
        depth,
        grad: resnet.gradient_method().name().into(),
        params,
        activation_bytes: MEMORY_WIDTH * MEMORY_WIDTH * 4,
        tapes_peak: resnet.stats().tapes_peak,
        loss,
        forward_seconds,
        backward_seconds,
        step_seconds,
    })
}

/// A field of `/proc/self/status` in bytes (`VmHWM`, `VmRSS`, … are given in kB).
fn proc_status_bytes(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// Peak resident memory of this process (`VmHWM`), or `None` where `/proc` is missing.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM")
}

/// Current resident memory of this process (`VmRSS`), or `None` where `/proc` is missing.
pub fn current_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backprop_tapes_every_layer_and_reversible_one() {
        let bp = resnet_memory_workload(3, &GradientMethod::Backprop, Tying::Untied, 0).unwrap();
        let rev = resnet_memory_workload(3, &GradientMethod::Reversible, Tying::Untied, 0).unwrap();
        assert_eq!(bp.tapes_peak, 3);
        assert_eq!(rev.tapes_peak, 1);
        assert_eq!(bp.loss, rev.loss);
        assert_eq!(bp.params, 3 * (500 * 8 + 8 + 8 * 500 + 500));
        assert!(resnet_memory_workload(
            2,
            &GradientMethod::from_name("adjoint").unwrap(),
            Tying::Tied,
            0
        )
        .is_err());
        if cfg!(target_os = "linux") {
            let peak = peak_rss_bytes().unwrap();
            assert!(peak >= current_rss_bytes().unwrap() && peak > 1 << 20);
        }
    }
}

//! GPU-vs-CPU agreement of the convolutional fields ([`CudaConvField`]): one solve of
//! `y' = f(y)` from a fixed batch and its backward pass for the loss `L = ½‖y₁‖²`
//! (`∂L/∂y₁ = y₁`), through the generic [`GradSolver`] with any explicit method and
//! gradient method, computed on the device in f32, on the CPU in f32 and on the CPU in f64
//! (the reference) from the same parameters. The device passes when its errors in `y₁`,
//! `∂L/∂y₀` and `∂L/∂θ` are within ten times the CPU f32 errors (or 1e-5).
//!
//! The check to run when a GPU is at hand: the launch plan and the kernels are tested on the
//! CPU (`tests/cuda_plan/conv.rs`, `tests/cuda_kernels/conv.rs`), the device glue only here.

use std::sync::Arc;

use serde::Serialize;

use super::agreement::{max_rel, norm_rel, within};
use super::conv::CudaConvField;
use super::device::{CudaError, Device};
use super::state::CudaBatch;
use crate::field::{Parameterized, VectorField};
use crate::grad::{GradSolver, GradientMethod};
use crate::nn::zoo::{odenet, simple_odenet};
use crate::nn::NeuralField;
use crate::real::Real;
use crate::solve::{Method, SolveOptions};
use crate::state::{Batch, State};

/// Which convolutional field of [`crate::nn::zoo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConvModel {
    /// `simple_odenet` with `channels` hidden channels on `(1, d)` samples.
    SimpleOdenet {
        /// Hidden channels.
        channels: usize,
        /// Sequence length.
        d: usize,
    },
    /// `odenet` with `channels` hidden channels on `(c_in, h, w)` images.
    Odenet {
        /// Image channels.
        c_in: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
        /// Hidden channels.
        channels: usize,
    },
}

impl ConvModel {
    fn cpu<T: Real>(&self, seed: u64) -> Result<NeuralField<T>, CudaError> {
        match *self {
            Self::SimpleOdenet { channels, d } => simple_odenet(channels, d, seed),
            Self::Odenet {
                c_in,
                h,
                w,
                channels,
            } => odenet(c_in, h, w, channels, seed),
        }
        .map_err(|e| CudaError::Unsupported(e.to_string()))
    }

    fn device(&self, dev: &Arc<Device>, params: &[f32]) -> Result<CudaConvField, CudaError> {
        match *self {
            Self::SimpleOdenet { channels, d } => {
                CudaConvField::simple_odenet(dev, channels, d, params)
            }
            Self::Odenet {
                c_in,
                h,
                w,
                channels,
            } => CudaConvField::odenet(dev, (c_in, h, w), channels, params),
        }
    }
}

/// The outcome of [`conv_agreement`].
#[derive(Debug, Clone, Serialize)]
pub struct ConvAgreement {
    /// The field.
    pub model: ConvModel,
    /// Samples in the batch.
    pub rows: usize,
    /// Solver method.
    pub method: String,
    /// Gradient method.
    pub grad: String,
    /// `max |y₁ − y₁⁽⁶⁴⁾| / max |y₁⁽⁶⁴⁾|` on the device.
    pub y1_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub y1_rel_cpu_f32: f64,
    /// `‖g − g⁽⁶⁴⁾‖ / ‖g⁽⁶⁴⁾‖` of `∂L/∂y₀` on the device.
    pub gy0_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub gy0_rel_cpu_f32: f64,
    /// `‖g − g⁽⁶⁴⁾‖ / ‖g⁽⁶⁴⁾‖` of `∂L/∂θ` on the device.
    pub grad_rel_gpu: f64,
    /// The same for the CPU in f32.
    pub grad_rel_cpu_f32: f64,
    /// Every device error within `max(10 × CPU f32 error, 1e-5)`.
    pub passed: bool,
}

/// `(y₁, ∂L/∂y₀, ∂L/∂θ)` as f64 from one pass on the CPU.
type Pass = (Vec<f64>, Vec<f64>, Vec<f64>);

fn cpu_pass<T: Real>(
    field: &mut NeuralField<T>,
    x: &Batch<f64>,
    method: &Method,
    grad: &GradientMethod,
    opts: &SolveOptions,
) -> Result<Pass, CudaError> {
    let fail = |e: String| CudaError::call("CPU reference", e);
    let mut solver =
        GradSolver::<Batch<T>, NeuralField<T>>::new(method.clone(), grad.clone(), opts.clone())
            .map_err(|e| fail(e.to_string()))?;
    let y1 = solver
        .forward(field, &x.cast::<T>())
        .map_err(|e| fail(e.to_string()))?
        .clone();
    let mut g = field.zero_grad();
    let gy0 = solver
        .backward(field, &y1, &mut g)
        .map_err(|e| fail(e.to_string()))?;
    Ok((y1.to_f64_vec(), gy0.to_f64_vec(), g.to_f64_vec()))
}

/// Compares the device with the CPU on `model` (initialised from `seed`) for a batch of
/// `rows` samples, solving with `method` under `opts` and differentiating with `grad`.
pub fn conv_agreement(
    dev: &Arc<Device>,
    model: ConvModel,
    rows: usize,
    method: &str,
    grad: GradientMethod,
    opts: &SolveOptions,
    seed: u64,
) -> Result<ConvAgreement, CudaError> {
    let bad = |e: String| CudaError::Unsupported(e);
    let m = Method::from_name(method).map_err(|e| bad(e.to_string()))?;
    let mut f32_field = model.cpu::<f32>(seed)?;
    let params = f32_field.params().to_vec();
    let mut f64_field = model.cpu::<f64>(seed)?;
    for (d, s) in f64_field.params_mut().iter_mut().zip(&params) {
        *d = f64::from(*s);
    }
    let d = f32_field.shape().len();
    let data: Vec<f64> = (0..rows * d)
        .map(|i| ((i * 7919 + 13) % 2003) as f64 / 1001.0 - 1.0)
        .collect();
    let x = Batch::from_vec(rows, d, data).map_err(|e| bad(e.to_string()))?;
    // The f32 data both f32 passes see, exactly, as the f64 reference's input.
    let x = x.cast::<f32>().cast::<f64>();
    let (y32, gy32, g32) = cpu_pass(&mut f32_field, &x, &m, &grad, opts)?;
    let (y64, gy64, g64) = cpu_pass(&mut f64_field, &x, &m, &grad, opts)?;

    let mut field = model.device(dev, &params)?;
    let mut solver = GradSolver::<CudaBatch, CudaConvField>::new(m, grad.clone(), opts.clone())
        .map_err(|e| bad(e.to_string()))?;
    let x = CudaBatch::from_host(dev, &x.cast::<f32>())?;
    let y1 = match solver.forward(&mut field, &x) {
        Ok(y1) => {
            let mut c = y1.zeros_like();
            c.assign(y1);
            c
        }
        Err(e) => {
            dev.check()?;
            return Err(CudaError::call("forward solve on the device", e));
        }
    };
    let mut g = field.zero_grad();
    let back = solver.backward(&mut field, &y1, &mut g);
    dev.check()?;
    let gy0 = back.map_err(|e| CudaError::call("backward solve on the device", e))?;
    let host = |b: &CudaBatch| b.to_host().map(|h| h.cast::<f64>().into_vec());
    let (y_gpu, gy_gpu, g_gpu) = (host(&y1)?, host(&gy0)?, host(&g)?);

    let out = ConvAgreement {
        model,
        rows,
        method: method.to_string(),
        grad: grad.name().to_string(),
        y1_rel_gpu: max_rel(&y_gpu, &y64),
        y1_rel_cpu_f32: max_rel(&y32, &y64),
        gy0_rel_gpu: norm_rel(&gy_gpu, &gy64),
        gy0_rel_cpu_f32: norm_rel(&gy32, &gy64),
        grad_rel_gpu: norm_rel(&g_gpu, &g64),
        grad_rel_cpu_f32: norm_rel(&g32, &g64),
        passed: false,
    };
    let passed = within(out.y1_rel_gpu, out.y1_rel_cpu_f32)
        && within(out.gy0_rel_gpu, out.gy0_rel_cpu_f32)
        && within(out.grad_rel_gpu, out.grad_rel_cpu_f32);
    Ok(ConvAgreement { passed, ..out })
}

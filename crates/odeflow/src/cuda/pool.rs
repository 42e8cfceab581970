//! The rest of TinyResNet's non-convolutional pieces on the device (see `norm.rs` for
//! batch normalisation; Sander et al., NeurIPS 2022):
//!
//! * [`CudaAvgPool`]: average pooling with stride equal to the window (PyTorch's
//!   `F.avg_pool2d(x, k)`, the CPU [`crate::nn::AvgPool2d`]) and its VJP
//!   (`avgpool_{fwd,bwd}_f32` of `kernels/norm.cu`);
//! * [`residual_update`]: the block combination `x ← x + Σⱼ cⱼ fⱼ` — `x + f/N` (ResNet) or
//!   `x + (f₁ + f₂)/(2N)` (HeunNet) — as one `lincomb_f32` launch of `kernels/state.cu`.

use std::sync::Arc;

use cudarc::driver::{DevicePtr, DevicePtrMut, PushKernelArg};

use super::device::{CudaError, Device};
use super::norm::{addr, addr_mut, cfg, healthy};
use super::norm_plan::{ImageBatch, PoolShape};
use super::plan::{lincomb_plan, MAX_TERMS};
use super::state::{config, lincomb_args};

/// Average pooling with a `kh × kw` window and the same stride on the device.
#[derive(Debug, Clone)]
pub struct CudaAvgPool {
    dev: Arc<Device>,
    kh: usize,
    kw: usize,
}

impl CudaAvgPool {
    /// A `k × k` window (the CPU `AvgPool2d::new(Shape::image(..), k)`; for sequences stored
    /// as `H = 1` images use [`CudaAvgPool::with_window`]`(dev, 1, k)`).
    pub fn new(dev: &Arc<Device>, k: usize) -> Result<Self, CudaError> {
        Self::with_window(dev, k, k)
    }

    /// A `kh × kw` window.
    pub fn with_window(dev: &Arc<Device>, kh: usize, kw: usize) -> Result<Self, CudaError> {
        for (name, v) in [("pooling window height", kh), ("pooling window width", kw)] {
            if v == 0 || v > i32::MAX as usize {
                return Err(CudaError::invalid(name, v, "must be a positive int"));
            }
        }
        Ok(Self {
            dev: dev.clone(),
            kh,
            kw,
        })
    }

    /// The output shape for `input` (fails when the window exceeds the image).
    pub fn output_shape(&self, input: &ImageBatch) -> Result<ImageBatch, CudaError> {
        Ok(PoolShape::new(*input, self.kh, self.kw)?.output())
    }

    /// `y` (the pooled `input`-shaped `x`, overwritten).
    pub fn forward<X, Y>(&self, input: &ImageBatch, x: &X, y: &mut Y) -> Result<(), CudaError>
    where
        X: DevicePtr<f32>,
        Y: DevicePtrMut<f32>,
    {
        self.run(input, true, x, y)
    }

    /// `∂x` (overwritten) from `∂y`.
    pub fn backward<G, GX>(&self, input: &ImageBatch, gy: &G, gx: &mut GX) -> Result<(), CudaError>
    where
        G: DevicePtr<f32>,
        GX: DevicePtrMut<f32>,
    {
        self.run(input, false, gy, gx)
    }

    fn run<A, B>(&self, input: &ImageBatch, fwd: bool, a: &A, b: &mut B) -> Result<(), CudaError>
    where
        A: DevicePtr<f32>,
        B: DevicePtrMut<f32>,
    {
        let out = PoolShape::new(*input, self.kh, self.kw)?.output();
        let (from, to) = if fwd { (input, &out) } else { (&out, input) };
        from.check_len("average-pool source", a.len())?;
        to.check_len("average-pool destination", b.len())?;
        let ptrs = (addr(&self.dev, a), addr_mut(&self.dev, b));
        launch_avgpool(&self.dev, input, (self.kh, self.kw), fwd, ptrs)
    }
}

/// `avgpool_fwd_f32` (the `kh × kw` average pool of the images `input` at `src` into `dst`)
/// or, with `fwd` false, `avgpool_bwd_f32` (the gradient at `src` of the pooled output into
/// the images' gradient at `dst`, overwritten), on device addresses the caller sized for
/// the shapes (e.g. the fixed buffers of a captured iteration).
pub(super) fn launch_avgpool(
    dev: &Device,
    input: &ImageBatch,
    (kh, kw): (usize, usize),
    fwd: bool,
    (pa, pb): (u64, u64),
) -> Result<(), CudaError> {
    let shape = PoolShape::new(*input, kh, kw)?;
    let ((gf, bf), (gb, bb)) = shape.grids();
    let (grid, block, f, what) = if fwd {
        (gf, bf, &dev.norm.avgpool_fwd, "avgpool_fwd_f32")
    } else {
        (gb, bb, &dev.norm.avgpool_bwd, "avgpool_bwd_f32")
    };
    healthy(dev)?;
    let n = input.batch as i64;
    let dims = [input.channels, input.height, input.width, kh, kw].map(|v| v as i32);
    let layout = input.layout.code();
    let mut l = dev.stream().launch_builder(f);
    l.arg(&n);
    for d in &dims {
        l.arg(d);
    }
    l.arg(&layout).arg(&pa).arg(&pb);
    // SAFETY: avgpool_{fwd,bwd}_f32(n, c, h, w, kh, kw, layout, src, dst); the caller sized
    // the buffers for the shapes.
    unsafe { l.launch(cfg(grid, block)) }
        .map(|_| ())
        .map_err(|e| CudaError::call(what, e))
}

/// The residual combination `x ← x + Σⱼ cⱼ fⱼ` of a block, in place: `[(1/N, f)]` for a
/// ResNet step `x + f(x)/N`, `[(1/(2N), f₁), (1/(2N), f₂)]` for Heun's. One `lincomb_f32`
/// launch per [`MAX_TERMS`] terms ([`lincomb_plan`]); zero coefficients are skipped.
pub fn residual_update<X, F>(dev: &Device, x: &mut X, terms: &[(f32, &F)]) -> Result<(), CudaError>
where
    X: DevicePtrMut<f32>,
    F: DevicePtr<f32>,
{
    let n = x.len();
    for (j, (_, f)) in terms.iter().enumerate() {
        if f.len() != n {
            return Err(CudaError::invalid(
                "residual term length",
                f.len(),
                format!("term {j} must match the state's {n} values"),
            ));
        }
    }
    healthy(dev)?;
    let ptrs: Vec<u64> = terms.iter().map(|(_, f)| addr(dev, *f)).collect();
    let coeffs: Vec<f32> = terms.iter().map(|(c, _)| *c).collect();
    let out = addr_mut(dev, x);
    for launch in lincomb_plan(&coeffs) {
        debug_assert!(launch.terms.len() <= MAX_TERMS);
        let args = lincomb_args(launch.terms.iter().map(|&(j, c)| (ptrs[j], c)));
        let n64 = n as i64;
        let mut b = dev.stream().launch_builder(&dev.state.lincomb);
        b.arg(&n64).arg(&out).arg(&out).arg(&args);
        // SAFETY: lincomb_f32(n, out, base, args) with out = base (allowed: each thread reads
        // its base value before writing it); every term holds n values.
        unsafe { b.launch(config(n)) }.map_err(|e| CudaError::call("lincomb_f32", e))?;
    }
    Ok(())
}

//! The non-convolutional layers of TinyResNet (Sander, Ablin, Blondel & Peyré, NeurIPS 2022;
//! [`crate::models::tiny_resnet`]) on the device, f32, with exact VJPs:
//!
//! * [`CudaBatchNorm`]: per-channel batch normalisation (Ioffe & Szegedy, ICML 2015) as the
//!   CPU [`crate::nn::BatchNorm`] — train mode with batch statistics (biased `σ²` to
//!   normalise, unbiased `σ² M/(M − 1)` into the running averages with the momentum), eval
//!   mode with the running statistics, and the VJP that couples the batch:
//!   `∂x = γ/√(σ² + ε) · (∂y − mean(∂y) − x̂ · mean(∂y ⊙ x̂))`, `∂γ += Σ ∂y ⊙ x̂`,
//!   `∂β += Σ ∂y` (eval: `∂x = γ/√(σ² + ε) · ∂y`). The parameters are `[γ (C), β (C)]`, the
//!   CPU layer's order, so a flat parameter vector moves between CPU and GPU unchanged.
//! * [`super::CudaAvgPool`] and [`super::residual_update`] (in `pool.rs`): average pooling
//!   and the residual combination of a block.
//!
//! The reductions (statistics, backward sums) run one block per channel with a fixed
//! shared-memory tree in double, no atomics: the results are deterministic. The launch order
//! is [`super::norm_plan`]; the kernels are `kernels/norm.cu`, tested on the CPU against the
//! CPU layers by `tests/cuda_kernels/norm.rs`. Shapes are given explicitly ([`ImageBatch`],
//! NCHW or NHWC) and checked: bad input is one [`CudaError::Invalid`] naming the value.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};

use super::device::{CudaError, Device};
use super::norm_plan::{bn_backward_plan, bn_forward_plan, ImageBatch, NormLaunch, NormOp};
use crate::nn::BatchNormOptions;

pub(super) fn cfg(grid: u32, block: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

pub(super) fn addr<P: DevicePtr<f32>>(dev: &Device, s: &P) -> u64 {
    s.device_ptr(dev.stream()).0
}

pub(super) fn addr_mut<P: DevicePtrMut<f32>>(dev: &Device, s: &mut P) -> u64 {
    s.device_ptr_mut(dev.stream()).0
}

pub(super) fn healthy(dev: &Device) -> Result<(), CudaError> {
    if dev.failed() {
        Err(CudaError::call(
            "device layer",
            "the device failed earlier (Device::check returns the error)",
        ))
    } else {
        Ok(())
    }
}

fn check_buf(what: &'static str, len: usize, want: usize) -> Result<(), CudaError> {
    if len == want {
        Ok(())
    } else {
        Err(CudaError::invalid(
            what,
            format!("length {len}"),
            format!("must hold {want} values"),
        ))
    }
}

/// What a [`CudaBatchNorm`] forward pass keeps for its backward pass (the CPU layer's aux):
/// `μ` and `1/√(σ² + ε)` per channel, the mode and the shape. The layer's input `x` is not
/// copied: the caller keeps it for the backward pass.
pub struct BnSaved {
    mean: CudaSlice<f32>,
    invstd: CudaSlice<f32>,
    /// `(shape, train)` of the last forward pass; `None` before the first.
    pass: Option<(ImageBatch, bool)>,
}

impl BnSaved {
    /// The shape and mode (`true`: train) of the forward pass that filled it.
    pub fn pass(&self) -> Option<(ImageBatch, bool)> {
        self.pass
    }

    /// `μ` and `1/√(σ² + ε)` per channel, copied to the host.
    pub fn to_host(&self) -> Result<(Vec<f32>, Vec<f32>), CudaError> {
        let s = self.mean.stream();
        let copy = |b: &CudaSlice<f32>| {
            s.clone_dtoh(b)
                .map_err(|e| CudaError::call("device-to-host copy", e))
        };
        Ok((copy(&self.mean)?, copy(&self.invstd)?))
    }
}

/// Per-channel batch normalisation on the device, with running statistics.
pub struct CudaBatchNorm {
    dev: Arc<Device>,
    channels: usize,
    opts: BatchNormOptions,
    running_mean: CudaSlice<f32>,
    running_var: CudaSlice<f32>,
    /// `[Σ ∂y (C), Σ ∂y ⊙ x̂ (C)]` of the last backward pass.
    sums: CudaSlice<f64>,
}

/// Device addresses of one batch-norm launch (0: a null pointer, an absent operand).
#[derive(Default)]
pub(super) struct Ptrs {
    pub(super) x: u64,
    pub(super) y: u64,
    pub(super) gy: u64,
    pub(super) gx: u64,
    pub(super) gamma: u64,
    pub(super) beta: u64,
    pub(super) grad_gamma: u64,
    pub(super) grad_beta: u64,
    pub(super) mean: u64,
    pub(super) invstd: u64,
    pub(super) running_mean: u64,
    pub(super) running_var: u64,
    pub(super) sums: u64,
}

impl CudaBatchNorm {
    /// Batch normalisation of `channels` channels with `opts` on `dev` (the CPU layer's
    /// checks: `ε > 0` finite, momentum in `[0, 1]`); running mean 0, running variance 1.
    pub fn new(
        dev: &Arc<Device>,
        channels: usize,
        opts: BatchNormOptions,
    ) -> Result<Self, CudaError> {
        if channels == 0 || channels > i32::MAX as usize {
            return Err(CudaError::invalid(
                "batch-norm channels",
                channels,
                format!("must lie in 1..={}", i32::MAX),
            ));
        }
        if !(opts.eps > 0.0 && opts.eps.is_finite()) {
            return Err(CudaError::invalid(
                "batch-norm eps",
                opts.eps,
                "must be positive and finite",
            ));
        }
        if !(0.0..=1.0).contains(&opts.momentum) {
            return Err(CudaError::invalid(
                "batch-norm momentum",
                opts.momentum,
                "must lie in [0, 1]",
            ));
        }
        let s = dev.stream();
        let up = |v: Vec<f32>| {
            s.clone_htod(&v)
                .map_err(|e| CudaError::call("host-to-device copy", e))
        };
        Ok(Self {
            dev: dev.clone(),
            channels,
            opts,
            running_mean: up(vec![0.0; channels])?,
            running_var: up(vec![1.0; channels])?,
            sums: s
                .alloc_zeros::<f64>(2 * channels)
                .map_err(|e| CudaError::call("allocation", e))?,
        })
    }

    /// Number of channels `C`.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The options.
    pub fn options(&self) -> &BatchNormOptions {
        &self.opts
    }

    /// Number of parameters: `2C` (`γ`, `β`) when affine, else 0.
    pub fn num_params(&self) -> usize {
        if self.opts.affine {
            2 * self.channels
        } else {
            0
        }
    }

    /// The CPU layer's initial parameters: `γ = 1` (0 with `zero_init`), `β = 0`.
    pub fn init_params(&self) -> Vec<f32> {
        let mut p = vec![0.0; self.num_params()];
        if self.opts.affine && !self.opts.zero_init {
            p[..self.channels].fill(1.0);
        }
        p
    }

    /// Buffers for one forward pass's saved statistics.
    pub fn saved(&self) -> Result<BnSaved, CudaError> {
        let s = self.dev.stream();
        let alloc = || {
            s.alloc_zeros::<f32>(self.channels)
                .map_err(|e| CudaError::call("allocation", e))
        };
        Ok(BnSaved {
            mean: alloc()?,
            invstd: alloc()?,
            pass: None,
        })
    }

    /// The running mean and (unbiased) variance, copied to the host.
    pub fn running_stats(&self) -> Result<(Vec<f32>, Vec<f32>), CudaError> {
        let s = self.dev.stream();
        let copy = |b: &CudaSlice<f32>| {
            s.clone_dtoh(b)
                .map_err(|e| CudaError::call("device-to-host copy", e))
        };
        Ok((copy(&self.running_mean)?, copy(&self.running_var)?))
    }

    /// Sets the running statistics (e.g. from the CPU layer or a checkpoint).
    pub fn set_running_stats(&mut self, mean: &[f32], var: &[f32]) -> Result<(), CudaError> {
        check_buf("running mean", mean.len(), self.channels)?;
        check_buf("running variance", var.len(), self.channels)?;
        let s = self.dev.stream().clone();
        for (src, dst) in [(mean, &mut self.running_mean), (var, &mut self.running_var)] {
            s.memcpy_htod(src, dst)
                .map_err(|e| CudaError::call("host-to-device copy", e))?;
        }
        Ok(())
    }

    fn check_shape(&self, shape: &ImageBatch) -> Result<(), CudaError> {
        if shape.channels != self.channels {
            return Err(CudaError::invalid(
                "batch-norm input",
                shape,
                format!("the layer has {} channels", self.channels),
            ));
        }
        Ok(())
    }

    /// Sets the parameter addresses (absent when not affine; a length check otherwise).
    fn params<P: DevicePtr<f32>>(&self, params: Option<&P>, p: &mut Ptrs) -> Result<(), CudaError> {
        match (params, self.opts.affine) {
            (Some(b), true) => {
                check_buf("batch-norm parameters", b.len(), self.num_params())?;
                p.gamma = addr(&self.dev, b);
                p.beta = p.gamma + (std::mem::size_of::<f32>() * self.channels) as u64;
                Ok(())
            }
            (None, false) => Ok(()),
            (Some(_), false) => Err(CudaError::invalid(
                "batch-norm parameters",
                "given",
                "the layer is not affine (no γ, β)",
            )),
            (None, true) => Err(CudaError::invalid(
                "batch-norm parameters",
                "none",
                format!(
                    "an affine layer needs [γ, β] ({} values)",
                    2 * self.channels
                ),
            )),
        }
    }

    /// Train-mode forward pass: `y = γ (x − μ)/√(σ² + ε) + β` with the batch statistics of
    /// `x` (shape `shape`), saved into `saved`, and the running statistics updated.
    /// `params` is `[γ, β]` (`None` for a layer without affine parameters). `y` may not be
    /// `x` (the backward pass needs `x`).
    pub fn forward_train<P, X, Y>(
        &mut self,
        shape: &ImageBatch,
        params: Option<&P>,
        x: &X,
        y: &mut Y,
        saved: &mut BnSaved,
    ) -> Result<(), CudaError>
    where
        P: DevicePtr<f32>,
        X: DevicePtr<f32>,
        Y: DevicePtrMut<f32>,
    {
        self.forward(shape, true, params, x, y, saved)
    }

    /// Eval-mode forward pass with the running statistics (the layer is affine per channel;
    /// the running statistics do not change).
    pub fn forward_eval<P, X, Y>(
        &mut self,
        shape: &ImageBatch,
        params: Option<&P>,
        x: &X,
        y: &mut Y,
        saved: &mut BnSaved,
    ) -> Result<(), CudaError>
    where
        P: DevicePtr<f32>,
        X: DevicePtr<f32>,
        Y: DevicePtrMut<f32>,
    {
        self.forward(shape, false, params, x, y, saved)
    }

    fn forward<P, X, Y>(
        &mut self,
        shape: &ImageBatch,
        train: bool,
        params: Option<&P>,
        x: &X,
        y: &mut Y,
        saved: &mut BnSaved,
    ) -> Result<(), CudaError>
    where
        P: DevicePtr<f32>,
        X: DevicePtr<f32>,
        Y: DevicePtrMut<f32>,
    {
        self.check_shape(shape)?;
        shape.check_len("batch-norm input", x.len())?;
        shape.check_len("batch-norm output", y.len())?;
        check_buf("saved statistics", saved.mean.len(), self.channels)?;
        healthy(&self.dev)?;
        let dev = self.dev.clone();
        let mut p = Ptrs::default();
        self.params(params, &mut p)?;
        p.x = addr(&dev, x);
        p.y = addr_mut(&dev, y);
        p.mean = addr_mut(&dev, &mut saved.mean);
        p.invstd = addr_mut(&dev, &mut saved.invstd);
        p.running_mean = addr_mut(&dev, &mut self.running_mean);
        p.running_var = addr_mut(&dev, &mut self.running_var);
        saved.pass = None;
        for launch in bn_forward_plan(shape, train) {
            launch_norm(&dev, &self.opts, shape, &launch, &p)?;
        }
        saved.pass = Some((*shape, train));
        Ok(())
    }

    /// The VJP of the forward pass that filled `saved` (same `shape`, `params` and input
    /// `x`): `∂x` overwritten from `∂y`, `∂γ`, `∂β` accumulated into `gparams` (`None` for a
    /// layer without affine parameters).
    #[allow(clippy::too_many_arguments)]
    pub fn backward<P, X, G, GX, GP>(
        &mut self,
        shape: &ImageBatch,
        params: Option<&P>,
        x: &X,
        saved: &BnSaved,
        gy: &G,
        gx: &mut GX,
        gparams: Option<&mut GP>,
    ) -> Result<(), CudaError>
    where
        P: DevicePtr<f32>,
        X: DevicePtr<f32>,
        G: DevicePtr<f32>,
        GX: DevicePtrMut<f32>,
        GP: DevicePtrMut<f32>,
    {
        self.check_shape(shape)?;
        let train = match saved.pass {
            Some((s, train)) if s == *shape => train,
            Some((s, _)) => {
                return Err(CudaError::invalid(
                    "batch-norm backward shape",
                    shape,
                    format!("the forward pass was {s}"),
                ))
            }
            None => {
                return Err(CudaError::invalid(
                    "batch-norm saved statistics",
                    "empty",
                    "run a forward pass first",
                ))
            }
        };
        shape.check_len("batch-norm input", x.len())?;
        shape.check_len("batch-norm output gradient", gy.len())?;
        shape.check_len("batch-norm input gradient", gx.len())?;
        healthy(&self.dev)?;
        let dev = self.dev.clone();
        let mut p = Ptrs::default();
        self.params(params, &mut p)?;
        match gparams {
            Some(g) if self.opts.affine => {
                check_buf("batch-norm parameter gradient", g.len(), self.num_params())?;
                p.grad_gamma = addr_mut(&dev, g);
                p.grad_beta = p.grad_gamma + (std::mem::size_of::<f32>() * self.channels) as u64;
            }
            None if !self.opts.affine => {}
            _ => {
                return Err(CudaError::invalid(
                    "batch-norm parameter gradient",
                    if self.opts.affine { "none" } else { "given" },
                    "must be given exactly when the layer is affine",
                ))
            }
        }
        p.x = addr(&dev, x);
        p.gy = addr(&dev, gy);
        p.gx = addr_mut(&dev, gx);
        p.mean = addr(&dev, &saved.mean);
        p.invstd = addr(&dev, &saved.invstd);
        p.sums = self.sums.device_ptr_mut(dev.stream()).0;
        for launch in bn_backward_plan(shape, train, self.opts.affine) {
            launch_norm(&dev, &self.opts, shape, &launch, &p)?;
        }
        Ok(())
    }
}

/// One batch-norm launch of a plan on `dev`'s stream with `opts`' `ε` and momentum (the
/// arguments follow the kernels' signatures in norm.cu): the one launcher of
/// [`CudaBatchNorm`] and [`super::CudaResBlock`].
pub(super) fn launch_norm(
    dev: &Device,
    opts: &BatchNormOptions,
    s: &ImageBatch,
    l: &NormLaunch,
    p: &Ptrs,
) -> Result<(), CudaError> {
    let k = &dev.norm;
    let (n, c, pos, layout) = (
        s.batch as i64,
        s.channels as i32,
        s.positions() as i64,
        s.layout.code(),
    );
    let (eps, mom) = (opts.eps, opts.momentum);
    let stream = dev.stream();
    let (what, r) = match l.op {
        NormOp::Stats => {
            let mut b = stream.launch_builder(&k.stats);
            b.arg(&n).arg(&c).arg(&pos).arg(&layout).arg(&p.x);
            b.arg(&eps)
                .arg(&mom)
                .arg(&p.running_mean)
                .arg(&p.running_var);
            b.arg(&p.mean).arg(&p.invstd);
            // SAFETY: bn_stats_f32's signature; x holds n·c·pos values, the rest c.
            ("bn_stats_f32", unsafe { b.launch(cfg(l.grid, l.block)) })
        }
        NormOp::EvalStats => {
            let mut b = stream.launch_builder(&k.eval_stats);
            b.arg(&c).arg(&p.running_mean).arg(&p.running_var).arg(&eps);
            b.arg(&p.mean).arg(&p.invstd);
            // SAFETY: bn_eval_stats_f32's signature; buffers of c values.
            ("bn_eval_stats_f32", unsafe {
                b.launch(cfg(l.grid, l.block))
            })
        }
        NormOp::Normalize => {
            let mut b = stream.launch_builder(&k.normalize);
            b.arg(&n).arg(&c).arg(&pos).arg(&layout).arg(&p.x);
            b.arg(&p.mean)
                .arg(&p.invstd)
                .arg(&p.gamma)
                .arg(&p.beta)
                .arg(&p.y);
            // SAFETY: bn_normalize_f32's signature; x, y of n·c·pos, the rest c (or null).
            ("bn_normalize_f32", unsafe {
                b.launch(cfg(l.grid, l.block))
            })
        }
        NormOp::BackwardSums { grad_params } => {
            let (gg, gb) = if grad_params {
                (p.grad_gamma, p.grad_beta)
            } else {
                (0, 0)
            };
            let mut b = stream.launch_builder(&k.backward_sums);
            b.arg(&n)
                .arg(&c)
                .arg(&pos)
                .arg(&layout)
                .arg(&p.x)
                .arg(&p.gy);
            b.arg(&p.mean).arg(&p.invstd).arg(&p.sums).arg(&gg).arg(&gb);
            // SAFETY: bn_backward_sums_f32's signature; sums of 2c doubles.
            ("bn_backward_sums_f32", unsafe {
                b.launch(cfg(l.grid, l.block))
            })
        }
        NormOp::BackwardDx { train } => {
            let sums = if train { p.sums } else { 0 };
            let mut b = stream.launch_builder(&k.backward_dx);
            b.arg(&n)
                .arg(&c)
                .arg(&pos)
                .arg(&layout)
                .arg(&p.x)
                .arg(&p.gy);
            b.arg(&p.mean)
                .arg(&p.invstd)
                .arg(&p.gamma)
                .arg(&sums)
                .arg(&p.gx);
            // SAFETY: bn_backward_dx_f32's signature.
            ("bn_backward_dx_f32", unsafe {
                b.launch(cfg(l.grid, l.block))
            })
        }
    };
    r.map(|_| ()).map_err(|e| CudaError::call(what, e))
}

impl std::fmt::Debug for CudaBatchNorm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBatchNorm")
            .field("channels", &self.channels)
            .field("opts", &self.opts)
            .finish()
    }
}

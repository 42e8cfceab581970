//! One residual block of TinyResNet on the device (Sander, Ablin, Peyré, "Do Residual Neural
//! Networks discretize Neural Ordinary Differential Equations?", NeurIPS 2022), f32, with its
//! exact VJP: `f(x) = BN₂(W₂ ⋆ ReLU(BN₁(W₁ ⋆ x)))`, the CPU
//! [`crate::models::resnet::conv_residual_block`], in train mode (batch statistics, running
//! averages updated) and eval mode (running statistics).
//!
//! [`CudaResBlock`] executes the launch plan [`super::res_block_plan`] (tested in f64 against
//! the CPU block, `tests/cuda_plan/res_block.rs`) with the convolutional fields' launcher
//! ([`super::conv::launch_op`]: im2col, cuBLAS SGEMM, col2im, bias/activation) and the batch
//! norm's ([`super::norm::launch_norm`]) — no kernel and no arithmetic of its own, only the
//! binding of the plan's buffers to device memory. The parameters are one flat buffer in the
//! CPU `Sequential`'s order ([`ResBlockLayout::param_views`]), so a block's parameters move
//! between CPU and GPU unchanged; so do the running statistics.
//!
//! The executor is generic over the plan's [`ConvBnLayout`], so TinyResNet's stem
//! (`conv 5×5/3 → BN → ReLU`, [`super::stem_plan`]) runs through it too: [`CudaStem`].
//!
//! The comparison with the CPU block on a GPU is [`super::res_block_agreement`]; it has not
//! yet run on a GPU (see the README's GPU section).

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, DevicePtr};

use super::conv::launch_op;
use super::conv_bn_plan::ConvBnLayout;
use super::device::{download, upload, CudaError, Device};
use super::norm::{launch_norm, Ptrs};
use super::res_block_plan::{NormStep, ResBlockLayout, ResBuf, ResOp};
use super::state::CudaBatch;
use super::stem_plan::StemLayout;
use crate::nn::BatchNormOptions;

/// A residual block `C → C` on `h × w` images on the device.
pub type CudaResBlock = CudaConvBn<ResBlockLayout>;

/// TinyResNet's stem `C_in → C` on the device.
pub type CudaStem = CudaConvBn<StemLayout>;

/// A convolution + batch-norm piece of TinyResNet (its plan described by `L`): its
/// parameters, accumulated parameter gradient, running statistics, and the tape and scratch
/// of the last batch size, on the device.
pub struct CudaConvBn<L: ConvBnLayout> {
    dev: Arc<Device>,
    layout: L,
    rows: usize,
    params: CudaSlice<f32>,
    grads: CudaSlice<f32>,
    bufs: HashMap<ResBuf, CudaSlice<f32>>,
    /// `[Σ ∂y, Σ ∂y ⊙ x̂]` per channel of a batch-norm VJP (f64).
    sums: CudaSlice<f64>,
    /// The mode of the forward pass whose tape is held (`None`: no tape).
    pass: Option<bool>,
}

/// The piece's own device buffers: the tape, the scratch and the running statistics that
/// its plan uses (the input, the cotangent and the parameters are bound separately).
fn owned(layout: &impl ConvBnLayout, rows: usize) -> Vec<ResBuf> {
    use ResBuf::*;
    let mut v = vec![
        InputT, Col, A1, OutputT, Output, CotangentT, GradZ, GradA1, GradInputT, GradInput,
    ];
    for l in 1..=layout.batch_norms() {
        v.extend([Z(l), Mean(l), InvStd(l), RunningMean(l), RunningVar(l)]);
    }
    v.retain(|&b| layout.len_of(b, rows) > 0);
    v
}

fn alloc_f32(dev: &Device, n: usize) -> Result<CudaSlice<f32>, CudaError> {
    dev.stream()
        .alloc_zeros::<f32>(n.max(1))
        .map_err(|e| CudaError::call("allocation", e))
}

fn ptr<T>(dev: &Device, s: &CudaSlice<T>) -> u64 {
    s.device_ptr(dev.stream()).0
}

impl<L: ConvBnLayout> CudaConvBn<L> {
    /// The piece of `layout`, sized for batches of `rows` samples, with the flat parameters
    /// `params`; running mean 0 and running variance 1, as a fresh CPU layer.
    pub fn new(
        dev: &Arc<Device>,
        layout: L,
        rows: usize,
        params: &[f32],
    ) -> Result<Self, CudaError> {
        if rows == 0 {
            return Err(CudaError::invalid(
                "TinyResNet layer batch",
                "0 rows",
                format!("give the {} at least one sample", layout.name()),
            ));
        }
        if params.len() != layout.num_params() {
            return Err(CudaError::invalid(
                "TinyResNet layer parameters",
                format!("{} values", params.len()),
                format!(
                    "the {} has {} parameters",
                    layout.name(),
                    layout.num_params()
                ),
            ));
        }
        let s = dev.stream();
        let mut bufs = HashMap::new();
        for b in owned(&layout, rows) {
            if let ResBuf::RunningMean(_) | ResBuf::RunningVar(_) = b {
                let fill = if matches!(b, ResBuf::RunningVar(_)) {
                    1.0
                } else {
                    0.0
                };
                let v = s
                    .clone_htod(&vec![fill; layout.len_of(b, rows)])
                    .map_err(|e| CudaError::call("host-to-device copy", e))?;
                bufs.insert(b, v);
            }
        }
        let mut piece = Self {
            dev: dev.clone(),
            params: s
                .clone_htod(params)
                .map_err(|e| CudaError::call("host-to-device copy", e))?,
            grads: alloc_f32(dev, layout.num_params())?,
            sums: s
                .alloc_zeros::<f64>(layout.len_of(ResBuf::Sums, rows))
                .map_err(|e| CudaError::call("allocation", e))?,
            layout,
            rows: 0,
            bufs,
            pass: None,
        };
        piece.resize(rows)?;
        Ok(piece)
    }

    /// Sizes the tape and scratch for batches of `rows` samples (the parameters, their
    /// gradient and the running statistics are kept; the tape is dropped).
    fn resize(&mut self, rows: usize) -> Result<(), CudaError> {
        if rows == self.rows {
            return Ok(());
        }
        self.pass = None;
        self.rows = 0;
        for b in owned(&self.layout, rows) {
            if !matches!(b, ResBuf::RunningMean(_) | ResBuf::RunningVar(_)) {
                let buf = alloc_f32(&self.dev, self.layout.len_of(b, rows))?;
                self.bufs.insert(b, buf);
            }
        }
        self.rows = rows;
        Ok(())
    }

    /// The piece's shapes and parameter layout.
    pub fn layout(&self) -> &L {
        &self.layout
    }

    /// Samples per batch of the last forward pass (or of [`Self::new`]).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The parameters, copied to the host.
    pub fn params_to_host(&self) -> Result<Vec<f32>, CudaError> {
        download(&self.dev, &self.params)
    }

    /// Replaces the parameters (same length).
    pub fn set_params(&mut self, params: &[f32]) -> Result<(), CudaError> {
        upload(&self.dev, params, &mut self.params)
    }

    /// The accumulated parameter gradient, copied to the host.
    pub fn grads_to_host(&self) -> Result<Vec<f32>, CudaError> {
        download(&self.dev, &self.grads)
    }

    /// Sets the accumulated parameter gradient to zero.
    pub fn zero_grads(&mut self) -> Result<(), CudaError> {
        self.dev
            .stream()
            .memset_zeros(&mut self.grads)
            .map_err(|e| CudaError::call("memset", e))
    }

    /// The running mean and (unbiased) variance of batch norm `l` (1 or 2 in a block, 1 in
    /// the stem).
    pub fn running_stats(&self, l: usize) -> Result<(Vec<f32>, Vec<f32>), CudaError> {
        self.check_layer(l)?;
        Ok((
            download(&self.dev, &self.bufs[&ResBuf::RunningMean(l)])?,
            download(&self.dev, &self.bufs[&ResBuf::RunningVar(l)])?,
        ))
    }

    /// Replaces the running statistics of batch norm `l` (`C` values each).
    pub fn set_running_stats(
        &mut self,
        l: usize,
        mean: &[f32],
        var: &[f32],
    ) -> Result<(), CudaError> {
        self.check_layer(l)?;
        for (b, v) in [(ResBuf::RunningMean(l), mean), (ResBuf::RunningVar(l), var)] {
            let dst = self.bufs.get_mut(&b).expect("owned buffer");
            upload(&self.dev, v, dst)?;
        }
        Ok(())
    }

    fn check_layer(&self, l: usize) -> Result<(), CudaError> {
        let n = self.layout.batch_norms();
        if (1..=n).contains(&l) {
            Ok(())
        } else {
            Err(CudaError::invalid(
                "batch norm of a TinyResNet layer",
                l,
                format!("the {} has batch norms 1 to {n}", self.layout.name()),
            ))
        }
    }

    fn check_batch(&self, what: &'static str, x: &CudaBatch, d: usize) -> Result<u64, CudaError> {
        if x.rows() != self.rows || x.cols() != d {
            return Err(CudaError::invalid(
                what,
                format!("a {}×{} batch", x.rows(), x.cols()),
                format!("the {} takes {}×{d}", self.layout.name(), self.rows),
            ));
        }
        x.slice()
            .map(|s| ptr(&self.dev, s))
            .ok_or_else(|| CudaError::invalid(what, "an unallocated batch", "allocate it first"))
    }

    /// `f(x)` in train mode (batch statistics; running averages updated) or eval mode
    /// (running statistics), taping what [`Self::backward`] needs; the output stays on the
    /// device until the next forward pass. A batch of another size than the last one resizes
    /// the tape and scratch first (e.g. the last chunk of an evaluation).
    pub fn forward(&mut self, x: &CudaBatch, train: bool) -> Result<&CudaSlice<f32>, CudaError> {
        if x.rows() > 0 && x.cols() == self.layout.input_len() {
            self.resize(x.rows())?;
        }
        let input = self.check_batch("TinyResNet layer input", x, self.layout.input_len())?;
        self.pass = None;
        let ops = self.layout.forward(self.rows, train);
        self.run(&ops, ResBuf::Input, input)?;
        self.pass = Some(train);
        Ok(&self.bufs[&ResBuf::Output])
    }

    /// The VJP at the last forward pass's point: `vᵀ ∂f/∂x` (returned, overwritten by the
    /// next call) and `vᵀ ∂f/∂θ` accumulated into the parameter gradient.
    pub fn backward(&mut self, v: &CudaBatch) -> Result<&CudaSlice<f32>, CudaError> {
        let cot = self.check_batch("TinyResNet layer cotangent", v, self.layout.output_len())?;
        let train = self.pass.ok_or_else(|| {
            CudaError::invalid(
                "TinyResNet layer backward pass",
                "no tape",
                "run a forward pass first",
            )
        })?;
        let ops = self.layout.backward(self.rows, train);
        self.run(&ops, ResBuf::Cotangent, cot)?;
        Ok(&self.bufs[&ResBuf::GradInput])
    }

    /// The device address of a plan buffer (`ext` is the input or cotangent of this pass).
    fn addr(&self, b: ResBuf, ext: (ResBuf, u64)) -> Result<u64, String> {
        let f32_at = |base: u64, off: usize| base + (off * std::mem::size_of::<f32>()) as u64;
        match b {
            _ if b == ext.0 => Ok(ext.1),
            ResBuf::Weight(_) | ResBuf::Gamma(_) | ResBuf::Beta(_) => {
                let off = self.layout.param_offset(b).expect("a parameter");
                Ok(f32_at(ptr(&self.dev, &self.params), off))
            }
            ResBuf::GradWeight(_) | ResBuf::GradGamma(_) | ResBuf::GradBeta(_) => {
                let off = self.layout.param_offset(b).expect("a parameter gradient");
                Ok(f32_at(ptr(&self.dev, &self.grads), off))
            }
            ResBuf::Sums => Ok(ptr(&self.dev, &self.sums)),
            _ => self.bufs.get(&b).map(|s| ptr(&self.dev, s)).ok_or_else(|| {
                format!(
                    "the {} plan names {b:?}, which is unbound",
                    self.layout.name()
                )
            }),
        }
    }

    fn run(&self, ops: &[ResOp], ext: ResBuf, addr: u64) -> Result<(), CudaError> {
        run_res_plan(&self.dev, self.layout.bn_options(), ops, |b| {
            self.addr(b, (ext, addr))
        })
    }
}

/// The pointers of one batch-norm launch of a residual block's plan, from the binding `get`
/// ([`NormStep::operands`]: only what the launch reads or writes; null elsewhere).
fn norm_ptrs(s: &NormStep, get: &impl Fn(ResBuf) -> Result<u64, String>) -> Result<Ptrs, String> {
    let o = s.operands();
    let at = |b: Option<ResBuf>| b.map_or(Ok(0), get);
    Ok(Ptrs {
        x: at(o.x)?,
        y: at(o.y)?,
        gy: at(o.gy)?,
        gx: at(o.gx)?,
        gamma: at(o.gamma)?,
        beta: at(o.beta)?,
        grad_gamma: at(o.grad_gamma)?,
        grad_beta: at(o.grad_beta)?,
        mean: at(o.mean)?,
        invstd: at(o.invstd)?,
        running_mean: at(o.running_mean)?,
        running_var: at(o.running_var)?,
        sums: at(o.sums)?,
    })
}

/// Issues a convolution + batch-norm plan `ops` (batch norms with `bn`'s `ε` and momentum)
/// on `dev` with the device addresses `get` binds to its buffers — the one executor of
/// [`CudaConvBn`] and [`super::CudaDepthField`]. A binding the plan needs but `get` lacks is
/// a plan bug, reported as an error, never a launch.
pub(super) fn run_res_plan(
    dev: &Device,
    bn: &BatchNormOptions,
    ops: &[ResOp],
    get: impl Fn(ResBuf) -> Result<u64, String>,
) -> Result<(), CudaError> {
    if let Some(e) = dev.take_error() {
        return Err(e);
    }
    if !dev.bind() {
        return Err(dev.take_error().expect("bind records its error"));
    }
    let plan_bug = |e: String| CudaError::call("residual-block plan", e);
    for op in ops {
        match op {
            ResOp::Conv(c) => launch_op(dev, c, &get).map_err(plan_bug)?,
            ResOp::Norm(s) => {
                let p = norm_ptrs(s, &get).map_err(plan_bug)?;
                launch_norm(dev, bn, &s.shape, &s.launch, &p)?;
            }
        }
        if let Some(e) = dev.take_error() {
            return Err(e);
        }
    }
    Ok(())
}

impl<L: ConvBnLayout + std::fmt::Debug> std::fmt::Debug for CudaConvBn<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaConvBn")
            .field("layout", &self.layout)
            .field("rows", &self.rows)
            .finish()
    }
}

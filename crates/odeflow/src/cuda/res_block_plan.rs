//! The launch plan of one residual block of TinyResNet (Sander, Ablin, Peyré, "Do Residual
//! Neural Networks discretize Neural Ordinary Differential Equations?", NeurIPS 2022;
//! [`crate::models::resnet::conv_residual_block`]) on the device, forward and exact VJP,
//! composed from the convolutional fields' operations ([`ConvOp`], im2col + cuBLAS SGEMM,
//! `kernels/conv.cu`) and the batch norm's launches ([`NormLaunch`], `kernels/norm.cu`) —
//! no kernel of its own. Decided without the driver and tested against the CPU block in f64
//! (`tests/cuda_plan/res_block.rs`).
//!
//! **The block.** `f(x) = BN₂(W₂ ⋆ ReLU(BN₁(W₁ ⋆ x)))` with `W_l` `3×3` convolutions
//! `C → C`, stride 1, padding 1, no bias, and per-channel batch normalisation
//! `BN_l(z) = γ_l (z − μ_l)/√(σ_l² + ε) + β_l` (train mode: batch statistics over the
//! `M = N·H·W` values of a channel, running averages updated; eval mode: the running ones).
//!
//! **Layout.** The state is NCHW (the CPU [`crate::Batch`]); inside, every tensor is
//! channel-major (CNHW, as in [`crate::cuda::conv_plan`]), so that each convolution is one
//! GEMM `Z = col(X) W` over the batch, and a CNHW tensor *is* an NCHW batch of one sample of
//! `C` channels and `N·H·W` positions for the batch-norm kernels ([`ResBlockLayout::bn_shape`]).
//!
//! **Forward** (taping `X`, `z_1`, `a_1`, `z_2`, and `μ_l`, `1/√(σ_l² + ε)`):
//! `z_1 = col(X) W_1`, `a_1 = relu(γ_1 x̂_1 + β_1)` (the normalisation without `β_1`, then
//! `β_1` and the ReLU by `bias_act_nchw_f32`), `z_2 = col(a_1) W_2`, `f = γ_2 x̂_2 + β_2`.
//!
//! **VJP** from `v = ∂L/∂f`: `∂γ_2 += Σ v ⊙ x̂_2`, `∂β_2 += Σ v`,
//! `∂z_2 = γ_2/√(σ_2² + ε) (v − mean v − x̂_2 mean(v ⊙ x̂_2))` (eval: `γ_2/√(σ_2² + ε) v`),
//! `∂W_2 += col(a_1)ᵀ ∂z_2`, `∂a_1 = col2im(∂z_2 W_2ᵀ)`, `∂(BN₁ out) = ∂a_1 ⊙ [a_1 > 0]`,
//! the same batch-norm VJP for `∂γ_1`, `∂β_1`, `∂z_1`, then `∂W_1 += col(X)ᵀ ∂z_1` and
//! `∂X = col2im(∂z_1 W_1ᵀ)`. Parameter gradients accumulate; `∂X` is overwritten.
//!
//! **Parameters** are one flat buffer in the CPU `Sequential`'s order
//! (`0.weight, 1.weight, 1.bias, 3.weight, 4.weight, 4.bias`: `W_1`, `γ_1`, `β_1`, `W_2`,
//! `γ_2`, `β_2`; [`ResBlockLayout::param_views`]).

use super::conv_bn_plan::{bn_backward, bn_forward, swap, ConvBnLayout, ConvGeom};
use super::conv_plan::{ConvOp, ConvShape};
use super::norm_plan::{ImageBatch, Layout, NormLaunch, NormOp};
use crate::field::ParamView;
use crate::nn::BatchNormOptions;

/// ReLU's activation code (`ODEFLOW_ACT_RELU`).
pub(super) const RELU: i32 = 2;

/// Taps of a `3×3` kernel.
const TAPS: usize = 9;

/// A buffer of a residual block's plan; `l ∈ {1, 2}` numbers the convolution and the batch
/// norm after it. Hidden tensors are channel-major (CNHW).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResBuf {
    /// The input `x` (NCHW, read only).
    Input,
    /// `x` channel-major (taped).
    InputT,
    /// The patch matrix of a convolution, then (in the VJP) its gradient (scratch).
    Col,
    /// `z_l`, the output of convolution `l` before its batch norm (taped).
    Z(usize),
    /// `a_1 = relu(BN₁(z_1))` (taped).
    A1,
    /// `f(x)` channel-major before the swap (scratch).
    OutputT,
    /// `f(x)` (NCHW).
    Output,
    /// The cotangent `v` (NCHW, read only).
    Cotangent,
    /// `v` channel-major (scratch).
    CotangentT,
    /// `∂z_l` (channel-major scratch, shared by both layers).
    GradZ,
    /// `∂a_1` (channel-major scratch).
    GradA1,
    /// `∂x` channel-major before the swap (scratch).
    GradInputT,
    /// `∂x` (NCHW, overwritten).
    GradInput,
    /// `W_l` (`[C, C, 3, 3]`) in the parameter buffer.
    Weight(usize),
    /// `γ_l` in the parameter buffer.
    Gamma(usize),
    /// `β_l` in the parameter buffer.
    Beta(usize),
    /// `∂W_l` in the parameter gradient (accumulated).
    GradWeight(usize),
    /// `∂γ_l` in the parameter gradient (accumulated).
    GradGamma(usize),
    /// `∂β_l` in the parameter gradient (accumulated).
    GradBeta(usize),
    /// `μ_l` per channel (taped).
    Mean(usize),
    /// `1/√(σ_l² + ε)` per channel (taped).
    InvStd(usize),
    /// The running mean of batch norm `l` (state, updated in train mode).
    RunningMean(usize),
    /// The running (unbiased) variance of batch norm `l`.
    RunningVar(usize),
    /// `Σ ∂y`, `Σ ∂y ⊙ x̂` per channel of a batch-norm VJP (`2C` f64, scratch).
    Sums,
}

/// One batch-norm launch of a block's plan: the kernel and grid ([`NormLaunch`]) of batch
/// norm `bn` on the channel-major `shape`, with its tensors. Per kernel:
///
/// * `Stats`: `x` → `Mean(bn)`, `InvStd(bn)`, `RunningMean(bn)`, `RunningVar(bn)` updated;
/// * `EvalStats`: `RunningMean(bn)`, `RunningVar(bn)` → `Mean(bn)`, `InvStd(bn)`;
/// * `Normalize`: `out ← Gamma(bn) x̂ (+ Beta(bn) when beta)`;
/// * `BackwardSums`: `x`, `gy` → `Sums` (and `GradGamma(bn)`, `GradBeta(bn)` accumulated);
/// * `BackwardDx`: `x`, `gy`, `Gamma(bn)` (and `Sums` in train mode) → `out`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormStep {
    /// Kernel and grid.
    pub launch: NormLaunch,
    /// Which batch norm (1 or 2).
    pub bn: usize,
    /// The channel-major tensor as the kernels see it.
    pub shape: ImageBatch,
    /// The batch norm's input `z_bn`.
    pub x: ResBuf,
    /// The incoming gradient (`BackwardSums`, `BackwardDx`).
    pub gy: Option<ResBuf>,
    /// The output (`Normalize`: `y`; `BackwardDx`: `∂x`).
    pub out: Option<ResBuf>,
    /// `Normalize` adds `β` (otherwise a later `BiasAct` does).
    pub beta: bool,
}

/// The buffer behind each pointer of one batch-norm launch (`None`: the kernel gets a null
/// pointer there): exactly what the launch reads or writes, so that an executor binds
/// nothing else (a forward pass has no gradient, a VJP no running statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NormOperands {
    /// The normalised tensor `z`.
    pub x: Option<ResBuf>,
    /// `Normalize`'s output.
    pub y: Option<ResBuf>,
    /// The incoming gradient.
    pub gy: Option<ResBuf>,
    /// `BackwardDx`'s output.
    pub gx: Option<ResBuf>,
    /// `γ`.
    pub gamma: Option<ResBuf>,
    /// `β` (when `Normalize` adds it).
    pub beta: Option<ResBuf>,
    /// `∂γ` (accumulated).
    pub grad_gamma: Option<ResBuf>,
    /// `∂β` (accumulated).
    pub grad_beta: Option<ResBuf>,
    /// `μ`.
    pub mean: Option<ResBuf>,
    /// `1/√(σ² + ε)`.
    pub invstd: Option<ResBuf>,
    /// The running mean.
    pub running_mean: Option<ResBuf>,
    /// The running variance.
    pub running_var: Option<ResBuf>,
    /// The backward sums (f64).
    pub sums: Option<ResBuf>,
}

impl NormOperands {
    /// The buffers named.
    pub fn buffers(&self) -> Vec<ResBuf> {
        [
            self.x,
            self.y,
            self.gy,
            self.gx,
            self.gamma,
            self.beta,
            self.grad_gamma,
            self.grad_beta,
            self.mean,
            self.invstd,
            self.running_mean,
            self.running_var,
            self.sums,
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl NormStep {
    /// What the launch reads and writes (see [`NormStep`] and `kernels/norm.cu`).
    pub fn operands(&self) -> NormOperands {
        use ResBuf::*;
        let l = self.bn;
        let mut o = NormOperands {
            mean: Some(Mean(l)),
            invstd: Some(InvStd(l)),
            ..Default::default()
        };
        match self.launch.op {
            NormOp::Stats => {
                o.x = Some(self.x);
                (o.running_mean, o.running_var) = (Some(RunningMean(l)), Some(RunningVar(l)));
            }
            NormOp::EvalStats => {
                (o.running_mean, o.running_var) = (Some(RunningMean(l)), Some(RunningVar(l)));
            }
            NormOp::Normalize => {
                (o.x, o.y, o.gamma) = (Some(self.x), self.out, Some(Gamma(l)));
                o.beta = self.beta.then_some(Beta(l));
            }
            NormOp::BackwardSums { grad_params } => {
                (o.x, o.gy, o.sums) = (Some(self.x), self.gy, Some(Sums));
                if grad_params {
                    (o.grad_gamma, o.grad_beta) = (Some(GradGamma(l)), Some(GradBeta(l)));
                }
            }
            NormOp::BackwardDx { train } => {
                (o.x, o.gy, o.gx, o.gamma) = (Some(self.x), self.gy, self.out, Some(Gamma(l)));
                o.sums = train.then_some(Sums);
            }
        }
        o
    }
}

/// One step of a residual block's plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResOp {
    /// A convolution-plan operation on the block's buffers.
    Conv(ConvOp<ResBuf>),
    /// A batch-norm launch.
    Norm(NormStep),
}

impl ResOp {
    /// The buffers the step binds (its launcher looks up exactly these).
    pub fn buffers(&self) -> Vec<ResBuf> {
        match self {
            ResOp::Conv(c) => c.buffers(),
            ResOp::Norm(s) => s.operands().buffers(),
        }
    }
}

/// The shapes of a residual block `C → C` on `h × w` images and where its parameters sit.
#[derive(Debug, Clone, PartialEq)]
pub struct ResBlockLayout {
    channels: usize,
    h: usize,
    w: usize,
    bn: BatchNormOptions,
}

impl ResBlockLayout {
    /// The block on `(channels, h, w)` samples with PyTorch's batch-norm `ε`, momentum;
    /// fails (with a message) for a zero size.
    pub fn new(channels: usize, h: usize, w: usize) -> Result<Self, String> {
        if [channels, h, w].contains(&0) {
            return Err(format!(
                "a residual block on ({channels}, {h}, {w}): sizes must be positive"
            ));
        }
        Ok(Self {
            channels,
            h,
            w,
            bn: BatchNormOptions::default(),
        })
    }

    /// Channels `C`.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Image height and width.
    pub fn hw(&self) -> (usize, usize) {
        (self.h, self.w)
    }

    /// Spatial positions `P = h·w`.
    pub fn positions(&self) -> usize {
        self.h * self.w
    }

    /// Components of one sample `C·h·w`.
    pub fn sample_len(&self) -> usize {
        self.channels * self.positions()
    }

    /// The batch norms' `ε` and momentum (both layers; the second's `γ`, `β` start at 0 on
    /// the CPU, which does not change the plan).
    pub fn bn_options(&self) -> &BatchNormOptions {
        &self.bn
    }

    /// Elements of one weight `C·C·9`.
    fn weight_len(&self) -> usize {
        self.channels * self.channels * TAPS
    }

    /// Offset of `W_l`.
    pub fn weight_offset(&self, l: usize) -> usize {
        assert!(l == 1 || l == 2, "layer {l} of a two-convolution block");
        (l - 1) * (self.weight_len() + 2 * self.channels)
    }

    /// Offset of `γ_l` (right after `W_l`); `β_l` follows it.
    pub fn gamma_offset(&self, l: usize) -> usize {
        self.weight_offset(l) + self.weight_len()
    }

    /// Offset of `β_l`.
    pub fn beta_offset(&self, l: usize) -> usize {
        self.gamma_offset(l) + self.channels
    }

    /// Number of parameters `2·(9C² + 2C)`.
    pub fn num_params(&self) -> usize {
        2 * (self.weight_len() + 2 * self.channels)
    }

    /// The parameters by PyTorch name, offset and shape, as the CPU `Sequential`'s views.
    pub fn param_views(&self) -> Vec<ParamView> {
        let c = self.channels;
        let view = |name: String, offset, shape| ParamView {
            name,
            offset,
            shape,
        };
        let mut v = Vec::with_capacity(6);
        for (l, conv, bn) in [(1, 0, 1), (2, 3, 4)] {
            v.push(view(
                format!("{conv}.weight"),
                self.weight_offset(l),
                vec![c, c, 3, 3],
            ));
            v.push(view(format!("{bn}.weight"), self.gamma_offset(l), vec![c]));
            v.push(view(format!("{bn}.bias"), self.beta_offset(l), vec![c]));
        }
        v
    }

    /// Offset of a parameter (gradient) buffer in the flat vector, `None` for the others.
    pub fn param_offset(&self, b: ResBuf) -> Option<usize> {
        use ResBuf::*;
        match b {
            Weight(l) | GradWeight(l) => Some(self.weight_offset(l)),
            Gamma(l) | GradGamma(l) => Some(self.gamma_offset(l)),
            Beta(l) | GradBeta(l) => Some(self.beta_offset(l)),
            _ => None,
        }
    }

    /// Elements of `b` for a batch of `rows` samples (f64 elements for [`ResBuf::Sums`]).
    pub fn len_of(&self, b: ResBuf, rows: usize) -> usize {
        use ResBuf::*;
        let c = self.channels;
        let q = rows * self.positions();
        match b {
            Input | InputT | Z(_) | A1 | OutputT | Output | Cotangent | CotangentT | GradZ
            | GradA1 | GradInputT | GradInput => q * c,
            Col => q * c * TAPS,
            Weight(_) | GradWeight(_) => self.weight_len(),
            Gamma(_) | Beta(_) | GradGamma(_) | GradBeta(_) | Mean(_) | InvStd(_)
            | RunningMean(_) | RunningVar(_) => c,
            Sums => 2 * c,
        }
    }

    /// The geometry of both convolutions on a channel-major tensor of `rows` samples.
    pub fn conv_shape(&self, rows: usize) -> ConvShape {
        ConvShape::nchw(
            rows,
            self.channels,
            (self.h, self.w),
            (3, 3),
            (1, 1),
            (1, 1),
        )
        .expect("3×3 with padding 1 fits every positive size")
        .channel_major()
    }

    /// A channel-major tensor of `rows` samples as the batch-norm kernels see it: one NCHW
    /// "sample" of `C` channels and `rows·h·w` positions.
    pub fn bn_shape(&self, rows: usize) -> ImageBatch {
        ImageBatch::new(1, self.channels, 1, rows * self.positions(), Layout::Nchw)
            .expect("positive sizes")
    }

    /// The buffers the VJP reads from the forward pass (besides the parameters).
    pub fn taped(&self) -> [ResBuf; 8] {
        use ResBuf::*;
        [
            InputT,
            Z(1),
            A1,
            Z(2),
            Mean(1),
            InvStd(1),
            Mean(2),
            InvStd(2),
        ]
    }

    /// Both convolutions: `C → C`, `3×3`, stride 1, padding 1, on channel-major tensors.
    fn geom(&self, rows: usize) -> ConvGeom {
        ConvGeom {
            shape: self.conv_shape(rows),
            c_out: self.channels,
        }
    }

    /// `f(x)` for `rows` samples in train mode (batch statistics, running averages updated)
    /// or eval mode (running statistics), taping [`ResBlockLayout::taped`].
    pub fn forward(&self, rows: usize, train: bool) -> Vec<ResOp> {
        use ResBuf::*;
        let (c, p) = (self.channels, self.positions());
        let (g, bn) = (self.geom(rows), self.bn_shape(rows));
        let mut ops = vec![swap(Input, InputT, rows, c, p)];
        g.forward(InputT, 1, Z(1), &mut ops);
        ops.extend(bn_forward(bn, 1, train, A1, false));
        ops.push(ResOp::Conv(ConvOp::BiasAct {
            y: A1,
            b: Beta(1),
            n: 1,
            c,
            p: rows * p,
            act: RELU,
        }));
        g.forward(A1, 2, Z(2), &mut ops);
        ops.extend(bn_forward(bn, 2, train, OutputT, true));
        ops.push(swap(OutputT, Output, c, rows, p));
        ops
    }

    /// The VJP at the taped point of a forward pass in the same mode: `∂x` into
    /// [`ResBuf::GradInput`] (overwritten), the parameter gradients accumulated.
    pub fn backward(&self, rows: usize, train: bool) -> Vec<ResOp> {
        use ResBuf::*;
        let (c, p) = (self.channels, self.positions());
        let (g, bn) = (self.geom(rows), self.bn_shape(rows));
        let mut ops = vec![swap(Cotangent, CotangentT, rows, c, p)];
        ops.extend(bn_backward(bn, 2, train, CotangentT));
        g.backward(A1, 2, GradA1, &mut ops);
        ops.push(ResOp::Conv(ConvOp::ActGrad {
            g: GradA1,
            a: A1,
            len: rows * p * c,
            act: RELU,
        }));
        ops.extend(bn_backward(bn, 1, train, GradA1));
        g.backward(InputT, 1, GradInputT, &mut ops);
        ops.push(swap(GradInputT, GradInput, c, rows, p));
        ops
    }
}

impl ConvBnLayout for ResBlockLayout {
    fn len_of(&self, b: ResBuf, rows: usize) -> usize {
        ResBlockLayout::len_of(self, b, rows)
    }
    fn param_offset(&self, b: ResBuf) -> Option<usize> {
        ResBlockLayout::param_offset(self, b)
    }
    fn num_params(&self) -> usize {
        ResBlockLayout::num_params(self)
    }
    fn bn_options(&self) -> &BatchNormOptions {
        &self.bn
    }
    fn batch_norms(&self) -> usize {
        2
    }
    fn input_len(&self) -> usize {
        self.sample_len()
    }
    fn output_len(&self) -> usize {
        self.sample_len()
    }
    fn forward(&self, rows: usize, train: bool) -> Vec<ResOp> {
        ResBlockLayout::forward(self, rows, train)
    }
    fn backward(&self, rows: usize, train: bool) -> Vec<ResOp> {
        ResBlockLayout::backward(self, rows, train)
    }
    fn name(&self) -> &'static str {
        "residual block"
    }
}

//! The launch plan of Ott et al.'s convolutional fields on the device ([`ConvFieldLayout`]):
//! `simple_odenet` on `(1, d)` samples and `odenet` on `(c_in, h, w)` images, the three
//! convolutions `1×1 (c_in→C) → ReLU → k_h×k_w, padding (p_h, p_w) (C→C) → ReLU →
//! 1×1 (C→c_in)` of [`crate::nn::zoo::simple_odenet`] / [`crate::nn::zoo::odenet`], forward
//! and VJP, as cuBLAS SGEMMs and the kernels of `kernels/conv.cu` — decided here without
//! the driver and unit-tested against the CPU network in f64 (`tests/cuda_plan/conv.rs`).
//!
//! **Algorithm: im2col + SGEMM** (the issue allows cuDNN or an implicit GEMM; im2col is
//! chosen because every piece of it is testable without a GPU: the gather kernels as host
//! C++, the GEMMs by a reference executor).
//!
//! **Layouts.** The state (input, output, cotangent, input gradient) is the CPU
//! [`crate::Batch`]'s: `N` rows of one sample in PyTorch order, i.e. NCHW. Inside, the
//! hidden tensors are *channel-major* (CNHW): channel `c`, sample `n`, position `p` at
//! `c·Q + n·P + p` with `P = H·W`, `Q = N·P` — in cuBLAS's column-major terms a `Q × C`
//! matrix with leading dimension `Q`. Then every convolution is **one** GEMM over the whole
//! batch, and so is every weight gradient (its sum over samples and positions is the GEMM's
//! inner dimension `Q`):
//!
//! * `1×1`: `Y = X W` with `W` the PyTorch weight `[C_out, C_in]` read column-major as
//!   `C_in × C_out`; no im2col (the input is the GEMM operand).
//! * `k_h×k_w`: `Y = col(X) W` with the patch matrix `col(X)` (`Q × C·k_h·k_w`,
//!   `im2col_f32`) and `W` `[C, C, k_h, k_w]` read as `C·k_h·k_w × C`.
//! * VJP of `Y = A W`: `∂W += Aᵀ G`, `∂A = G Wᵀ`; through im2col, `∂X = col2im(∂col)`
//!   (`col2im_f32`, a gather); `∂b[c] += Σ_{n,p} G` (`channel_partial_sums_f32` +
//!   `add_channel_sums_f32`, deterministic); ReLU' by `act_grad_f32` of `nn.cu`.
//!
//! NCHW and CNHW coincide when `c_in = 1` (MNIST, `simple_odenet`); otherwise the input,
//! cotangent, output and input gradient pass through `swap_outer_f32` (the smallest tensors
//! of the field: `c_in` channels against `C` hidden ones).
//!
//! Parameters are one flat f32 buffer in the CPU [`crate::nn::NeuralField`]'s order,
//! PyTorch's `0.weight, 0.bias, 2.weight, 2.bias, 4.weight, 4.bias`
//! ([`ConvFieldLayout::param_views`]), so they move between the CPU and the GPU by copying
//! the flat vector.

mod ops;

pub use ops::{chunks_for, ConvBuf, ConvOp, ConvShape, MAX_CHUNKS, SUM_CHUNK};

use crate::cuda::plan::Gemm;
use crate::field::ParamView;

/// The shapes of a three-layer convolutional field and where its parameters sit in the flat
/// buffer: `1×1 (c_in→C) → ReLU → k_h×k_w, padding (p_h, p_w), stride 1 (C→C) → ReLU →
/// 1×1 (C→c_in)` on `(c_in, h, w)` samples (`h = 1` for sequences).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvFieldLayout {
    c_in: usize,
    h: usize,
    w: usize,
    channels: usize,
    kernel: (usize, usize),
    padding: (usize, usize),
    one_d: bool,
}

/// ReLU's activation code (`ODEFLOW_ACT_RELU`, [`super::plan::act_code`]).
const RELU: i32 = 2;

/// One GEMM of the plan: `op(A) op(B)` with `(buffer, leading dimension, transposed)`.
fn gemm(
    (m, n, k): (usize, usize, usize),
    (a, lda, transa): (ConvBuf, usize, bool),
    (b, ldb, transb): (ConvBuf, usize, bool),
    (c, ldc): (ConvBuf, usize),
    accumulate: bool,
) -> ConvOp {
    ConvOp::Gemm(Gemm {
        transa,
        transb,
        m,
        n,
        k,
        a,
        lda,
        b,
        ldb,
        c,
        ldc,
        accumulate,
    })
}

impl ConvFieldLayout {
    /// The general field; fails (with a message) for a zero size or a middle kernel that
    /// does not keep the spatial size (`k = 2p + 1` per axis).
    pub fn new(
        (c_in, h, w): (usize, usize, usize),
        channels: usize,
        kernel: (usize, usize),
        padding: (usize, usize),
        one_d: bool,
    ) -> Result<Self, String> {
        if [c_in, h, w, channels].contains(&0) {
            return Err(format!(
                "a convolutional field on ({c_in}, {h}, {w}) with {channels} channels: \
                 sizes must be positive"
            ));
        }
        if kernel.0 != 2 * padding.0 + 1 || kernel.1 != 2 * padding.1 + 1 || (one_d && h != 1) {
            return Err(format!(
                "kernel {kernel:?} with padding {padding:?} does not keep the size of \
                 ({c_in}, {h}, {w})"
            ));
        }
        Ok(Self {
            c_in,
            h,
            w,
            channels,
            kernel,
            padding,
            one_d,
        })
    }

    /// Ott et al.'s `simple_odenet` on `(1, d)`: kernel `1 × 3`, padding 1.
    pub fn simple_odenet(channels: usize, d: usize) -> Result<Self, String> {
        Self::new((1, 1, d), channels, (1, 3), (0, 1), true)
    }

    /// Ott et al.'s `odenet` on `(c_in, h, w)`: kernel `3 × 3`, padding 1.
    pub fn odenet(c_in: usize, h: usize, w: usize, channels: usize) -> Result<Self, String> {
        Self::new((c_in, h, w), channels, (3, 3), (1, 1), false)
    }

    /// Components of one sample `c_in·h·w`.
    pub fn sample_len(&self) -> usize {
        self.c_in * self.positions()
    }

    /// Spatial positions `P = h·w`.
    pub fn positions(&self) -> usize {
        self.h * self.w
    }

    /// State channels `c_in`.
    pub fn c_in(&self) -> usize {
        self.c_in
    }

    /// Hidden channels `C`.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// `(c_out, c_in, taps)` of layer `l`.
    fn dims(&self, l: usize) -> (usize, usize, usize) {
        let (c, ci) = (self.channels, self.c_in);
        match l {
            1 => (c, ci, 1),
            2 => (c, c, self.kernel.0 * self.kernel.1),
            3 => (ci, c, 1),
            _ => panic!("layer {l} of a three-layer field"),
        }
    }

    /// Offset of the weight of layer `l` (`1..=3`) in the parameter buffer.
    pub fn weight_offset(&self, l: usize) -> usize {
        (1..l)
            .map(|j| {
                let (o, i, k) = self.dims(j);
                o * i * k + o
            })
            .sum()
    }

    /// Offset of the bias of layer `l`, right after its weight.
    pub fn bias_offset(&self, l: usize) -> usize {
        let (o, i, k) = self.dims(l);
        self.weight_offset(l) + o * i * k
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.weight_offset(4)
    }

    /// The parameters by PyTorch name, offset and shape, as the CPU network's views.
    pub fn param_views(&self) -> Vec<ParamView> {
        let mut v = Vec::new();
        for l in 1..=3 {
            let (o, i, _) = self.dims(l);
            let k = if l == 2 { self.kernel } else { (1, 1) };
            let mut shape = vec![o, i];
            if !self.one_d {
                shape.push(k.0);
            }
            shape.push(k.1);
            let name = 2 * (l - 1);
            v.push(ParamView {
                name: format!("{name}.weight"),
                offset: self.weight_offset(l),
                shape,
            });
            v.push(ParamView {
                name: format!("{name}.bias"),
                offset: self.bias_offset(l),
                shape: vec![o],
            });
        }
        v
    }

    /// The middle convolution is `1×1` (no im2col).
    fn mid_pointwise(&self) -> bool {
        self.kernel == (1, 1)
    }

    /// The geometry of the middle convolution on the channel-major `a_1` of `rows` samples.
    pub fn mid_shape(&self, rows: usize) -> ConvShape {
        ConvShape::nchw(
            rows,
            self.channels,
            (self.h, self.w),
            self.kernel,
            (1, 1),
            self.padding,
        )
        .expect("checked by ConvFieldLayout::new")
        .channel_major()
    }

    /// The state needs swapping between NCHW and channel-major (`c_in > 1`).
    fn swaps(&self) -> bool {
        self.c_in > 1
    }

    /// The channel-major twin of a state buffer (`c_in > 1`), or the buffer itself.
    fn t(&self, nchw: ConvBuf, cnhw: ConvBuf) -> ConvBuf {
        if self.swaps() {
            cnhw
        } else {
            nchw
        }
    }

    /// The channel-major input the VJP reads: the tape keeps this buffer.
    pub fn taped_input(&self) -> ConvBuf {
        self.t(ConvBuf::Input, ConvBuf::InputT)
    }

    /// Elements of `b` for a batch of `rows` samples (f64 elements for
    /// [`ConvBuf::Partial`]).
    pub fn len_of(&self, b: ConvBuf, rows: usize) -> usize {
        let q = rows * self.positions();
        match b {
            ConvBuf::Input
            | ConvBuf::InputT
            | ConvBuf::OutputT
            | ConvBuf::Output
            | ConvBuf::Cotangent
            | ConvBuf::CotangentT
            | ConvBuf::GradInputT
            | ConvBuf::GradInput => q * self.c_in,
            ConvBuf::Act(_) | ConvBuf::Grad(_) => q * self.channels,
            ConvBuf::Col => q * self.channels * self.kernel.0 * self.kernel.1,
            ConvBuf::Weight(l) | ConvBuf::GradWeight(l) => {
                let (o, i, k) = self.dims(l);
                o * i * k
            }
            ConvBuf::Bias(l) | ConvBuf::GradBias(l) => self.dims(l).0,
            ConvBuf::Partial => self.c_in.max(self.channels) * chunks_for(q),
        }
    }

    /// Offset of a parameter (gradient) buffer in the flat parameter vector, `None` for
    /// the other buffers.
    pub fn param_offset(&self, b: ConvBuf) -> Option<usize> {
        match b {
            ConvBuf::Weight(l) | ConvBuf::GradWeight(l) => Some(self.weight_offset(l)),
            ConvBuf::Bias(l) | ConvBuf::GradBias(l) => Some(self.bias_offset(l)),
            _ => None,
        }
    }

    /// `∂b += Σ_{q} g[c, q]` over a channel-major `g` of `q` columns: two launches.
    fn bias_grad(g: ConvBuf, gb: ConvBuf, c: usize, q: usize, ops: &mut Vec<ConvOp>) {
        let chunks = chunks_for(q);
        ops.push(ConvOp::ChannelPartialSums {
            g,
            partial: ConvBuf::Partial,
            n: 1,
            c,
            p: q,
            chunks,
        });
        ops.push(ConvOp::AddChannelSums {
            partial: ConvBuf::Partial,
            gb,
            c,
            chunks,
        });
    }

    /// `f(y)` for `rows` samples:
    /// `a_1 = relu(X W_1 + b_1)`, `a_2 = relu(col(a_1) W_2 + b_2)`, `f = a_2 W_3 + b_3`
    /// (channel-major `Q × C` matrices, `Q = rows·h·w`), with the state swapped to and from
    /// NCHW when `c_in > 1`.
    pub fn forward(&self, rows: usize) -> Vec<ConvOp> {
        use ConvBuf::*;
        let (p, c, ci) = (self.positions(), self.channels, self.c_in);
        let q = rows * p;
        let taps = self.kernel.0 * self.kernel.1;
        let x = self.taped_input();
        let out = self.t(Output, OutputT);
        let mut ops = Vec::with_capacity(10);
        if self.swaps() {
            ops.push(ConvOp::SwapOuter {
                src: Input,
                dst: InputT,
                a: rows,
                b: ci,
                p,
            });
        }
        ops.push(gemm(
            (q, c, ci),
            (x, q, false),
            (Weight(1), ci, false),
            (Act(1), q),
            false,
        ));
        let bias_act = |y, l, c, act| ConvOp::BiasAct {
            y,
            b: Bias(l),
            n: 1,
            c,
            p: q,
            act,
        };
        ops.push(bias_act(Act(1), 1, c, RELU));
        let patches = if self.mid_pointwise() {
            Act(1)
        } else {
            ops.push(ConvOp::Im2col {
                x: Act(1),
                col: Col,
                shape: self.mid_shape(rows),
            });
            Col
        };
        ops.push(gemm(
            (q, c, c * taps),
            (patches, q, false),
            (Weight(2), c * taps, false),
            (Act(2), q),
            false,
        ));
        ops.push(bias_act(Act(2), 2, c, RELU));
        ops.push(gemm(
            (q, ci, c),
            (Act(2), q, false),
            (Weight(3), c, false),
            (out, q),
            false,
        ));
        ops.push(bias_act(out, 3, ci, 0));
        if self.swaps() {
            ops.push(ConvOp::SwapOuter {
                src: OutputT,
                dst: Output,
                a: ci,
                b: rows,
                p,
            });
        }
        ops
    }

    /// The VJP at the taped point (`X` channel-major, `a_1`, `a_2`): from `G_3 = v` down,
    /// per layer `∂b_l += Σ_q G_l`, `∂W_l += A_{l−1}ᵀ G_l` (`A_1 = col(a_1)` recomputed by
    /// im2col), `G_{l−1} = G_l W_lᵀ` (through `col2im` for the middle layer) and
    /// `G ← G ⊙ relu'` for the hidden layers.
    pub fn backward(&self, rows: usize) -> Vec<ConvOp> {
        use ConvBuf::*;
        let (p, c, ci) = (self.positions(), self.channels, self.c_in);
        let q = rows * p;
        let ct = c * self.kernel.0 * self.kernel.1;
        let x = self.taped_input();
        let g3 = self.t(Cotangent, CotangentT);
        let gx = self.t(GradInput, GradInputT);
        let mut ops = Vec::with_capacity(20);
        if self.swaps() {
            ops.push(ConvOp::SwapOuter {
                src: Cotangent,
                dst: CotangentT,
                a: rows,
                b: ci,
                p,
            });
        }
        // Layer 3 (1×1, C → c_in).
        Self::bias_grad(g3, GradBias(3), ci, q, &mut ops);
        ops.push(gemm(
            (c, ci, q),
            (Act(2), q, true),
            (g3, q, false),
            (GradWeight(3), c),
            true,
        ));
        ops.push(gemm(
            (q, c, ci),
            (g3, q, false),
            (Weight(3), c, true),
            (Grad(2), q),
            false,
        ));
        // Layer 2 (k_h×k_w, C → C).
        ops.push(ConvOp::ActGrad {
            g: Grad(2),
            a: Act(2),
            len: q * c,
            act: RELU,
        });
        Self::bias_grad(Grad(2), GradBias(2), c, q, &mut ops);
        let pointwise = self.mid_pointwise();
        let patches = if pointwise {
            Act(1)
        } else {
            ops.push(ConvOp::Im2col {
                x: Act(1),
                col: Col,
                shape: self.mid_shape(rows),
            });
            Col
        };
        ops.push(gemm(
            (ct, c, q),
            (patches, q, true),
            (Grad(2), q, false),
            (GradWeight(2), ct),
            true,
        ));
        // The patch gradient overwrites the patches (read only by the GEMM above).
        let gpatches = if pointwise { Grad(1) } else { Col };
        ops.push(gemm(
            (q, ct, c),
            (Grad(2), q, false),
            (Weight(2), ct, true),
            (gpatches, q),
            false,
        ));
        if !pointwise {
            ops.push(ConvOp::Col2im {
                col: Col,
                x: Grad(1),
                shape: self.mid_shape(rows),
                accumulate: false,
            });
        }
        // Layer 1 (1×1, c_in → C).
        ops.push(ConvOp::ActGrad {
            g: Grad(1),
            a: Act(1),
            len: q * c,
            act: RELU,
        });
        Self::bias_grad(Grad(1), GradBias(1), c, q, &mut ops);
        ops.push(gemm(
            (ci, c, q),
            (x, q, true),
            (Grad(1), q, false),
            (GradWeight(1), ci),
            true,
        ));
        ops.push(gemm(
            (q, ci, c),
            (Grad(1), q, false),
            (Weight(1), ci, true),
            (gx, q),
            false,
        ));
        if self.swaps() {
            ops.push(ConvOp::SwapOuter {
                src: GradInputT,
                dst: GradInput,
                a: ci,
                b: rows,
                p,
            });
        }
        ops
    }
}

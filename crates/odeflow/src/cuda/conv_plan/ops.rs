//! The vocabulary of the convolutional fields' launch plans: the buffers ([`ConvBuf`]), the
//! operations ([`ConvOp`]) and the geometry argument of the patch kernels ([`ConvShape`]).

use crate::cuda::plan::Gemm;

/// Terms per partial sum of the bias gradient (one thread sums one chunk).
pub const SUM_CHUNK: usize = 256;

/// Most chunks per channel of one bias-gradient launch.
pub const MAX_CHUNKS: usize = 4096;

/// Chunks of a per-channel sum of `m` terms: `⌈m / SUM_CHUNK⌉`, between 1 and
/// [`MAX_CHUNKS`].
pub fn chunks_for(m: usize) -> usize {
    m.div_ceil(SUM_CHUNK).clamp(1, MAX_CHUNKS)
}

/// The geometry of one `im2col_f32` / `col2im_f32` launch (`struct ConvShape` of
/// `kernels/conv.cu`, passed by value): input `(n, c, h, w)` with strides `sn`, `sc` for the
/// two outer axes (`w` contiguous), kernel `kh × kw`, stride `(sh, sw)`, zero padding
/// `(ph, pw)`, output `ho × wo`. The patch matrix is row-major `(c·kh·kw) × (n·ho·wo)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Stride between samples.
    pub sn: i64,
    /// Stride between channels.
    pub sc: i64,
    /// Samples.
    pub n: i32,
    /// Channels.
    pub c: i32,
    /// Input height.
    pub h: i32,
    /// Input width.
    pub w: i32,
    /// Kernel height.
    pub kh: i32,
    /// Kernel width.
    pub kw: i32,
    /// Vertical stride.
    pub sh: i32,
    /// Horizontal stride.
    pub sw: i32,
    /// Vertical padding.
    pub ph: i32,
    /// Horizontal padding.
    pub pw: i32,
    /// Output height `⌊(h + 2ph − kh)/sh⌋ + 1`.
    pub ho: i32,
    /// Output width.
    pub wo: i32,
}

impl ConvShape {
    /// An NCHW input (`sn = c·h·w`, `sc = h·w`) with the output size of the convolution;
    /// `None` when the kernel does not fit the padded input or a size is zero.
    pub fn nchw(
        n: usize,
        c: usize,
        (h, w): (usize, usize),
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        (ph, pw): (usize, usize),
    ) -> Option<Self> {
        let out = |l: usize, k: usize, s: usize, p: usize| {
            (l > 0 && k > 0 && s > 0 && l + 2 * p >= k).then(|| (l + 2 * p - k) / s + 1)
        };
        let (ho, wo) = (out(h, kh, sh, ph)?, out(w, kw, sw, pw)?);
        if n == 0 || c == 0 {
            return None;
        }
        let i = |v: usize| v as i32;
        Some(Self {
            sn: (c * h * w) as i64,
            sc: (h * w) as i64,
            n: i(n),
            c: i(c),
            h: i(h),
            w: i(w),
            kh: i(kh),
            kw: i(kw),
            sh: i(sh),
            sw: i(sw),
            ph: i(ph),
            pw: i(pw),
            ho: i(ho),
            wo: i(wo),
        })
    }

    /// The same geometry on a channel-major (CNHW) input: `sn = h·w`, `sc = n·h·w`.
    pub fn channel_major(mut self) -> Self {
        let p = i64::from(self.h) * i64::from(self.w);
        self.sn = p;
        self.sc = p * i64::from(self.n);
        self
    }

    /// Elements of the input `n·c·h·w`.
    pub fn input_len(&self) -> usize {
        [self.n, self.c, self.h, self.w]
            .iter()
            .map(|&v| v as usize)
            .product()
    }

    /// Elements of the patch matrix `c·kh·kw · n·ho·wo`.
    pub fn col_len(&self) -> usize {
        [self.c, self.kh, self.kw, self.n, self.ho, self.wo]
            .iter()
            .map(|&v| v as usize)
            .product()
    }
}

/// A buffer of a convolutional field's plan. Layers are `1..=3`; hidden tensors are
/// channel-major (CNHW), the state NCHW (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvBuf {
    /// The input state `y` (NCHW); in a VJP with `c_in = 1`, the taped copy of it.
    Input,
    /// `y` channel-major (only when `c_in > 1`; the tape keeps it for the VJP).
    InputT,
    /// `a_l` (`l = 1, 2`): the hidden activation after its ReLU (scratch, or the tape).
    Act(usize),
    /// The patch matrix of the middle convolution, then (in the VJP) its gradient.
    Col,
    /// `f(y)` channel-major before the swap to NCHW (only when `c_in > 1`).
    OutputT,
    /// `f(y)` (NCHW).
    Output,
    /// The cotangent `v` (NCHW, read only).
    Cotangent,
    /// `v` channel-major (only when `c_in > 1`).
    CotangentT,
    /// `∂L/∂a_l` (`l = 1, 2`, channel-major scratch).
    Grad(usize),
    /// `vᵀ ∂f/∂y` channel-major before the swap (only when `c_in > 1`).
    GradInputT,
    /// `vᵀ ∂f/∂y` (NCHW, overwritten).
    GradInput,
    /// The weight of layer `l` inside the parameter buffer.
    Weight(usize),
    /// The bias of layer `l` inside the parameter buffer.
    Bias(usize),
    /// `∂L/∂W_l` inside the parameter gradient (accumulated).
    GradWeight(usize),
    /// `∂L/∂b_l` inside the parameter gradient (accumulated).
    GradBias(usize),
    /// The partial sums of the bias gradients (f64 scratch).
    Partial,
}

/// One step of a convolutional field's plan. The buffers are [`ConvBuf`]s by default; the
/// residual block's plan ([`crate::cuda::res_block_plan`]) names its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConvOp<B = ConvBuf> {
    /// A cuBLAS SGEMM ([`Gemm`]; operands may be offsets into the parameter buffers).
    Gemm(Gemm<B>),
    /// `swap_outer_f32`: `dst[j, i, q] ← src[i, j, q]` for `src` of `a × b × p`.
    SwapOuter {
        /// Source.
        src: B,
        /// Destination (overwritten).
        dst: B,
        /// Outer size of `src`.
        a: usize,
        /// Middle size of `src`.
        b: usize,
        /// Inner (contiguous) size.
        p: usize,
    },
    /// `im2col_f32`: `col ← im2col(x)`.
    Im2col {
        /// Input tensor.
        x: B,
        /// Patch matrix (overwritten).
        col: B,
        /// Geometry.
        shape: ConvShape,
    },
    /// `col2im_f32`: `x ← col2im(col)` (`+=` when `accumulate`).
    Col2im {
        /// Patch gradient.
        col: B,
        /// Input gradient.
        x: B,
        /// Geometry.
        shape: ConvShape,
        /// Add to `x` instead of overwriting it.
        accumulate: bool,
    },
    /// `bias_act_nchw_f32`: `y[n, c, p] ← σ(y[n, c, p] + b[c])`.
    BiasAct {
        /// Updated in place.
        y: B,
        /// Bias of `c`.
        b: B,
        /// Outer size.
        n: usize,
        /// Channels.
        c: usize,
        /// Inner size.
        p: usize,
        /// Activation code ([`crate::cuda::plan::act_code`]).
        act: i32,
    },
    /// `act_grad_f32` (`nn.cu`): `g ← g ⊙ σ'(z)` through the saved `a = σ(z)`.
    ActGrad {
        /// Updated in place.
        g: B,
        /// The saved activation.
        a: B,
        /// Elements.
        len: usize,
        /// Activation code.
        act: i32,
    },
    /// `channel_partial_sums_f32`: the per-chunk sums of `g[n, c, p]` per channel.
    ChannelPartialSums {
        /// The `n × c × p` tensor.
        g: B,
        /// `c × chunks` partial sums (f64, overwritten).
        partial: B,
        /// Outer size.
        n: usize,
        /// Channels.
        c: usize,
        /// Inner size.
        p: usize,
        /// Chunks per channel ([`chunks_for`]`(n·p)`).
        chunks: usize,
    },
    /// `add_channel_sums_f32`: `gb[c] += Σ_k partial[c, k]`.
    AddChannelSums {
        /// The partial sums.
        partial: B,
        /// The bias gradient (accumulated).
        gb: B,
        /// Channels.
        c: usize,
        /// Chunks per channel.
        chunks: usize,
    },
}

impl<B: Copy> ConvOp<B> {
    /// The buffers the operation names (its launcher binds exactly these).
    pub fn buffers(&self) -> Vec<B> {
        match *self {
            ConvOp::Gemm(g) => vec![g.a, g.b, g.c],
            ConvOp::SwapOuter { src, dst, .. } => vec![src, dst],
            ConvOp::Im2col { x, col, .. } => vec![x, col],
            ConvOp::Col2im { col, x, .. } => vec![col, x],
            ConvOp::BiasAct { y, b, .. } => vec![y, b],
            ConvOp::ActGrad { g, a, .. } => vec![g, a],
            ConvOp::ChannelPartialSums { g, partial, .. } => vec![g, partial],
            ConvOp::AddChannelSums { partial, gb, .. } => vec![partial, gb],
        }
    }
}

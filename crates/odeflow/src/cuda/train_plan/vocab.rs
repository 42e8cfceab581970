//! The vocabulary of a training iteration's launch plan: its buffers ([`Buf`]), offsets
//! into them ([`At`]) and launches ([`Launch`]).

use crate::cuda::conv_plan::ConvOp;
use crate::cuda::plan::Gemm;
use crate::cuda::res_block_plan::{ResBuf, ResOp};

/// A device buffer of one training iteration (f32 unless said otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Buf {
    /// The input batch `x` (`rows × input`), copied in before each replay.
    Input,
    /// The labels (`rows`, i32), copied in before each replay (cross-entropy).
    Labels,
    /// The regression targets (`rows × dim`), copied in before each replay (mean squared
    /// error).
    Target,
    /// The learning rate (one f64), copied in before each replay.
    Lr,
    /// The parameters `[field | head]`.
    Params,
    /// Their gradient.
    GradParams,
    /// The field's parameter gradient of one stage of the adjoint's backward solve
    /// (`Aᵢᵀ∂f/∂θ`, the field's parameters only; scratch).
    GradStage,
    /// Adam's first moment, or SGD's momentum buffer.
    AdamM,
    /// Adam's second moment (unused by SGD).
    AdamV,
    /// The optimizer's step count `t` (one u64, incremented on the device by
    /// [`Launch::AdamTick`]).
    AdamStep,
    /// `yₙ`, `n = 0..=N` (`rows × dim`); `State(n mod 2)` for the memory-free gradients.
    State(usize),
    /// The stage input `Yᵢ` of step `n`, `i ≥ 1` (stage 0 reads `yₙ`).
    StageIn(usize, usize),
    /// The hidden activation `a_l` of the field at stage `(n, i)`: the tape.
    Act(usize, usize, usize),
    /// The stage derivative `kᵢ` (reused by every step).
    K(usize),
    /// The logits (`rows × classes`).
    Logits,
    /// `∂L/∂logits`.
    GradLogits,
    /// `λ = ∂L/∂yₙ` (`rows × dim`).
    Lambda,
    /// `k̄` of the stage being differentiated.
    KBar,
    /// `Ȳᵢ` (reused by every step).
    YBar(usize),
    /// `∂L/∂a_l` inside one field VJP (scratch).
    Hidden(usize),
    /// `rows` ones (column sums by GEMM).
    Ones,
    /// `rows × dim` zeros (the base of `k̄`'s fused sum).
    Zeros,
    /// The mean loss (one f64).
    Loss,
    /// The number of correct predictions (one u64).
    Correct,
    /// `first[n]`: the first non-finite index of `yₙ₊₁`, or `len` (u64, one per step), then
    /// one per backward step of the memory-free gradients (the rebuilt `x̃ₙ`, or the
    /// adjoint `a`).
    FirstNonFinite,
    /// A convolutional field's channel-major stage input at `(n, i)` (`c_in > 1`; the tape).
    InputT(usize, usize),
    /// A convolutional field's patch matrix, then its gradient (scratch).
    Col,
    /// A convolutional field's channel-major output before its swap (`c_in > 1`, scratch).
    OutputT,
    /// `k̄` channel-major (`c_in > 1`, scratch).
    KBarT,
    /// `Ȳ` channel-major before its swap (`c_in > 1`, scratch).
    YBarT,
    /// The partial sums of a convolutional field's bias gradients, or a batch norm's VJP
    /// sums `[Σ ∂y, Σ ∂y ⊙ x̂]` (f64 scratch).
    Partial,
    /// TinyResNet's body: every layer's running statistics `[mean₁, var₁, mean₂, var₂]`
    /// (`4C` per layer; kept across iterations).
    Stats,
    /// TinyResNet's stem: its running statistics `[mean, var]` (`2C`; kept).
    StemStats,
    /// Where an evaluation that must not move the running statistics writes them (`4C`).
    Discard,
    /// A buffer of TinyResNet's stem plan (its tape and scratch; its own, not shared).
    Stem(ResBuf),
    /// The `k`-th taped buffer ([`crate::cuda::res_block_plan::ResBlockLayout::taped`]) of
    /// a body evaluation at stage `i` from `State(n)` (slot 0 for the memory-free gradient).
    BodyTape(usize, usize, usize),
    /// A scratch buffer of the body's residual blocks (shared by every evaluation).
    BodyScratch(ResBuf),
    /// TinyResNet's pooled features (the head's input).
    Pooled,
    /// Their gradient (the head's input gradient).
    GradPooled,
    /// The parameters as the iteration found them, before the optimizer's update (what a
    /// training hook measures, as on the CPU).
    ParamsBefore,
}

/// An element offset into a buffer (parameters sit inside [`Buf::Params`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct At {
    /// The buffer.
    pub buf: Buf,
    /// Offset in elements.
    pub offset: usize,
}

impl From<Buf> for At {
    fn from(buf: Buf) -> Self {
        Self { buf, offset: 0 }
    }
}

/// One launch (or stream-ordered memset) of the iteration.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    /// `buf ← 0` (`cuMemsetD8Async`, capturable).
    Zero(Buf),
    /// `fill_u64`: the first `len` u64 of `buf` ← `value`.
    Fill {
        /// The buffer.
        buf: Buf,
        /// Elements.
        len: usize,
        /// The value.
        value: u64,
    },
    /// `pad_cols_f32`: `dst ← [src, 0]` per row.
    Pad {
        /// Rows.
        rows: usize,
        /// Columns of `src`.
        cols: usize,
        /// Zero columns appended.
        extra: usize,
        /// Source.
        src: Buf,
        /// Destination.
        dst: Buf,
    },
    /// `lincomb_f32`: `out ← base + Σ c·term` (at most `MAX_TERMS` terms).
    Lincomb {
        /// Components.
        len: usize,
        /// Output.
        out: Buf,
        /// Base (may equal `out`).
        base: Buf,
        /// Terms and coefficients.
        terms: Vec<(Buf, f32)>,
    },
    /// A cuBLAS SGEMM on the planned buffers (see [`Gemm`] for the operands).
    Gemm {
        /// Shapes, transposes and `β` (its `Mat` operands are replaced by `a`, `b`, `c`).
        g: Gemm,
        /// `A`.
        a: At,
        /// `B`.
        b: At,
        /// `C`.
        c: At,
    },
    /// `bias_act_f32`.
    BiasAct {
        /// The GEMM output, in place.
        y: At,
        /// The bias.
        b: At,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Activation code.
        act: i32,
    },
    /// `act_grad_f32`.
    ActGrad {
        /// The gradient, in place.
        g: At,
        /// The saved activation.
        a: At,
        /// Components.
        len: usize,
        /// Activation code.
        act: i32,
    },
    /// `first_non_finite_f32` of `x` into `first[slot]` (which starts at `len`).
    FirstNonFinite {
        /// The state.
        x: Buf,
        /// Components.
        len: usize,
        /// Index into [`Buf::FirstNonFinite`].
        slot: usize,
    },
    /// `softmax_ce_f32` of [`Buf::Logits`] against [`Buf::Labels`] into [`Buf::GradLogits`],
    /// [`Buf::Loss`] and [`Buf::Correct`].
    SoftmaxCe {
        /// Rows.
        rows: usize,
        /// Classes.
        classes: usize,
    },
    /// `mse_f32` of the final state `x` against [`Buf::Target`]: `λ ← 2(x − target)/len`
    /// into [`Buf::Lambda`] and the mean squared error added to [`Buf::Loss`] (zeroed at
    /// the reset).
    Mse {
        /// The final state.
        x: Buf,
        /// Components.
        len: usize,
    },
    /// `adam_tick`: [`Buf::AdamStep`] += 1 (one thread), right before [`Launch::Adam`].
    AdamTick,
    /// The optimizer's update on [`Buf::Params`] with [`Buf::GradParams`], the moments, the
    /// step count [`Buf::AdamStep`] and [`Buf::Lr`]: `adam_graph_f32`, or `sgd_graph_f32`
    /// for SGD with momentum (the executor's settings say which).
    Adam {
        /// Parameters.
        n: usize,
    },
    /// One operation of a TinyResNet convolution + batch-norm plan (the stem's, or a body
    /// layer's), its buffers bound by [`super::TrainPlan::res_at`].
    Res {
        /// The operation.
        op: ResOp,
        /// Whose plan it is.
        piece: Piece,
    },
    /// `avgpool_{fwd,bwd}_f32` of TinyResNet's head: the final state into [`Buf::Pooled`],
    /// or (`forward: false`) [`Buf::GradPooled`] into [`Buf::Lambda`].
    Pool {
        /// Forward or its VJP.
        forward: bool,
    },
    /// One operation of a convolutional field's plan ([`crate::cuda::conv_plan`]) at stage
    /// `i` of step `n`, its buffers bound by [`super::TrainPlan::conv_at`].
    Conv {
        /// The operation.
        op: ConvOp,
        /// The step.
        n: usize,
        /// The stage.
        i: usize,
    },
}

/// Whose convolution + batch-norm plan a [`Launch::Res`] issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// TinyResNet's stem.
    Stem,
    /// Layer `layer` of the body at stage `i` of a step from `State(n)`.
    Layer {
        /// The state buffer's index (it names the tape slot).
        n: usize,
        /// The stage.
        i: usize,
        /// The layer evaluated.
        layer: usize,
        /// Whether it binds the layer's running statistics (the first evaluation of the
        /// layer in the forward solve) or the discard buffer.
        stats: bool,
    },
}

/// The buffers of [`Launch::Adam`], in the order of `adam_graph_f32`'s pointer arguments.
pub const ADAM_BUFFERS: [Buf; 6] = [
    Buf::Params,
    Buf::GradParams,
    Buf::AdamM,
    Buf::AdamV,
    Buf::Lr,
    Buf::AdamStep,
];

/// The buffers one launch names (read or written).
pub fn launch_buffers(plan: &super::TrainPlan, l: &Launch) -> Vec<Buf> {
    match l {
        Launch::Zero(b) | Launch::Fill { buf: b, .. } => vec![*b],
        Launch::Pad { src, dst, .. } => vec![*src, *dst],
        Launch::Lincomb {
            out, base, terms, ..
        } => {
            let mut v = vec![*out, *base];
            v.extend(terms.iter().map(|t| t.0));
            v
        }
        Launch::Gemm { a, b, c, .. } => vec![a.buf, b.buf, c.buf],
        Launch::BiasAct { y, b, .. } => vec![y.buf, b.buf],
        Launch::ActGrad { g, a, .. } => vec![g.buf, a.buf],
        Launch::FirstNonFinite { x, .. } => vec![*x, Buf::FirstNonFinite],
        Launch::SoftmaxCe { .. } => vec![
            Buf::Logits,
            Buf::Labels,
            Buf::GradLogits,
            Buf::Loss,
            Buf::Correct,
        ],
        Launch::Mse { x, .. } => vec![*x, Buf::Target, Buf::Lambda, Buf::Loss],
        Launch::AdamTick => vec![Buf::AdamStep],
        Launch::Adam { .. } => ADAM_BUFFERS.to_vec(),
        Launch::Res { op, piece } => op
            .buffers()
            .into_iter()
            .map(|b| plan.res_at(b, *piece).buf)
            .collect(),
        Launch::Pool { forward: true } => vec![plan.final_state(), Buf::Pooled],
        Launch::Pool { forward: false } => vec![Buf::GradPooled, Buf::Lambda],
        Launch::Conv { op, n, i } => op
            .buffers()
            .into_iter()
            .map(|b| plan.conv_at(b, *n, *i).buf)
            .collect(),
    }
}

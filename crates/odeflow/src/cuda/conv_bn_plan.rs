//! What the plans of TinyResNet's convolution + batch-norm pieces share (Sander, Ablin,
//! Peyré, NeurIPS 2022): the residual block ([`super::res_block_plan`]) and the stem
//! ([`super::stem_plan`]) are sequences of [`ResOp`] over [`ResBuf`] built from the
//! operations below, described to their one device executor by [`ConvBnLayout`].
//!
//! A convolution is one GEMM on channel-major tensors: `Z = col(X) W` with the patch matrix
//! `col(X)` (`q × c_in·kh·kw`, `q = n·ho·wo` output positions) and the weight `W`
//! (`[c_out, c_in, kh, kw]` row-major, i.e. `c_in·kh·kw × c_out` column-major); its VJP is
//! `∂W += col(X)ᵀ ∂Z`, `∂X = col2im(∂Z Wᵀ)`.

use super::conv_plan::{ConvOp, ConvShape};
use super::norm_plan::{bn_backward_plan, bn_forward_plan, ImageBatch, NormLaunch, NormOp};
use super::plan::Gemm;
use super::res_block_plan::{NormStep, ResBuf, ResOp};
use crate::nn::BatchNormOptions;

/// The shapes and parameter layout of a convolution + batch-norm plan, as its executor
/// ([`super::res_block::CudaConvBn`]) and the CPU tests need them.
pub trait ConvBnLayout {
    /// Elements of `b` for a batch of `rows` samples (0: not used by this plan; f64
    /// elements for [`ResBuf::Sums`]).
    fn len_of(&self, b: ResBuf, rows: usize) -> usize;
    /// Offset of a parameter (gradient) buffer in the flat vector, `None` for the others.
    fn param_offset(&self, b: ResBuf) -> Option<usize>;
    /// Number of parameters.
    fn num_params(&self) -> usize;
    /// The batch norms' `ε` and momentum.
    fn bn_options(&self) -> &BatchNormOptions;
    /// Number of batch norms (numbered `1..=batch_norms()`).
    fn batch_norms(&self) -> usize;
    /// Components of one input sample.
    fn input_len(&self) -> usize;
    /// Components of one output sample.
    fn output_len(&self) -> usize;
    /// The forward pass in train or eval mode, taping what the VJP reads.
    fn forward(&self, rows: usize, train: bool) -> Vec<ResOp>;
    /// The VJP at the taped point: `∂x` into [`ResBuf::GradInput`], parameter gradients
    /// accumulated.
    fn backward(&self, rows: usize, train: bool) -> Vec<ResOp>;
    /// A short name for messages ("residual block", "stem").
    fn name(&self) -> &'static str;
}

/// One convolution of a plan: its channel-major input geometry and output channels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ConvGeom {
    /// im2col's geometry (channel-major input).
    pub shape: ConvShape,
    /// Output channels.
    pub c_out: usize,
}

impl ConvGeom {
    /// Output positions `q = n·ho·wo`.
    fn q(&self) -> usize {
        [self.shape.n, self.shape.ho, self.shape.wo]
            .iter()
            .map(|&v| v as usize)
            .product()
    }

    /// Rows of `W`: `c_in·kh·kw`.
    fn k(&self) -> usize {
        [self.shape.c, self.shape.kh, self.shape.kw]
            .iter()
            .map(|&v| v as usize)
            .product()
    }

    /// `z ← col(x) W_l` after `im2col` into [`ResBuf::Col`].
    pub fn forward(&self, x: ResBuf, l: usize, z: ResBuf, ops: &mut Vec<ResOp>) {
        let (q, k) = (self.q(), self.k());
        ops.push(ResOp::Conv(ConvOp::Im2col {
            x,
            col: ResBuf::Col,
            shape: self.shape,
        }));
        ops.push(ResOp::Conv(ConvOp::Gemm(Gemm {
            transa: false,
            transb: false,
            m: q,
            n: self.c_out,
            k,
            a: ResBuf::Col,
            lda: q,
            b: ResBuf::Weight(l),
            ldb: k,
            c: z,
            ldc: q,
            accumulate: false,
        })));
    }

    /// The VJP from `∂Z` ([`ResBuf::GradZ`]): `∂W_l += col(x)ᵀ ∂Z`, `gx ← col2im(∂Z W_lᵀ)`.
    pub fn backward(&self, x: ResBuf, l: usize, gx: ResBuf, ops: &mut Vec<ResOp>) {
        use ResBuf::*;
        let (q, k, c) = (self.q(), self.k(), self.c_out);
        ops.push(ResOp::Conv(ConvOp::Im2col {
            x,
            col: Col,
            shape: self.shape,
        }));
        ops.push(ResOp::Conv(ConvOp::Gemm(Gemm {
            transa: true,
            transb: false,
            m: k,
            n: c,
            k: q,
            a: Col,
            lda: q,
            b: GradZ,
            ldb: q,
            c: GradWeight(l),
            ldc: k,
            accumulate: true,
        })));
        // The patch gradient overwrites the patches (read only by the GEMM above).
        ops.push(ResOp::Conv(ConvOp::Gemm(Gemm {
            transa: false,
            transb: true,
            m: q,
            n: k,
            k: c,
            a: GradZ,
            lda: q,
            b: Weight(l),
            ldb: k,
            c: Col,
            ldc: q,
            accumulate: false,
        })));
        ops.push(ResOp::Conv(ConvOp::Col2im {
            col: Col,
            x: gx,
            shape: self.shape,
            accumulate: false,
        }));
    }
}

/// `dst[b][a][p] ← src[a][b][p]` (NCHW ↔ CNHW).
pub(super) fn swap(src: ResBuf, dst: ResBuf, a: usize, b: usize, p: usize) -> ResOp {
    ResOp::Conv(ConvOp::SwapOuter { src, dst, a, b, p })
}

fn norm(launch: NormLaunch, bn: usize, shape: ImageBatch) -> NormStep {
    NormStep {
        launch,
        bn,
        shape,
        x: ResBuf::Z(bn),
        gy: None,
        out: None,
        beta: false,
    }
}

/// Batch norm `bn` of `Z(bn)` (channel-major, seen by the kernels as `shape`) forward into
/// `out` (with `β` when `beta`).
pub(super) fn bn_forward(
    shape: ImageBatch,
    bn: usize,
    train: bool,
    out: ResBuf,
    beta: bool,
) -> Vec<ResOp> {
    bn_forward_plan(&shape, train)
        .into_iter()
        .map(|launch| {
            let mut s = norm(launch, bn, shape);
            if launch.op == NormOp::Normalize {
                (s.out, s.beta) = (Some(out), beta);
            }
            ResOp::Norm(s)
        })
        .collect()
}

/// Batch norm `bn`'s VJP from `gy` into [`ResBuf::GradZ`].
pub(super) fn bn_backward(shape: ImageBatch, bn: usize, train: bool, gy: ResBuf) -> Vec<ResOp> {
    bn_backward_plan(&shape, train, true)
        .into_iter()
        .map(|launch| {
            let mut s = norm(launch, bn, shape);
            s.gy = Some(gy);
            if matches!(launch.op, NormOp::BackwardDx { .. }) {
                s.out = Some(ResBuf::GradZ);
            }
            ResOp::Norm(s)
        })
        .collect()
}

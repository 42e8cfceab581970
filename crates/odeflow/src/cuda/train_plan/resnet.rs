//! TinyResNet's part of a training iteration's plan (Sander, Ablin, Peyré, NeurIPS 2022;
//! [`FieldShape::TinyResNet`]): the stem before the body's solve, the body's evaluations,
//! and the head's average pooling — so that the whole iteration, stem to optimizer, is one
//! captured CUDA graph as for the other classifiers.
//!
//! ```text
//! reset      as for every plan; θ_before ← θ (what a training hook measures)
//! stem       y₀ = ReLU(BN(W ⋆ x))                      (the stem's plan, train mode)
//! body       the solve of any explicit tableau; the evaluation at time t runs layer
//!            n = round(t·N)'s residual block (the block's plan, train mode); the first
//!            evaluation of each layer in the forward solve moves its running statistics,
//!            every other one writes them to a discard buffer (the CPU field's rule)
//! head       pooled = avgpool(y_N); logits = pooled Wᵀ + b; cross-entropy; its VJP;
//!            λ = avgpool's VJP of ∂L/∂pooled
//! backward   backprop or reversible through the body (the block's VJP at the evaluation's
//!            tape; the reversible method's reverse and recomputed evaluations discard
//!            their statistics), then the stem's VJP at λ = ∂L/∂y₀
//! update     Adam or SGD with momentum on [stem | body | head]
//! ```
//!
//! Every buffer of a block's plan is bound by [`TrainPlan::res_at`]: the parameters and
//! their gradient are offsets into the iteration's flat vectors, the running statistics are
//! the layer's slice of [`Buf::Stats`] (or [`Buf::Discard`]), the taped buffers are the
//! evaluation's [`Buf::BodyTape`] (one slot per stage of a step, per step for `backprop`),
//! and the rest is shared scratch.

use super::{params, At, Buf, FieldPlan, Launch, Piece, TrainPlan};
use crate::cuda::conv_bn_plan::ConvBnLayout;
use crate::cuda::depth_field::Place;
use crate::cuda::norm_plan::{ImageBatch, Layout};
use crate::cuda::res_block_plan::ResBuf;
use crate::nn::BatchNormOptions;

/// Pooled features per sample of TinyResNet's head, or `None` for another field.
pub(super) fn pooled_len(field: &FieldPlan) -> Option<usize> {
    match field {
        FieldPlan::Depth { body, pool, .. } => {
            let (h, w) = body.block().hw();
            Some(body.block().channels() * (h / pool) * (w / pool))
        }
        _ => None,
    }
}

impl TrainPlan {
    /// Whether this is TinyResNet's plan.
    pub(super) fn is_tiny_resnet(&self) -> bool {
        matches!(self.field, FieldPlan::Depth { .. })
    }

    /// The buffer of the final state `y_N`.
    pub fn final_state(&self) -> Buf {
        self.state(self.num_steps())
    }

    /// The shape of the final state and the pooling window of TinyResNet's head (`None`
    /// for another plan).
    pub fn pool_shape(&self) -> Option<(ImageBatch, usize)> {
        let FieldPlan::Depth { body, pool, .. } = &self.field else {
            return None;
        };
        let (h, w) = body.block().hw();
        let c = body.block().channels();
        let shape = ImageBatch {
            batch: self.shape.rows,
            channels: c,
            height: h,
            width: w,
            layout: Layout::Nchw,
        };
        Some((shape, *pool))
    }

    /// The batch norms' `ε` and momentum of `piece`'s plan.
    pub fn res_bn(&self, piece: Piece) -> &BatchNormOptions {
        let FieldPlan::Depth { stem, body, .. } = &self.field else {
            unreachable!("a residual operation in a plan without TinyResNet")
        };
        match piece {
            Piece::Stem => stem.bn_options(),
            Piece::Layer { .. } => body.block().bn_options(),
        }
    }

    /// Elements of TinyResNet's own buffers (`None` for the others).
    pub(super) fn resnet_len(&self, buf: Buf) -> Option<usize> {
        let FieldPlan::Depth { stem, body, .. } = &self.field else {
            return None;
        };
        let (rows, block) = (self.shape.rows, body.block());
        let c = block.channels();
        Some(match buf {
            Buf::Stats => 4 * c * body.depth(),
            Buf::StemStats => 2 * c,
            Buf::Discard => 4 * c,
            Buf::Stem(b) => stem.len_of(b, rows),
            Buf::BodyTape(_, _, k) => block.len_of(block.taped()[k], rows),
            Buf::BodyScratch(b) => block.len_of(b, rows),
            Buf::Pooled | Buf::GradPooled => rows * pooled_len(&self.field).unwrap_or(0),
            Buf::ParamsBefore => self.num_params(),
            Buf::Partial => block
                .len_of(ResBuf::Sums, rows)
                .max(stem.len_of(ResBuf::Sums, rows)),
            _ => return None,
        })
    }

    /// The extent of `piece`'s buffer `b` (its parameter's size, or the whole buffer's).
    pub fn res_len(&self, b: ResBuf, piece: Piece) -> usize {
        let FieldPlan::Depth { stem, body, .. } = &self.field else {
            unreachable!("a residual operation in a plan without TinyResNet")
        };
        match piece {
            Piece::Stem => stem.len_of(b, self.shape.rows),
            Piece::Layer { .. } => body.block().len_of(b, self.shape.rows),
        }
    }

    /// Where `piece`'s plan buffer `b` lives (see the module docs).
    pub fn res_at(&self, b: ResBuf, piece: Piece) -> At {
        let FieldPlan::Depth { stem, body, .. } = &self.field else {
            unreachable!("a residual operation in a plan without TinyResNet")
        };
        use ResBuf::*;
        match piece {
            Piece::Stem => {
                if let Some(o) = stem.param_offset(b) {
                    let buf = match b {
                        Weight(_) | Gamma(_) | Beta(_) => Buf::Params,
                        _ => Buf::GradParams,
                    };
                    return params(buf, o);
                }
                let c = stem.channels();
                match b {
                    Input => Buf::Input.into(),
                    Output => self.state(0).into(),
                    Cotangent => Buf::Lambda.into(),
                    RunningMean(_) => params(Buf::StemStats, 0),
                    RunningVar(_) => params(Buf::StemStats, c),
                    Sums => Buf::Partial.into(),
                    _ => Buf::Stem(b).into(),
                }
            }
            Piece::Layer { n, i, layer, stats } => {
                let (fo, c4) = (self.field_offset(), 4 * body.block().channels());
                match body.place(b, layer, stats) {
                    Place::Param(o) => params(Buf::Params, fo + o),
                    Place::Grad(o) => params(Buf::GradParams, fo + o),
                    Place::Stats(o) => params(Buf::Stats, layer * c4 + o),
                    Place::Discard(o) => params(Buf::Discard, o),
                    Place::Tape(k) => Buf::BodyTape(self.tape(n), i, k).into(),
                    Place::Call => match b {
                        Input => self.stage_input(n, i).into(),
                        Output => Buf::K(i).into(),
                        Cotangent => Buf::KBar.into(),
                        GradInput => Buf::YBar(i).into(),
                        _ => unreachable!("{b:?} is not a call's buffer"),
                    },
                    Place::Scratch if b == Sums => Buf::Partial.into(),
                    Place::Scratch => Buf::BodyScratch(b).into(),
                }
            }
        }
    }

    /// The body's evaluation (or VJP at the taped point) at stage `i` from `State(n)` at
    /// time `t`: layer `round(t·N)`'s block in train mode.
    pub(super) fn push_depth(
        &mut self,
        rows: usize,
        (n, i): (usize, usize),
        forward: bool,
        t: f64,
    ) {
        let FieldPlan::Depth { body, .. } = &self.field else {
            unreachable!("a depth evaluation in a plan without TinyResNet")
        };
        let layer = body.layer_at(t);
        let ops = if forward {
            body.block().forward(rows, true)
        } else {
            body.block().backward(rows, true)
        };
        // The VJP reads the taped statistics, never the running ones.
        let stats = forward && self.pass.evaluation(layer, true);
        let piece = Piece::Layer { n, i, layer, stats };
        self.launches
            .extend(ops.into_iter().map(|op| Launch::Res { op, piece }));
    }

    /// The iteration's start for TinyResNet: the parameters as found, then the stem in
    /// train mode from the images into `y₀`.
    pub(super) fn tiny_resnet_input(&mut self) {
        let FieldPlan::Depth { stem, .. } = &self.field else {
            unreachable!("the stem of a plan without TinyResNet")
        };
        let ops = stem.forward(self.shape.rows, true);
        self.launches.push(Launch::Lincomb {
            len: self.num_params(),
            out: Buf::ParamsBefore,
            base: Buf::Params,
            terms: Vec::new(),
        });
        self.launches.extend(ops.into_iter().map(|op| Launch::Res {
            op,
            piece: Piece::Stem,
        }));
    }

    /// The stem's VJP at `λ = ∂L/∂y₀` (its parameter gradient into `[stem | …]`).
    pub(super) fn tiny_resnet_stem_backward(&mut self) {
        let FieldPlan::Depth { stem, .. } = &self.field else {
            unreachable!("the stem of a plan without TinyResNet")
        };
        let ops = stem.backward(self.shape.rows, true);
        self.launches.extend(ops.into_iter().map(|op| Launch::Res {
            op,
            piece: Piece::Stem,
        }));
    }
}

//! Where the plan's operations find their operands: the MLP field's, the convolutional
//! field's and the head's buffers at a stage of a step.

use super::{params, At, Buf, FieldPlan, TrainPlan};
use crate::cuda::conv_plan::ConvBuf;
use crate::cuda::plan::Mat;

impl TrainPlan {
    pub(super) fn field_at(&self, m: Mat, n: usize, i: usize) -> At {
        let FieldPlan::Mlp(f) = &self.field else {
            unreachable!("MLP operations on a convolutional field's plan")
        };
        match m {
            Mat::Input => self.stage_input(n, i).into(),
            Mat::Act(l) => Buf::Act(self.tape(n), i, l).into(),
            Mat::Output => Buf::K(i).into(),
            Mat::Cotangent => Buf::KBar.into(),
            Mat::Grad(l) => Buf::Hidden(l).into(),
            Mat::GradInput => Buf::YBar(i).into(),
            Mat::Weight(l) => params(Buf::Params, f.weight_offset(l)),
            Mat::Bias(l) => params(Buf::Params, f.bias_offset(l)),
            Mat::GradWeight(l) => params(self.grad_buf(), f.weight_offset(l)),
            Mat::GradBias(l) => params(self.grad_buf(), f.bias_offset(l)),
            Mat::Ones => Buf::Ones.into(),
        }
    }

    /// Where the convolutional field's buffer `b` sits at stage `i` of step `n`: the stage
    /// input and output are the solve's (`Yᵢ`, `kᵢ`), the VJP's cotangent and input gradient
    /// are `k̄` and `Ȳᵢ`, the activations (and the channel-major input) are the tape of
    /// `(n, i)` (slot 0 for the memory-free gradients), and the parameters are offsets into
    /// [`Buf::Params`] / [`Buf::GradParams`] ([`Buf::GradStage`] for the adjoint).
    pub fn conv_at(&self, b: ConvBuf, n: usize, i: usize) -> At {
        let FieldPlan::Conv(f) = &self.field else {
            unreachable!("convolution operations on an MLP's plan")
        };
        if let Some(off) = f.param_offset(b) {
            let buf = match b {
                ConvBuf::Weight(_) | ConvBuf::Bias(_) => Buf::Params,
                _ => self.grad_buf(),
            };
            return params(buf, off);
        }
        match b {
            ConvBuf::Input => self.stage_input(n, i),
            ConvBuf::InputT => Buf::InputT(self.tape(n), i),
            ConvBuf::Act(l) => Buf::Act(self.tape(n), i, l),
            ConvBuf::Col => Buf::Col,
            ConvBuf::OutputT => Buf::OutputT,
            ConvBuf::Output => Buf::K(i),
            ConvBuf::Cotangent => Buf::KBar,
            ConvBuf::CotangentT => Buf::KBarT,
            ConvBuf::Grad(l) => Buf::Hidden(l),
            ConvBuf::GradInputT => Buf::YBarT,
            ConvBuf::GradInput => Buf::YBar(i),
            ConvBuf::Partial => Buf::Partial,
            ConvBuf::Weight(_)
            | ConvBuf::Bias(_)
            | ConvBuf::GradWeight(_)
            | ConvBuf::GradBias(_) => {
                unreachable!("parameters are offsets")
            }
        }
        .into()
    }

    /// The extent of a convolutional field's buffer `b` (its parameter's size, or the whole
    /// buffer's).
    pub fn conv_len(&self, b: ConvBuf) -> usize {
        match &self.field {
            FieldPlan::Conv(f) => f.len_of(b, self.shape.rows),
            _ => 0,
        }
    }

    pub(super) fn head_at(&self, m: Mat) -> At {
        let h = self
            .head
            .as_ref()
            .expect("head operations of a plan with a head");
        let o = self.head_offset();
        let pooled = self.is_tiny_resnet();
        match m {
            Mat::Input if pooled => Buf::Pooled.into(),
            Mat::GradInput if pooled => Buf::GradPooled.into(),
            Mat::Input => self.final_state().into(),
            Mat::Output => Buf::Logits.into(),
            Mat::Cotangent => Buf::GradLogits.into(),
            Mat::GradInput => Buf::Lambda.into(),
            Mat::Weight(l) => params(Buf::Params, o + h.weight_offset(l)),
            Mat::Bias(l) => params(Buf::Params, o + h.bias_offset(l)),
            Mat::GradWeight(l) => params(Buf::GradParams, o + h.weight_offset(l)),
            Mat::GradBias(l) => params(Buf::GradParams, o + h.bias_offset(l)),
            Mat::Ones => Buf::Ones.into(),
            Mat::Act(_) | Mat::Grad(_) => unreachable!("a one-layer head has no hidden layer"),
        }
    }
}

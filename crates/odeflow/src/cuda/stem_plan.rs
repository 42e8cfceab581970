//! The launch plan of TinyResNet's stem on the device (Sander, Ablin, Peyré, NeurIPS 2022;
//! [`crate::models::tiny_resnet`]), forward and exact VJP, from the same operations as the
//! residual block's plan ([`super::conv_bn_plan`]): no kernel of its own. Tested in f64
//! against the CPU stem (`tests/cuda_plan/stem.rs`).
//!
//! **The stem.** `s(x) = ReLU(BN(W ⋆ x))` with `W` a `5×5` convolution `C_in → C`, stride 3,
//! padding 1, no bias, on `h × w` images (output `ho × wo`, `ho = ⌊(h − 3)/3⌋ + 1`: 10×10
//! from CIFAR's 32×32, 9×9 from MNIST's 28×28), and per-channel batch normalisation (train
//! mode: batch statistics, running averages updated; eval mode: the running ones).
//!
//! **Forward** (taping `X` channel-major, `z`, `a = s(x)`, `μ`, `1/√(σ² + ε)`):
//! `X = swap(x)`, `z = col(X) W`, `a = relu(γ x̂ + β)`, `s(x) = swap(a)`.
//! **VJP** from `v`: `∂(BN out) = v ⊙ [a > 0]`, the batch-norm VJP (`∂γ`, `∂β` accumulated,
//! `∂z`), `∂W += col(X)ᵀ ∂z`, `∂x = swap(col2im(∂z Wᵀ))`.
//!
//! **Parameters** in the CPU `Sequential`'s order: `0.weight` (`[C, C_in, 5, 5]`),
//! `1.weight` (`γ`), `1.bias` (`β`).

use super::conv_bn_plan::{bn_backward, bn_forward, swap, ConvBnLayout, ConvGeom};
use super::conv_plan::{ConvOp, ConvShape};
use super::norm_plan::{ImageBatch, Layout};
use super::res_block_plan::{ResBuf, ResOp, RELU};
use crate::field::ParamView;
use crate::nn::BatchNormOptions;

/// Kernel, stride and padding of the stem's convolution.
const KERNEL: usize = 5;
const STRIDE: usize = 3;
const PAD: usize = 1;

/// The shapes of a stem `C_in → C` on `h × w` images and where its parameters sit.
#[derive(Debug, Clone, PartialEq)]
pub struct StemLayout {
    c_in: usize,
    channels: usize,
    hw: (usize, usize),
    out_hw: (usize, usize),
    bn: BatchNormOptions,
}

impl StemLayout {
    /// The stem on `(c_in, h, w)` images with `channels` outputs and PyTorch's batch-norm
    /// `ε` and momentum; fails (with a message) for a zero size or an image smaller than
    /// the kernel allows.
    pub fn new(c_in: usize, channels: usize, h: usize, w: usize) -> Result<Self, String> {
        let shape = (channels > 0)
            .then(|| ConvShape::nchw(1, c_in, (h, w), (KERNEL, KERNEL), (STRIDE, STRIDE), (PAD, PAD)))
            .flatten()
            .ok_or_else(|| {
                format!(
                    "a stem of {channels} channels on ({c_in}, {h}, {w}): sizes must be positive and the image at least 3×3"
                )
            })?;
        Ok(Self {
            c_in,
            channels,
            hw: (h, w),
            out_hw: (shape.ho as usize, shape.wo as usize),
            bn: BatchNormOptions::default(),
        })
    }

    /// Output channels `C`.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The output's height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        self.out_hw
    }

    fn in_positions(&self) -> usize {
        self.hw.0 * self.hw.1
    }

    fn out_positions(&self) -> usize {
        self.out_hw.0 * self.out_hw.1
    }

    fn weight_len(&self) -> usize {
        self.channels * self.c_in * KERNEL * KERNEL
    }

    /// The parameters by PyTorch name, offset and shape, as the CPU `Sequential`'s views.
    pub fn param_views(&self) -> Vec<ParamView> {
        let (c, w) = (self.channels, self.weight_len());
        let view = |name: &str, offset, shape| ParamView {
            name: name.into(),
            offset,
            shape,
        };
        vec![
            view("0.weight", 0, vec![c, self.c_in, KERNEL, KERNEL]),
            view("1.weight", w, vec![c]),
            view("1.bias", w + c, vec![c]),
        ]
    }

    fn geom(&self, rows: usize) -> ConvGeom {
        let k = (KERNEL, KERNEL);
        let shape = ConvShape::nchw(rows, self.c_in, self.hw, k, (STRIDE, STRIDE), (PAD, PAD))
            .expect("checked by new")
            .channel_major();
        ConvGeom {
            shape,
            c_out: self.channels,
        }
    }

    fn bn_shape(&self, rows: usize) -> ImageBatch {
        let p = rows * self.out_positions();
        ImageBatch::new(1, self.channels, 1, p, Layout::Nchw).expect("positive sizes")
    }

    /// The buffers the VJP reads from the forward pass (besides the parameters).
    pub fn taped(&self) -> [ResBuf; 5] {
        use ResBuf::*;
        [InputT, Z(1), A1, Mean(1), InvStd(1)]
    }
}

impl ConvBnLayout for StemLayout {
    fn len_of(&self, b: ResBuf, rows: usize) -> usize {
        use ResBuf::*;
        let c = self.channels;
        let (qi, qo) = (rows * self.in_positions(), rows * self.out_positions());
        match b {
            Input | InputT | GradInputT | GradInput => qi * self.c_in,
            Col => qo * self.c_in * KERNEL * KERNEL,
            Z(1) | A1 | Output | Cotangent | CotangentT | GradZ => qo * c,
            Weight(1) | GradWeight(1) => self.weight_len(),
            Gamma(1) | Beta(1) | GradGamma(1) | GradBeta(1) | Mean(1) | InvStd(1)
            | RunningMean(1) | RunningVar(1) => c,
            Sums => 2 * c,
            _ => 0,
        }
    }

    fn param_offset(&self, b: ResBuf) -> Option<usize> {
        use ResBuf::*;
        let w = self.weight_len();
        match b {
            Weight(1) | GradWeight(1) => Some(0),
            Gamma(1) | GradGamma(1) => Some(w),
            Beta(1) | GradBeta(1) => Some(w + self.channels),
            _ => None,
        }
    }

    fn num_params(&self) -> usize {
        self.weight_len() + 2 * self.channels
    }

    fn bn_options(&self) -> &BatchNormOptions {
        &self.bn
    }

    fn batch_norms(&self) -> usize {
        1
    }

    fn input_len(&self) -> usize {
        self.c_in * self.in_positions()
    }

    fn output_len(&self) -> usize {
        self.channels * self.out_positions()
    }

    fn forward(&self, rows: usize, train: bool) -> Vec<ResOp> {
        use ResBuf::*;
        let (c, pi, po) = (self.channels, self.in_positions(), self.out_positions());
        let mut ops = vec![swap(Input, InputT, rows, self.c_in, pi)];
        self.geom(rows).forward(InputT, 1, Z(1), &mut ops);
        ops.extend(bn_forward(self.bn_shape(rows), 1, train, A1, false));
        ops.push(ResOp::Conv(ConvOp::BiasAct {
            y: A1,
            b: Beta(1),
            n: 1,
            c,
            p: rows * po,
            act: RELU,
        }));
        ops.push(swap(A1, Output, c, rows, po));
        ops
    }

    fn backward(&self, rows: usize, train: bool) -> Vec<ResOp> {
        use ResBuf::*;
        let (c, pi, po) = (self.channels, self.in_positions(), self.out_positions());
        let mut ops = vec![
            swap(Cotangent, CotangentT, rows, c, po),
            ResOp::Conv(ConvOp::ActGrad {
                g: CotangentT,
                a: A1,
                len: rows * po * c,
                act: RELU,
            }),
        ];
        ops.extend(bn_backward(self.bn_shape(rows), 1, train, CotangentT));
        self.geom(rows).backward(InputT, 1, GradInputT, &mut ops);
        ops.push(swap(GradInputT, GradInput, self.c_in, rows, pi));
        ops
    }

    fn name(&self) -> &'static str {
        "stem"
    }
}

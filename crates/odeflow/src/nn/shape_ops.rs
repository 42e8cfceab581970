//! Layers that move values without arithmetic, and the layout conversions.
//!
//! * [`TimeConcat`]: appends the time `t` as an extra *leading* feature/channel, constant
//!   over positions — FFJORD's `ConcatLinear`/`ConcatConv2d` (Grathwohl et al. 2019), which
//!   compute `layer(cat([t·1, x]))`. The next convolution zero-pads the `t` channel like
//!   any other, exactly as `torch.cat` followed by a padded `Conv2d` does. Its backward
//!   drops the `t` component (no gradient with respect to time is needed by the solvers).
//! * [`Flatten`]: `(C, H, W) → (C·H·W)` in PyTorch's order (channel-major), i.e. a
//!   channels-last → channels-first transpose of each sample.
//! * [`to_channels_last`] / [`to_channels_first`]: the batch-layout conversions used at a
//!   network's boundary.

use rand_chacha::ChaCha8Rng;

use super::{check_len, Init, Module, Pass, Saved, Shape};
use crate::real::Real;

/// Per sample: `[c][p] → [p][c]` (`x` holds `n` samples of `channels × positions`).
pub fn to_channels_last<T: Real>(
    x: &[T],
    n: usize,
    channels: usize,
    positions: usize,
    y: &mut [T],
) {
    let len = channels * positions;
    check_len("layout conversion input", x.len(), n * len);
    check_len("layout conversion output", y.len(), n * len);
    if channels == 1 || positions == 1 {
        y.copy_from_slice(x);
        return;
    }
    for (xs, ys) in x.chunks_exact(len).zip(y.chunks_exact_mut(len)) {
        for c in 0..channels {
            for p in 0..positions {
                ys[p * channels + c] = xs[c * positions + p];
            }
        }
    }
}

/// Per sample: `[p][c] → [c][p]` (the inverse of [`to_channels_last`]).
pub fn to_channels_first<T: Real>(
    x: &[T],
    n: usize,
    channels: usize,
    positions: usize,
    y: &mut [T],
) {
    let len = channels * positions;
    check_len("layout conversion input", x.len(), n * len);
    check_len("layout conversion output", y.len(), n * len);
    if channels == 1 || positions == 1 {
        y.copy_from_slice(x);
        return;
    }
    for (xs, ys) in x.chunks_exact(len).zip(y.chunks_exact_mut(len)) {
        for p in 0..positions {
            for c in 0..channels {
                ys[c * positions + p] = xs[p * channels + c];
            }
        }
    }
}

/// `x ↦ cat([t, x])` along the channel (feature) axis; `t` is channel 0.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeConcat {
    shape: Shape,
}

impl TimeConcat {
    /// Time concatenation for input samples of shape `shape`.
    pub fn new(shape: Shape) -> Self {
        Self { shape }
    }
}

impl<T: Real> Module<T> for TimeConcat {
    fn kind(&self) -> String {
        "TimeConcat".into()
    }
    fn in_shape(&self) -> Shape {
        self.shape
    }
    fn out_shape(&self) -> Shape {
        self.shape.with_channels(self.shape.channels() + 1)
    }
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        Vec::new()
    }
    fn init_params(&self, _: &Init, _: &mut ChaCha8Rng, _: &mut [T]) {}
    fn forward(&mut self, pass: &Pass<T>, _: &[T], x: &[T], y: &mut [T], _: &mut [T]) {
        let c = self.shape.channels();
        let rows = pass.batch * self.shape.positions();
        check_len("time-concat input", x.len(), rows * c);
        check_len("time-concat output", y.len(), rows * (c + 1));
        for (xs, ys) in x.chunks_exact(c).zip(y.chunks_exact_mut(c + 1)) {
            ys[0] = pass.t;
            ys[1..].copy_from_slice(xs);
        }
    }
    fn backward(
        &mut self,
        pass: &Pass<T>,
        _: &[T],
        _: Saved<'_, T>,
        gy: &[T],
        gx: &mut [T],
        _: &mut [T],
    ) {
        let c = self.shape.channels();
        let rows = pass.batch * self.shape.positions();
        check_len("time-concat output gradient", gy.len(), rows * (c + 1));
        check_len("time-concat input gradient", gx.len(), rows * c);
        for (gs, xs) in gy.chunks_exact(c + 1).zip(gx.chunks_exact_mut(c)) {
            xs.copy_from_slice(&gs[1..]);
        }
    }
}

/// `(C, …) → (C·…)` in PyTorch's channel-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Flatten {
    shape: Shape,
}

impl Flatten {
    /// Flattening of samples of shape `shape`.
    pub fn new(shape: Shape) -> Self {
        Self { shape }
    }
}

impl<T: Real> Module<T> for Flatten {
    fn kind(&self) -> String {
        "Flatten".into()
    }
    fn in_shape(&self) -> Shape {
        self.shape
    }
    fn out_shape(&self) -> Shape {
        Shape::Flat(self.shape.len())
    }
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        Vec::new()
    }
    fn init_params(&self, _: &Init, _: &mut ChaCha8Rng, _: &mut [T]) {}
    fn forward(&mut self, pass: &Pass<T>, _: &[T], x: &[T], y: &mut [T], _: &mut [T]) {
        to_channels_first(
            x,
            pass.batch,
            self.shape.channels(),
            self.shape.positions(),
            y,
        );
    }
    fn backward(
        &mut self,
        pass: &Pass<T>,
        _: &[T],
        _: Saved<'_, T>,
        gy: &[T],
        gx: &mut [T],
        _: &mut [T],
    ) {
        to_channels_last(
            gy,
            pass.batch,
            self.shape.channels(),
            self.shape.positions(),
            gx,
        );
    }
}

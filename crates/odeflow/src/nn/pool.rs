//! Average pooling over non-overlapping `k × k` windows, as PyTorch's
//! `F.avg_pool2d(x, k)` (kernel `k`, stride `k`, no padding, floor mode).
//!
//! On `(C, H, W)` samples the output is `(C, ⌊H/k⌋, ⌊W/k⌋)` with
//! `y[c, i, j] = (1/k²) Σ_{a, b < k} x[c, k·i + a, k·j + b]`; rows and columns past the last
//! whole window are dropped. The VJP spreads each output gradient evenly over its window:
//! `∂x[c, k·i + a, k·j + b] = ∂y[c, i, j] / k²`, and 0 at the dropped positions. On
//! `(C, L)` sequences the window is `1 × k`.
//!
//! Buffers are channels-last (see [`crate::nn`]).

use rand_chacha::ChaCha8Rng;

use super::{check_len, Init, Module, NnError, Pass, Saved, Shape};
use crate::real::Real;

/// Average pooling with a `k × k` window and stride `k` (`1 × k` on sequences).
#[derive(Debug, Clone, PartialEq)]
pub struct AvgPool2d {
    shape: Shape,
    kernel: (usize, usize),
    out: (usize, usize),
}

impl AvgPool2d {
    /// Pooling of `(C, H, W)` images (or `(C, L)` sequences) with window `k`; fails when
    /// `k` is 0 or larger than the input.
    pub fn new(shape: Shape, k: usize) -> Result<Self, NnError> {
        let (kh, kw) = match shape {
            Shape::Image { .. } => (k, k),
            Shape::Seq { .. } => (1, k),
            Shape::Flat(_) => {
                return Err(NnError::invalid(
                    "average-pool input shape",
                    shape,
                    "needs (C, L) or (C, H, W) samples",
                ))
            }
        };
        let (h, w) = shape.spatial();
        if k == 0 {
            return Err(NnError::invalid("pooling window", 0, "must be positive"));
        }
        if kh > h || kw > w {
            return Err(NnError::invalid(
                "pooling window",
                k,
                format!("exceeds the input {shape}"),
            ));
        }
        Ok(Self {
            shape,
            kernel: (kh, kw),
            out: (h / kh, w / kw),
        })
    }

    /// The window `(k_h, k_w)`.
    pub fn kernel(&self) -> (usize, usize) {
        self.kernel
    }
}

impl<T: Real> Module<T> for AvgPool2d {
    fn kind(&self) -> String {
        "AvgPool2d".into()
    }
    fn in_shape(&self) -> Shape {
        self.shape
    }
    fn out_shape(&self) -> Shape {
        match self.shape {
            Shape::Seq { channels, .. } => Shape::seq(channels, self.out.1),
            _ => Shape::image(self.shape.channels(), self.out.0, self.out.1),
        }
    }
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        Vec::new()
    }
    fn init_params(&self, _: &Init, _: &mut ChaCha8Rng, _: &mut [T]) {}
    fn forward(&mut self, pass: &Pass<T>, _: &[T], x: &[T], y: &mut [T], _: &mut [T]) {
        let c = self.shape.channels();
        let (h, w) = self.shape.spatial();
        let (kh, kw) = self.kernel;
        let (ho, wo) = self.out;
        check_len("average-pool input", x.len(), pass.batch * h * w * c);
        check_len("average-pool output", y.len(), pass.batch * ho * wo * c);
        let scale = T::of(1.0 / (kh * kw) as f64);
        y.fill(T::zero());
        for n in 0..pass.batch {
            let xs = &x[n * h * w * c..(n + 1) * h * w * c];
            let ys = &mut y[n * ho * wo * c..(n + 1) * ho * wo * c];
            for i in 0..ho * kh {
                for j in 0..wo * kw {
                    let src = &xs[(i * w + j) * c..(i * w + j + 1) * c];
                    let o = ((i / kh) * wo + j / kw) * c;
                    for (d, s) in ys[o..o + c].iter_mut().zip(src) {
                        *d += *s;
                    }
                }
            }
            ys.iter_mut().for_each(|v| *v *= scale);
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
        let (h, w) = self.shape.spatial();
        let (kh, kw) = self.kernel;
        let (ho, wo) = self.out;
        check_len(
            "average-pool output gradient",
            gy.len(),
            pass.batch * ho * wo * c,
        );
        check_len(
            "average-pool input gradient",
            gx.len(),
            pass.batch * h * w * c,
        );
        let scale = T::of(1.0 / (kh * kw) as f64);
        gx.fill(T::zero());
        for n in 0..pass.batch {
            let gys = &gy[n * ho * wo * c..(n + 1) * ho * wo * c];
            let gxs = &mut gx[n * h * w * c..(n + 1) * h * w * c];
            for i in 0..ho * kh {
                for j in 0..wo * kw {
                    let o = ((i / kh) * wo + j / kw) * c;
                    let dst = &mut gxs[(i * w + j) * c..(i * w + j + 1) * c];
                    for (d, s) in dst.iter_mut().zip(&gys[o..o + c]) {
                        *d = *s * scale;
                    }
                }
            }
        }
    }
}

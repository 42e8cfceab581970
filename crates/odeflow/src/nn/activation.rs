//! Elementwise activations and their derivatives.
//!
//! | name       | `y = σ(x)`                  | `σ'(x)` used by the backward pass     |
//! |------------|-----------------------------|----------------------------------------|
//! | `relu`     | `max(x, 0)`                 | `1[x > 0]` (0 at the kink, as PyTorch) |
//! | `tanh`     | `tanh x`                    | `1 − y²` (from the saved output)       |
//! | `sigmoid`  | `1/(1 + e^{−x})`            | `y(1 − y)` (from the saved output)     |
//! | `softplus` | `ln(1 + eˣ)`                | `sigmoid(x)`                           |
//! | `silu`     | `x·sigmoid(x)` (swish)      | `s(1 + x(1 − s))`, `s = sigmoid(x)`    |
//!
//! `f32` loops use the branch-free kernels of the private `fastmath` module (relative error
//! below 10⁻⁶, SIMD with runtime dispatch); `f64` uses the standard library's functions,
//! accurate to a few ulp, so `f64` finite-difference checks see the exact derivative. ReLU
//! propagates NaN (a NaN input gives a NaN output, which the solvers report).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::fastmath as fm;
use super::{check_len, same_slice, same_slice_mut, Init, Module, NnError, Pass, Saved, Shape};
use crate::real::Real;

/// An elementwise activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `tanh x`.
    Tanh,
    /// `1/(1 + e^{−x})`.
    Sigmoid,
    /// `ln(1 + eˣ)`.
    Softplus,
    /// `x·sigmoid(x)` (swish).
    Silu,
}

impl Activation {
    /// All activations, in a fixed order.
    pub const ALL: [Activation; 5] = [
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softplus,
        Activation::Silu,
    ];

    /// Lower-case name (`"relu"`, `"tanh"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Softplus => "softplus",
            Activation::Silu => "silu",
        }
    }

    /// The recommended initialisation gain (PyTorch's `calculate_gain`): `√2` for ReLU,
    /// `5/3` for tanh, `1` otherwise.
    pub fn gain(self) -> f64 {
        match self {
            Activation::Relu => std::f64::consts::SQRT_2,
            Activation::Tanh => 5.0 / 3.0,
            _ => 1.0,
        }
    }

    /// `y ← σ(x)` elementwise.
    ///
    /// # Panics
    /// If `x` and `y` differ in length.
    pub fn forward<T: Real>(self, x: &[T], y: &mut [T]) {
        check_len("activation input", x.len(), y.len());
        if let (Some(x), Some(y)) = (same_slice::<T, f32>(x), same_slice_mut::<T, f32>(y)) {
            match self {
                Activation::Relu => fm::relu_slice_f32(x, y),
                Activation::Tanh => fm::tanh_slice_f32(x, y),
                Activation::Sigmoid => fm::sigmoid_slice_f32(x, y),
                Activation::Softplus => fm::softplus_slice_f32(x, y),
                Activation::Silu => fm::silu_slice_f32(x, y),
            }
            return;
        }
        if let (Some(x), Some(y)) = (same_slice::<T, f64>(x), same_slice_mut::<T, f64>(y)) {
            let map = |y: &mut [f64], f: fn(f64) -> f64| {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = f(v);
                }
            };
            match self {
                Activation::Relu => fm::relu_slice_f64(x, y),
                Activation::Tanh => map(y, f64::tanh),
                Activation::Sigmoid => map(y, fm::sigmoid_f64),
                Activation::Softplus => map(y, fm::softplus_f64),
                Activation::Silu => map(y, |v| v * fm::sigmoid_f64(v)),
            }
            return;
        }
        unreachable!("Real is implemented for f32 and f64 only")
    }

    /// `gx ← σ'(x) ⊙ gy`, given the input `x` and the output `y = σ(x)` of the forward pass.
    ///
    /// # Panics
    /// If the four slices differ in length.
    pub fn backward<T: Real>(self, x: &[T], y: &[T], gy: &[T], gx: &mut [T]) {
        let n = gx.len();
        check_len("activation input", x.len(), n);
        check_len("activation output", y.len(), n);
        check_len("activation output gradient", gy.len(), n);
        if let (Some(x), Some(y), Some(gy), Some(gx)) = (
            same_slice::<T, f32>(x),
            same_slice::<T, f32>(y),
            same_slice::<T, f32>(gy),
            same_slice_mut::<T, f32>(gx),
        ) {
            match self {
                Activation::Relu => fm::relu_back_f32(x, y, gy, gx),
                Activation::Tanh => fm::tanh_back_f32(x, y, gy, gx),
                Activation::Sigmoid => fm::sigmoid_back_f32(x, y, gy, gx),
                Activation::Softplus => fm::softplus_back_f32(x, y, gy, gx),
                Activation::Silu => fm::silu_back_f32(x, y, gy, gx),
            }
            return;
        }
        if let (Some(x), Some(y), Some(gy), Some(gx)) = (
            same_slice::<T, f64>(x),
            same_slice::<T, f64>(y),
            same_slice::<T, f64>(gy),
            same_slice_mut::<T, f64>(gx),
        ) {
            match self {
                Activation::Relu => fm::relu_back_f64(x, y, gy, gx),
                Activation::Tanh => fm::tanh_back_f64(x, y, gy, gx),
                Activation::Sigmoid => fm::sigmoid_back_f64(x, y, gy, gx),
                Activation::Softplus => {
                    for i in 0..n {
                        gx[i] = gy[i] * fm::sigmoid_f64(x[i]);
                    }
                }
                Activation::Silu => {
                    for i in 0..n {
                        let s = fm::sigmoid_f64(x[i]);
                        gx[i] = gy[i] * s * (1.0 + x[i] * (1.0 - s));
                    }
                }
            }
            return;
        }
        unreachable!("Real is implemented for f32 and f64 only")
    }
}

impl FromStr for Activation {
    type Err = NnError;
    fn from_str(s: &str) -> Result<Self, NnError> {
        let lower = s.to_ascii_lowercase();
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == lower || (lower == "swish" && *a == Activation::Silu))
            .ok_or_else(|| {
                NnError::invalid(
                    "activation",
                    s,
                    "known activations: relu, tanh, sigmoid, softplus, silu (swish)",
                )
            })
    }
}

/// An activation applied elementwise to samples of a given shape (no parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationLayer {
    /// The function.
    pub activation: Activation,
    shape: Shape,
}

impl ActivationLayer {
    /// `activation` on samples of shape `shape`.
    pub fn new(activation: Activation, shape: Shape) -> Self {
        Self { activation, shape }
    }
}

impl<T: Real> Module<T> for ActivationLayer {
    fn kind(&self) -> String {
        self.activation.name().to_string()
    }
    fn in_shape(&self) -> Shape {
        self.shape
    }
    fn out_shape(&self) -> Shape {
        self.shape
    }
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        Vec::new()
    }
    fn init_params(&self, _: &Init, _: &mut rand_chacha::ChaCha8Rng, _: &mut [T]) {}
    fn forward(&mut self, pass: &Pass<T>, _: &[T], x: &[T], y: &mut [T], _: &mut [T]) {
        check_len("activation input", x.len(), pass.batch * self.shape.len());
        self.activation.forward(x, y);
    }
    fn backward(
        &mut self,
        _: &Pass<T>,
        _: &[T],
        saved: Saved<'_, T>,
        gy: &[T],
        gx: &mut [T],
        _: &mut [T],
    ) {
        self.activation.backward(saved.x, saved.y, gy, gx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_matches_f64_on_a_grid_and_derivatives_match_fd() {
        let xs64: Vec<f64> = (0..2001)
            .map(|i| -12.0 + 24.0 * i as f64 / 2000.0 + 1e-3)
            .collect();
        let xs32: Vec<f32> = xs64.iter().map(|&v| v as f32).collect();
        for a in Activation::ALL {
            let mut y64 = vec![0.0; xs64.len()];
            let mut y32 = vec![0.0f32; xs64.len()];
            a.forward(&xs64, &mut y64);
            a.forward(&xs32, &mut y32);
            for ((v32, v64), x) in y32.iter().zip(&y64).zip(&xs32) {
                // Reference evaluated at the f32 input.
                let mut r = [0.0f64];
                a.forward(&[*x as f64], &mut r);
                assert!(
                    ((*v32 as f64) - r[0]).abs() <= 1e-6 * r[0].abs().max(1e-6),
                    "{a:?} at {x}"
                );
                let _ = v64;
            }
            // Derivative against central differences in f64.
            let ones = vec![1.0; xs64.len()];
            let mut g = vec![0.0; xs64.len()];
            a.backward(&xs64, &y64, &ones, &mut g);
            let h = 1e-6;
            for (i, &x) in xs64.iter().enumerate() {
                let (mut p, mut m) = ([0.0], [0.0]);
                a.forward(&[x + h], &mut p);
                a.forward(&[x - h], &mut m);
                let fd = (p[0] - m[0]) / (2.0 * h);
                assert!(
                    (fd - g[i]).abs() <= 1e-7 * fd.abs().max(1.0),
                    "{a:?}' at {x}: {} vs {fd}",
                    g[i]
                );
            }
            // f32 derivative agrees with f64's.
            let ones32 = vec![1.0f32; xs32.len()];
            let mut g32 = vec![0.0f32; xs32.len()];
            a.backward(&xs32, &y32, &ones32, &mut g32);
            for (a32, a64) in g32.iter().zip(&g) {
                assert!((*a32 as f64 - a64).abs() < 2e-5 * a64.abs().max(1.0));
            }
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!("Tanh".parse::<Activation>().unwrap(), Activation::Tanh);
        assert_eq!("swish".parse::<Activation>().unwrap(), Activation::Silu);
        let e = "gelu".parse::<Activation>().unwrap_err();
        assert!(e.to_string().contains("gelu"));
    }
}

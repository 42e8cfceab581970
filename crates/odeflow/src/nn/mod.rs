//! Native CPU neural-network layers with exact, hand-written VJPs, and neural vector fields.
//!
//! A Neural ODE spends its time in one small network evaluated and differentiated at every
//! stage of every step. Measured on this research's networks, generic tensor frameworks
//! (burn, candle) are 3–9× slower per step than a plain loop of GEMM calls with hand-written
//! vector–Jacobian products, so odeflow's CPU core owns its layers:
//!
//! * [`gemm`]: `C ← αAB + βC` on strided views over the `gemm` crate.
//! * Layers, each with a forward pass and an analytic backward pass that writes the
//!   gradient with respect to its input and *accumulates* the gradient with respect to its
//!   parameters: [`Linear`], [`Conv`] (1-D and 2-D, stride, zero padding), activations
//!   ([`Activation`]: ReLU, tanh, softplus, SiLU, sigmoid; SIMD with runtime dispatch),
//!   [`TimeConcat`] (FFJORD's `ConcatConv`/`ConcatLinear`: `t` as an extra leading
//!   channel), [`BatchNorm`] (train and eval mode), [`Flatten`], [`AvgPool2d`].
//! * [`Sequential`]: a chain of [`Layer`]s whose per-sample shapes are checked at
//!   construction, with a reusable [`Tape`] of the activations its backward pass needs.
//! * [`init`]: seeded initialisers (Kaiming normal, orthogonal via Householder QR, PyTorch's
//!   default uniform).
//! * [`NeuralField`]: a network as a [`crate::VectorField`] on [`crate::Batch`] with one flat
//!   parameter vector and PyTorch-style names (`"0.weight"`, `"0.bias"`, …); [`Network`] is
//!   the same for networks whose output shape differs from their input (classification
//!   heads).
//! * [`zoo`]: the exact architectures of the papers (Ott et al.'s `simple_odenet` and
//!   `odenet`, Zhu et al.'s tanh MLP).
//! * [`loss`]: softmax cross-entropy and mean squared error with their gradients.
//!
//! # Layouts
//!
//! A [`crate::Batch`] row holds one sample flattened in PyTorch's order: `(C, L)` as
//! `c·L + l`, `(C, H, W)` as `(c·H + h)·W + w`. *Inside* a network activations are stored
//! **channels-last**: sample `n`, spatial position `p`, channel `c` at `(n·P + p)·C + c`.
//! Then a `1×1` convolution or a linear layer over the whole batch is one GEMM with
//! `N·P` rows, a `k`-tap convolution is one GEMM over an im2col matrix whose rows are `k`
//! contiguous channel vectors, and batch normalisation reduces over rows. [`Sequential`]
//! converts between the two layouts at its boundary (a copy when `C = 1` or `P = 1`).
//! Layer-level `forward`/`backward` calls ([`Module`]) take and return channels-last
//! buffers.

pub mod activation;
pub mod batchnorm;
pub mod conv;
mod conv_kernels;
mod fastmath;
pub mod field;
pub mod gemm;
pub mod init;
pub mod linear;
pub mod loss;
pub mod pool;
pub mod sequential;
pub mod shape_ops;
pub mod zoo;

pub use activation::{Activation, ActivationLayer};
pub use batchnorm::{BatchNorm, BatchNormOptions};
pub use conv::{Conv, ConvAlgo, ConvSpec};
pub use field::{Network, NeuralField};
pub use gemm::{matmul, GemmError, GemmParams, MatMut, MatRef};
pub use init::Init;
pub use linear::Linear;
pub use pool::AvgPool2d;
pub use sequential::{Layer, Sequential, SequentialBuilder, Tape};
pub use shape_ops::{Flatten, TimeConcat};

use std::any::TypeId;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::ShapeError;
use crate::real::Real;

/// The shape of one sample (the batch dimension is not part of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Shape {
    /// A feature vector of this many components.
    Flat(usize),
    /// A sequence: `channels × length` (PyTorch `Conv1d` input without the batch axis).
    Seq {
        /// Channels.
        channels: usize,
        /// Length.
        length: usize,
    },
    /// An image: `channels × height × width` (PyTorch `Conv2d` input without the batch axis).
    Image {
        /// Channels.
        channels: usize,
        /// Height.
        height: usize,
        /// Width.
        width: usize,
    },
}

impl Shape {
    /// `(C, L)`.
    pub fn seq(channels: usize, length: usize) -> Self {
        Shape::Seq { channels, length }
    }

    /// `(C, H, W)`.
    pub fn image(channels: usize, height: usize, width: usize) -> Self {
        Shape::Image {
            channels,
            height,
            width,
        }
    }

    /// Channels (the features of a flat vector).
    pub fn channels(&self) -> usize {
        match *self {
            Shape::Flat(n) => n,
            Shape::Seq { channels, .. } | Shape::Image { channels, .. } => channels,
        }
    }

    /// Spatial extent as `(height, width)`: `(1, 1)` for flat, `(1, L)` for sequences.
    pub fn spatial(&self) -> (usize, usize) {
        match *self {
            Shape::Flat(_) => (1, 1),
            Shape::Seq { length, .. } => (1, length),
            Shape::Image { height, width, .. } => (height, width),
        }
    }

    /// Number of spatial positions `P`.
    pub fn positions(&self) -> usize {
        let (h, w) = self.spatial();
        h * w
    }

    /// Components per sample `C·P`.
    pub fn len(&self) -> usize {
        self.channels() * self.positions()
    }

    /// True when a sample has no components.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same spatial kind and extent with another channel count.
    pub fn with_channels(&self, channels: usize) -> Self {
        match *self {
            Shape::Flat(_) => Shape::Flat(channels),
            Shape::Seq { length, .. } => Shape::Seq { channels, length },
            Shape::Image { height, width, .. } => Shape::Image {
                channels,
                height,
                width,
            },
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Shape::Flat(n) => write!(f, "({n})"),
            Shape::Seq { channels, length } => write!(f, "(C={channels}, L={length})"),
            Shape::Image {
                channels,
                height,
                width,
            } => write!(f, "(C={channels}, H={height}, W={width})"),
        }
    }
}

/// Errors of network construction and use. Every variant names the offending value.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NnError {
    /// A layer's input shape differs from what the layer before it produces.
    #[error("layer {index} ({layer}) expects input shape {expected}, but receives {got}")]
    ShapeMismatch {
        /// Position of the layer in the sequence.
        index: usize,
        /// The layer's kind.
        layer: String,
        /// The input shape the layer was built for.
        expected: Shape,
        /// The shape it would receive.
        got: Shape,
    },
    /// A layer or model hyper-parameter is invalid.
    #[error("{name} = {value} is invalid: {reason}")]
    Invalid {
        /// The hyper-parameter.
        name: String,
        /// The value given.
        value: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A network used as a vector field must map a sample shape to itself.
    #[error("a vector field must map a sample shape to itself, but the network maps {input} to {output}")]
    NotAField {
        /// Input shape.
        input: Shape,
        /// Output shape.
        output: Shape,
    },
    /// A class label outside `0..classes`.
    #[error("label {label} of sample {index} is out of range for {classes} classes")]
    LabelOutOfRange {
        /// Sample index.
        index: usize,
        /// The label.
        label: usize,
        /// Number of classes.
        classes: usize,
    },
    /// Buffer sizes that should agree do not.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// A parameter name that the model does not have.
    #[error("unknown parameter '{name}'; known: {known}")]
    UnknownParam {
        /// The name given.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
}

impl NnError {
    /// Shorthand for [`NnError::Invalid`].
    pub fn invalid(
        name: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        NnError::Invalid {
            name: name.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// What a forward or backward pass needs besides its operands.
#[derive(Debug, Clone, Copy)]
pub struct Pass<T> {
    /// Number of samples `N`.
    pub batch: usize,
    /// Time (read by [`TimeConcat`]).
    pub t: T,
    /// Training mode (batch statistics in [`BatchNorm`]).
    pub train: bool,
    /// Threading policy of the matrix products.
    pub gemm: GemmParams,
}

/// What a layer's forward pass left for its backward pass.
#[derive(Debug, Clone, Copy)]
pub struct Saved<'a, T> {
    /// The layer's input (channels-last).
    pub x: &'a [T],
    /// The layer's output (channels-last).
    pub y: &'a [T],
    /// Extra values recorded by the forward pass (see [`Module::aux_len`]).
    pub aux: &'a [T],
}

/// A layer: shapes, parameters, forward pass, and analytic backward pass.
///
/// Buffers are channels-last (see the [module docs](self)): `x` holds
/// `pass.batch · in_shape().len()` values and `y` holds `pass.batch · out_shape().len()`.
/// The layer does not own its parameters; it reads them from (and accumulates their
/// gradient into) the slices it is given, laid out as [`Module::param_shapes`] lists them.
///
/// This is the low-level interface: a buffer whose length disagrees with the shapes is a
/// programming error and panics. [`Sequential`] validates sizes and returns typed errors.
pub trait Module<T: Real> {
    /// Short name of the layer kind (`"Linear"`, `"Conv2d"`, …).
    fn kind(&self) -> String;
    /// Shape of one input sample.
    fn in_shape(&self) -> Shape;
    /// Shape of one output sample.
    fn out_shape(&self) -> Shape;
    /// Names (`"weight"`, `"bias"`) and shapes of the parameter tensors, in storage order.
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)>;
    /// Number of parameters.
    fn num_params(&self) -> usize {
        self.param_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
    /// Length of the extra record the forward pass leaves for the backward pass.
    fn aux_len(&self) -> usize {
        0
    }
    /// Fills `params` with initial values drawn from `rng` by `init`.
    fn init_params(&self, init: &Init, rng: &mut rand_chacha::ChaCha8Rng, params: &mut [T]);
    /// `y ← layer(x)`; may record values in `aux` (length [`Module::aux_len`]).
    fn forward(&mut self, pass: &Pass<T>, params: &[T], x: &[T], y: &mut [T], aux: &mut [T]);
    /// `gx ← (∂y/∂x)ᵀ gy` (overwritten) and `gparams ← gparams + (∂y/∂θ)ᵀ gy`.
    fn backward(
        &mut self,
        pass: &Pass<T>,
        params: &[T],
        saved: Saved<'_, T>,
        gy: &[T],
        gx: &mut [T],
        gparams: &mut [T],
    );
}

/// `x` as a slice of `U` when `T` and `U` are the same type.
pub(crate) fn same_slice<T: 'static, U: 'static>(x: &[T]) -> Option<&[U]> {
    if TypeId::of::<T>() == TypeId::of::<U>() {
        // SAFETY: T and U are the same type, so the layout and validity are identical.
        Some(unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<U>(), x.len()) })
    } else {
        None
    }
}

/// `x` as a mutable slice of `U` when `T` and `U` are the same type.
pub(crate) fn same_slice_mut<T: 'static, U: 'static>(x: &mut [T]) -> Option<&mut [U]> {
    if TypeId::of::<T>() == TypeId::of::<U>() {
        // SAFETY: T and U are the same type; the borrow is carried over unchanged.
        Some(unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<U>(), x.len()) })
    } else {
        None
    }
}

/// Checks that a buffer has the length a layer expects (internal invariant).
#[inline]
pub(crate) fn check_len(what: &'static str, got: usize, expected: usize) {
    assert_eq!(
        got, expected,
        "{what}: expected {expected} values, got {got}"
    );
}

/// `out[c] += Σ_r g[r·cols + c]` (the bias gradient of a layer with `cols` outputs).
pub(crate) fn add_column_sums<T: Real>(g: &[T], cols: usize, out: &mut [T]) {
    check_len("bias gradient", out.len(), cols);
    if cols == 0 {
        return;
    }
    for row in g.chunks_exact(cols) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += *v;
        }
    }
}

/// Every `cols`-long row of `y` ← `bias`.
pub(crate) fn broadcast_rows<T: Real>(y: &mut [T], bias: &[T]) {
    if bias.is_empty() {
        return;
    }
    for row in y.chunks_exact_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

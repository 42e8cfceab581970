//! The architectures of the papers, exactly.
//!
//! * [`simple_odenet`] — Ott, Katiyar, Hennig, Tiemann, *ResNet after all? Neural ODEs and
//!   their numerical solution* (ICLR 2021), official code, for the 1-D toy problems: on
//!   samples `(1, d)`,
//!   `Conv1d(1→C, k=1) → ReLU → Conv1d(C→C, k=3, padding=1) → ReLU → Conv1d(C→1, k=1)`,
//!   autonomous, PyTorch default initialisation (as the authors use PyTorch's defaults).
//!   Parameter names `0.weight [C,1,1]`, `0.bias [C]`, `2.weight [C,C,3]`, `2.bias [C]`,
//!   `4.weight [1,C,1]`, `4.bias [1]`.
//! * [`odenet`] — the same on images: `Conv2d(c_in→C, 1×1) → ReLU →
//!   Conv2d(C→C, 3×3, padding 1) → ReLU → Conv2d(C→c_in, 1×1)`, PyTorch default
//!   initialisation.
//! * [`mlp`] — a tanh/ReLU/… multilayer perceptron `dims[0] → … → dims[last]` with the
//!   activation between the linear layers (none after the last); [`zhu_field`] is Zhu,
//!   Jin, Zhu, Tang's (ICML 2022) field `dim → 128 → 128 → dim`, tanh, orthogonal weights,
//!   zero biases.
//! * [`linear_head`] — `Flatten → Linear(features → classes)` for classification on the
//!   state at the final time (PyTorch default initialisation).

use super::activation::Activation;
use super::field::{Network, NeuralField};
use super::init::Init;
use super::sequential::SequentialBuilder;
use super::{NnError, Shape};
use crate::real::Real;

/// Ott et al.'s `simple_odenet` with `channels` hidden channels on samples `(1, d)`.
pub fn simple_odenet<T: Real>(
    channels: usize,
    d: usize,
    seed: u64,
) -> Result<NeuralField<T>, NnError> {
    let seq = SequentialBuilder::new(Shape::seq(1, d))
        .conv1d(channels, 1, 1, 0)
        .activation(Activation::Relu)
        .conv1d(channels, 3, 1, 1)
        .activation(Activation::Relu)
        .conv1d(1, 1, 1, 0)
        .build()?;
    NeuralField::from_sequential(seq, &Init::PyTorchDefault, seed)
}

/// Ott et al.'s convolutional field on `(c_in, h, w)` images with `channels` hidden
/// channels.
pub fn odenet<T: Real>(
    c_in: usize,
    h: usize,
    w: usize,
    channels: usize,
    seed: u64,
) -> Result<NeuralField<T>, NnError> {
    let seq = SequentialBuilder::new(Shape::image(c_in, h, w))
        .conv2d(channels, 1, 1, 0)
        .activation(Activation::Relu)
        .conv2d(channels, 3, 1, 1)
        .activation(Activation::Relu)
        .conv2d(c_in, 1, 1, 0)
        .build()?;
    NeuralField::from_sequential(seq, &Init::PyTorchDefault, seed)
}

/// Options of [`mlp`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlpOptions {
    /// Activation between linear layers.
    pub activation: Activation,
    /// Initialisation of the linear layers.
    pub init: Init,
    /// Concatenate `t` as an extra leading input feature of every linear layer (FFJORD's
    /// `ConcatLinear`), making the field non-autonomous.
    pub time_input: bool,
}

/// A multilayer perceptron `dims[0] → dims[1] → … → dims[last]` with `activation` after
/// every linear layer except the last. Fails for fewer than two sizes or a zero size.
pub fn mlp<T: Real>(dims: &[usize], opts: &MlpOptions, seed: u64) -> Result<Network<T>, NnError> {
    if dims.len() < 2 {
        return Err(NnError::invalid(
            "mlp dims",
            format!("{dims:?}"),
            "need at least input and output sizes",
        ));
    }
    let mut b = SequentialBuilder::new(Shape::Flat(dims[0]));
    for (i, &d) in dims[1..].iter().enumerate() {
        if opts.time_input {
            b = b.time_concat();
        }
        b = b.linear(d);
        if i + 2 < dims.len() {
            b = b.activation(opts.activation);
        }
    }
    Ok(Network::new(b.build()?, &opts.init, seed))
}

/// An [`mlp`] whose output size equals its input size, as a vector field.
pub fn mlp_field<T: Real>(
    dims: &[usize],
    opts: &MlpOptions,
    seed: u64,
) -> Result<NeuralField<T>, NnError> {
    NeuralField::new(mlp(dims, opts, seed)?)
}

/// Zhu et al.'s field: `dim → 128 → 128 → dim`, tanh, orthogonal weights, zero biases.
pub fn zhu_field<T: Real>(dim: usize, seed: u64) -> Result<NeuralField<T>, NnError> {
    mlp_field(
        &[dim, 128, 128, dim],
        &MlpOptions {
            activation: Activation::Tanh,
            init: Init::orthogonal(),
            time_input: false,
        },
        seed,
    )
}

/// `Flatten → Linear(input.len() → classes)` (PyTorch default initialisation): logits of
/// a classifier reading the final state.
pub fn linear_head<T: Real>(
    input: Shape,
    classes: usize,
    seed: u64,
) -> Result<Network<T>, NnError> {
    let mut b = SequentialBuilder::new(input);
    if !matches!(input, Shape::Flat(_)) {
        b = b.flatten();
    }
    Ok(Network::new(
        b.linear(classes).build()?,
        &Init::PyTorchDefault,
        seed,
    ))
}

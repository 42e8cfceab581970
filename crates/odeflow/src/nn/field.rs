//! Networks with their parameters, and networks as vector fields of Neural ODEs.
//!
//! [`Network`] owns a [`Sequential`] and its flat parameter vector, and evaluates and
//! differentiates the network on [`Batch`]es (one sample per row, PyTorch's order within
//! a row). [`NeuralField`] is a network whose output shape equals its input shape used as
//! the right-hand side `dy/dt = f(t, y; θ)`: it implements [`VectorField`] (taped
//! evaluation into a reusable [`Tape`], VJPs into caller buffers), [`Parameterized`] (one
//! flat `Vec<T>`, views named `"0.weight"`, `"0.bias"`, … as in a PyTorch `nn.Sequential`)
//! and [`Rhs`] (so it can be handed to [`crate::solve::solve`] directly). The field is
//! autonomous unless the network contains a [`crate::nn::TimeConcat`] layer.

use super::init::Init;
use super::sequential::{Sequential, Tape};
use super::{NnError, Shape};
use crate::error::ShapeError;
use crate::field::{ParamView, Parameterized, VectorField};
use crate::real::Real;
use crate::solve::Rhs;
use crate::state::Batch;

/// A [`Sequential`] with its parameters.
#[derive(Debug, Clone)]
pub struct Network<T> {
    seq: Sequential<T>,
    params: Vec<T>,
}

impl<T: Real> Network<T> {
    /// The network with parameters drawn by `init` from seed `seed`.
    pub fn new(seq: Sequential<T>, init: &Init, seed: u64) -> Self {
        let params = seq.init_params(init, seed);
        Self { seq, params }
    }

    /// The network with the given parameters (length [`Sequential::num_params`]).
    pub fn with_params(seq: Sequential<T>, params: Vec<T>) -> Result<Self, NnError> {
        if params.len() != seq.num_params() {
            return Err(ShapeError {
                what: "parameter vector",
                expected: seq.num_params(),
                got: params.len(),
            }
            .into());
        }
        Ok(Self { seq, params })
    }

    /// The layers.
    pub fn sequential(&self) -> &Sequential<T> {
        &self.seq
    }

    /// The layers, mutable (mode, threading, convolution algorithms).
    pub fn sequential_mut(&mut self) -> &mut Sequential<T> {
        &mut self.seq
    }

    /// Shape of one input sample.
    pub fn in_shape(&self) -> Shape {
        self.seq.in_shape()
    }

    /// Shape of one output sample.
    pub fn out_shape(&self) -> Shape {
        self.seq.out_shape()
    }

    /// Training mode (batch statistics in batch norm) or evaluation mode.
    pub fn set_train(&mut self, train: bool) {
        self.seq.set_train(train);
    }

    /// The parameter tensor called `name`.
    pub fn param(&self, name: &str) -> Result<&[T], NnError> {
        let v = self.view(name)?;
        Ok(&self.params[v.range()])
    }

    /// The parameter tensor called `name`, mutable.
    pub fn param_mut(&mut self, name: &str) -> Result<&mut [T], NnError> {
        let v = self.view(name)?;
        Ok(&mut self.params[v.range()])
    }

    fn view(&self, name: &str) -> Result<ParamView, NnError> {
        let views = self.seq.param_views();
        let known = views
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        views
            .into_iter()
            .find(|v| v.name == name)
            .ok_or_else(|| NnError::UnknownParam {
                name: name.to_string(),
                known,
            })
    }

    /// An empty tape for [`Network::forward_taped`].
    pub fn new_tape(&self) -> Tape<T> {
        Tape::new()
    }

    fn check_input(&self, x: &Batch<T>) -> Result<(), NnError> {
        let want = self.in_shape().len();
        if x.cols() != want {
            return Err(ShapeError {
                what: "network input sample",
                expected: want,
                got: x.cols(),
            }
            .into());
        }
        Ok(())
    }

    /// `y ← f(t, x)`; `y` is resized to `x.rows() × out_shape().len()`.
    pub fn forward(&mut self, t: f64, x: &Batch<T>, y: &mut Batch<T>) -> Result<(), NnError> {
        self.check_input(x)?;
        y.resize(x.rows(), self.out_shape().len());
        self.seq
            .forward(&self.params, T::of(t), x.as_slice(), y.as_mut_slice())
    }

    /// `y ← f(t, x)`, recording in `tape` what [`Network::backward`] needs.
    pub fn forward_taped(
        &mut self,
        t: f64,
        x: &Batch<T>,
        y: &mut Batch<T>,
        tape: &mut Tape<T>,
    ) -> Result<(), NnError> {
        self.check_input(x)?;
        y.resize(x.rows(), self.out_shape().len());
        self.seq
            .forward_taped(&self.params, T::of(t), x.as_slice(), y.as_mut_slice(), tape)
    }

    /// At the point recorded in `tape`: `gx ← (∂f/∂x)ᵀ gy` (resized and overwritten) and
    /// `gparams ← gparams + (∂f/∂θ)ᵀ gy`.
    pub fn backward(
        &mut self,
        tape: &Tape<T>,
        gy: &Batch<T>,
        gx: &mut Batch<T>,
        gparams: &mut [T],
    ) -> Result<(), NnError> {
        gx.resize(gy.rows(), self.in_shape().len());
        self.seq.backward(
            &self.params,
            tape,
            gy.as_slice(),
            gx.as_mut_slice(),
            gparams,
        )
    }
}

impl<T: Real> Parameterized<T> for Network<T> {
    fn params(&self) -> &[T] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
    fn param_views(&self) -> Vec<ParamView> {
        self.seq.param_views()
    }
}

/// A network `f(t, y; θ)` mapping a sample shape to itself, as a Neural ODE vector field.
///
/// The [`VectorField`] methods cannot return errors; they panic with the [`NnError`]'s
/// message when a state does not hold whole samples of the network's shape (a programming
/// error: the solver passes the states it was given). Use [`Network`]'s methods for
/// checked calls.
#[derive(Debug, Clone)]
pub struct NeuralField<T> {
    net: Network<T>,
}

impl<T: Real> NeuralField<T> {
    /// Wraps a network whose output shape equals its input shape.
    pub fn new(net: Network<T>) -> Result<Self, NnError> {
        if net.in_shape() != net.out_shape() {
            return Err(NnError::NotAField {
                input: net.in_shape(),
                output: net.out_shape(),
            });
        }
        Ok(Self { net })
    }

    /// Builds the network from layers with parameters drawn by `init` from seed `seed`.
    pub fn from_sequential(seq: Sequential<T>, init: &Init, seed: u64) -> Result<Self, NnError> {
        Self::new(Network::new(seq, init, seed))
    }

    /// The network.
    pub fn network(&self) -> &Network<T> {
        &self.net
    }

    /// The network, mutable.
    pub fn network_mut(&mut self) -> &mut Network<T> {
        &mut self.net
    }

    /// Shape of one sample of the state.
    pub fn shape(&self) -> Shape {
        self.net.in_shape()
    }

    /// Training mode (batch statistics in batch norm) or evaluation mode.
    pub fn set_train(&mut self, train: bool) {
        self.net.set_train(train);
    }
}

fn or_panic(r: Result<(), NnError>) {
    if let Err(e) = r {
        panic!("NeuralField: {e}");
    }
}

impl<T: Real> VectorField<Batch<T>> for NeuralField<T> {
    type Tape = Tape<T>;
    type Grad = Vec<T>;

    fn new_tape(&self) -> Tape<T> {
        Tape::new()
    }

    fn zero_grad(&self) -> Vec<T> {
        vec![T::zero(); self.net.params.len()]
    }

    fn eval(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        or_panic(self.net.forward(t, y, dy));
    }

    fn eval_taped(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>, tape: &mut Tape<T>) {
        or_panic(self.net.forward_taped(t, y, dy, tape));
    }

    fn vjp(&mut self, tape: &Tape<T>, v: &Batch<T>, gy: &mut Batch<T>, gtheta: &mut Vec<T>) {
        or_panic(self.net.backward(tape, v, gy, gtheta));
    }
}

impl<T: Real> Parameterized<T> for NeuralField<T> {
    fn params(&self) -> &[T] {
        &self.net.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.net.params
    }
    fn param_views(&self) -> Vec<ParamView> {
        self.net.seq.param_views()
    }
}

impl<T: Real> Rhs<Batch<T>> for NeuralField<T> {
    fn eval(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        VectorField::eval(self, t, y, dy);
    }
}

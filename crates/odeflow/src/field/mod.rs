//! The vector-field trait: evaluation and vector–Jacobian products into caller buffers.
//!
//! A Neural ODE's field `f(t, y; θ)` must give the solver `f` and the gradient methods its
//! VJPs `vᵀ∂f/∂y` and `vᵀ∂f/∂θ` at the points where it was evaluated. odeflow does not tape
//! the solver loop: [`VectorField::eval_taped`] records what one evaluation's VJP needs (the
//! layer activations) in a caller-owned [`VectorField::Tape`], and [`VectorField::vjp`]
//! consumes it. The gradient methods (`grad`) decide how many tapes to keep: one per stage
//! (`backprop`), or one reused scratch tape after recomputation (`adjoint`, `reversible`).
//!
//! The trait is generic over the [`State`], so the same gradient code runs on CPU batches
//! and on framework tensors.

mod parallel;

pub use parallel::{ParallelField, ParallelTape};

use serde::{Deserialize, Serialize};

use crate::solve::Rhs;
use crate::state::State;

/// A parameterised vector field `f(t, y; θ)` with exact VJPs.
pub trait VectorField<S: State> {
    /// What one evaluation records for its VJP.
    type Tape;
    /// The parameter gradient (a flat vector on the CPU).
    type Grad: State<Scalar = S::Scalar>;

    /// An empty tape (buffers are sized on first use and reused afterwards).
    fn new_tape(&self) -> Self::Tape;

    /// A zero parameter gradient.
    fn zero_grad(&self) -> Self::Grad;

    /// `dy ← f(t, y; θ)`.
    fn eval(&mut self, t: f64, y: &S, dy: &mut S);

    /// `dy ← f(t, y; θ)`, recording in `tape` what [`VectorField::vjp`] needs.
    fn eval_taped(&mut self, t: f64, y: &S, dy: &mut S, tape: &mut Self::Tape);

    /// At the point recorded in `tape`: `gy ← vᵀ ∂f/∂y` (overwritten) and
    /// `gθ ← gθ + vᵀ ∂f/∂θ` (accumulated).
    fn vjp(&mut self, tape: &Self::Tape, v: &S, gy: &mut S, gtheta: &mut Self::Grad);
}

/// A field with its parameters in one flat buffer, viewed by name (CPU models).
pub trait Parameterized<T> {
    /// All parameters, in the order of [`Parameterized::param_views`].
    fn params(&self) -> &[T];
    /// All parameters, mutable.
    fn params_mut(&mut self) -> &mut [T];
    /// Named views into the flat buffer.
    fn param_views(&self) -> Vec<ParamView>;
    /// Number of parameters.
    fn num_params(&self) -> usize {
        self.params().len()
    }
}

/// A named tensor inside a flat parameter buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamView {
    /// Dotted name, e.g. `"layers.0.weight"`.
    pub name: String,
    /// Offset of the first element.
    pub offset: usize,
    /// Shape (row-major).
    pub shape: Vec<usize>,
}

impl ParamView {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// True for an empty tensor.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The element range in the flat buffer.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// A vector field used as a plain right-hand side (no taping).
pub struct FieldRhs<'a, F>(pub &'a mut F);

impl<S: State, F: VectorField<S>> Rhs<S> for FieldRhs<'_, F> {
    fn eval(&mut self, t: f64, y: &S, dy: &mut S) {
        self.0.eval(t, y, dy);
    }
}
